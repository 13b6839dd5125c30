"""``runspec validate``: every problem in a manifest (or env.toml), with positions.

Three passes over the loaded document, all collected before reporting: the JSON Schema
(structure, types, unknown keys), the semantic checks (``checks``), and the things a
manifest points at (the recipe script's PEP 723 block, the env.toml profile chain).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from runspec.backends import DEFAULT_EXECUTOR, REGISTRY, backend_for, is_executor
from runspec.manifest.capabilities import campaign_diagnostics, capability_diagnostics
from runspec.manifest.checks import Checker
from runspec.manifest.document import Document, KeyPath, format_path, subtable
from runspec.manifest.errors import Diagnostic, ManifestError, sort_key
from runspec.manifest.explain import Explainer, validator_for
from runspec.manifest.load import MANIFEST_SUFFIXES, load_manifest
from runspec.manifest.profiles import (
    ENV_FILE_NAME,
    ChainTooLong,
    EnvFileDocument,
    find_env_file,
    load_env_file,
    resolve_profile,
)
from runspec.manifest.suggest import did_you_mean, one_of, suggested
from runspec.manifest.sweep_types import config_value, sweep_type_diagnostics
from runspec.manifest.vocabulary import RESERVED_TABLES

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".runspec", "runs", ".tox"}
_LOOKS_LIKE_MANIFEST = re.compile(r"""^\s*["']?schema["']?\s*[=:]\s*["']?runspec/""", re.M)


def _defs(suffix: str, *executors: str) -> dict[str, str]:
    """executor → the schema definition of its ``suffix`` model (``SlurmEnv``), named after
    its backend's title; every executor when none is given."""
    return {e: backend_for(e).title + suffix for e in executors or REGISTRY}

_ENV_OWN_KEYS = ("profile", "file")


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Files named on the command line, and every manifest or env.toml found in directories."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not _is_dir(path):
            found.append(path)
            continue
        for candidate in sorted(_files_under(path)):
            if candidate.suffix in MANIFEST_SUFFIXES and _is_file(candidate) and (
                candidate.name == ENV_FILE_NAME or is_manifest(candidate)
            ):
                found.append(candidate)
    return found


def _files_under(path: Path) -> Iterable[Path]:
    """Every file below ``path`` outside SKIP_DIRS, which are never entered: a project's
    runs/ holds a directory per run, thousands after a sweep (symlinks are not followed)."""
    import os

    for directory, subdirectories, files in os.walk(path):
        subdirectories[:] = [d for d in subdirectories if d not in SKIP_DIRS]
        yield from (Path(directory, name) for name in files)


def is_manifest(path: Path) -> bool:
    """A run.toml / *.run.yaml by name, or any TOML/YAML whose ``schema`` is runspec's."""
    stem = path.name.rsplit(".", 1)[0]
    if stem == "run" or stem.endswith(".run"):
        return True
    from runspec.manifest.load import read_bytes

    try:  # a regular file's first bytes only: never a pipe that blocks or a device
        head = read_bytes(path, limit=4096, truncate=True).decode("utf-8", errors="replace")
    except ManifestError:
        return False
    return bool(_LOOKS_LIKE_MANIFEST.search(head))


def validate_file(path: str | Path) -> list[Diagnostic]:
    """All diagnostics for one file: a manifest, or an env.toml."""
    path = Path(path)
    try:
        if path.name == ENV_FILE_NAME:
            return validate_env_file(path)
        document = load_manifest(path)
    except ManifestError as error:
        return error.diagnostics
    found = validate_document(document)
    if any(d.severity == "error" for d in found) or not _applies_recipe_settings(document):
        return found
    # What the script's [tool.runspec] block and a config's run: section ask is applied where
    # the plan is built: validate builds it too (about 1 s more), so it refuses all that plan
    # would. Other manifests are covered by the checks above, without loading the models.
    from runspec.plan.check import plan_diagnostics

    return _unique_sorted(found + plan_diagnostics(path, document))


def _applies_recipe_settings(document: Document) -> bool:
    """Does a stage's script carry a ``[tool.runspec]`` block (a Nemotron recipe, whose
    config's ``run:`` section is about the launch)?"""
    from runspec.manifest.pep723 import read_script_spec

    for at, unit in _units(document.data):
        recipe = subtable(unit, "recipe")
        ref = recipe.get("script")
        if not isinstance(ref, str):
            continue
        path = Path(document.value_position(at + ("recipe", "script")).file).parent / ref
        try:
            if _is_file(path) and read_script_spec(path).data:
                return True
        except ManifestError:
            continue
    return False


def validate_document(document: Document, max_runs: int | None = None) -> list[Diagnostic]:
    """Every diagnostic for a loaded manifest; a sweep past ``max_runs`` runs (default: the
    current ``run_limit``) is one of them, counted without expanding it."""
    diagnostics = schema_diagnostics(document, "run")
    diagnostics += Checker(document, max_runs).run()
    diagnostics += _script_diagnostics(document)
    diagnostics += _config_key_diagnostics(document)
    diagnostics += _env_diagnostics(document)
    if _wandb_without_project(document.data):  # env.toml may name it: ask the resolver
        from runspec.plan.resolve import wandb_project_diagnostics

        diagnostics += wandb_project_diagnostics(document)
    return _unique_sorted(diagnostics)


def _wandb_without_project(data: Any) -> bool:
    """Does a ``[measure.wandb]`` table (top-level or a stage's) leave out its project?"""
    if not isinstance(data, dict):
        return False
    stages = data.get("stages")
    units = [data, *(stages.values() if isinstance(stages, dict) else [])]
    return any(isinstance(u, dict) and isinstance(subtable(u, "measure").get("wandb"), dict)
               and not subtable(u, "measure")["wandb"].get("project") for u in units)


def schema_diagnostics(document: Document, kind: str, ref: str | None = None, base: KeyPath = (),
                       instance: Any = None) -> list[Diagnostic]:
    from runspec.manifest import schema as schemas

    data = document.data if instance is None else instance
    errors = validator_for(kind, ref).iter_errors(data)  # an integer must be one: not 2.0
    found = Explainer(document, schemas.load(kind), base).explain_all(errors)
    # "write 1000…0" for 1e308 is no help: the bound beside it says what fits.
    return [replace(d, hint=None) if d.hint and len(d.hint) > 40 and d.hint[6:].isdigit() else d
            for d in found]


def _unique_sorted(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """One diagnostic per place and message (passes may overlap), typos folded, in file order."""
    unique = {(d.file, d.line, d.col, d.path, d.message): d for d in reversed(diagnostics)}
    return sorted(_fold_typos(list(unique.values())), key=sort_key)


def _fold_typos(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """``recipie`` (unknown, did you mean "recipe"?) already explains why ``recipe`` is missing."""
    explained = set()
    for d in diagnostics:
        name = suggested(d.hint) if d.message == "unknown key" else None
        if name is not None:
            parent = d.path.rsplit(".", 1)[0] if "." in d.path else ""
            explained.add(f"{parent}.{name}" if parent else name)
    unknown = {d.path for d in diagnostics if d.message == "unknown key"}
    return [d for d in diagnostics
            if not (d.message == "required key is missing" and d.path in explained)
            # what an unknown key's value should be is moot
            and not (d.message != "unknown key" and d.path in unknown)]


# -- what the manifest points at ------------------------------------------------------------

def _units(data: dict[str, Any]) -> list[tuple[KeyPath, dict[str, Any]]]:
    stages = data.get("stages")
    if isinstance(stages, dict) and stages:
        return [(("stages", name), stage) for name, stage in stages.items() if isinstance(stage, dict)]
    return [((), data)]


def _script_diagnostics(document: Document) -> list[Diagnostic]:
    from runspec.manifest.pep723 import read_script_spec

    out: list[Diagnostic] = []
    for at, unit in _units(document.data):
        recipe = unit.get("recipe")
        script = recipe.get("script") if isinstance(recipe, dict) else None
        if not isinstance(script, str):
            continue
        declared_in = Path(document.value_position(at + ("recipe", "script")).file).parent
        path = declared_in / script
        if _is_file(path):
            try:
                read_script_spec(path)
            except ManifestError as error:
                out += error.diagnostics
    return out


def _config_key_diagnostics(document: Document) -> list[Diagnostic]:
    """Overrides, sweep parameters and artifact binds must name keys of the recipe config
    (``+key`` adds one): caught here, not first at plan time, so pre-commit sees typos."""
    from runspec.manifest.load import deep_merge
    from runspec.manifest.pep723 import default_config_under, read_script_spec
    from runspec.plan.dotted import UnknownKey, all_keys, check_key, override_leaves

    def load(path: Path) -> Any:  # keys only, no positions: the fast (C) safe loader
        from ruamel.yaml import YAML

        from runspec.manifest.load import bounded, read_text

        return bounded(YAML(typ="safe").load(read_text(path, "recipe config")), str(path))

    out: list[Diagnostic] = []
    for at, unit in _units(document.data):
        recipe = subtable(unit, "recipe")
        config_ref = recipe.get("config")
        if not isinstance(config_ref, str):
            continue  # no config (a PEP 723 default one is checked by plan)
        config_path = Path(document.value_position(at + ("recipe", "config")).file).parent / config_ref
        if not _is_file(config_path):
            continue  # reported by the semantic checks
        try:
            config = own = load(config_path)
            default_ref = None
            script = recipe.get("script")
            if isinstance(script, str):
                where = Path(document.value_position(at + ("recipe", "script")).file).parent
                default = (default_config_under(read_script_spec(where / script), config_path)
                           if _is_file(where / script) else None)
                if default is not None:
                    config = deep_merge(load(default), config)
                    default_ref = (Path(config_ref).parent / default.name).as_posix()
        except ManifestError as error:
            out += error.diagnostics
            continue
        except Exception:  # an unreadable or malformed config: plan reports it with its position
            continue
        if not isinstance(config, dict) or not config:
            continue
        sweep = unit.get("sweep") if at else document.data.get("sweep")
        parameters = sweep.get("parameters") if isinstance(sweep, dict) else None
        artifacts = subtable(unit, "artifacts")
        wanted = [(k, at + ("recipe", "overrides", *path), True)
                  for k, path in override_leaves(recipe.get("overrides")).items()]
        wanted += [(k, at + ("sweep", "parameters", k), True)  # resources.*: not config keys
                   for k in (parameters if isinstance(parameters, dict) else {})
                   if not k.startswith("resources.")]
        wanted += [(a["bind"], at + ("artifacts", n, "bind"), False) for n, a in artifacts.items()
                   if isinstance(a, dict) and isinstance(a.get("bind"), str)]
        known = all_keys(config)
        for key, path, on_key in wanted:
            try:
                check_key(config, key, known)
            except UnknownKey as error:
                position = document.key_position(path) if on_key else document.value_position(path)
                out.append(Diagnostic.at(position, format_path(path),
                                         f'"{key}" is not a key of {config_ref}',
                                         error.hint or "write +KEY to add a key the config does "
                                         "not have", document))
        sources = [(own, config_ref)] + ([(config, default_ref)] if default_ref else [])
        for name, spec in (parameters if isinstance(parameters, dict) else {}).items():
            if name.startswith(("+", "resources.")):
                continue  # a new key has no type to keep; resources are not config keys
            found = config_value(sources, name)
            if found is not None:
                out += sweep_type_diagnostics(document, at + ("sweep", "parameters", name),
                                               name, spec, *found)
    return out


def _env_diagnostics(document: Document) -> list[Diagnostic]:
    data = document.data
    top = subtable(data, "env")
    out = _check_env(document, ("env",), top, top)
    for at, unit in _units(data):
        if at:  # a stage without an env table runs on the top one: its recipe still counts
            env = subtable(unit, "env")
            out += _check_env(document, at + ("env",), env, top)
        out += campaign_diagnostics(document, at, unit.get("campaign",
                                                           data.get("campaign") if at else None))
    return out


def _check_env(document: Document, at: KeyPath, inline: dict[str, Any], top: dict[str, Any]
               ) -> list[Diagnostic]:
    """Resolve the profile chain and check the inline env strictly against its executor."""
    manifest_dir = Path(document.value_position(at).file).parent
    profile_name = inline.get("profile", top.get("profile"))
    env_file_ref = inline.get("file", top.get("file"))
    env_file: EnvFileDocument | None = None
    env_path: Path | None = None
    if isinstance(env_file_ref, str):
        env_path = manifest_dir / env_file_ref
        if not _is_file(env_path):
            position = document.value_position(at + ("file",))
            return [Diagnostic.at(position, format_path(at + ("file",)),
                                  f'env file {_why_unreadable(env_path)}: "{env_path}"',
                                  document=document)]
    try:
        if not isinstance(env_file_ref, str):
            env_path = find_env_file(manifest_dir)
        if env_path is not None:
            env_file = load_env_file(env_path, _display(env_path))
        profile = None
        if isinstance(profile_name, str):
            where = Diagnostic.at(document.value_position(at + ("profile",)),
                                  format_path(at + ("profile",)), "", document=document)
            profile = resolve_profile(env_file, profile_name, where)
    except ManifestError as error:
        return error.diagnostics
    out: list[Diagnostic] = []
    executor = DEFAULT_EXECUTOR
    origin = f'the executor is "{DEFAULT_EXECUTOR}" (the default)'
    if profile is not None:
        out += _check_profile(env_file, profile)
        executor = profile.data.get("executor", DEFAULT_EXECUTOR)
        via = f" (extends {one_of(profile.chain[1:])})" if len(profile.chain) > 1 else ""
        origin = f'profile "{profile.name}"{via} uses executor "{executor}"'
    inline_executor = inline.get("executor")
    if isinstance(inline_executor, str) and profile is not None and \
            "executor" in profile.data and inline_executor != executor:
        position = document.value_position(at + ("executor",))
        out.append(Diagnostic.at(position, format_path(at + ("executor",)),
                                 f'executor "{inline_executor}" contradicts profile '
                                 f'"{profile.name}" (executor "{executor}")',
                                 "pick a profile with that executor, or drop executor here",
                                 document))
        return out
    executor = inline_executor if isinstance(inline_executor, str) else executor
    if is_executor(executor) and "executor" not in inline:
        # Keys inherited from the profile are checked against the profile's executor here.
        instance = {**inline, "executor": executor}
        found = schema_diagnostics(document, "run", _defs("Env", executor)[executor], at,
                                   instance)
        out += _name_owners([d for d in found if not d.path.endswith(".executor")],
                            "run", "Env", executor, origin)
    if not out:
        unit = document.data.get("stages", {}).get(at[1], {}) if len(at) > 1 else document.data
        recipe = unit.get("recipe") if isinstance(unit, dict) else None
        resources: dict[str, Any] = {}
        for layer in (profile.data if profile is not None else {}, document.data.get("resources"),
                      unit.get("resources") if isinstance(unit, dict) and len(at) > 1 else None):
            if isinstance(layer, dict):
                resources.update({k: v for k, v in layer.items()
                                  if k in ("nodes", "procs_per_node")})
        campaign = unit.get("campaign") if isinstance(unit, dict) else None
        campaign = campaign if isinstance(campaign, dict) else document.data.get("campaign")
        declared = unit.get("outputs") if isinstance(unit, dict) else None
        artifacts = declared.get("artifacts") if isinstance(declared, dict) else None
        out += capability_diagnostics(document, at, inline, profile,
                                      env_file.document if env_file else None, executor,
                                      recipe if isinstance(recipe, dict) else {}, resources,
                                      campaign if isinstance(campaign, dict) else {},
                                      artifacts if isinstance(artifacts, dict) else {})
    return out


def _name_owners(diagnostics: list[Diagnostic], kind: str, suffix: str, executor: str,
                 context: str) -> list[Diagnostic]:
    """For an unknown key that another executor accepts, say which executor owns it."""
    from runspec.manifest import schema as schemas

    if not any(d.message == "unknown key" for d in diagnostics):
        return diagnostics
    all_defs = schemas.load(kind)["$defs"]
    defs = _defs(suffix)
    result = []
    for d in diagnostics:
        name = d.path.rsplit(".", 1)[-1].strip('"')
        owners = [e for e, ref in defs.items()
                  if e != executor and name in all_defs[ref].get("properties", {})]
        if d.message == "unknown key" and owners:
            also = f"; or {d.hint}" if d.hint else ""
            d = replace(d, hint=f'"{name}" is a setting of executor {one_of(owners)}, '
                                f'but {context}{also}')
        result.append(d)
    return result


def _check_profile(env_file: EnvFileDocument | None, profile) -> list[Diagnostic]:
    if env_file is None or profile.name not in env_file.profiles:
        return []
    name = profile.chain[-1] if profile.chain else profile.name
    executor = profile.data.get("executor", DEFAULT_EXECUTOR)
    prefix = (profile.name,)
    document = Document(path=env_file.document.path, data={profile.name: profile.data},
                        display=env_file.document.display,
                        positions={prefix + p: loc for p, loc in profile.positions.items()},
                        sources=env_file.document.sources)
    if not is_executor(executor):
        position = document.value_position(prefix + ("executor",))
        hint = (did_you_mean(executor, REGISTRY) if isinstance(executor, str) else None) or \
            f"runspec runs {one_of(REGISTRY)}"
        return [Diagnostic.at(position, format_path(prefix + ("executor",)),
                              f'executor "{executor}" is not supported'
                              + (f' (profile "{name}")' if name != profile.name else ""),
                              hint, document)]
    found = schema_diagnostics(document, "env", _defs("Profile", executor)[executor], prefix,
                               profile.data)
    return _name_owners(found, "env", "Profile", executor,
                        f'profile "{profile.name}" has executor "{executor}"')


def validate_env_file(path: Path) -> list[Diagnostic]:
    """Check an env.toml: its reserved tables, and every profile after its extends chain."""
    try:
        env_file = load_env_file(path, _display(path))
    except ManifestError as error:
        return error.diagnostics
    document = env_file.document
    reserved = {k: v for k, v in document.data.items() if k in RESERVED_TABLES}
    out = schema_diagnostics(document, "env", instance=reserved)
    too_long: dict[str, list[Diagnostic]] = {}
    for name, table in env_file.profiles.items():
        if not isinstance(table, dict):
            out.append(Diagnostic.at(document.key_position((name,)), name,
                                     f"expected a profile table, got {type(table).__name__}",
                                     f"top-level keys are profiles or {one_of(RESERVED_TABLES)}",
                                     document))
            continue
        try:
            profile = resolve_profile(env_file, name)
        except ChainTooLong as error:
            too_long[name] = error.diagnostics
            continue
        except ManifestError as error:
            out += error.diagnostics
            continue
        out += _check_profile(env_file, profile)
    # A chain too long is too long from every profile on it: report where it starts.
    extended = {env_file.profiles[n].get("extends") for n in too_long}
    starts = [n for n in too_long if n not in extended] or list(too_long)[:1]
    for name in starts:
        out += too_long[name]
    return _unique_sorted(out)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, RuntimeError, ValueError):  # outside it, or a symlink loop
        return str(path)


def _is_file(path: Path) -> bool:
    """``is_file`` that answers False where the OS refuses the name (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _why_unreadable(path: Path) -> str:
    """"not found", or what is there instead of a file (a directory, a pipe, a device)."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return "not found"
    if stat.S_ISDIR(mode):
        return "is a directory"
    return "is not a regular file (a pipe or a device)"


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def validate_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Validate every file named or found under ``paths``: (files checked, all diagnostics)."""
    files = discover(paths)
    diagnostics: list[Diagnostic] = []
    for file in files:
        diagnostics += validate_file(file)
    return files, list(dict.fromkeys(diagnostics))  # a script's warning once, not per manifest
