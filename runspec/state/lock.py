"""The state lock: who holds it (pid, host, user, operation, since when), and breaking it.

The lock is a file holding the holder's record, so it outlives a crash: a lock left by a
dead process is reported as such, with the ``runspec force-unlock ID`` that breaks it.
(filelock's SoftFileLock would silently break it instead, hiding that an apply died.) It
is made atomically: the record is written and fsynced to a temporary file first, then
hard-linked to the lock's name (a link fails if the name exists: the exclusive create),
so a crash or a full disk never leaves an empty lock behind. A held lock fails fast;
nothing waits silently.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import shlex
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from runspec.measure.files import disk_full, os_reason, write_bytes_atomic
from runspec.state.store import StateError

UNKNOWN = "unknown"  # the id force-unlock takes for a lock whose holder cannot be read
HANDOFF_ENV = "RUNSPEC_LOCK_HANDOFF"
"""Set by ``apply --detach`` for its background apply: the id of the lock it hands over."""


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
        info = LockInfo(**json.loads(lock_path(state_file).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return info if isinstance(info.id, str) and isinstance(info.pid, int) else None


def describe_file(state_file: Path) -> str:
    """What can be known of a lock file whose holder cannot be read: size, age, content."""
    path = lock_path(state_file)
    try:
        stat = path.stat()
        with path.open("rb") as handle:
            head = handle.read(80)
    except OSError as error:
        return f"lock file {path} ({os_reason(error)})"
    modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
    snippet = json.dumps(head.decode("utf-8", errors="replace"))
    return (f"lock file {path}: {stat.st_size} bytes, modified {modified}, content "
            + (snippet if head else "empty"))


def _write_new(path: Path, record: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _create(path: Path, info: LockInfo) -> None:
    """Write the holder's record to a temporary file, then link it to ``path``: the lock
    appears complete or not at all. FileExistsError if it is held."""
    record = json.dumps(asdict(info)).encode("utf-8")
    temporary = path.with_name(f".{path.name}.{info.id}.tmp")
    try:
        _write_new(temporary, record)
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            # No hard links on this file system: create the lock itself, removed again
            # if its record cannot be written (only a crash in between can leave it empty).
            _write_new(path, record)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def state_lock(state_file: Path, operation: str, manifest: str | None = None
               ) -> Iterator[LockInfo]:
    """Hold the lock for ``operation``; raise StateError at once if someone else holds it
    (``manifest``: the path to name in the force-unlock hint) or it cannot be written."""
    path = lock_path(state_file)
    info = LockInfo(uuid.uuid4().hex[:12], os.getpid(), socket.gethostname(), getpass.getuser(),
                    operation, datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handoff = os.environ.pop(HANDOFF_ENV, None)  # once: the runs must not inherit it
        try:
            _create(path, info)
        except FileExistsError:
            held = read_info(state_file)
            if _handed_to_us(held, handoff):
                # apply --detach's parent holds it for us: take it over without a gap in
                # which another apply could slip in between the confirmed plan and its runs.
                write_bytes_atomic(path, json.dumps(asdict(info)).encode("utf-8"))
            # A holder that died on this host (kill -9, a crash) released nothing: take its
            # lock over, as Terraform's local backend does. One try: a live holder wins.
            elif held is None or not held.holder_is_dead() or not _break_dead(path, held.id):
                raise
            else:
                _create(path, info)
    except FileExistsError:
        raise held_error(state_file, manifest) from None
    except OSError as error:
        what = (f"free space on the file system that holds {path.parent}, then run the command "
                "again" if disk_full(error) else f"fix the permissions of {path.parent}")
        raise StateError(f"cannot take the state lock {path}: {os_reason(error)}",
                         f"{what}; nothing was changed") from None
    try:
        yield info
    finally:
        held = read_info(state_file)
        if held is None or held.id == info.id:
            path.unlink(missing_ok=True)


def _handed_to_us(held: LockInfo | None, handoff: str | None) -> bool:
    return (handoff is not None and held is not None and held.id == handoff
            and held.pid == os.getppid() and held.host == socket.gethostname())


def _break_dead(path: Path, dead_id: str) -> bool:
    """Remove the lock at ``path`` if it is still the dead holder's (``dead_id``). Moved
    aside first, atomically, then checked: a live lock taken in between is put back."""
    aside = path.with_name(f".{path.name}.dead-{uuid.uuid4().hex[:12]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # someone else broke it first
    except OSError:
        return False
    try:
        taken = json.loads(aside.read_text(encoding="utf-8")).get("id")
    except (OSError, ValueError, AttributeError):
        taken = None
    if taken == dead_id:
        aside.unlink(missing_ok=True)
        return True
    with suppress(OSError):  # not the dead one's: give it back
        os.link(aside, path)
    aside.unlink(missing_ok=True)
    return False


def held_error(state_file: Path, manifest: str | None = None) -> StateError:
    info = read_info(state_file)
    where = f" --manifest {shlex.quote(manifest)}" if manifest and manifest != "run.toml" else ""
    if info is None:
        return StateError(f"the state of {state_file.stem} is locked, but its holder cannot be "
                          f"read ({describe_file(state_file)})",
                          f"if no runspec is running, `runspec force-unlock {UNKNOWN}{where}` "
                          "breaks it")
    if info.holder_is_dead():
        return StateError(f"the state is locked by a process that is no longer running: "
                          f"{info.describe()}", "the next apply, cancel or destroy here takes "
                          f"it over (or `runspec force-unlock {info.id}{where}` breaks it)")
    return StateError(f"the state is locked: {info.describe()}",
                      "wait for it to finish; if it is stuck, `runspec force-unlock "
                      f"{info.id}{where}` breaks the lock")


def lock_note(state_file: Path, manifest: str | None = None) -> str | None:
    """What ``plan`` says when the state is locked: an apply is running, or died holding it
    (then the next apply would refuse, so say so now)."""
    if not lock_path(state_file).exists():
        return None
    return f"note: {held_error(state_file, manifest)}"


def force_unlock(state_file: Path, lock_id: str) -> LockInfo | None:
    """Break the lock if ``lock_id`` names it (so a typo cannot break someone else's lock);
    ``unknown`` breaks a lock whose holder cannot be read. Returns the holder it broke, None
    for an unreadable one."""
    path = lock_path(state_file)
    if not path.exists():
        raise StateError(f"the state of {state_file.stem} is not locked")
    info = read_info(state_file)
    if (info.id if info else UNKNOWN) != lock_id:
        held = (f"held by {info.describe()}" if info else
                f"its holder cannot be read: {describe_file(state_file)}")
        raise StateError(f'lock id "{lock_id}" does not match the held lock ({held})',
                         "copy the id from the lock error message" if info else
                         f"if no runspec is running, `runspec force-unlock {UNKNOWN}` breaks it")
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise StateError(f"cannot remove the lock {path}: {os_reason(error)}",
                         "remove it by hand if no runspec is running") from None
    return info
