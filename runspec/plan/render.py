"""Resolved stages → a ``Plan``: every run with its config, provenance and backend request.

For each run this renders ``config.yaml`` (the recipe config with overrides and the sweep
point applied, clean, for the script), ``job.yaml`` (provenance: manifest, resolved env
with secrets as references, point, cycle, runspec version) and the backend's files, and
hashes the canonical request into the run's digest (all of it but ``recipe_source``, the
script's text that its ``code_digest`` already covers).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runspec import __version__
from runspec.artifacts.uri import output_variable
from runspec.backends import backend_for
from runspec.ir import Plan, Run, RunSpec
from runspec.manifest.document import Document, KeyPath, format_path
from runspec.manifest.errors import Diagnostic, ManifestError
from runspec.manifest.pep723 import GPU_COUNT
from runspec.plan import yamltext
from runspec.plan.adaptive import grow
from runspec.plan.command import CommandError, measured, recipe_argv
from runspec.plan.dotted import UnknownKey, all_keys, check_key, with_values
from runspec.plan.expand import ExpandError, campaign_slots, sweep_points
from runspec.plan.identity import digest, key_path, run_key
from runspec.plan.interpolate import (
    InterpolationError,
    Interpolator,
    Unresolved,
    as_text,
    has_reference,
)
from runspec.plan.resolve import Resolved, ResolvedStage
from runspec.plan.source import SOURCE_FIELD, Source, read_source

if TYPE_CHECKING:
    from runspec.state.store import State


class _Problems:
    """Collects diagnostics so one plan reports every problem, not just the first."""

    def __init__(self, document: Document):
        self.document = document
        self.found: list[Diagnostic] = []
        self.offline = False

    def at(self, path: KeyPath, message: str, hint: str | None = None,
           document: Document | None = None, on_key: bool = False) -> None:
        doc = document or self.document
        position = doc.key_position(path) if on_key else doc.value_position(path)
        self.found.append(Diagnostic.at(position, format_path(path), message, hint, doc))

    def raise_if_any(self) -> None:
        if self.found:
            unique = list(dict.fromkeys(self.found))
            raise ManifestError(sorted(unique, key=lambda d: (d.file, d.line, d.col)))


def build_plan(resolved: Resolved, offline: bool = False, state: State | None = None) -> Plan:
    """Expand and render every stage. Raises ManifestError listing every problem.

    ``offline`` (for ``validate``, which must not depend on what this machine's registry
    holds): an ``art://`` input the registry lacks is left unpinned instead of an error.
    ``state``: the applied runs, from which a stage with ``campaign.until`` learns how many
    cycles each point needs (see ``plan.adaptive``); without it, the minimum."""
    name = resolved.manifest.name
    problems = _Problems(resolved.document)
    problems.offline = offline
    plan = Plan(name=name, manifest_path=resolved.document.display,
                manifest_digest=resolved.manifest_digest, root=resolved.root,
                outputs_root=resolved.outputs_root,
                stages={s.name: s.env.executor for s in resolved.stages},
                needs={s.name: list(s.needs) for s in resolved.stages}, runs=[])
    stage_runs: dict[str, list[Run]] = {}
    registry = _PlanRegistry(resolved.artifacts_root)
    for stage in resolved.stages:
        waiting = _waits_for(stage, plan) if state is not None else None
        if waiting:
            plan.deferred[stage.name] = waiting
            stage_runs[stage.name] = []
            continue
        runs = _render_stage(resolved, stage, plan, stage_runs, problems, registry)
        until = stage.campaign.until
        if until is not None and runs:
            runs, plan.adaptive[stage.name] = grow(runs, until, stage.campaign.cycles, state,
                                                   resolved.root)
        stage_runs[stage.name] = runs
        plan.runs.extend(runs)
    problems.raise_if_any()
    return plan


class _PlanRegistry:
    """The artifact registry, opened once per plan and only when a stage uses it (most
    plans consume no artifact; an fsspec root imports fsspec)."""

    def __init__(self, root: str):
        self.root = root
        self._opened: Any = None

    def __call__(self):
        if self._opened is None:
            from runspec.artifacts.registry import Registry

            self._opened = Registry(self.root)
            self._opened.drift = self._drift_once(self._opened.drift)
        return self._opened

    @staticmethod
    def _drift_once(check):
        """A version's drift, checked once per plan: every run consuming it (1,000 eval runs
        of one model) would otherwise stat and maybe re-hash its whole tree again."""
        found: dict[tuple[str, int, str], list[str]] = {}

        def drift(version, of: str = "path") -> list[str]:
            key = (version.name, version.number, of)
            if key not in found:
                found[key] = check(version, of=of)
            return found[key]

        return drift


def _waits_for(stage: ResolvedStage, plan: Plan) -> str | None:
    """Why ``stage`` is planned later: a stage it needs is itself planned later, or is still
    adding adaptive cycles (its consumers should see every cycle it will have)."""
    for need in stage.needs:
        if need in plan.deferred:
            return f"waits for stage {need}, which is planned later"
        adaptive = plan.adaptive.get(need)
        if adaptive is not None and not adaptive.done:
            return f"waits for stage {need} to finish its adaptive cycles (campaign.until)"
    return None


def _render_stage(resolved: Resolved, stage: ResolvedStage, plan: Plan,
                  stage_runs: dict[str, list[Run]], problems: _Problems,
                  registry: _PlanRegistry) -> list[Run]:
    name = resolved.manifest.name
    upstream = {n: digest([r.digest for r in stage_runs.get(n, [])]) for n in stage.needs}
    at = stage.at
    try:
        points = _fan_out(sweep_points(stage.sweep, f"{name}/{stage.name}"), stage, stage_runs,
                          resolved.root)
        slots = campaign_slots(points, stage.campaign, f"{name}/{stage.name}")
    except ExpandError as error:
        problems.at(at + ("sweep", *error.path), error.message, error.hint, on_key=True)
        return []
    except _Deferred as deferred:
        plan.deferred[stage.name] = str(deferred)
        return []
    config_keys = _checked_config_keys(stage, problems)
    pinned = _pin_inputs(stage, problems, registry)
    if config_keys is None or pinned is None:
        return []
    left_to_recipe = _pin_run_section(stage, pinned, registry, problems)
    if left_to_recipe is None:
        return []
    unpinned = {n: a.uri for n, a in stage.artifacts.items()
                if a.uri.startswith("art://") and n not in pinned}  # offline only
    plan.notes.extend(stage.notes)
    if left_to_recipe:
        if _wandb_left(stage, left_to_recipe, problems):
            return []
        plan.notes.append(_recipe_resolves(stage, left_to_recipe))
    kept_run = {n: (pinned[n][0].label if n in pinned else ref)
                for n, ref in stage.run_section.items()}
    inputs = {n: {"version": v.label, "digest": v.metadata.get("digest"),
                  # the W&B artifact it was logged as (online runs only): use_artifact target
                  **({"wandb": v.metadata["wandb"]} if v.metadata.get("wandb") else {})}
              for n, (v, _) in sorted(pinned.items())}
    left = {**left_to_recipe, **unpinned}
    backend = backend_for(stage.env.executor)
    recipe = stage.recipe
    # A command recipe gets no --config argument, but its config.yaml is still rendered (it
    # can name ${run.dir}/config.yaml itself), so overrides are never silently dropped.
    swept = [k for k in (stage.sweep.parameters if stage.sweep else {})
             if not k.startswith(RESOURCE_PREFIX)]
    renders_config = (recipe.config is not None or bool(recipe.overrides)
                      or bool(swept) or bool(stage.artifacts))
    config_file = "config.json" if recipe.config_format == "json" else "config.yaml"
    per_run_config = has_reference(stage.base_config) or has_reference(recipe.overrides)
    resources = stage.resources.model_dump(exclude_none=True)
    if not backend.capabilities.multi_node and resources["nodes"] > 1:
        message, hint = _one_node(stage.env.executor, resources["nodes"])
        _resource_problem(resolved, stage, "nodes", message, hint + "; or --set "
                          "resources.nodes=1", problems)
        return []
    if recipe.launch not in backend.capabilities.launch_modes:
        path = at + ("recipe", "launch")
        message = f'the {stage.env.executor} executor cannot start launch = "{recipe.launch}"'
        hint = ('use a Ray profile (executor = "ray"; without an address runspec starts a '
                "local head), or a Slurm profile" if recipe.launch == "ray" else
                "use one of: " + ", ".join(sorted(backend.capabilities.launch_modes)))
        if path not in resolved.document.positions and stage.script.get("run", "launch"):
            problems.found.append(stage.script.diagnostic(("run", "launch"), message, hint))
        else:
            problems.at(path, message, hint)
        return []
    if resources["procs_per_node"] == GPU_COUNT and not (
            backend.capabilities.sees_all_gpus and recipe.launch == "torchrun"):
        _resource_problem(resolved, stage, "gpus_per_node", *_gpu_count(stage), problems)
        return []
    cwd = recipe.workdir or "."
    here = _paths_from(cwd, resolved.root)
    artifact_field = _artifact_field(pinned, stage, left, here)  # paths as the recipe sees them
    artifact_field_at_root = _artifact_field(pinned, stage, left)
    if recipe.kind == "script":
        recipe = replace(recipe, entry=here(str(recipe.entry)))
    template_digest = _template_digest(stage, resolved)
    source = _recipe_source(stage, resolved)
    code_digest = source.digest if source else None
    configs: dict[int, dict[str, Any]] = {}
    argv_refs = has_reference(recipe.args) or (recipe.kind == "command" and has_reference(recipe.entry))
    vars_refs = has_reference(stage.env.vars)
    job_head, job_tail = _job_yaml_static(resolved, stage, resources)
    stage_resources, stage_tail = resources, job_tail
    shapes: dict[int, tuple[dict[str, Any], str]] = {}
    wandb = stage.measure.wandb
    wandb_settings = None if wandb is None else {
        "project": wandb.project, "entity": wandb.entity, "mode": wandb.mode,
        "group": wandb.group or name, "job_type": stage.name, "tags": wandb.tags,
        **({"outputs": {n: o.type for n, o in sorted(stage.outputs.items())}}
           if stage.outputs else {})}
    backend_files = backend.render_run
    runs: list[Run] = []
    for slot in slots:
        key = run_key(name, stage.name, slot.point, slot.label)
        run_dir = f"{resolved.outputs_root}/{key_path(key)}"
        # What the recipe reads (its arguments, config and environment) has paths as it sees
        # them from its working directory; the artifacts it will write are recorded
        # relative to the manifest, where runspec looks for them.
        context = {"key": key, "dir": here(run_dir), "stage": stage.name, "slot": slot.label,
                   "cycle": slot.cycle, "name": name}
        consumed: dict[str, str] = {}
        interpolator = Interpolator(slot.point, context,
                                    _stage_lookup(stage_runs, resolved, stage.name, slot.point,
                                                  consumed, here),
                                    artifact_field)
        at_root = interpolator if cwd in (".", "") else Interpolator(
            slot.point, {**context, "dir": run_dir},
            _stage_lookup(stage_runs, resolved, stage.name, slot.point, consumed),
            artifact_field_at_root)
        try:
            if slot.point_index not in shapes:  # once per point, not per cycle
                point_resources = _point_resources(stage_resources, slot.point, stage, problems)
                shapes[slot.point_index] = (point_resources, stage_tail
                                            if point_resources is stage_resources else
                                            _job_yaml_static(resolved, stage, point_resources)[1])
            resources, job_tail = shapes[slot.point_index]
            if renders_config and (per_run_config or slot.point_index not in configs):
                configs[slot.point_index] = _config(stage, slot.point, config_keys, interpolator,
                                                    problems, pinned, here, at_root)
                _no_literal_references(configs[slot.point_index], stage, config_keys,
                                       left_to_recipe, problems)
            config = configs.get(slot.point_index, {})
            if kept_run:  # Nemotron hands the script its artifact references, nothing else
                config = {**config, "run": kept_run}
            config_path = (here(f"{run_dir}/{config_file}")
                           if renders_config and recipe.kind != "command" else None)
            try:
                argv = recipe_argv(recipe, resources["procs_per_node"], config_path,
                                   None if not backend.capabilities.multi_node
                                   or resources["nodes"] == 1 else [])
            except CommandError as error:
                problems.found.append(stage.script.diagnostic(("run", "cmd"), error.message,
                                                              error.hint))
                raise _Stop from None
            # Arguments and environment values are text, whatever type a reference resolved to.
            if argv_refs:
                argv = [as_text(a) for a in
                        _interpolated(interpolator, argv, at + ("recipe",), problems)]
            argv = measured(argv, here(run_dir), stage.measure.energy, stage.measure.country,
                            stage.measure.power_interval, wandb_settings)
            variables = ({k: as_text(v) for k, v in _interpolated(
                interpolator, stage.env.vars, ("env", "vars"), problems).items()}
                if vars_refs else stage.env.vars)
            if left_to_recipe and vars_refs:
                _no_recipe_references(variables, stage, problems)
            if argv_refs or vars_refs or not runs:  # else the same for every run
                _no_literal_references({"argv": argv, "env": variables}, stage, {},
                                       left_to_recipe, problems, launch=True)
            produced = {n: (str(_interpolated(at_root, o.path,
                                              at + ("outputs", "artifacts", n, "path"), problems)),
                            o.type) for n, o in stage.outputs.items()}
            outputs = {output_variable(n): here(p) for n, (p, _) in produced.items()}
        except _Stop:
            return []
        env = {**variables, "RUNSPEC_RUN_KEY": key, "RUNSPEC_RUN_DIR": here(run_dir), **outputs}
        spec = RunSpec(
            key=key, stage=stage.name, run_dir=run_dir, argv=argv, env=env,
            secrets=dict(stage.env.secrets), cwd=cwd, resources=resources,
            executor=stage.env.executor, settings=stage.env.settings,
            container_image=stage.env.container_image, mounts=stage.env.mounts,
            startup_commands=stage.env.startup_commands, launch=recipe.launch,
        )
        request = {
            "argv": argv, "env": env, "secrets": spec.secrets, "cwd": spec.cwd, "config": config,
            "resources": resources, "executor": spec.executor, "settings": spec.settings,
            "container_image": spec.container_image, "mounts": spec.mounts,
            "startup_commands": spec.startup_commands,
        }
        if spec.launch == "ray":
            request["launch"] = spec.launch  # same argv as direct, another job: a new digest
        if upstream:
            request["upstream"] = upstream  # a changed upstream stage replaces this one too
        run_inputs = _with_consumed(inputs, consumed, registry, problems)
        if run_inputs:
            request["inputs"] = run_inputs  # pinned versions: a moved alias replaces the run
        if consumed:
            request["consumes"] = dict(sorted(consumed.items()))  # artifact → producing run
        if template_digest:
            request["template_digest"] = template_digest
        if code_digest:
            request["code_digest"] = code_digest  # an edited script replaces its runs
        run_digest = digest(request)
        if source is not None and not runs:
            # The script itself, once per stage and outside the digest (code_digest covers
            # it): what a later plan diffs an edit against (see plan.source).
            request[SOURCE_FIELD] = source.field()

        def files(spec=spec, config=config, slot=slot, run_digest=run_digest,
                  job_tail=job_tail, inputs=run_inputs) -> dict[str, str]:
            rendered = {config_file: _config_text(config, recipe.config_format)} \
                if renders_config else {}
            rendered["job.yaml"] = job_head + _job_yaml_run(spec, slot, inputs) + job_tail
            rendered.update(backend_files(spec, resolved.root, run_digest))
            return rendered

        runs.append(Run(key=key, stage=stage.name, point=slot.point, slot=slot.label,
                        warmup=bool(slot.warmup), run_dir=run_dir, request=request,
                        digest=run_digest, renderer=files, outputs=produced))
        plan.specs[key] = spec
    return runs


RESOURCE_PREFIX = "resources."


def _resource_problem(resolved: Resolved, stage: ResolvedStage, key: str, message: str,
                      hint: str, problems: _Problems) -> None:
    """At the manifest's setting, else at the script's ``[tool.runspec.resources]`` line."""
    path = stage.at + ("resources", key)
    if path not in resolved.document.positions and stage.script.get("resources", key) is not None:
        problems.found.append(stage.script.diagnostic(("resources", key), message, hint))
    else:
        problems.at(path, message, hint)


def _gpu_count(stage: ResolvedStage) -> tuple[str, str]:
    if stage.recipe.launch != "torchrun":
        return (f'gpus_per_node = "{GPU_COUNT}" means one torchrun process per GPU, but the '
                f'recipe runs with launch = "{stage.recipe.launch}"',
                "set resources.gpus_per_node (and procs_per_node) to numbers")
    return (f'gpus_per_node = "{GPU_COUNT}" leaves the GPU count to the node, but the '
            f"{stage.env.executor} executor allocates GPUs by count",
            "set resources.gpus_per_node in the manifest or profile (torchrun then starts "
            "one process per GPU)")


def _one_node(executor: str, nodes: int) -> tuple[str, str]:
    """Why a backend without multi-node runs refuses ``nodes > 1``, and what works."""
    return (f"the {executor} executor starts one process group on one node, got nodes = "
            f"{nodes}", "use a Slurm profile for multi-node jobs (on Ray, one entrypoint "
            "spreads its work with Ray tasks)")


def _point_resources(resources: dict[str, Any], point: dict[str, Any], stage: ResolvedStage,
                     problems: _Problems) -> dict[str, Any]:
    """The run's resources: the stage's, with the sweep point's ``resources.*`` values (a
    sweep over ``resources.nodes`` gives each run its own node count, not a config key)."""
    swept = {k.removeprefix(RESOURCE_PREFIX): v for k, v in point.items()
             if k.startswith(RESOURCE_PREFIX)}
    if not swept:
        return resources
    from pydantic import ValidationError

    from runspec.manifest.models import Resources

    merged = {**resources, "extra": dict(resources.get("extra", {}))}
    for name, value in swept.items():
        field, _, sub = name.partition(".")
        if field == "extra" and sub:
            merged["extra"][sub] = value
        else:
            merged[field] = value
    where = stage.at + ("sweep", "parameters", RESOURCE_PREFIX + next(iter(swept)))
    try:
        checked = Resources.model_validate(merged).model_dump(exclude_none=True)
    except ValidationError as error:
        first = error.errors()[0]
        name = RESOURCE_PREFIX + ".".join(str(p) for p in first["loc"])
        where = stage.at + ("sweep", "parameters", name if name in point else where[-1])
        problems.at(where, f"{name}: {first['msg']} (got {first.get('input')!r})",
                    on_key=True)
        raise _Stop from None
    if not backend_for(stage.env.executor).capabilities.multi_node and checked["nodes"] > 1:
        problems.at(where, *_one_node(stage.env.executor, checked["nodes"]), on_key=True)
        raise _Stop
    return checked


def _paths_from(cwd: str, root) -> Callable[[str], str]:
    """Manifest-relative paths as the recipe sees them from its working directory (absolute
    ones are left as they are)."""
    if cwd in (".", ""):
        return lambda path: path
    base = root.as_posix()
    if posixpath.isabs(cwd):  # e.g. a container's /opt/app: hand the recipe absolute paths
        return lambda path: path if "://" in path else posixpath.join(base, path)
    start = posixpath.normpath(posixpath.join(base, cwd))  # against the manifest's directory

    def seen_from_cwd(path: str) -> str:
        if posixpath.isabs(path) or "://" in path:  # absolute, or a URL (s3://, art://…)
            return path
        return posixpath.relpath(posixpath.normpath(posixpath.join(base, path)), start)

    return seen_from_cwd


def _template_digest(stage: ResolvedStage, resolved: Resolved) -> str | None:
    """A custom sbatch template is part of the request: editing it replaces the runs."""
    template = stage.env.settings.get("template")
    if not template:
        return None
    try:
        return digest((resolved.root / template).read_text(encoding="utf-8"))
    except OSError:
        return None


def _recipe_source(stage: ResolvedStage, resolved: Resolved) -> Source | None:
    """The recipe script's content is part of the request: a code change is a
    change. Modules and targets are imported from the environment, not hashed."""
    if stage.recipe.kind != "script":
        return None
    return read_source(resolved.root, str(stage.recipe.entry))


class _Stop(Exception):
    """A problem was recorded; stop rendering this stage."""


def _interpolated(interpolator: Interpolator, value: Any, path: KeyPath, problems: _Problems) -> Any:
    try:
        return interpolator.resolve(value)
    except InterpolationError as error:
        problems.at(path, error.message, error.hint)
        raise _Stop from None


def _checked_config_keys(stage: ResolvedStage, problems: _Problems) -> dict[str, str] | None:
    """Override, sweep and bind keys → plain dotted keys, checked against the base config."""
    at = stage.at
    config = stage.base_config
    known = all_keys(config) if config else []
    checked: dict[str, str] = {}
    wanted: list[tuple[str, KeyPath]] = [(k, _override_path(stage, k)) for k in stage.recipe.overrides]
    if stage.sweep:  # resources.* set the run's resources, not its config
        wanted += [(k, at + ("sweep", "parameters", k)) for k in stage.sweep.parameters
                   if not k.startswith(RESOURCE_PREFIX)]
    wanted += [(a.bind, at + ("artifacts", n, "bind")) for n, a in stage.artifacts.items() if a.bind]
    ok = True
    for key, path in wanted:
        if not config:
            checked[key] = key.removeprefix("+")
            continue
        try:
            checked[key] = check_key(config, key, known)
        except UnknownKey as error:
            ok = False
            where = stage.recipe.config or "the config"
            hint = error.hint or "write +KEY to add a key the config does not have"
            problems.at(path, f'"{key}" is not a key of {where}', hint,
                        on_key=path[-1] != "bind")
    return checked if ok else None


def _override_path(stage: ResolvedStage, key: str) -> KeyPath:
    """Where an override (a leaf of possibly nested tables) is written in the manifest."""
    return stage.at + ("recipe", "overrides", *stage.recipe.override_paths.get(key, (key,)))


def _config(stage: ResolvedStage, point: dict[str, Any], keys: dict[str, str],
            interpolator: Interpolator, problems: _Problems, pinned: dict[str, Any],
            here: Callable[[str], str], at_root: Interpolator) -> dict[str, Any]:
    at = stage.at
    values: dict[str, Any] = {}
    for key, value in stage.recipe.overrides.items():
        values[keys[key]] = _interpolated(interpolator, value, _override_path(stage, key),
                                          problems)
    for name, artifact in stage.artifacts.items():
        if artifact.bind:
            # the URI is the manifest's (relative to it): rebased once, for the recipe
            values[keys[artifact.bind]] = here(_artifact_path(
                artifact.uri, at_root, at + ("artifacts", name, "uri"), problems, pinned, name))
    for key, value in point.items():
        if key.startswith((FAN_OUT_PREFIX, RESOURCE_PREFIX)):
            continue  # which upstream run it consumes, or its resources: not config keys
        values[keys[key]] = _interpolated(interpolator, value, at + ("sweep", "parameters", key),
                                          problems)
    config = with_values(stage.base_config, values)
    if stage.config_document is not None and has_reference(stage.base_config):
        config = _interpolate_config(config, interpolator, stage.config_document, problems)
    return config


def _interpolate_config(node: Any, interpolator: Interpolator, document: Document,
                        problems: _Problems, path: KeyPath = ()) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate_config(v, interpolator, document, problems, path + (k,))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_config(v, interpolator, document, problems, path + (i,))
                for i, v in enumerate(node)]
    try:
        return interpolator.resolve(node)
    except InterpolationError as error:
        problems.at(path, error.message, error.hint, document=document)
        raise _Stop from None


def _artifact_path(uri: str, interpolator: Interpolator, path: KeyPath, problems: _Problems,
                   pinned: dict[str, Any] | None = None, name: str = "") -> str:
    if uri.startswith("art://") and pinned is not None and name in pinned:
        version, subpath = pinned[name]
        return f"{version.path}/{subpath}" if subpath else version.path
    if uri.startswith("wandb://"):
        problems.at(path, f'"{uri}" cannot be resolved at plan time',
                    "runspec pins inputs from its own registry: download it once, `runspec "
                    "artifacts publish NAME PATH`, and use art://NAME (offline W&B cannot "
                    "resolve artifacts at all)")
        raise _Stop
    resolved = _interpolated(interpolator, uri, path, problems)
    return str(resolved).removeprefix("file://")


def _pin_inputs(stage: ResolvedStage, problems: _Problems, registry: _PlanRegistry
                ) -> dict[str, Any] | None:
    """Every art:// input resolved once per plan to a concrete version: the plan pins it, so a
    moved ``latest`` shows up as a replace (``input data: v3 → v4``). A version whose data
    no longer matches its digests is an error: "v1" must always mean the same bytes."""
    from runspec.artifacts.uri import ArtifactError, parse

    pinned: dict[str, Any] = {}
    ok = True
    for name, artifact in stage.artifacts.items():
        if not artifact.uri.startswith("art://"):
            continue
        where = stage.at + ("artifacts", name, "uri")
        try:
            ref = parse(artifact.uri)
        except ArtifactError as error:
            problems.at(where, error.message, error.hint)
            ok = False
            continue
        try:
            version = registry().resolve(ref)
        except ArtifactError as error:
            if not problems.offline:
                problems.at(where, error.message, error.hint)
                ok = False
            continue
        drift = [] if problems.offline else registry().drift(version)
        if drift:
            problems.at(where, *_drifted(version, drift))
            ok = False
        pinned[name] = (version, ref.subpath)
    return pinned if ok else None


def _drifted(version, drift: list[str]) -> tuple[str, str]:
    """The message and hint for a pinned version whose data changed after registration."""
    message = f"{version.label} no longer matches what was registered: {'; '.join(drift)}"
    if version.metadata.get("mode") == "copy":
        return message, (f"the registry's copy under {version.path} was modified; restore it, "
                         "or publish the content again as a new version")
    return message, (f"{version.label} references {version.path} in place and a version never "
                     "changes: restore the data, or publish it as a new version (re-run its "
                     "producer, or `runspec artifacts publish`) and pin that; mode = \"copy\" "
                     "keeps a copy in the registry instead")


def _with_consumed(inputs: dict[str, Any], consumed: dict[str, str], registry: _PlanRegistry,
                   problems: _Problems) -> dict[str, Any]:
    """A run's pinned inputs, with the versions its upstream stages' runs registered for the
    outputs it consumes: re-running a producer registers a new version, which replaces this
    run (``input data: v3 → v4``). Not yet registered (the producer has not run): nothing,
    and the run records the version when it succeeds (see ``artifacts.publish``)."""
    if not consumed or problems.offline:
        return inputs
    from runspec.artifacts.publish import consumed_pins

    pins = consumed_pins(registry(), consumed, inputs)
    return dict(sorted({**inputs, **pins}.items())) if pins else inputs


def _pin_run_section(stage: ResolvedStage, pinned: dict[str, Any], registry: _PlanRegistry,
                     problems: _Problems) -> dict[str, str] | None:
    """The config ``run:`` section's artifact references that runspec's registry holds are
    pinned like declared inputs (into ``pinned``); the others are returned: the recipe
    resolves them itself when it starts (Nemotron's kit, from W&B or its own registry).
    None: a pinned version's data changed (the problem is recorded)."""
    from runspec.artifacts.uri import ArtifactError, parse

    left: dict[str, str] = {}
    for name, ref in stage.recipe_artifacts.items():
        try:
            parsed = parse(f"art://{ref}")
            version = registry().resolve(parsed)
        except ArtifactError:
            left[name] = ref
            continue
        drift = [] if problems.offline else registry().drift(version)
        document = stage.config_document
        if drift:
            message, hint = _drifted(version, drift)
            if document is None:
                problems.at(stage.at + ("recipe", "config"), f"run.{name}: {message}", hint)
            else:
                problems.found.append(Diagnostic.at(document.value_position(("run", name)),
                                                    f"run.{name}", message, hint, document))
            return None
        pinned[name] = (version, parsed.subpath)
    return left


def _no_recipe_references(variables: dict[str, str], stage: ResolvedStage,
                          problems: _Problems) -> None:
    """An environment variable is set before the recipe starts: an artifact reference only
    the recipe can resolve would reach it as literal text."""
    for name, value in variables.items():
        if "${art:" in value:
            path = ("run", "env", "env_vars", name)
            document = stage.config_document
            position = document.value_position(path) if document else None
            problems.found.append(Diagnostic(
                position.file if position else stage.recipe.config or "(config)",
                position.line if position else 1, position.col if position else 1,
                f"run.env.env_vars.{name}",
                f"{name} = {value}: the artifact is not in runspec's registry, and an "
                "environment variable is set before the recipe could resolve it",
                "declare the artifact in the manifest ([artifacts.NAME] uri = \"art://…\"), "
                f'or set recipe.overrides."run.env.env_vars.{name}" to a path'))
            raise _Stop


_LITERAL = re.compile(r'"wandb://|\$\{art:')
_LEFT_ART = re.compile(r"\$\{art:\s*([^,}\s]+)")


def _literal_problem(value: str, left_to_recipe: dict[str, str]) -> str | None:
    """Why ``value`` must not reach a recipe as it is: a W&B artifact URI, or an
    ``${art:…}`` nobody resolved (one the recipe resolves itself, Nemotron's, is fine)."""
    if value.startswith("wandb://"):
        return (f'"{value}" is a W&B artifact URI, which runspec does not resolve: the recipe '
                "would get it as text")
    unresolved = [n for n in _LEFT_ART.findall(value) if n not in left_to_recipe]
    if unresolved:
        return (f'"{value}": ${{art:{unresolved[0]},…}} was not resolved, and would reach the '
                "recipe as text")
    return None


def _no_literal_references(rendered: dict[str, Any], stage: ResolvedStage,
                           keys: dict[str, str], left_to_recipe: dict[str, str],
                           problems: _Problems, launch: bool = False) -> None:
    """A rendered config (or, with ``launch``, the arguments and environment) must not hand
    the recipe a reference as literal text: it would read "wandb://…" as a path."""
    if not _LITERAL.search(json.dumps(rendered, default=str)):
        return
    for path, value in _strings(rendered):
        why = _literal_problem(value, left_to_recipe)
        if why is None:
            continue
        hint = ("download it once, `runspec artifacts publish NAME PATH`, and use an input "
                '[artifacts.NAME] uri = "art://NAME" with ${art:NAME,path}'
                if value.startswith("wandb://") else
                "declare the artifact ([artifacts.NAME] uri = \"art://…\") so the plan pins it")
        dotted = ".".join(str(p) for p in path)
        override = next((k for k, v in keys.items() if v == dotted), None)
        document = stage.config_document
        if launch:
            where = stage.at + (("recipe",) if path[0] == "argv" else ("env", "vars", path[1]))
            problems.at(where, f"{dotted}: {why}", hint)
        elif override is not None:
            problems.at(_override_path(stage, override), why, hint)
        elif document is not None and path in document.positions:
            problems.found.append(Diagnostic.at(document.value_position(path), dotted, why,
                                                hint, document))
        else:
            problems.at(stage.at + ("recipe",), f"{dotted}: {why}", hint)
        raise _Stop


def _strings(node: Any, path: KeyPath = ()) -> list[tuple[KeyPath, str]]:
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, dict):
        return [found for k, v in node.items() for found in _strings(v, path + (k,))]
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in _strings(v, path + (i,))]
    return []


def _wandb_left(stage: ResolvedStage, left: dict[str, str], problems: _Problems) -> bool:
    """A config's ``run:`` reference the recipe would resolve itself, written as a W&B URI:
    runspec's syntax, which the recipe's resolver does not read (Nemotron's own references,
    ``NAME:latest``, stay the recipe's)."""
    for name, ref in sorted(left.items()):
        if ref.startswith("wandb://"):
            document = stage.config_document
            message = (f'"{ref}" is a W&B artifact URI, which runspec does not resolve: the '
                       "recipe would get it as text")
            hint = (f"download it once, `runspec artifacts publish {name} PATH`, and write "
                    f"run.{name}: {name}:latest (runspec's registry pins it)")
            if document is None:
                problems.at(stage.at + ("recipe", "config"), f"run.{name}: {message}", hint)
            else:
                problems.found.append(Diagnostic.at(document.value_position(("run", name)),
                                                    f"run.{name}", message, hint, document))
            return True
    return False


def _recipe_resolves(stage: ResolvedStage, left: dict[str, str]) -> Diagnostic:
    names = ", ".join(f"{n} = {r}" for n, r in sorted(left.items()))
    document = stage.config_document
    first = sorted(left)[0]
    position = document.value_position(("run", first)) if document else None
    message = (f"run: {names} is not in runspec's artifact registry: the config keeps the "
               "reference and its ${art:…} values, and the recipe resolves them when it "
               "starts (runspec pins no version, and lineage does not show it)")
    hint = f"declare [artifacts.{first}] uri = \"art://…\" to pin a version runspec knows"
    if position is None:
        return Diagnostic(stage.recipe.config or "(config)", 1, 1, "run", message, hint,
                          "warning")
    return Diagnostic.at(position, f"run.{first}", message, hint, document, "warning")


def _config_text(config: dict[str, Any], config_format: str) -> str:
    """The file the script reads: YAML, or JSON for ``config.format = "json"``."""
    if config_format == "json":
        return json.dumps(config, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return yamltext.dump(config)


def _artifact_field(pinned: dict[str, Any], stage: ResolvedStage,
                    left_to_recipe: dict[str, str] | None = None,
                    here: Callable[[str], str] = str):
    """``${art:NAME,FIELD}`` (Nemotron's syntax): FIELD is ``path`` or a metadata field
    (a plain path as ``here`` gives it: seen from the recipe's working directory).
    A run-section reference left to the recipe stays as written, for the recipe."""

    def lookup(name: str, field: str) -> Any:
        if left_to_recipe and name in left_to_recipe:
            return Unresolved(f"${{art:{name},{field}}}")
        if name in stage.recipe_artifacts and name in pinned:
            return _pinned_field(pinned, name, field)
        if name not in stage.artifacts:
            declared = ", ".join(stage.artifacts) or "none"
            raise InterpolationError(f"${{art:{name},{field}}}: no input artifact \"{name}\"",
                                     f"declare [artifacts.{name}] (inputs here: {declared})")
        if name not in pinned:
            if field == "path":
                return here(stage.artifacts[name].uri.removeprefix("file://"))
            raise InterpolationError(f"${{art:{name},{field}}}: {name} is a plain path, which "
                                     "has no metadata")
        return _pinned_field(pinned, name, field)

    return lookup


def _pinned_field(pinned: dict[str, Any], name: str, field: str) -> Any:
    version, subpath = pinned[name]
    if field == "path":
        return f"{version.path}/{subpath}" if subpath else version.path
    if field == "version":
        return version.number
    given = version.fields  # the producer's metadata: it never shadows runspec's own fields
    if field in version.metadata and field != "fields":
        return version.metadata[field]
    if field in given:
        return given[field]
    own = ", ".join(sorted(k for k in version.metadata if k != "fields"))
    from runspec.manifest.suggest import did_you_mean

    raise InterpolationError(
        f"${{art:{name},{field}}}: {version.label} has no field \"{field}\"",
        did_you_mean(field, [*given, *(k for k in version.metadata if k != "fields")])
        or f"fields: path, version, {own}; its producer's metadata: "
        f"{', '.join(sorted(given)) or 'none (see docs/artifacts.md, Metadata)'}")


FAN_OUT_PREFIX = "stage."
_STAGE_REFERENCE = re.compile(r"\$\{stage\.([A-Za-z0-9_-]+)\.(?:outputs\.|dir\})")


def upstream_label(run: Run) -> str:
    """How a downstream run names the upstream run it consumes: ``lr=0.001@c1``."""
    return f"{run.key.split('/')[2]}@{run.slot}"


class _Deferred(Exception):
    """A stage that cannot be planned until an upstream stage's results exist."""


def _fan_out(points: list[dict[str, Any]], stage: ResolvedStage,
             stage_runs: dict[str, list[Run]], root) -> list[dict[str, Any]]:
    """A stage that consumes ``${stage.X.outputs.…}`` of an upstream stage with several runs
    runs once per upstream run (fan-out): each point gains ``stage.X = <upstream run>``. With
    ``select = {metric, goal}`` on the input, only the best upstream run is consumed; until
    every upstream run has reported that metric the stage is deferred (apply plans it again
    once the upstream stage has finished)."""
    text = json.dumps([stage.recipe.entry, stage.recipe.args, stage.recipe.overrides,
                       {n: a.uri for n, a in stage.artifacts.items()}, stage.base_config])
    selects = {ref: a.select for a in stage.artifacts.values() if a.select
               for ref in _STAGE_REFERENCE.findall(a.uri)}
    for upstream in sorted(set(_STAGE_REFERENCE.findall(text))):
        runs = [r for r in stage_runs.get(upstream, []) if not r.warmup]
        if len(runs) <= 1:
            continue
        select = selects.get(upstream)
        chosen = runs if select is None else [_best(runs, select, upstream, root)]
        points = [{**point, f"{FAN_OUT_PREFIX}{upstream}": upstream_label(run)}
                  for point in points for run in chosen]
    return points


def _best(runs: list[Run], select, upstream: str, root) -> Run:
    from runspec.measure import RESULT_FILE
    from runspec.measure.files import read_json

    scored = []
    for run in runs:
        result = read_json(root / run.run_dir / RESULT_FILE) or {}
        value = (result.get("metrics") or {}).get(select.metric)
        if result.get("exit_code") != 0 or not isinstance(value, int | float):
            raise _Deferred(f"waits for the results of stage {upstream} to pick the run with the "
                            f"{select.goal} {select.metric}")
        scored.append((value, run.key, run))
    scored.sort(key=lambda item: (item[0] if select.goal == "min" else -item[0], item[1]))
    return scored[0][2]


def _upstream(stage: str, needs: dict[str, list[str]]) -> set[str]:
    """Every stage ``stage`` needs, directly or through others."""
    seen: set[str] = set()
    todo = list(needs.get(stage, []))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(needs.get(current, []))
    return seen


def _stage_lookup(stage_runs: dict[str, list[Run]], resolved: Resolved, consumer: str = "",
                  current_point: dict[str, Any] | None = None,
                  consumed: dict[str, str] | None = None,
                  here: Callable[[str], str] = str):
    """``${stage.NAME.outputs.ART}`` → the path the single upstream run produces (``here``:
    as the consumer sees it from its working directory). The
    producing stage must be one the consumer (transitively) needs: otherwise the two could
    run in parallel, and the data would be read before it is written. ``consumed`` collects
    artifact → producing run key, so the consumer's outputs get that version as lineage."""
    by_name = {s.name: s for s in resolved.stages}
    needs = {s.name: list(s.needs) for s in resolved.stages}
    current_point = current_point or {}

    def lookup(expression: str) -> Any:
        name, _, rest = expression.partition(".")
        if name in by_name and consumer and name not in _upstream(consumer, needs):
            raise InterpolationError(
                f'stage "{consumer}" consumes ${{stage.{expression}}} from stage "{name}" but '
                f'does not need it, so they could run in parallel',
                f'add "{name}" to stages.{consumer}.needs')
        if name not in stage_runs:
            known = [s for s in stage_runs] or ["none planned before this stage"]
            raise InterpolationError(f"${{stage.{expression}}}: no earlier stage \"{name}\"",
                                     f"stages it can refer to: {', '.join(known)} (add it to needs)")
        kind, _, artifact = rest.partition(".")
        upstream = [r for r in stage_runs[name] if not r.warmup]
        chosen = current_point.get(f"{FAN_OUT_PREFIX}{name}")
        if chosen is not None:
            upstream = [r for r in upstream if upstream_label(r) == chosen]
        if kind == "dir" and len(upstream) == 1:
            return here(upstream[0].run_dir)
        if kind != "outputs" or artifact not in by_name[name].outputs:
            outputs = ", ".join(by_name[name].outputs) or "none"
            raise InterpolationError(f"${{stage.{expression}}} is undefined",
                                     f'stage "{name}" outputs: {outputs}')
        if len(upstream) != 1:
            raise InterpolationError(
                f"${{stage.{expression}}} is not yet resolvable: stage \"{name}\" has "
                f"{len(upstream)} runs", "choosing among upstream runs arrives with the artifacts issue")
        produced = by_name[name].outputs[artifact].path
        if consumed is not None:
            consumed[artifact] = upstream[0].key
        return here(str(Interpolator(upstream[0].point, {"dir": upstream[0].run_dir,
                                                          "key": upstream[0].key}
                                     ).resolve(produced)))

    return lookup


def _job_yaml_static(resolved: Resolved, stage: ResolvedStage, resources: dict[str, Any]
                     ) -> tuple[str, str]:
    """job.yaml's parts shared by every run of a stage: rendered once, not 10,000 times."""
    env = stage.env
    head = {
        "runspec_version": __version__,
        "manifest": {"path": resolved.manifest_file, "name": resolved.manifest.name,
                     "digest": resolved.manifest_digest},
    }
    tail = {
        "recipe": {"kind": stage.recipe.kind, "entry": stage.recipe.entry,
                   "launch": stage.recipe.launch, "config": stage.recipe.config},
        "resources": resources,
        "env": {"executor": env.executor, "profile": env.profile,
                "profile_chain": env.profile_chain, "settings": env.settings, "vars": env.vars,
                "secrets": {k: {"from_env": v} for k, v in env.secrets.items()},
                "container_image": env.container_image, "mounts": env.mounts,
                "startup_commands": env.startup_commands},
    }
    return yamltext.dump(head), yamltext.dump(tail)


def _job_yaml_run(spec: RunSpec, slot, inputs: dict[str, Any]) -> str:
    return yamltext.dump({
        "inputs": inputs,
        "run": {"key": spec.key, "stage": spec.stage, "dir": spec.run_dir, "slot": slot.label,
                "cycle": slot.cycle, "warmup": bool(slot.warmup), "cwd": spec.cwd,
                "command": spec.argv, "env": spec.env},
        "sweep": dict(slot.point) or {},
    })
