"""The state store: one JSON file per manifest, written atomically, guarded by a lock.

Like Terraform's state it carries a ``lineage`` (which history this is) and a ``serial``
(how many writes), so a saved plan can refuse to apply over a state that moved on. A
corrupt file, or one written by a newer runspec, is refused and never overwritten.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runspec.measure.files import write_text_atomic

STATE_FORMAT = 1
DEFAULT_DIR = ".runspec/state"
STATUSES = ("submitted", "running", "succeeded", "failed", "cancelled", "lost")
RERUN_STATUSES = ("failed", "cancelled", "lost")


class StateError(Exception):
    """The state cannot be read, written or locked; says why and what to do."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message + (f" — {hint}" if hint else ""))
        self.message, self.hint = message, hint


@dataclass
class Member:
    """One applied run."""

    key: str
    stage: str
    digest: str
    status: str = "submitted"
    handle: dict[str, Any] | None = None
    request: dict[str, Any] = field(default_factory=dict)
    submitted_at: str | None = None
    finished_at: str | None = None
    point: dict[str, Any] = field(default_factory=dict)
    slot: str = ""
    run_dir: str = ""                  # relative to the manifest's directory
    backend: str = "local"
    attempts: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)   # artifact → [path, type]
    registry: str = ""                 # where outputs are published
    registered: bool = False           # outputs published (once)
    error: str | None = None           # why runspec marked it failed, when the run did not say


@dataclass
class State:
    manifest: str
    lineage: str | None = None
    serial: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    fingerprint: str | None = None     # inputs of the last complete apply (see resolve.fingerprint)

    def complete(self) -> bool:
        """Has every recorded run succeeded?"""
        return bool(self.members) and all(m.status == "succeeded" for m in self.members.values())

    def to_json(self) -> dict[str, Any]:
        from runspec import __version__

        return {"format": STATE_FORMAT, "runspec_version": __version__, "manifest": self.manifest,
                "lineage": self.lineage, "serial": self.serial, "fingerprint": self.fingerprint,
                "complete": self.complete(),
                "members": {k: asdict(m) for k, m in sorted(self.members.items())}}


def state_path(root: Path, name: str, location: str | None) -> str:
    """``<root>/.runspec/state/<name>.json`` by default; ``location`` may be a directory, a
    ``.json`` file, or an fsspec URL (``s3://bucket/prefix``)."""
    if location is None:
        return str(root / DEFAULT_DIR / f"{name}.json")
    if "://" in location:
        return location if location.endswith(".json") else f"{location.rstrip('/')}/{name}.json"
    base = Path(location) if Path(location).is_absolute() else root / location
    return str(base if location.endswith(".json") else base / f"{name}.json")


class StateStore:
    """Reads and writes one manifest's state at a path or fsspec URL."""

    def __init__(self, location: str, manifest: str):
        self.location = location
        self.manifest = manifest
        self.is_local = "://" not in location or location.startswith("file://")

    @property
    def local_path(self) -> Path:
        return Path(self.location.removeprefix("file://"))

    def read(self) -> State:
        """The state, or an empty one (lineage None, serial 0) when nothing was applied yet."""
        try:
            text = self._read_text()
        except FileNotFoundError:
            return State(self.manifest)
        except OSError as error:
            raise StateError(f"cannot read state {self.location}: {error}") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise StateError(
                f"state {self.location} is corrupt (line {error.lineno}, column {error.colno}: "
                f"{error.msg})",
                f"runspec will not overwrite it; restore {self.location}.backup (written before "
                "each change) or move the file away to start over") from None
        return self._parse(raw)

    def _parse(self, raw: Any) -> State:
        if not isinstance(raw, dict) or not isinstance(raw.get("format"), int):
            raise StateError(f"state {self.location} is not a runspec state file (no format)",
                             "runspec will not overwrite it; move it away to start over")
        if raw["format"] > STATE_FORMAT:
            raise StateError(
                f"state {self.location} was written by a newer runspec "
                f"({raw.get('runspec_version', '?')}, state format {raw['format']}); this "
                f"runspec reads format {STATE_FORMAT}", "upgrade runspec to use this state")
        try:
            members = {k: Member(**m) for k, m in raw.get("members", {}).items()}
        except TypeError as error:
            raise StateError(f"state {self.location} is corrupt: {error}",
                             "runspec will not overwrite it") from None
        return State(raw.get("manifest", self.manifest), raw.get("lineage"),
                     int(raw.get("serial", 0)), members, raw.get("fingerprint"))

    def read_summary(self) -> tuple[str | None, bool]:
        """``(fingerprint, complete)`` from the head of the file, without parsing 10,000
        members: what the unchanged-re-apply check needs, in a millisecond."""
        import re

        try:
            if self.is_local:
                with self.local_path.open("r", encoding="utf-8") as handle:
                    head = handle.read(4096)
            else:
                head = self._read_text()[:4096]
        except OSError:
            return None, False
        fingerprint = re.search(r'^ "fingerprint": "([0-9a-f]+)",$', head, re.M)
        complete = re.search(r'^ "complete": true,$', head, re.M)
        return (fingerprint.group(1) if fingerprint else None), bool(complete)

    def _read_text(self) -> str:
        if self.is_local:
            return self.local_path.read_text(encoding="utf-8")
        import fsspec

        with fsspec.open(self.location, "r", encoding="utf-8") as handle:
            return handle.read()

    def write(self, state: State) -> State:
        """Write the next serial atomically (temp file + rename); keeps a ``.backup``."""
        if state.lineage is None:
            state.lineage = str(uuid.uuid4())
        state.serial += 1
        text = json.dumps(state.to_json(), indent=1, sort_keys=False) + "\n"
        if not self.is_local:
            import fsspec

            fs, path = fsspec.core.url_to_fs(self.location)
            temporary = f"{path}.tmp-{uuid.uuid4().hex}"
            with fs.open(temporary, "w") as handle:
                handle.write(text)
            if fs.exists(path):
                fs.copy(path, f"{path}.backup")
            fs.mv(temporary, path)
            return state
        path = self.local_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                write_text_atomic(Path(f"{path}.backup"), path.read_text(encoding="utf-8"),
                                  sync_directory=True)
            write_text_atomic(path, text, sync_directory=True)
        except OSError as error:
            raise StateError(f"cannot write state {path}: {error.strerror or error}",
                             "free space or fix permissions; the previous state is unchanged"
                             ) from None
        return state
