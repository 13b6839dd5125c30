"""Registering a finished run's outputs: shared by apply (it saw the run end) and by any
later refresh (a Slurm or Ray run that ended after apply returned)."""

from __future__ import annotations

from pathlib import Path

from runspec.artifacts.registry import Registry
from runspec.artifacts.uri import ArtifactError
from runspec.measure.files import read_json

REMOTE_OUTPUTS_FILE = "outputs.remote.json"
"""In a run directory whose run ran on a cluster over SSH: ``{output: {path, host, digest}}``,
the outputs as they are there (its backend writes it; the files themselves stay there)."""


def register_outputs(member, root: Path) -> tuple[list[str], str | None]:
    """Publish ``member``'s outputs once. Returns (labels published, why it must fail)."""
    if not member.outputs or member.registered:
        return [], None
    registry = Registry(member.registry)
    inputs = {name: pin["version"] for name, pin in (member.request.get("inputs") or {}).items()}
    for artifact, producer in (member.request.get("consumes") or {}).items():
        version = registry.produced_by(artifact, producer)
        if version is not None:  # the upstream stage's output: lineage across stages
            inputs[artifact] = version.label
    logged = _wandb_logged(root / member.run_dir) if member.run_dir else {}
    published: list[str] = []
    remote = (read_json(root / member.run_dir / REMOTE_OUTPUTS_FILE) or {}) \
        if member.run_dir else {}
    for name, (path, type_) in sorted(member.outputs.items()):
        produced: Path | str = root / path
        there = remote.get(name) if isinstance(remote, dict) else None
        where = None
        if isinstance(there, dict) and isinstance(there.get("path"), str) and \
                not Path(produced).exists():
            if not there.get("digest"):
                return published, (f"output {name} is missing: {there['path']} was not "
                                   f"written on {there.get('host')}")
            produced, where = there["path"], (str(there.get("host")), str(there["digest"]))
        elif not Path(produced).exists():
            return published, f"output {name} is missing: {path} was not written"
        try:
            version = registry.publish(name, produced, type_, producer=member.key, inputs=inputs,
                                       extra={"wandb": logged[name]} if name in logged else None,
                                       remote=where)
        except ArtifactError as error:
            return published, f"output {name} could not be registered: {error.message}"
        published.append(version.label)
    member.registered = True
    return published, None


def _wandb_logged(run_dir: Path) -> dict[str, str]:
    """Output name → the W&B artifact (``entity/project/name:vK``) the run logged it as, when
    it ran online: the registry keeps it so that consumers can ``use_artifact`` it."""
    import json

    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return {}
    artifacts = ((result.get("wandb") or {}).get("artifacts") or {}) if isinstance(result, dict) else {}
    return {name: entry["ref"] for name, entry in artifacts.items()
            if isinstance(entry, dict) and isinstance(entry.get("ref"), str)}
