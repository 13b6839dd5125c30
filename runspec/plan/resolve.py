"""Manifest + env.toml + recipe metadata → one fully resolved description per stage.

Precedence, lowest first: built-in defaults < the script's PEP 723 ``[tool.runspec]`` <
the env.toml profile (its ``extends`` chain merged) < the manifest (top level, then the
stage) < ``--set`` on the command line. Pure: reads files, never writes or submits.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runspec.backends import DEFAULT_EXECUTOR
from runspec.manifest.document import Document, Located, Position, format_path, subtable
from runspec.manifest.errors import Diagnostic, ManifestError
from runspec.manifest.load import deep_merge, load_document, load_manifest
from runspec.manifest.models import (
    ArtifactInput,
    ArtifactOutput,
    Campaign,
    Measure,
    Outputs,
    Recipe,
    Resources,
    Sweep,
    Wandb,
)
from runspec.manifest.pep723 import (
    GPU_COUNT,
    ScriptSpec,
    default_config_under,
    read_script_spec,
    script_launch,
)
from runspec.manifest.profiles import find_env_file, load_env_file, resolve_profile
from runspec.manifest.validate import validate_document
from runspec.plan import run_section
from runspec.plan.dotted import leaf_value, override_leaves
from runspec.plan.identity import digest
from runspec.plan.interpolate import as_text
from runspec.plan.sets import parse_set

SINGLE_STAGE = "main"
"""The stage name of a manifest written in the single-stage (top-level recipe) form."""

PROFILE_RESOURCE_KEYS = {"nodes": "nodes", "gpus_per_node": "gpus_per_node",
                         "cpus_per_task": "cpus_per_task", "mem": "mem", "time": "time",
                         "ntasks_per_node": "procs_per_node", "nproc_per_node": "procs_per_node"}
ENV_OWN_KEYS = {"profile", "file", "vars", "secrets", "executor", "extends", "env_vars",
                "startup_commands", "container_image", "container", "mounts"}


@dataclass(frozen=True)
class ResolvedRecipe:
    kind: str                      # script | module | target | command
    entry: str | list[str]         # script path (relative to root), module, target, or argv
    launch: str                    # direct | torchrun | ray
    config: str | None             # config path relative to root
    overrides: dict[str, Any]
    args: list[str]
    workdir: str | None
    override_paths: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key → its table path
    command: str | None = None     # the script's run.cmd, with {script} and {config}
    config_format: str = "yaml"    # yaml | json: the file the script is handed


@dataclass(frozen=True)
class ResolvedEnv:
    executor: str
    profile: str | None
    profile_chain: list[str]
    settings: dict[str, Any]       # executor-specific keys (partition, address, …)
    vars: dict[str, str]
    secrets: dict[str, str]        # NAME → the variable it is read from
    container_image: str | None
    mounts: list[str]
    startup_commands: list[str]


@dataclass
class ResolvedStage:
    name: str
    needs: list[str]
    recipe: ResolvedRecipe
    resources: Resources
    env: ResolvedEnv
    sweep: Sweep | None
    campaign: Campaign
    measure: Measure
    artifacts: dict[str, ArtifactInput]
    outputs: dict[str, ArtifactOutput]
    base_config: dict[str, Any] = field(default_factory=dict)
    config_document: Document | None = None
    at: tuple[str, ...] = ()       # where the stage lives in the manifest (for positions)
    recipe_artifacts: dict[str, str] = field(default_factory=dict)  # config run: name → ref
    run_section: dict[str, Any] = field(default_factory=dict)  # what the script keeps of run:
    notes: list[Diagnostic] = field(default_factory=list)      # warnings to show with the plan
    script: ScriptSpec = field(default_factory=lambda: ScriptSpec(Path(), {}))


@dataclass(frozen=True)
class StageHead:
    """What the plan reads of a stage as a whole: its recipe (``on_code_change``)."""

    recipe: Recipe


@dataclass(frozen=True)
class ManifestHead:
    """What a plan reads of the manifest as a whole; each stage's sections are validated as
    they are resolved. Not the ``Manifest`` model: building that builds every executor's
    models, for an ``[env]`` the schema has checked and the plan reads as a table."""

    name: str
    outputs: Outputs
    recipe: Recipe | None
    stages: dict[str, StageHead]


@dataclass
class Resolved:
    """A manifest ready to expand: its stages in dependency order."""

    document: Document
    manifest: ManifestHead
    root: Path                     # the manifest's directory: runs start here
    manifest_file: str             # the manifest, relative to the root
    manifest_digest: str
    outputs_root: str
    state_location: str | None
    stages: list[ResolvedStage]
    inputs: list[Path] = field(default_factory=list)   # every file the plan depends on
    artifacts_root: str = ""                           # the artifact registry (env.toml)


def apply_sets(document: Document, assignments: list[str]) -> Document:
    """Command-line ``--set`` values over the manifest, positioned at ``--set:N``; each
    value is parsed in the manifest's language (TOML for a .toml manifest, else YAML)."""
    if not assignments:
        return document
    data = copy.deepcopy(document.data)
    positions = dict(document.positions)
    problems: list[Diagnostic] = []
    for index, assignment in enumerate(assignments, start=1):
        try:
            parts, value = parse_set(assignment, document.notation, index)
        except ManifestError as error:  # every bad --set at once, not one per try
            problems += error.diagnostics
            continue
        node = data
        for part in parts[:-1]:
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
        here = Position("--set", index, 1, len(assignment))
        for length in range(1, len(parts) + 1):
            positions.setdefault(tuple(parts[:length]), Located(here, here))
        positions[tuple(parts)] = Located(here, here)
    if problems:
        raise ManifestError(problems)
    sources = {**document.sources, "--set": list(assignments)}
    return Document(document.path, data, document.display, positions, sources, document.files)


def resolve(path: str | Path, sets: list[str] | None = None, max_runs: int | None = None,
            validated: Document | None = None) -> Resolved:
    """Load, validate and resolve a manifest. Raises ManifestError with every problem,
    also a sweep of more than ``max_runs`` runs (default: ``checks.run_limit()``), counted
    before anything is expanded. ``validated``: the manifest's document, already loaded and
    found without errors (by ``validate``, which then need not load and check it twice)."""
    document = validated
    if document is None:
        document = apply_sets(load_manifest(path), list(sets or []))
        problems = [d for d in validate_document(document, max_runs) if d.severity == "error"]
        if problems:
            raise ManifestError(problems)
    manifest = _head(document)
    root = Path(document.path).resolve().parent
    raw = document.data
    stages_raw = raw.get("stages") or {SINGLE_STAGE: {k: raw[k] for k in (
        "recipe", "artifacts", "sweep") if k in raw}}
    stages = []
    inputs: list[Path] = list(document.files)
    for name, stage_raw in stages_raw.items():
        at = ("stages", name) if raw.get("stages") else ()
        stages.append(_resolve_stage(document, root, name, stage_raw, at, inputs))
    artifacts_root = _artifacts_root(root, raw.get("env") or {})
    for stage in stages:
        for artifact in stage.artifacts.values():
            if artifact.uri.startswith("art://"):
                name = artifact.uri.removeprefix("art://").split(":")[0].split("/")[0]
                inputs.append(Path(os.path.expanduser(artifacts_root)) / name / "aliases.json")
    return Resolved(
        inputs=inputs, artifacts_root=artifacts_root,
        document=document, manifest=manifest, root=root,
        manifest_file=_relative(root, Path(document.path)),
        manifest_digest=digest(raw), outputs_root=manifest.outputs.root,
        state_location=manifest.outputs.state, stages=_in_dependency_order(stages),
    )


def _head(document: Document) -> ManifestHead:
    raw = document.data

    def recipe(at: tuple[str, ...], table: Any) -> Recipe:
        return _model(Recipe, table, document, at + ("recipe",))

    return ManifestHead(
        name=raw["name"],
        outputs=_model(Outputs, raw.get("outputs") or {}, document, ("outputs",)),
        recipe=recipe((), raw["recipe"]) if raw.get("recipe") is not None else None,
        stages={name: StageHead(recipe(("stages", name), stage["recipe"]))
                for name, stage in (raw.get("stages") or {}).items()})


def _resolve_stage(document: Document, root: Path, name: str, stage: dict[str, Any],
                   at: tuple[str, ...], inputs: list[Path]) -> ResolvedStage:
    raw = document.data
    recipe_raw = stage["recipe"]
    script_spec = ScriptSpec(Path(), {})
    if "script" in recipe_raw:
        script_path = _declared_dir(document, at + ("recipe", "script")) / recipe_raw["script"]
        script_spec = read_script_spec(script_path)
        inputs.append(script_path)
    recipe = _resolve_recipe(document, root, recipe_raw, script_spec, at)
    campaign = deep_merge(raw.get("campaign") or {}, (stage.get("campaign") or {}) if at else {})
    measure = deep_merge(raw.get("measure") or {}, (stage.get("measure") or {}) if at else {})
    outputs_raw = (stage.get("outputs") or {}) if at else (raw.get("outputs") or {})
    base_config, config_document = {}, None
    if recipe.config is not None:
        config_document = load_document(root / recipe.config, display=recipe.config)
        inputs.append(root / recipe.config)
        base_config = config_document.data
        default = default_config_under(script_spec, root / recipe.config)
        if default is not None:
            inputs.append(default)
            base_config = deep_merge(load_document(default, display=_relative(root, default)).data,
                                     base_config)
    section = run_section.RunSection()
    if script_spec.data:  # a Nemotron recipe: its config's run: section is about the launch
        base_config, section, recipe = _split_run_section(base_config, recipe, config_document)
    env_top, env_stage = raw.get("env") or {}, (stage.get("env") or {}) if at else {}
    if isinstance(section.env.get("workdir"), str) and "workdir" not in recipe_raw:
        recipe = replace(recipe, workdir=section.env["workdir"])
    project = project_root(script_spec.path) if script_spec.data else None
    if recipe.workdir is None and project is not None and project != root.resolve():
        # Nemotron starts a recipe from its project's root (its ${oc.env:PWD} paths and
        # relative config paths point there); every path runspec hands it is rebased.
        recipe = replace(recipe, workdir=_relative(root, project))
    env = _resolve_env(root, env_top, env_stage, inputs, script_spec,
                       {k: _with_environment(v) for k, v in section.env.items()
                        if k != "workdir"})
    measure = _with_wandb_defaults(document, root, deep_merge(env_top, env_stage), measure, at,
                                   inputs)
    resources = _resolve_resources(script_spec, env[1], raw.get("resources") or {},
                                   (stage.get("resources") or {}) if at else {}, recipe.launch)
    if section:
        context = {**section.values, "wandb": _wandb_defaults(root, env_top, measure),
                   "recipe": {"name": script_spec.get("name", default=""),
                              "script": recipe.entry if recipe.kind == "script" else ""}}
        base_config = run_section.resolve_references(base_config, context)
    if env[0].settings.get("template"):
        inputs.append(root / env[0].settings["template"])
    return ResolvedStage(
        name=name,
        needs=list(stage.get("needs") or []),
        recipe=recipe,
        resources=_model(Resources, resources, document, at + ("resources",)),
        env=env[0],
        sweep=_model(Sweep, stage["sweep"], document, at + ("sweep",)) if stage.get("sweep")
        else None,
        campaign=_model(Campaign, campaign, document, at + ("campaign",)),
        measure=_model(Measure, measure, document, at + ("measure",)),
        artifacts={k: _model(ArtifactInput, v, document, at + ("artifacts", k))
                   for k, v in (stage.get("artifacts") or {}).items()},
        outputs={k: _model(ArtifactOutput, v, document, at + ("outputs", "artifacts", k))
                 for k, v in (outputs_raw.get("artifacts") or {}).items()},
        base_config=base_config,
        config_document=config_document,
        at=at,
        recipe_artifacts={k: v for k, v in section.artifacts.items()
                          if k not in (stage.get("artifacts") or {})},
        run_section=dict(section.artifacts),
        notes=_script_notes(script_spec, env[0]),
        script=script_spec,
    )


def _split_run_section(config: dict[str, Any], recipe: ResolvedRecipe,
                       document: Document | None
                       ) -> tuple[dict[str, Any], run_section.RunSection, ResolvedRecipe]:
    """The config without Nemotron's ``run:`` section, the section (with the manifest's
    ``run.*`` overrides applied), and the recipe without those overrides."""
    from runspec.plan.dotted import with_values

    ours = {k: v for k, v in recipe.overrides.items()
            if recipe.override_paths.get(k, (k,))[0].lstrip("+") != run_section.RUN
            and not k.lstrip("+").startswith(run_section.RUN + ".")}
    theirs = {k: v for k, v in recipe.overrides.items() if k not in ours}
    if theirs:
        config = with_values(config, {k.lstrip("+"): v for k, v in theirs.items()})
        recipe = replace(recipe, overrides=ours,
                         override_paths={k: p for k, p in recipe.override_paths.items()
                                         if k in ours})
    rest, section = run_section.split(config)
    if document is not None:
        problems = run_section.diagnostics(document, {k.lstrip("+") for k in theirs})
        if problems:
            raise ManifestError(problems)
    return rest, section, recipe


WANDB_DEFAULTS = ("project", "entity", "mode", "tags", "group")
"""The keys of env.toml's ``[wandb]`` that are defaults for ``measure.wandb``."""


def _env_wandb(root: Path, env: dict[str, Any]) -> tuple[Path | None, Document | None,
                                                         dict[str, Any]]:
    """The env.toml a stage uses (``env.file``, else the nearest one), its document, and its
    ``[wandb]`` table (empty when there is none)."""
    env_path = (root / env["file"]) if isinstance(env.get("file"), str) else find_env_file(root)
    if env_path is None or not env_path.is_file():
        return None, None, {}
    try:  # named as the person typed it, not by its absolute path
        display = str(env_path.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, RuntimeError, ValueError):
        display = str(env_path)
    document = load_env_file(env_path, display).document
    table = document.data.get("wandb")
    return env_path, document, dict(table) if isinstance(table, dict) else {}


def _wandb_defaults(root: Path, env: dict[str, Any], measure: dict[str, Any]) -> dict[str, Any]:
    """``run.wandb`` as Nemotron fills it: env.toml's ``[wandb]``, with the manifest's
    ``measure.wandb`` values over it."""
    values = _env_wandb(root, env)[2]
    ours = subtable(measure, "wandb")
    values.update({k: v for k, v in ours.items() if v is not None})
    return values


def _with_wandb_defaults(document: Document, root: Path, env: dict[str, Any],
                         measure: dict[str, Any], at: tuple[str, ...], inputs: list[Path]
                         ) -> dict[str, Any]:
    """``measure`` with env.toml's ``[wandb]`` filling the keys ``measure.wandb`` leaves
    unset (team-wide entity and project written once). Without a ``measure.wandb`` table W&B
    stays off, whatever env.toml says; with one, some file must name the project."""
    ours = measure.get("wandb")
    if not isinstance(ours, dict):
        return measure
    env_path, env_document, table = _env_wandb(root, env)
    defaults = {k: v for k, v in table.items() if k in WANDB_DEFAULTS}
    if env_path is not None and env_document is not None:
        inputs.append(env_path)  # the plan is a function of it now
        if defaults:  # a wrong value is reported where it is written
            _model(Wandb, defaults, env_document, ("wandb",))
    merged = {**defaults, **{k: v for k, v in ours.items() if v is not None}}
    if not merged.get("project"):
        raise ManifestError([_no_wandb_project(document, at, root, env_path)])
    return {**measure, "wandb": merged}


def wandb_project_diagnostics(document: Document) -> list[Diagnostic]:
    """What ``_with_wandb_defaults`` refuses, for every stage at once and without resolving:
    each ``measure.wandb`` table that neither the manifest nor env.toml gives a project."""
    data = document.data if isinstance(document.data, dict) else {}
    root = Path(document.path).resolve().parent
    stages = data.get("stages")
    units = ([(("stages", n), u) for n, u in stages.items() if isinstance(u, dict)]
             if isinstance(stages, dict) and stages else [((), data)])
    found = []
    for at, unit in units:
        measure = deep_merge(subtable(data, "measure"), subtable(unit, "measure") if at else {})
        ours = measure.get("wandb")
        if not isinstance(ours, dict) or ours.get("project"):
            continue
        try:
            env_path, _, table = _env_wandb(root, deep_merge(subtable(data, "env"),
                                                              subtable(unit, "env") if at else {}))
        except ManifestError:
            continue  # the env file's own problems: validate reports them at their lines
        if not table.get("project"):
            found.append(_no_wandb_project(document, at, root, env_path))
    return list(dict.fromkeys(found))


def _no_wandb_project(document: Document, at: tuple[str, ...], root: Path,
                      env_path: Path | None) -> Diagnostic:
    """At the ``[measure.wandb]`` table (the stage's, else the top one): no file names a
    W&B project for this stage."""
    table = next((p for p in (at + ("measure", "wandb"), ("measure", "wandb"))
                  if p in document.positions), ("measure", "wandb"))
    elsewhere = (f"nor does {_relative(root, env_path)} (no project in its [wandb] table)"
                 if env_path is not None else "and no env.toml was found to give one")
    example = ('project = "tiny-gpt"' if document.notation == "toml" else "project: tiny-gpt")
    return Diagnostic.at(document.key_position(table), format_path(table + ("project",)),
                         f"W&B logging needs a project: this table names none, {elsewhere}",
                         f"add `{example}` here, or to [wandb] in env.toml (the default of "
                         "every manifest using it)", document)


def _script_notes(spec: ScriptSpec, env: ResolvedEnv) -> list[Diagnostic]:
    """What the script's block asks that this stage does differently, said once in the plan."""
    notes = []
    launch = script_launch(spec)
    if launch.note:
        notes.append(spec.diagnostic(("run", "launch"), launch.note, severity="warning"))
    image = spec.get("image")
    if image and env.container_image is None:
        notes.append(spec.diagnostic(("image",), f'image "{image}" is not used: the '
                                     f"{env.executor} executor runs no containers (the script "
                                     "runs in this environment)", severity="warning"))
    return notes


def _model(model: Any, data: Any, document: Document, at: tuple[str | int, ...]) -> Any:
    """``model.model_validate(data)``, its errors as diagnostics at ``at`` in the manifest
    (validate catches nearly everything first; what a profile or script adds, it may not)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as error:
        found = []
        for problem in error.errors(include_url=False):
            path = at + _data_path(data, problem.get("loc", ()))
            found.append(Diagnostic.at(document.value_position(path), format_path(path),
                                       str(problem.get("msg", "invalid value")).lower(),
                                       document=document))
        raise ManifestError(found or [Diagnostic.at(document.value_position(at), format_path(at),
                                                    "invalid value", document=document)]
                            ) from None


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """pydantic's error location without its union tags: the parts that name the data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if found:
            node = node[part]
            path.append(part)
    return tuple(path)


def _artifacts_root(root: Path, env: dict[str, Any]) -> str:
    from runspec.artifacts.registry import registry_root

    env_path = (root / env["file"]) if isinstance(env.get("file"), str) else find_env_file(root)
    present = env_path is not None and env_path.is_file()
    data = load_env_file(env_path).document.data if env_path and present else None
    return registry_root(data, env_path if present else None, root)


def _declared_dir(document: Document, path: tuple[str, ...]) -> Path:
    return Path(document.value_position(path).file).resolve().parent


def _relative(root: Path, target: Path) -> str:
    """``target`` relative to the root, with ``..`` where needed: never a checkout's
    absolute path, which would make digests differ from one clone to the next."""
    return Path(os.path.relpath(target.resolve(), root)).as_posix()


def _resolve_recipe(document: Document, root: Path, recipe: dict[str, Any], spec: ScriptSpec,
                    at: tuple[str, ...]) -> ResolvedRecipe:
    kind = next(k for k in ("script", "module", "target", "command") if k in recipe)
    entry: str | list[str] = recipe[kind]
    if kind == "script":
        entry = _relative(root, _declared_dir(document, at + ("recipe", "script")) / recipe["script"])
    config = None
    if "config" in recipe:
        config = _relative(root, _declared_dir(document, at + ("recipe", "config")) / recipe["config"])
    elif spec.data:
        directory = spec.path.parent / spec.get("config", "dir", default="./config")
        default = directory / f"{spec.get('config', 'default', default='default')}.yaml"
        if default.is_file():
            config = _relative(root, default)
    overrides = recipe.get("overrides") or {}
    leaves = override_leaves(overrides)
    from_script = script_launch(spec)
    workdir = recipe.get("workdir") or spec.get("run", "workdir")
    return ResolvedRecipe(
        kind=kind,
        entry=entry,
        launch=recipe.get("launch") or from_script.launch or "direct",
        config=config,
        overrides={key: leaf_value(overrides, path) for key, path in leaves.items()},
        override_paths=leaves,
        args=list(recipe.get("args") or []),
        workdir=workdir,
        command=from_script.command if kind == "script" else None,
        config_format="json" if spec.get("config", "format") == "json" else "yaml",
    )


def project_root(script: Path) -> Path | None:
    """Where Nemotron starts a recipe: its project's root (the nearest directory above the
    script with a pyproject.toml, short of a .git boundary), where configs'
    ``${oc.env:PWD}`` paths point."""
    try:
        directory = script.resolve().parent
    except (OSError, RuntimeError):
        return None
    for candidate in (directory, *directory.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
        if (candidate / ".git").exists():
            return None
    return None


def _resolve_env(root: Path, top: dict[str, Any], stage: dict[str, Any], inputs: list[Path],
                 spec: ScriptSpec, run_env: dict[str, Any]) -> tuple[ResolvedEnv, dict[str, Any]]:
    """The stage's execution environment, and the resource keys its profile sets. Under the
    profile: the config's ``run.env`` (Nemotron's merge) and the script's ``image`` and
    ``[tool.runspec.env]``, where the backend runs containers."""
    inline = deep_merge(top, stage)
    profile_name = inline.get("profile")
    profile_data: dict[str, Any] = {}
    chain: list[str] = []
    if profile_name is not None:
        env_path = (root / inline["file"]) if inline.get("file") else find_env_file(root)
        env_file = load_env_file(env_path) if env_path else None
        if env_path:
            inputs.append(env_path)
        profile = resolve_profile(env_file, profile_name)
        profile_data, chain = profile.data, profile.chain
    executor = inline.get("executor") or profile_data.get("executor") or DEFAULT_EXECUTOR
    profile_data = run_section.env_under_profile(run_env, profile_data)
    merged = deep_merge(profile_data, {k: v for k, v in inline.items() if k != "executor"})
    image = merged.get("container_image") or merged.get("container")
    if image is None and spec.get("image") and _runs_containers(executor):
        image = spec.get("image")
    image = _with_environment(image) if isinstance(image, str) else image
    resources = {PROFILE_RESOURCE_KEYS[k]: v for k, v in profile_data.items()
                 if k in PROFILE_RESOURCE_KEYS}
    settings = {k: v for k, v in merged.items()
                if k not in ENV_OWN_KEYS and k not in PROFILE_RESOURCE_KEYS}
    variables = {**{k: as_text(v) for k, v in (spec.get("env", default={}) or {}).items()},
                 **{k: as_text(v) for k, v in (profile_data.get("env_vars") or {}).items()},
                 **{k: as_text(v) for k, v in (inline.get("env_vars") or {}).items()},
                 **{k: as_text(v) for k, v in (inline.get("vars") or {}).items()}}
    secrets = {k: v["from_env"] for k, v in (inline.get("secrets") or {}).items()}
    return ResolvedEnv(
        executor=executor,
        profile=profile_name,
        profile_chain=chain,
        settings=settings,
        vars=variables,
        secrets=secrets,
        container_image=image,
        mounts=list(merged.get("mounts") or []),
        startup_commands=list(merged.get("startup_commands") or []),
    ), resources


def _resolve_resources(spec: ScriptSpec, from_profile: dict[str, Any], top: dict[str, Any],
                       stage: dict[str, Any], launch: str) -> dict[str, Any]:
    """Layers merged; with torchrun and no process count set, one process per GPU, as
    Nemotron does (``gpus_per_node = "gpu"``: as many as the node has)."""
    from_script = {k: v for k, v in (spec.get("resources", default={}) or {}).items()
                   if k in ("nodes", "gpus_per_node")}
    merged: dict[str, Any] = {}
    for layer in (from_script, from_profile, top, stage):
        merged = deep_merge(merged, layer)
    if merged.get("gpus_per_node") == GPU_COUNT:
        del merged["gpus_per_node"]  # a count only the node knows: no GPUs are requested
        if launch == "torchrun":
            merged.setdefault("procs_per_node", GPU_COUNT)
    elif launch == "torchrun" and "procs_per_node" not in merged and \
            isinstance(merged.get("gpus_per_node"), int) and merged["gpus_per_node"] > 0:
        merged["procs_per_node"] = merged["gpus_per_node"]
    return merged


def _runs_containers(executor: str) -> bool:
    from runspec.backends import backend_for, is_executor

    return is_executor(executor) and backend_for(executor).capabilities.containers


_OC_ENV = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^${}]*))?\}")


def _with_environment(value: Any) -> Any:
    """``${oc.env:USER}`` (or ``${oc.env:VAR,default}``) in an image, mount or run.env
    value, resolved where runspec runs, as Nemotron resolves its launch settings when it
    submits (a variable that is unset and has no default stays as written)."""
    if isinstance(value, dict):
        return {k: _with_environment(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_environment(v) for v in value]
    if not isinstance(value, str):
        return value

    def variable(match: Any) -> str:
        found = os.environ.get(match.group(1), match.group(2))
        return match.group(0) if found is None else found

    return _OC_ENV.sub(variable, value)


def _in_dependency_order(stages: list[ResolvedStage]) -> list[ResolvedStage]:
    """Stages after the stages they need (validate already rejected cycles); stable."""
    by_name = {s.name: s for s in stages}
    ordered: list[ResolvedStage] = []
    placed: set[str] = set()

    def place(stage: ResolvedStage) -> None:
        if stage.name in placed:
            return
        placed.add(stage.name)
        for need in stage.needs:
            place(by_name[need])
        ordered.append(stage)

    for stage in stages:
        place(stage)
    return ordered
