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

from runspec.manifest.checks import Checker
from runspec.manifest.document import Document, KeyPath, format_path
from runspec.manifest.errors import Diagnostic, ManifestError, sort_key
from runspec.manifest.explain import Explainer, validator_for
from runspec.manifest.load import MANIFEST_SUFFIXES, load_manifest
from runspec.manifest.profiles import (
    ENV_FILE_NAME,
    EnvFileDocument,
    find_env_file,
    load_env_file,
    resolve_profile,
)
from runspec.manifest.suggest import did_you_mean, one_of, suggested
from runspec.manifest.vocabulary import EXECUTORS, RESERVED_TABLES

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".runspec", "runs", ".tox"}
_LOOKS_LIKE_MANIFEST = re.compile(r"""^\s*["']?schema["']?\s*[=:]\s*["']?runspec/""", re.M)
_ENV_DEF = {"local": "LocalEnv", "slurm": "SlurmEnv", "ray": "RayEnv", "nemo-run": "NemoRunEnv"}
_PROFILE_DEF = {"local": "LocalProfile", "slurm": "SlurmProfile", "ray": "RayProfile",
                "nemo-run": "NemoRunProfile"}
_ENV_OWN_KEYS = ("profile", "file")


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Files named on the command line, and every manifest or env.toml found in directories."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            found.append(path)
            continue
        for candidate in sorted(path.rglob("*")):
            if any(part in SKIP_DIRS for part in candidate.relative_to(path).parts[:-1]):
                continue
            if candidate.suffix in MANIFEST_SUFFIXES and candidate.is_file() and (
                candidate.name == ENV_FILE_NAME or is_manifest(candidate)
            ):
                found.append(candidate)
    return found


def is_manifest(path: Path) -> bool:
    """A run.toml / *.run.yaml by name, or any TOML/YAML whose ``schema`` is runspec's."""
    stem = path.name.rsplit(".", 1)[0]
    if stem == "run" or stem.endswith(".run"):
        return True
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
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
    return validate_document(document)


def validate_document(document: Document) -> list[Diagnostic]:
    diagnostics = schema_diagnostics(document, "run")
    diagnostics += Checker(document).run()
    diagnostics += _script_diagnostics(document)
    diagnostics += _config_key_diagnostics(document)
    diagnostics += _env_diagnostics(document)
    return _unique_sorted(diagnostics)


def schema_diagnostics(document: Document, kind: str, ref: str | None = None, base: KeyPath = (),
                       instance: Any = None) -> list[Diagnostic]:
    from runspec.manifest import schema as schemas

    data = document.data if instance is None else instance
    errors = validator_for(kind, ref).iter_errors(data)
    return Explainer(document, schemas.load(kind), base).explain_all(errors)


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
    return [d for d in diagnostics
            if not (d.message == "required key is missing" and d.path in explained)]


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
        if path.is_file():
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

        return YAML(typ="safe").load(path.read_text(encoding="utf-8"))

    out: list[Diagnostic] = []
    for at, unit in _units(document.data):
        recipe = unit.get("recipe") if isinstance(unit.get("recipe"), dict) else {}
        config_ref = recipe.get("config")
        if not isinstance(config_ref, str):
            continue  # no config (a PEP 723 default one is checked by plan)
        config_path = Path(document.value_position(at + ("recipe", "config")).file).parent / config_ref
        if not config_path.is_file():
            continue  # reported by the semantic checks
        try:
            config = load(config_path)
            script = recipe.get("script")
            if isinstance(script, str):
                where = Path(document.value_position(at + ("recipe", "script")).file).parent
                default = (default_config_under(read_script_spec(where / script), config_path)
                           if (where / script).is_file() else None)
                if default is not None:
                    config = deep_merge(load(default), config)
        except ManifestError as error:
            out += error.diagnostics
            continue
        except Exception:  # an unreadable or malformed config: plan reports it with its position
            continue
        if not isinstance(config, dict) or not config:
            continue
        sweep = unit.get("sweep") if at else document.data.get("sweep")
        parameters = sweep.get("parameters") if isinstance(sweep, dict) else None
        artifacts = unit.get("artifacts") if isinstance(unit.get("artifacts"), dict) else {}
        wanted = [(k, at + ("recipe", "overrides", *path), True)
                  for k, path in override_leaves(recipe.get("overrides")).items()]
        wanted += [(k, at + ("sweep", "parameters", k), True)
                   for k in (parameters if isinstance(parameters, dict) else {})]
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
    return out


def _env_diagnostics(document: Document) -> list[Diagnostic]:
    data = document.data
    top = data.get("env") if isinstance(data.get("env"), dict) else {}
    out = _check_env(document, ("env",), top, top)
    for at, unit in _units(data):
        if at and isinstance(unit.get("env"), dict):
            out += _check_env(document, at + ("env",), unit["env"], top)
    return out


def _check_env(document: Document, at: KeyPath, inline: dict[str, Any], top: dict[str, Any]
               ) -> list[Diagnostic]:
    """Resolve the profile chain and check the inline env strictly against its executor."""
    manifest_dir = Path(document.value_position(at).file).parent
    profile_name = inline.get("profile", top.get("profile"))
    env_file_ref = inline.get("file", top.get("file"))
    env_file: EnvFileDocument | None = None
    if isinstance(env_file_ref, str):
        env_path = manifest_dir / env_file_ref
        if not env_path.is_file():
            position = document.value_position(at + ("file",))
            return [Diagnostic.at(position, format_path(at + ("file",)),
                                  f'env file not found: "{env_path}"', document=document)]
    else:
        env_path = find_env_file(manifest_dir)
    try:
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
    executor = "local"
    origin = 'the executor is "local" (the default)'
    if profile is not None:
        out += _check_profile(env_file, profile)
        executor = profile.data.get("executor", "local")
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
    if executor in EXECUTORS and "executor" not in inline:
        # Keys inherited from the profile are checked against the profile's executor here.
        instance = {**inline, "executor": executor}
        found = schema_diagnostics(document, "run", _ENV_DEF[executor], at, instance)
        out += _name_owners([d for d in found if not d.path.endswith(".executor")],
                            "run", _ENV_DEF, executor, origin)
    return out


def _name_owners(diagnostics: list[Diagnostic], kind: str, defs: dict[str, str], executor: str,
                 context: str) -> list[Diagnostic]:
    """For an unknown key that another executor accepts, say which executor owns it."""
    from runspec.manifest import schema as schemas

    all_defs = schemas.load(kind)["$defs"]
    result = []
    for d in diagnostics:
        name = d.path.rsplit(".", 1)[-1].strip('"')
        owners = [e for e, ref in defs.items()
                  if e != executor and name in all_defs[ref].get("properties", {})]
        if d.message == "unknown key" and owners:
            d = replace(d, hint=f'"{name}" is a setting of executor {one_of(owners)}, but {context}')
        result.append(d)
    return result


def _check_profile(env_file: EnvFileDocument | None, profile) -> list[Diagnostic]:
    if env_file is None or profile.name not in env_file.profiles:
        return []
    name = profile.chain[-1] if profile.chain else profile.name
    executor = profile.data.get("executor", "local")
    prefix = (profile.name,)
    document = Document(path=env_file.document.path, data={profile.name: profile.data},
                        display=env_file.document.display,
                        positions={prefix + p: loc for p, loc in profile.positions.items()},
                        sources=env_file.document.sources)
    if executor not in EXECUTORS:
        position = document.value_position(prefix + ("executor",))
        hint = (did_you_mean(executor, EXECUTORS) if isinstance(executor, str) else None) or \
            f"runspec runs {one_of(EXECUTORS)}"
        return [Diagnostic.at(position, format_path(prefix + ("executor",)),
                              f'executor "{executor}" is not supported'
                              + (f' (profile "{name}")' if name != profile.name else ""),
                              hint, document)]
    found = schema_diagnostics(document, "env", _PROFILE_DEF[executor], prefix, profile.data)
    return _name_owners(found, "env", _PROFILE_DEF, executor,
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
    for name, table in env_file.profiles.items():
        if not isinstance(table, dict):
            out.append(Diagnostic.at(document.key_position((name,)), name,
                                     f"expected a profile table, got {type(table).__name__}",
                                     f"top-level keys are profiles or {one_of(RESERVED_TABLES)}",
                                     document))
            continue
        try:
            profile = resolve_profile(env_file, name)
        except ManifestError as error:
            out += error.diagnostics
            continue
        out += _check_profile(env_file, profile)
    return _unique_sorted(out)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def validate_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Validate every file named or found under ``paths``: (files checked, all diagnostics)."""
    files = discover(paths)
    diagnostics: list[Diagnostic] = []
    for file in files:
        diagnostics += validate_file(file)
    return files, diagnostics
