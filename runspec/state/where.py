"""Where a manifest's state lives, read cheaply (no plan needed)."""

from __future__ import annotations

from pathlib import Path

from runspec.manifest.load import load_manifest
from runspec.state.store import StateError, state_path


def state_file_for(manifest: Path) -> Path:
    """The local state file of ``manifest`` (its name and ``outputs.state``)."""
    document = load_manifest(manifest)
    data = document.data
    name = data.get("name")
    if not isinstance(name, str):
        raise StateError(f"{manifest} has no name, so it has no state")
    location = (data.get("outputs") or {}).get("state")
    path = state_path(Path(document.path).resolve().parent, name, location)
    if "://" in path and not path.startswith("file://"):
        raise StateError(f"state {path} is remote; locks are only kept for local state")
    return Path(path.removeprefix("file://"))
