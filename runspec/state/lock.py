"""The state lock: who holds it (pid, host, user, operation, since when), and breaking it.

The lock is a file created exclusively (``O_CREAT | O_EXCL``) holding the holder's record,
so it outlives a crash: a lock left by a dead process is reported as such, with the
``runspec force-unlock ID`` that breaks it. (filelock's SoftFileLock would silently break
it instead, hiding that an apply died.) A held lock fails fast; nothing waits silently.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from runspec.state.store import StateError


@dataclass(frozen=True)
class LockInfo:
    id: str
    pid: int
    host: str
    user: str
    operation: str
    created: str

    def describe(self) -> str:
        return (f"{self.operation} by {self.user}@{self.host} (pid {self.pid}) since "
                f"{self.created}, lock id {self.id}")

    def holder_is_dead(self) -> bool:
        """True only when we can tell: the holder ran on this host and its pid is gone."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return _is_zombie(self.pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return False


def lock_path(state_file: Path) -> Path:
    return state_file.with_suffix(".lock")


def read_info(state_file: Path) -> LockInfo | None:
    try:
        return LockInfo(**json.loads(lock_path(state_file).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


@contextmanager
def state_lock(state_file: Path, operation: str, manifest: str | None = None
               ) -> Iterator[LockInfo]:
    """Hold the lock for ``operation``; raise StateError at once if someone else holds it
    (``manifest``: the path to name in the force-unlock hint)."""
    path = lock_path(state_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = LockInfo(uuid.uuid4().hex[:12], os.getpid(), socket.gethostname(), getpass.getuser(),
                    operation, datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise held_error(state_file, manifest) from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(info)))
    try:
        yield info
    finally:
        held = read_info(state_file)
        if held is None or held.id == info.id:
            path.unlink(missing_ok=True)


def held_error(state_file: Path, manifest: str | None = None) -> StateError:
    info = read_info(state_file)
    where = f" --manifest {shlex.quote(manifest)}" if manifest and manifest != "run.toml" else ""
    if info is None:
        return StateError(f"the state of {state_file.stem} is locked (holder unknown)",
                          f"if no runspec is running, remove {lock_path(state_file)}")
    if info.holder_is_dead():
        return StateError(f"the state is locked by a process that is no longer running: "
                          f"{info.describe()}", f"run `runspec force-unlock {info.id}{where}` to break it")
    return StateError(f"the state is locked: {info.describe()}",
                      "wait for it to finish; if it is stuck, `runspec force-unlock "
                      f"{info.id}{where}` breaks the lock")


def lock_note(state_file: Path, manifest: str | None = None) -> str | None:
    """What ``plan`` says when the state is locked: an apply is running, or died holding it
    (then the next apply would refuse, so say so now)."""
    if not lock_path(state_file).exists():
        return None
    return f"note: {held_error(state_file, manifest)}"


def force_unlock(state_file: Path, lock_id: str) -> LockInfo:
    """Break the lock if ``lock_id`` names it (so a typo cannot break someone else's lock)."""
    path = lock_path(state_file)
    if not path.exists():
        raise StateError(f"the state of {state_file.stem} is not locked")
    info = read_info(state_file)
    if info is None or info.id != lock_id:
        held = info.id if info else "unknown"
        raise StateError(f'lock id "{lock_id}" does not match the held lock ({held})',
                         "copy the id from the lock error message")
    path.unlink(missing_ok=True)
    return info
