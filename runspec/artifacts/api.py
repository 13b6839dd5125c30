"""The Python API for recipe code: load what a run reads, save what it makes.

``load("art://data:latest")`` gives a version's path and metadata from the registry the
run's apply uses; ``save("model", path, "checkpoint", {"step": 100})`` makes a new version
when the run succeeds, with the run's lineage (what it loaded, what the manifest pinned).
Inside a run both only append to the run's ledger (``artifacts.ledger``); registration
does the rest, so a failed run registers nothing. Outside a run (a script started by
hand) ``save`` publishes at once, with what this process loaded as its inputs.

Importing it costs the standard library only: the registry is imported by the first call
that needs it, and nothing heavy (torch, W&B, pydantic) ever is.
"""

from __future__ import annotations

import builtins
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runspec.artifacts import ledger
from runspec.artifacts.uri import ArtifactError, output_variable, parse

if TYPE_CHECKING:
    from runspec.artifacts.registry import Registry, Version

_loaded_here: dict[str, Any] = {}
"""Outside a run: what this process loaded (input name → label or plain-path record), the
lineage of what it then saves."""


@dataclass(frozen=True)
class Artifact:
    """A path and its metadata; from the registry, also its name, version and producer."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    version: int | None = None
    type: str | None = None
    digest: str | None = None
    producer: str | None = None

    @property
    def uri(self) -> str | None:
        """``art://NAME:vN`` for a registered version."""
        return f"art://{self.name}:v{self.version}" if self.version is not None else None

    def save(self, name: str | None = None, type: str | None = None,
             metadata: dict[str, Any] | None = None) -> Artifact:
        """This path as (a new version of) ``name``, with this metadata and ``metadata``."""
        chosen = name or self.name
        if not chosen:
            raise ArtifactError("Artifact.save needs a name", 'e.g. artifact.save("model")')
        return save(chosen, self.path, type or self.type, {**self.metadata, **(metadata or {})})


def load(uri: str) -> Artifact:
    """``art://NAME[:vN|:ALIAS][/subpath]``, a plain path or ``file://…``: its path and
    metadata (a plain path's from ``<path>.metadata.json``, if written). Inside a run the
    load joins the lineage of what the run saves."""
    ref = parse(uri)
    if ref.scheme == "wandb":
        raise ArtifactError(f'"{uri}" cannot be loaded: runspec reads its own registry and '
                            "does not reach W&B",
                            f"download it once, `runspec artifacts publish {ref.name} PATH`, "
                            f'and load "art://{ref.name}"')
    if ref.scheme == "file":
        path = Path(ref.path).expanduser().resolve()
        if not path.exists():
            raise ArtifactError(f"cannot load {uri}: {path} does not exist")
        metadata, problem = ledger.sidecar(path)
        if problem:
            raise ArtifactError(problem)
        _record({"read": str(path)}, str(path), {"path": str(path)})
        return Artifact(str(path), metadata)
    run_dir = _run_dir()
    if run_dir is not None:
        _not_a_copy(run_dir, f"load({uri!r})")
    registry = _registry()
    version = registry.resolve(ref)
    drift = registry.drift(version)
    if drift:
        raise ArtifactError(f"{version.label} no longer matches what was registered: "
                            f"{'; '.join(drift)}",
                            "restore the data, or publish it as a new version and load that")
    _record({"loaded": version.label}, version.name, version.label)
    found = _artifact(version)
    if ref.subpath:
        return Artifact(f"{found.path}/{ref.subpath}", found.metadata, found.name,
                        found.version, found.type, found.digest, found.producer)
    return found


def save(name: str, path: str | os.PathLike[str] | None = None, type: str | None = None,
         metadata: dict[str, Any] | None = None) -> Artifact:
    """Register ``path`` as the next version of ``name`` with ``metadata`` (checked against
    ``type``, see ``artifacts.types``). Inside a run it is registered when the run succeeds;
    ``path`` and ``type`` default to those of the output ``name`` the manifest declares."""
    from runspec.artifacts.types import metadata_problems

    given = dict(metadata or {})
    try:
        json.dumps(given, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ArtifactError(f"the metadata of {name} is not JSON: {error}",
                            "use numbers, text, booleans, lists and tables") from None
    declared = outputs_declared().get(name)
    where = os.fspath(path) if path is not None else os.environ.get(output_variable(name))
    asked = type
    type = type or (declared if declared and declared != "artifact" else None)
    if not where:
        raise ArtifactError(f"save({name!r}) needs a path",
                            f"pass path=…, or declare [outputs.artifacts.{name}] in the "
                            f"manifest (the run then sees ${output_variable(name)})")
    target = Path(where).expanduser().resolve()
    if not target.exists():
        raise ArtifactError(f"cannot save {name}: {target} does not exist",
                            "write the data first, then save it")
    planned = os.environ.get(output_variable(name)) if declared else None
    if planned and Path(planned).resolve() != target:
        raise ArtifactError(f"cannot save {name} at {target}: the manifest declares its "
                            f"output {name} at {Path(planned).resolve()}",
                            "save it there, or leave path out")
    beside, _ = ledger.sidecar(target)  # registration reads it too (and says if it is bad)
    problems = metadata_problems(type or "", {**beside, **given})  # no type: reserved names
    if problems:
        raise ArtifactError(f"cannot save {name}: {problems[0]}",
                            "; ".join(problems[1:]) or None)
    run_dir = _run_dir()
    if run_dir is not None:
        if declared is not None and ledger.read_context(run_dir).copied_from:
            # registered from the cluster, with the <path>.metadata.json it finds there: the
            # metadata goes there (merged, save's fields winning), the rest is checked here
            if asked and asked != declared:
                raise ArtifactError(
                    f'cannot save {name} as type "{asked}": '
                    + ("the manifest leaves its type to the code, but a run on a copy of "
                       "its directory (uploaded to a cluster) cannot hand a type back"
                       if declared == "artifact" else
                       f'the manifest declares type = "{declared}"'),
                    f'give type = "{asked}" in [outputs.artifacts.{name}]'
                    + (", or leave type out of save" if declared != "artifact" else ""))
            if not planned:
                raise ArtifactError(f"cannot save {name} in this run: "
                                    f"${output_variable(name)} does not say where the "
                                    "manifest declares it",
                                    "run it through runspec, which sets it")
            if given:
                try:
                    ledger.write_sidecar(target, given)
                except OSError as error:
                    raise ArtifactError(f"cannot save the metadata of {name} beside {target}: "
                                        f"{error.strerror or error}") from None
                except ValueError as error:  # the file there cannot be used: not replaced
                    raise ArtifactError(f"cannot save {name}: {error}",
                                        "fix or remove that file: registration reads it too"
                                        ) from None
            return Artifact(str(target), given, name, None, type)
        _not_a_copy(run_dir, f"save({name!r})")
        _append(run_dir, {"saved": name, "path": str(target), "type": type,
                          "metadata": given})
        return Artifact(str(target), given, name, None, type)
    from runspec.artifacts.registry import Mode

    version = _registry().publish(name, target, type or "artifact", inputs=_inputs_here(),
                                  mode=Mode.AUTO, fields={**beside, **given})
    return _artifact(version)


def outputs() -> dict[str, str]:
    """Inside a run, the outputs its manifest declares: name → path (empty outside one).
    A recipe used by several manifests finds the name of the output it writes here."""
    found = {}
    for name in outputs_declared():
        path = os.environ.get(output_variable(name))
        if path:
            found[name] = str(Path(path).resolve())
    return found


def outputs_declared() -> dict[str, str]:
    """Inside a run, the declared outputs' names and types."""
    run_dir = _run_dir()
    return ledger.read_context(run_dir).outputs if run_dir is not None else {}


def list_artifacts(name: str | None = None) -> builtins.list[Artifact]:
    """The latest version of every artifact, or every version of ``name``."""
    registry = _registry()
    if name is None:
        return [_artifact(registry.resolve(parse(f"art://{n}"))) for n in registry.names()]
    return [_artifact(registry.get(name, number)) for number in registry.versions(name)]


def lineage(uri: str) -> dict[str, Any]:
    """``{"label", "type", "producer", "inputs": [the same for each input]}``; a plain
    path input is a leaf with its ``digest``."""
    registry = _registry()
    return registry.lineage(registry.resolve(parse(uri if uri.startswith("art://")
                                                   else f"art://{uri}")))


# -- where -----------------------------------------------------------------------------------

def _run_dir() -> Path | None:
    """Inside a run, its directory (relative to the recipe's working directory; the in-job
    wrapper has created it)."""
    where = os.environ.get("RUNSPEC_RUN_DIR")
    return Path(where) if where else None


def _not_a_copy(run_dir: Path, call: str) -> None:
    """A run reading a copy of its directory (uploaded to a cluster over SSH) cannot reach
    apply's registry, and what it records there is not read back: refuse, rather than
    lose a save or a load's lineage without a word."""
    copied_from = ledger.read_context(run_dir).copied_from
    if copied_from:
        raise ArtifactError(
            f"{call} cannot work in this run: its directory is a copy of {copied_from} "
            f"(here {Path(run_dir).resolve()}), on a machine that does not hold the "
            "registry, and what it saves there would never be registered",
            "declare the output in the manifest ([outputs.artifacts.NAME], written at "
            "$RUNSPEC_OUTPUT_NAME: registered from the cluster) and bind inputs with "
            "[artifacts.NAME] instead of loading them")


def _append(run_dir: Path, entry: dict[str, Any]) -> None:
    try:
        ledger.append(run_dir, entry)
    except OSError as error:
        raise ArtifactError(f"cannot record this in {run_dir / ledger.LEDGER_FILE}: "
                            f"{error.strerror or error}",
                            "$RUNSPEC_RUN_DIR names the run's directory, as seen from the "
                            "recipe's working directory") from None


def registry_location() -> str:
    """The registry a run's apply uses (recorded in its run directory), else the one the
    project uses from here: ``$RUNSPEC_ARTIFACTS``, env.toml's ``[artifacts] root``, or
    the project's ``.runspec/artifacts``, as ``runspec artifacts`` finds it."""
    run_dir = _run_dir()
    recorded = ledger.read_context(run_dir).root if run_dir is not None else None
    if recorded:
        return recorded
    from runspec.artifacts.registry import registry_root
    from runspec.manifest.errors import ManifestError
    from runspec.manifest.profiles import find_env_file, load_env_file

    start = Path.cwd()
    env_path = find_env_file(start)
    env_path = env_path if env_path is not None and env_path.is_file() else None
    try:
        data = load_env_file(env_path).document.data if env_path else None
    except ManifestError as error:
        raise ArtifactError(f"cannot read {env_path}: {error}") from None
    return registry_root(data, env_path, start)


def _registry() -> Registry:
    from runspec.artifacts.registry import Registry

    return Registry(registry_location())


def _record(entry: dict[str, Any], key: str, value: Any) -> None:
    run_dir = _run_dir()
    if run_dir is not None:
        _append(run_dir, entry)
    else:
        _loaded_here[key] = value


def _inputs_here() -> dict[str, Any]:
    """What this process loaded, as a version's ``inputs`` (a plain path with its digest)."""
    from runspec.artifacts.digest import digest_of

    inputs: dict[str, Any] = {}
    for key, value in _loaded_here.items():
        if isinstance(value, dict):
            try:
                value = {**value, "digest": digest_of(Path(value["path"]))}
            except OSError:
                value = {**value, "digest": None}
        inputs[key] = value
    return inputs


def _artifact(version: Version) -> Artifact:
    metadata = version.metadata
    return Artifact(version.path, dict(version.fields), version.name, version.number,
                    metadata.get("type"), metadata.get("digest"), metadata.get("producer"))
