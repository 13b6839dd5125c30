"""Resolved stages → a ``Plan``: every run with its config, provenance and backend request.

For each run this renders ``config.yaml`` (the recipe config with overrides and the sweep
point applied, clean, for the script), ``job.yaml`` (provenance: manifest, resolved env
with secrets as references, point, cycle, runspec version) and the backend's files, and
hashes the canonical request into the run's digest.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import replace
from typing import Any

from runspec import __version__
from runspec.artifacts.uri import output_variable
from runspec.backends import backend_for
from runspec.manifest.document import Document, KeyPath, format_path
from runspec.manifest.errors import Diagnostic, ManifestError
from runspec.plan import yamltext
from runspec.plan.command import measured, recipe_argv
from runspec.plan.dotted import UnknownKey, all_keys, check_key, with_values
from runspec.plan.expand import ExpandError, campaign_slots, sweep_points
from runspec.plan.identity import digest, key_path, run_key
from runspec.plan.interpolate import InterpolationError, Interpolator, as_text, has_reference
from runspec.plan.ir import Plan, Run, RunSpec
from runspec.plan.resolve import Resolved, ResolvedStage


class _Problems:
    """Collects diagnostics so one plan reports every problem, not just the first."""

    def __init__(self, document: Document):
        self.document = document
        self.found: list[Diagnostic] = []

    def at(self, path: KeyPath, message: str, hint: str | None = None,
           document: Document | None = None, on_key: bool = False) -> None:
        doc = document or self.document
        position = doc.key_position(path) if on_key else doc.value_position(path)
        self.found.append(Diagnostic.at(position, format_path(path), message, hint, doc))

    def raise_if_any(self) -> None:
        if self.found:
            unique = list(dict.fromkeys(self.found))
            raise ManifestError(sorted(unique, key=lambda d: (d.file, d.line, d.col)))


def build_plan(resolved: Resolved) -> Plan:
    """Expand and render every stage. Raises ManifestError listing every problem."""
    name = resolved.manifest.name
    problems = _Problems(resolved.document)
    plan = Plan(name=name, manifest_path=resolved.document.display,
                manifest_digest=resolved.manifest_digest, root=resolved.root,
                outputs_root=resolved.outputs_root,
                stages={s.name: s.env.executor for s in resolved.stages},
                needs={s.name: list(s.needs) for s in resolved.stages}, runs=[])
    stage_runs: dict[str, list[Run]] = {}
    for stage in resolved.stages:
        runs = _render_stage(resolved, stage, plan, stage_runs, problems)
        stage_runs[stage.name] = runs
        plan.runs.extend(runs)
    problems.raise_if_any()
    return plan


def _render_stage(resolved: Resolved, stage: ResolvedStage, plan: Plan,
                  stage_runs: dict[str, list[Run]], problems: _Problems) -> list[Run]:
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
    pinned = _pin_inputs(resolved, stage, problems)
    if config_keys is None or pinned is None:
        return []
    inputs = {n: {"version": v.label, "digest": v.metadata.get("digest"),
                  # the W&B artifact it was logged as (online runs only): use_artifact target
                  **({"wandb": v.metadata["wandb"]} if v.metadata.get("wandb") else {})}
              for n, (v, _) in sorted(pinned.items())}
    artifact_field = _artifact_field(pinned, stage)
    backend = backend_for(stage.env.executor)
    recipe = stage.recipe
    # A command recipe gets no --config argument, but its config.yaml is still rendered (it
    # can name ${run.dir}/config.yaml itself), so overrides are never silently dropped.
    swept = [k for k in (stage.sweep.parameters if stage.sweep else {})
             if not k.startswith(RESOURCE_PREFIX)]
    renders_config = (recipe.config is not None or bool(recipe.overrides)
                      or bool(swept) or bool(stage.artifacts))
    per_run_config = has_reference(stage.base_config) or has_reference(recipe.overrides)
    resources = stage.resources.model_dump(exclude_none=True)
    if not backend.capabilities.multi_node and resources["nodes"] > 1:
        problems.at(at + ("resources", "nodes") if at else ("resources", "nodes"),
                    *_one_node(stage.env.executor, resources["nodes"]))
        return []
    cwd = recipe.workdir or "."
    here = _paths_from(cwd, resolved.root)
    if recipe.kind == "script":
        recipe = replace(recipe, entry=here(str(recipe.entry)))
    template_digest = _template_digest(stage, resolved)
    code_digest = _code_digest(stage, resolved)
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
        context = {"key": key, "dir": run_dir, "stage": stage.name, "slot": slot.label,
                   "cycle": slot.cycle, "name": name}
        interpolator = Interpolator(slot.point, context,
                                    _stage_lookup(stage_runs, resolved, stage.name, slot.point,
                                                  consumed := {}),
                                    artifact_field)
        try:
            if slot.point_index not in shapes:  # once per point, not per cycle
                point_resources = _point_resources(stage_resources, slot.point, stage, problems)
                shapes[slot.point_index] = (point_resources, stage_tail
                                            if point_resources is stage_resources else
                                            _job_yaml_static(resolved, stage, point_resources)[1])
            resources, job_tail = shapes[slot.point_index]
            if renders_config and (per_run_config or slot.point_index not in configs):
                configs[slot.point_index] = _config(stage, slot.point, config_keys, interpolator,
                                                    problems, pinned)
            config = configs.get(slot.point_index, {})
            config_path = (here(f"{run_dir}/config.yaml")
                           if renders_config and recipe.kind != "command" else None)
            argv = recipe_argv(recipe, resources["procs_per_node"], config_path,
                               None if not backend.capabilities.multi_node
                               or resources["nodes"] == 1 else [])
            # Arguments and environment values are text, whatever type a reference resolved to.
            if argv_refs:
                argv = [as_text(a) for a in
                        _interpolated(interpolator, argv, at + ("recipe",), problems)]
            argv = measured(argv, here(run_dir), stage.measure.energy, stage.measure.country,
                            stage.measure.power_interval, wandb_settings)
            variables = ({k: as_text(v) for k, v in _interpolated(
                interpolator, stage.env.vars, ("env", "vars"), problems).items()}
                if vars_refs else stage.env.vars)
            produced = {n: (str(_interpolated(interpolator, o.path,
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
        if inputs:
            request["inputs"] = inputs  # pinned versions: a moved alias replaces the run
        if consumed:
            request["consumes"] = dict(sorted(consumed.items()))  # artifact → producing run
        if template_digest:
            request["template_digest"] = template_digest
        if code_digest:
            request["code_digest"] = code_digest  # an edited script replaces its runs
        run_digest = digest(request)

        def files(spec=spec, config=config, slot=slot, run_digest=run_digest,
                  job_tail=job_tail) -> dict[str, str]:
            rendered = {"config.yaml": yamltext.dump(config)} if renders_config else {}
            rendered["job.yaml"] = job_head + _job_yaml_run(spec, slot, inputs) + job_tail
            rendered.update(backend_files(spec, resolved.root, run_digest))
            return rendered

        runs.append(Run(key=key, stage=stage.name, point=slot.point, slot=slot.label,
                        warmup=bool(slot.warmup), run_dir=run_dir, request=request,
                        digest=run_digest, renderer=files, outputs=produced))
        plan.specs[key] = spec
    return runs


RESOURCE_PREFIX = "resources."


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


def _paths_from(cwd: str, root) -> Any:
    """Root-relative paths as the recipe sees them from its working directory."""
    if cwd in (".", ""):
        return lambda path: path
    if posixpath.isabs(cwd):  # e.g. a container's /opt/app: hand the recipe absolute paths
        return lambda path: posixpath.join(root.as_posix(), path)
    return lambda path: posixpath.relpath(path, cwd)


def _template_digest(stage: ResolvedStage, resolved: Resolved) -> str | None:
    """A custom sbatch template is part of the request: editing it replaces the runs."""
    template = stage.env.settings.get("template")
    if not template:
        return None
    try:
        return digest((resolved.root / template).read_text(encoding="utf-8"))
    except OSError:
        return None


def _code_digest(stage: ResolvedStage, resolved: Resolved) -> str | None:
    """The recipe script's content is part of the request (DESIGN §4): a code change is a
    change. Modules and targets are imported from the environment, not hashed."""
    if stage.recipe.kind != "script":
        return None
    try:
        return hashlib.sha256((resolved.root / str(stage.recipe.entry)).read_bytes()).hexdigest()
    except OSError:
        return None


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
            interpolator: Interpolator, problems: _Problems, pinned: dict[str, Any]
            ) -> dict[str, Any] | None:
    at = stage.at
    values: dict[str, Any] = {}
    for key, value in stage.recipe.overrides.items():
        values[keys[key]] = _interpolated(interpolator, value, _override_path(stage, key),
                                          problems)
    for name, artifact in stage.artifacts.items():
        if artifact.bind:
            values[keys[artifact.bind]] = _artifact_path(artifact.uri, interpolator,
                                                         at + ("artifacts", name, "uri"), problems,
                                                         pinned, name)
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


def _pin_inputs(resolved: Resolved, stage: ResolvedStage, problems: _Problems
                ) -> dict[str, Any] | None:
    """Every art:// input resolved once per plan to a concrete version: the plan pins it, so a
    moved ``latest`` shows up as a replace (``input data: v3 → v4``)."""
    from runspec.artifacts.registry import Registry
    from runspec.artifacts.uri import ArtifactError, parse

    registry = Registry(resolved.artifacts_root)
    pinned: dict[str, Any] = {}
    ok = True
    for name, artifact in stage.artifacts.items():
        if not artifact.uri.startswith("art://"):
            continue
        where = stage.at + ("artifacts", name, "uri")
        try:
            ref = parse(artifact.uri)
            pinned[name] = (registry.resolve(ref), ref.subpath)
        except ArtifactError as error:
            problems.at(where, error.message, error.hint)
            ok = False
    return pinned if ok else None


def _artifact_field(pinned: dict[str, Any], stage: ResolvedStage):
    """``${art:NAME,FIELD}`` (Nemotron's syntax): FIELD is ``path`` or a metadata field."""

    def lookup(name: str, field: str) -> Any:
        if name not in stage.artifacts:
            declared = ", ".join(stage.artifacts) or "none"
            raise InterpolationError(f"${{art:{name},{field}}}: no input artifact \"{name}\"",
                                     f"declare [artifacts.{name}] (inputs here: {declared})")
        if name not in pinned:
            if field == "path":
                return stage.artifacts[name].uri.removeprefix("file://")
            raise InterpolationError(f"${{art:{name},{field}}}: {name} is a plain path, which "
                                     "has no metadata")
        version, subpath = pinned[name]
        if field == "path":
            return f"{version.path}/{subpath}" if subpath else version.path
        if field == "version":
            return version.number
        if field not in version.metadata:
            raise InterpolationError(f"${{art:{name},{field}}}: no field \"{field}\"",
                                     f"fields: path, version, {', '.join(sorted(version.metadata))}")
        return version.metadata[field]

    return lookup


FAN_OUT_PREFIX = "stage."
_STAGE_REFERENCE = re.compile(r"\$\{stage\.([A-Za-z0-9_-]+)\.outputs\.")


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
                  consumed: dict[str, str] | None = None):
    """``${stage.NAME.outputs.ART}`` → the path the single upstream run produces. The
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
            return upstream[0].run_dir
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
        return Interpolator(upstream[0].point, {"dir": upstream[0].run_dir, "key": upstream[0].key}
                            ).resolve(produced)

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
