"""The state store: one JSON file per manifest, written atomically, guarded by a lock.

Like Terraform's state it carries a ``lineage`` (which history this is) and a ``serial``
(how many writes), so a saved plan can refuse to apply over a state that moved on. A
corrupt file, or one written by a newer runspec, is refused and never overwritten: every
field is checked on reading, and a ``checksum`` near the top (the sha256 of the whole file
with the checksum itself zeroed) lets the unchanged-re-apply check trust the file's head
after one read and one hash, without parsing 10,000 members. A file without a checksum
(written before it existed) is read unverified: always fully parsed and checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from runspec.backends import DEFAULT_EXECUTOR, REGISTRY
from runspec.measure.files import disk_full, os_reason, write_bytes_atomic
from runspec.state.status import RunStatus

STATE_FORMAT = 1
DEFAULT_DIR = ".runspec/state"
STATUSES = tuple(RunStatus)
BACKENDS = tuple(REGISTRY)
HEAD_BYTES = 4096                   # where the checksum and the summary fields must be
_SEAL = b'\n "checksum": "sha256:'  # the checksum's line (one space: a top-level key)
_UNSET = b"0" * 64                  # its value while the file is hashed


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
    status: RunStatus = RunStatus.SUBMITTED
    handle: dict[str, Any] | None = None
    request: dict[str, Any] = field(default_factory=dict)
    submitted_at: str | None = None
    finished_at: str | None = None
    point: dict[str, Any] = field(default_factory=dict)
    slot: str = ""
    run_dir: str = ""                  # relative to the manifest's directory
    backend: str = DEFAULT_EXECUTOR
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
    fingerprint: str | None = None     # digest of ``inputs``
    inputs: dict[str, Any] | None = None  # what the last settled apply's plan read (plan.inputs)

    def complete(self) -> bool:
        """Has every recorded run succeeded?"""
        return bool(self.members) and all(m.status == RunStatus.SUCCEEDED
                                         for m in self.members.values())

    def to_json(self) -> dict[str, Any]:
        from runspec import __version__

        return {"format": STATE_FORMAT, "runspec_version": __version__, "manifest": self.manifest,
                "lineage": self.lineage, "serial": self.serial, "fingerprint": self.fingerprint,
                "complete": self.complete(), "inputs": self.inputs,
                "members": {k: _fields(m) for k, m in sorted(self.members.items())}}


_MEMBER_FIELD_NAMES = tuple(f.name for f in fields(Member))


def _fields(member: Member) -> dict[str, Any]:
    """A member as the file holds it: its fields, not deep-copied (``asdict`` would copy
    every request on every write, the larger part of a write's cost)."""
    return {name: getattr(member, name) for name in _MEMBER_FIELD_NAMES}


def state_path(root: Path, name: str, location: str | None) -> str:
    """``<root>/.runspec/state/<name>.json`` by default; ``location`` may be a directory, a
    ``.json`` file, or an fsspec URL (``s3://bucket/prefix``)."""
    if location is None:
        return str(root / DEFAULT_DIR / f"{name}.json")
    if "://" in location:
        return location if location.endswith(".json") else f"{location.rstrip('/')}/{name}.json"
    base = Path(location) if Path(location).is_absolute() else root / location
    return str(base if location.endswith(".json") else base / f"{name}.json")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_output(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(part, str) for part in value))


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _text_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


# Every field a member may have: how to check it, and what the message says was expected.
_MEMBER_FIELDS: dict[str, tuple[Any, str]] = {
    "key": (_text, "a string"),
    "stage": (_text, "a string"),
    "digest": (_text, "a string"),
    "status": (lambda v: isinstance(v, str) and v in STATUSES, "one of " + ", ".join(STATUSES)),
    "handle": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "request": (lambda v: isinstance(v, dict), "an object"),
    "submitted_at": (_text_or_null, "a string or null"),
    "finished_at": (_text_or_null, "a string or null"),
    "point": (lambda v: isinstance(v, dict), "an object"),
    "slot": (_text, "a string"),
    "run_dir": (_text, "a string"),
    "backend": (lambda v: isinstance(v, str) and v in BACKENDS, "one of " + ", ".join(BACKENDS)),
    "attempts": (lambda v: _is_int(v) and v >= 0, "a whole number ≥ 0"),
    "outputs": (lambda v: isinstance(v, dict) and all(map(_is_output, v.values())),
                'an object of artifact → ["path", "type"]'),
    "registry": (_text, "a string"),
    "registered": (lambda v: isinstance(v, bool), "true or false"),
    "error": (_text_or_null, "a string or null"),
}
_REQUIRED = ("key", "stage", "digest")
# Top-level fields other than format and members.
_STATE_FIELDS: dict[str, tuple[Any, str]] = {
    "runspec_version": (_text, "a string"),
    "manifest": (_text, "a string"),
    "lineage": (_text_or_null, "a string or null"),
    "serial": (lambda v: _is_int(v) and v >= 0, "a whole number ≥ 0"),
    "fingerprint": (_text_or_null, "a string or null"),
    "complete": (lambda v: isinstance(v, bool), "true or false"),
    "checksum": (lambda v: isinstance(v, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", v),
                 '"sha256:" and 64 hex digits'),
    "inputs": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "members": (lambda v: isinstance(v, dict), "an object of run key → run"),
}


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "…"


def _seal(data: bytes) -> bytes:
    """Put the sha256 of ``data`` (rendered with the checksum zeroed) in its place."""
    at = data.index(_SEAL) + len(_SEAL)
    return data[:at] + hashlib.sha256(data).hexdigest().encode() + data[at + len(_UNSET):]


def verify(data: bytes) -> bool | None:
    """Does the file's checksum match its content? None when it has none (an older runspec
    wrote it). One pass of sha256 over the bytes, no copy, no parse."""
    at = data.find(_SEAL, 0, HEAD_BYTES)
    if at < 0:
        return None
    at += len(_SEAL)
    view = memoryview(data)
    digest = hashlib.sha256(view[:at])
    digest.update(_UNSET)
    digest.update(view[at + len(_UNSET):])
    return digest.hexdigest().encode() == bytes(view[at:at + len(_UNSET)])


def render(state: State) -> bytes:
    """The file's bytes: the JSON document, the checksum second from the top, the summary
    fields one per line, and each run on a line of its own (the C encoder writes 10,000 runs
    in about a third of the time an indented dump takes, and a diff of two states shows
    which runs changed)."""
    document = state.to_json()
    members = document.pop("members")
    sealed = {"format": document.pop("format"), "checksum": "sha256:" + _UNSET.decode(),
              **document}
    head = json.dumps(sealed, indent=1)[:-2]  # without the closing "\n}"
    runs = ",\n".join(f"  {json.dumps(key)}: {json.dumps(member)}"
                       for key, member in members.items())
    body = f',\n "members": {{\n{runs}\n }}\n}}\n' if runs else ',\n "members": {}\n}\n'
    return _seal((head + body).encode("utf-8"))


def _keep_backup(path: Path) -> None:
    """``<state>.backup`` becomes the file as it is now: a second name for it (no copy, no
    space, nothing to sync: the state's own rename and directory sync that follow make it
    durable), or a copy where the file system has no hard links."""
    backup = Path(f"{path}.backup")
    linked = Path(f"{path}.backup.{uuid.uuid4().hex[:8]}")
    try:
        os.link(path, linked)
    except OSError:
        write_bytes_atomic(backup, path.read_bytes())
        return
    try:
        os.replace(linked, backup)
    except OSError:
        linked.unlink(missing_ok=True)
        raise


class StateStore:
    """Reads and writes one manifest's state at a path or fsspec URL."""

    def __init__(self, location: str, manifest: str):
        self.location = location
        self.manifest = manifest
        self.is_local = "://" not in location or location.startswith("file://")

    @property
    def local_path(self) -> Path:
        return Path(self.location.removeprefix("file://"))

    @property
    def corrupt_hint(self) -> str:
        return (f"runspec will not overwrite it; restore {self.location}.backup (written "
                "before each change) or move the file away to start over")

    def read(self) -> State:
        """The state, or an empty one (lineage None, serial 0) when nothing was applied yet."""
        try:
            data = self._read_bytes()
        except FileNotFoundError:
            return State(self.manifest)
        except OSError as error:
            raise StateError(f"cannot read state {self.location}: {os_reason(error)}",
                             "check that it is a file runspec can read; runspec will not overwrite it") from None
        return self._decode(data)

    def _decode(self, data: bytes) -> State:
        """Parse and check every field, then the checksum (a field's own message is the
        more useful one, so it comes first)."""
        if not data.strip():
            raise StateError(f"state {self.location} is corrupt: the file is empty "
                             f"({len(data)} bytes)", self.corrupt_hint)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise StateError(f"state {self.location} is corrupt: byte {error.start} is not "
                             "UTF-8 text", self.corrupt_hint) from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise StateError(
                f"state {self.location} is corrupt (line {error.lineno}, column {error.colno}: "
                f"{error.msg})", self.corrupt_hint) from None
        except RecursionError:
            raise StateError(f"state {self.location} is corrupt: nested too deeply",
                             self.corrupt_hint) from None
        state = self._parse(raw)
        if "checksum" in raw and verify(data) is not True:
            raise StateError(
                f"state {self.location} is corrupt: its checksum does not match its content "
                "(the file was damaged, or edited by hand)",
                self.corrupt_hint + '; to keep a deliberate hand edit, delete its "checksum" '
                "line")
        return state

    def _bad(self, where: str, expected: str, value: Any) -> StateError:
        return StateError(f"state {self.location} is corrupt at {where}: expected {expected}, "
                          f"got {_shown(value)}", self.corrupt_hint)

    def _parse(self, raw: Any) -> State:
        if not isinstance(raw, dict) or not _is_int(raw.get("format")):
            raise StateError(f"state {self.location} is not a runspec state file (no format)",
                             "runspec will not overwrite it; move it away to start over")
        if raw["format"] > STATE_FORMAT:
            version = raw.get("runspec_version")
            raise StateError(
                f"state {self.location} was written by a newer runspec "
                f"({version if isinstance(version, str) else '?'}, state format "
                f"{raw['format']}); this runspec reads format {STATE_FORMAT}",
                "upgrade runspec to use this state")
        if raw["format"] < 1:
            raise self._bad("format", f"{STATE_FORMAT}", raw["format"])
        for name, (accepts, expected) in _STATE_FIELDS.items():
            if name in raw and not accepts(raw[name]):
                raise self._bad(name, expected, raw[name])
        members = {key: self._member(key, value)
                   for key, value in raw.get("members", {}).items()}
        return State(raw.get("manifest", self.manifest), raw.get("lineage"),
                     raw.get("serial", 0), members, raw.get("fingerprint"), raw.get("inputs"))

    def _member(self, key: str, raw: Any) -> Member:
        where = f"members[{json.dumps(key, ensure_ascii=False)}]"
        if not isinstance(raw, dict):
            raise self._bad(where, "an object (one run)", raw)
        for name in raw:
            if name not in _MEMBER_FIELDS:
                raise StateError(f"state {self.location} is corrupt at {where}: unknown field "
                                 f"{json.dumps(name)} (a run's fields are "
                                 f"{', '.join(_MEMBER_FIELDS)})", self.corrupt_hint)
        for name in _REQUIRED:
            if name not in raw:
                raise self._bad(f"{where}.{name}", _MEMBER_FIELDS[name][1], "nothing (missing)")
        for name, value in raw.items():
            accepts, expected = _MEMBER_FIELDS[name]
            if not accepts(value):
                raise self._bad(f"{where}.{name}", expected, value)
        if raw["key"] != key:
            raise self._bad(f"{where}.key", f"{json.dumps(key)} (its key in members)",
                            raw["key"])
        from runspec.backends import backend_for
        from runspec.backends.base import HandleError

        try:
            backend_for(raw.get("backend", DEFAULT_EXECUTOR)).handle_type.of(raw.get("handle"))
        except HandleError as error:
            raise self._bad(f"{where}.handle.{error.field}", error.expected,
                            error.value) from None
        return Member(**{**raw, "status": RunStatus(raw.get("status", RunStatus.SUBMITTED))})

    def read_summary(self) -> tuple[str | None, bool]:
        """``(fingerprint, complete)``: what the unchanged-re-apply check needs. A file whose
        checksum matches is trusted from its head (one read, one hash, no parse of 10,000
        members); any other is fully parsed and checked, so a damaged one raises StateError
        here, exactly as every other command would."""
        try:
            data = self._read_bytes()
        except OSError:
            return None, False  # the full read that follows says why
        head = data[:HEAD_BYTES]
        if verify(data) and re.search(rb'^ "format": %d,$' % STATE_FORMAT, head, re.M):
            fingerprint = re.search(rb'^ "fingerprint": "([0-9a-f]+)",$', head, re.M)
            complete = re.search(rb'^ "complete": true,$', head, re.M)
            return (fingerprint.group(1).decode() if fingerprint else None), bool(complete)
        state = self._decode(data)
        return state.fingerprint, state.complete()

    def _read_bytes(self) -> bytes:
        if self.is_local:
            return self.local_path.read_bytes()
        import fsspec

        with fsspec.open(self.location, "rb") as handle:
            return handle.read()

    def write(self, state: State) -> State:
        """Write the next serial atomically (temp file + rename); keeps a ``.backup``. On
        failure (a full disk) the previous file is unchanged and so is ``state.serial``."""
        if state.lineage is None:
            state.lineage = str(uuid.uuid4())
        state.serial += 1
        data = render(state)
        if not self.is_local:
            import fsspec

            fs, path = fsspec.core.url_to_fs(self.location)
            temporary = f"{path}.tmp-{uuid.uuid4().hex}"
            with fs.open(temporary, "wb") as handle:
                handle.write(data)
            if fs.exists(path):
                fs.copy(path, f"{path}.backup")
            fs.mv(temporary, path)
            return state
        path = self.local_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                _keep_backup(path)
            write_bytes_atomic(path, data, sync_directory=True)
        except OSError as error:
            state.serial -= 1
            what = (f"free space on the file system that holds {path.parent}, then run the "
                    "command again" if disk_full(error) else f"fix the permissions of {path.parent}")
            raise StateError(f"cannot write state {path}: {os_reason(error)}",
                             f"{what}; the previous state is unchanged") from None
        return state
