"""Registering a finished run's outputs: shared by apply (it saw the run end) and by any
later refresh (a Slurm or Ray run that ended after apply returned).

Also what a run consumed from a stage upstream: the plan pins the version the producing
run registered (``inputs.NAME``, with ``run``: the producer's key), and a run planned
before that version existed (its producer ran in the same apply) records it when it
succeeds, so the next plan compares like with like and a re-run producer's new version
replaces its consumers (``# input NAME: v3 → v4``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runspec.artifacts import ledger
from runspec.artifacts.registry import BEST, BestBy, Mode, Registry, Version, configured_mode
from runspec.artifacts.uri import ArtifactError
from runspec.measure.files import read_json

if TYPE_CHECKING:
    from runspec.plan.resolve import Resolved, ResolvedStage

UNTYPED = "artifact"
"""An output's type when neither the manifest nor the code names one."""
REMOTE_OUTPUTS_FILE = "outputs.remote.json"
"""In a run directory whose run ran on a cluster over SSH: ``{output: {path, host, digest}}``,
the outputs as they are there (its backend writes it; the files themselves stay there)."""


@dataclass(frozen=True)
class OutputPolicy:
    """How one declared output is registered: copied or referenced (None: by its size),
    and which metric keeps its ``best`` alias."""

    mode: Mode | None = None
    best: BestBy | None = None


@dataclass(frozen=True)
class Declared:
    """What the manifest says about a run's artifacts that its state record does not."""

    policies: dict[str, OutputPolicy]
    plain: dict[str, str]           # input name → the path (or URL) it names, as written
    default: Mode = Mode.AUTO       # the mode of outputs the code saves (env.toml's, or AUTO)


# -- what a run consumes from a stage upstream ----------------------------------------------

def consumed_pin(registry: Registry, version: Version, producer: str) -> dict[str, Any]:
    """The request's record of a stage output it consumes: the version, its digest, the
    producing run, and what changed if the producer's directory no longer matches it (a
    directory that is gone is no change to record: the producer's run must write it again,
    and a renamed run's directory is linked back only when apply moves it)."""
    pin: dict[str, Any] = {"version": version.label, "digest": version.metadata.get("digest"),
                           "run": producer}
    if version.metadata.get("wandb"):
        pin["wandb"] = version.metadata["wandb"]
    if Path(version.source).exists():
        drift = registry.drift(version, of="source")
        if drift:
            pin["changed"] = drift
    return pin


def consumed_pins(registry: Registry, consumes: dict[str, str],
                  inputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Input key → pin for each consumed output whose producing run registered a version.
    The key is the output's name, unless an ``art://`` input already has that name."""
    pinned = {name for name, pin in inputs.items()
              if not (isinstance(pin, dict) and pin.get("run"))}
    pins = {}
    for artifact, producer in sorted(consumes.items()):
        version = registry.produced_by(artifact, producer)
        if version is None or "mode" not in version.metadata:
            continue  # not registered yet, or by runspec ≤ 0.2, whose consumers lack pins
        key = artifact if artifact not in pinned else f"{producer.split('/')[1]}.{artifact}"
        pins[key] = consumed_pin(registry, version, producer)
    return pins


def record_consumed(member, registry: Registry) -> None:
    """A run planned before its upstream version existed records it now, and its digest
    with it: the request as the next plan will compute it (see the module's docstring)."""
    consumes = member.request.get("consumes")
    if not isinstance(consumes, dict) or not consumes:
        return
    inputs = dict(member.request.get("inputs") or {})
    merged = {**inputs, **consumed_pins(registry, consumes, inputs)}
    if merged == inputs:
        return
    from runspec.plan.identity import digest
    from runspec.plan.source import SOURCE_FIELDS, without

    request: dict[str, Any] = {}
    for key, value in member.request.items():  # where a plan puts it: just before consumes
        if key == "consumes":
            request["inputs"] = dict(sorted(merged.items()))
        if key != "inputs":
            request[key] = value
    member.request = request
    member.digest = digest(without(request, SOURCE_FIELDS))


# -- what the manifest declares -------------------------------------------------------------

def declared(stage: ResolvedStage, resolved: Resolved) -> Declared:
    """The policies of ``stage``'s outputs (with the ``[artifacts] mode`` of the manifest's
    env file as the default, also for outputs its code saves) and its plain-path inputs
    (the lineage of every version it registers, declared or saved), from the resolved
    manifest."""
    default = configured_mode(_env_data(resolved.root, resolved.document.data))
    policies = {}
    for name, output in stage.outputs.items():
        best = output.alias_best
        policies[name] = OutputPolicy(Mode(output.mode) if output.mode else default,
                                      BestBy(best.metric, best.goal) if best else None)
    plain = {name: artifact.uri for name, artifact in stage.artifacts.items()
             if _is_plain(artifact.uri)}
    return Declared(policies, plain, default or Mode.AUTO)


def _is_plain(uri: str) -> bool:
    return "${" not in uri and not uri.startswith(("art://", "wandb://"))


def _env_data(root: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    from runspec.manifest.errors import ManifestError
    from runspec.manifest.profiles import find_env_file

    env = manifest.get("env")
    reference = env.get("file") if isinstance(env, dict) else None
    path = root / reference if isinstance(reference, str) else find_env_file(root)
    try:
        info = path.stat() if path is not None else None
        return _env_file(str(path), info.st_mtime_ns, info.st_size) if info else None
    except (ManifestError, OSError):
        return None


@lru_cache(maxsize=8)
def _env_file(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """env.toml's data, read once per version of the file (not once per registered run)."""
    from runspec.manifest.profiles import load_env_file

    return load_env_file(Path(path)).document.data


def _declared_for_run(member, root: Path) -> Declared:
    """For a run that ended after apply returned: what its manifest (named in its job.yaml)
    declares now. Nothing, if it cannot be read (the defaults then apply)."""
    from runspec.manifest.errors import ManifestError
    from runspec.manifest.load import load_document

    try:
        job = load_document(root / member.run_dir / "job.yaml").data
        manifest = (root / job["manifest"]["path"]).resolve()
        info = manifest.stat()
        return _declared_by(str(manifest), info.st_mtime_ns, info.st_size, member.stage)
    except (ManifestError, ArtifactError, OSError, KeyError, TypeError, StopIteration):
        return Declared({}, {})


@lru_cache(maxsize=64)
def _declared_by(manifest: str, mtime_ns: int, size: int, stage_name: str) -> Declared:
    """Resolved once per version of the manifest and stage: a Slurm array of 1,000 runs that
    ended after apply returned is registered without resolving it 1,000 times."""
    from runspec.plan.resolve import resolve

    resolved = resolve(manifest)
    return declared(next(s for s in resolved.stages if s.name == stage_name), resolved)


# -- registering ----------------------------------------------------------------------------

def register_outputs(member, root: Path, known: Declared | None = None,
                     notes: list[str] | None = None) -> tuple[list[str], str | None]:
    """Publish ``member``'s outputs once: those its manifest declares and those its code
    saved (``runspec.artifacts.save``, see ``artifacts.ledger``), each with its metadata
    checked against its type first, so an invalid one publishes nothing. Returns (labels
    published, why it must fail). ``known``: what the manifest declares (apply has it
    resolved; without it, it is read from the manifest the run's job.yaml names).
    ``notes`` receives what else moved (``model:best → v3 (loss 0.41)``)."""
    registry = Registry(member.registry)
    record_consumed(member, registry)
    if member.registered:
        return [], None
    run_dir = root / member.run_dir if member.run_dir else None
    recorded = run_dir is not None and (run_dir / ledger.LEDGER_FILE).exists()
    if not member.outputs and not recorded:  # most runs: nothing to read
        return [], None
    result = (read_json(run_dir / "result.json") or {}) if run_dir is not None else {}
    account = ledger.read(run_dir, result.get("attempt")) if run_dir is not None and recorded \
        else ledger.Ledger()
    if not member.outputs and not account.saved:
        return [], None
    if account.problems:
        return [], f"the run's {ledger.LEDGER_FILE} cannot be used: {account.problems[0]}"
    known = known if known is not None else _declared_for_run(member, root)
    inputs: dict[str, Any] = {name: pin["version"]
                              for name, pin in (member.request.get("inputs") or {}).items()
                              if isinstance(pin, dict) and pin.get("version")}
    inputs.update(_plain_inputs(known.plain, root))
    _loaded_inputs(inputs, account, registry)
    logged = _wandb_logged(result)
    metrics = {k: v for k, v in (result.get("metrics") or {}).items()
               if isinstance(v, int | float) and not isinstance(v, bool)} \
        if isinstance(result.get("metrics"), dict) else {}
    remote = (read_json(run_dir / REMOTE_OUTPUTS_FILE) or {}) if run_dir is not None else {}
    planned, problem = _planned_outputs(member, root, remote, account, known)
    if problem:
        return [], problem
    published: list[str] = []
    for output in planned:
        name = output.name
        policy = known.policies.get(name, OutputPolicy(output.default_mode))
        try:
            version = registry.publish(name, output.produced, output.type, producer=member.key,
                                       inputs=inputs,
                                       extra={"wandb": logged[name]} if name in logged else None,
                                       remote=output.where, mode=policy.mode or Mode.AUTO,
                                       best=policy.best, metrics=metrics, fields=output.fields)
        except ArtifactError as error:
            return published, (f"output {name} could not be registered: {error.message}"
                               + (f" — {error.hint}" if error.hint else ""))
        published.append(version.label)
        if policy.best is not None and registry.aliases(name).get(BEST) == version.number \
                and notes is not None:
            notes.append(f"{name}:{BEST} → v{version.number} "
                         f"({policy.best.metric} {metrics[policy.best.metric]:g})")
    member.registered = True
    return published, None


@dataclass(frozen=True)
class _Output:
    """One output about to be published: where it is, its type and metadata."""

    name: str
    produced: Path | str
    type: str
    fields: dict[str, Any]
    where: tuple[str, str] | None = None         # (host, digest) of one left on a cluster
    default_mode: Mode | None = None


def _planned_outputs(member, root: Path, remote: Any, account: ledger.Ledger,
                     known: Declared) -> tuple[list[_Output], str | None]:
    """Every output to publish, checked (paths exist, metadata fits its type) before any is
    published; or why the run must fail."""
    outputs: list[_Output] = []
    for name, (path, type_) in sorted(member.outputs.items()):
        produced: Path | str = root / path
        there = remote.get(name) if isinstance(remote, dict) else None
        where = None
        if isinstance(there, dict) and isinstance(there.get("path"), str) and \
                not Path(produced).exists():
            if not there.get("digest"):
                return [], (f"output {name} is missing: {there['path']} was not "
                            f"written on {there.get('host')}")
            produced, where = there["path"], (str(there.get("host")), str(there["digest"]))
        elif not Path(produced).exists():
            return [], f"output {name} is missing: {path} was not written"
        if where:  # its <path>.metadata.json, as the cluster read it
            fields, problem = ledger.remote_sidecar(there)
            problem = problem and f"{problem} (on {where[0]})"
        else:
            fields, problem = ledger.sidecar(produced)
        if problem:
            return [], f"output {name}: {problem}"
        saved = account.saved.get(name)
        if saved is not None:
            if Path(saved.path).resolve() != Path(produced).resolve():
                return [], (f"output {name}: runspec.artifacts.save got {saved.path}, but the "
                            f"manifest declares {path} (save it there, or leave path out)")
            if saved.type and type_ == UNTYPED:  # the manifest left the type to the code
                type_ = saved.type
            elif saved.type and saved.type != type_:
                return [], (f'output {name}: runspec.artifacts.save says type "{saved.type}", '
                            f'the manifest type = "{type_}" (give one of them)')
            fields = {**fields, **saved.metadata}
        outputs.append(_Output(name, produced, type_, fields, where))
    for name, saved in sorted(account.saved.items()):
        if name in member.outputs:
            continue
        if not Path(saved.path).exists():
            return [], f"output {name} is missing: {saved.path} (saved by the run) is gone"
        fields, problem = ledger.sidecar(saved.path)
        if problem:
            return [], f"output {name}: {problem}"
        outputs.append(_Output(name, Path(saved.path), saved.type or UNTYPED,
                               {**fields, **saved.metadata}, default_mode=known.default))
    from runspec.artifacts.types import metadata_problems

    for output in outputs:
        problems = metadata_problems(output.type, output.fields)
        if problems:
            return [], (f"output {output.name}: {problems[0]}"
                        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return outputs, None


def _loaded_inputs(inputs: dict[str, Any], account: ledger.Ledger, registry: Registry) -> None:
    """What the run's code loaded joins its lineage, once: the manifest may pin it too, and
    a path read is no new input when it is a pinned version's data (a stage's output)."""
    have = {v for v in inputs.values() if isinstance(v, str)}
    for label in account.loaded:
        if label in have:
            continue
        name = label.rpartition(":")[0]
        inputs[name if name not in inputs else f"loaded.{name}"] = label
    if not account.read:
        return
    paths = {v.get("path") for v in inputs.values() if isinstance(v, dict)}
    for label in (v for v in inputs.values() if isinstance(v, str)):
        name, _, number = label.rpartition(":v")
        try:
            version = registry.get(name, int(number))
        except (ArtifactError, ValueError):
            continue
        paths |= {version.path, version.source}
    from runspec.artifacts.digest import digest_of

    for path in account.read:
        if path in paths or any(Path(path).is_relative_to(p) for p in paths
                                if isinstance(p, str) and "://" not in p):
            continue
        try:
            inputs[path] = {"path": path, "digest": digest_of(Path(path))}
        except OSError:
            inputs[path] = {"path": path, "digest": None}


def _plain_inputs(plain: dict[str, str], root: Path) -> dict[str, dict[str, Any]]:
    """Lineage of the plain paths a run read: where each is and its digest now."""
    from runspec.artifacts.digest import digest_of

    found: dict[str, dict[str, Any]] = {}
    for name, uri in sorted(plain.items()):
        if "://" in uri and not uri.startswith("file://"):
            found[name] = {"uri": uri}
            continue
        path = Path(uri.removeprefix("file://"))
        path = (path if path.is_absolute() else root / path).resolve()
        try:
            found[name] = {"path": str(path), "digest": digest_of(path)}
        except OSError:
            found[name] = {"path": str(path), "digest": None}
    return found


def _wandb_logged(result: dict[str, Any]) -> dict[str, str]:
    """Output name → the W&B artifact (``entity/project/name:vK``) the run logged it as, when
    it ran online: the registry keeps it so that consumers can ``use_artifact`` it."""
    artifacts = ((result.get("wandb") or {}).get("artifacts") or {}) if isinstance(result, dict) else {}
    return {name: entry["ref"] for name, entry in artifacts.items()
            if isinstance(entry, dict) and isinstance(entry.get("ref"), str)}
