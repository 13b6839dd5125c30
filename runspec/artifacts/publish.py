"""Registering a finished run's outputs: shared by apply (it saw the run end) and by any
later refresh (a Slurm or Ray run that ended after apply returned)."""

from __future__ import annotations

from pathlib import Path

from runspec.artifacts.registry import Registry
from runspec.artifacts.uri import ArtifactError


def register_outputs(member, root: Path) -> tuple[list[str], str | None]:
    """Publish ``member``'s outputs once. Returns (labels published, why it must fail)."""
    if not member.outputs or member.registered:
        return [], None
    registry = Registry(member.registry)
    inputs = {name: pin["version"] for name, pin in (member.request.get("inputs") or {}).items()}
    published = []
    for name, (path, type_) in sorted(member.outputs.items()):
        produced = root / path
        if not produced.exists():
            return published, f"output {name} is missing: {path} was not written"
        try:
            version = registry.publish(name, produced, type_, producer=member.key, inputs=inputs)
        except ArtifactError as error:
            return published, f"output {name} could not be registered: {error.message}"
        published.append(version.label)
    member.registered = True
    return published, None
