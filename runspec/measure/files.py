"""Atomic files: run directories' JSON, the state file (a reader never sees half a file)."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str, sync_directory: bool = False) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), sync_directory)


def write_bytes_atomic(path: Path, data: bytes, sync_directory: bool = False) -> None:
    """temp file + fsync + rename: all of it or none of it. ``sync_directory`` also makes
    the rename itself durable (the state file needs that; run files do not)."""
    _replace(path, lambda handle: handle.write(data), binary=True)
    if sync_directory:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def write_streamed_atomic(path: Path, write: Callable[[TextIO], object],
                          mode: int | None = None) -> None:
    """``write_text_atomic`` for text too big to hold: ``write`` writes it (UTF-8) piece by
    piece to a temp file beside ``path``, renamed over ``path`` once all of it is there.
    On any failure ``path`` is as it was and the temp file is gone. ``mode``: the file's
    permissions (else 0600, as the temp file is made)."""
    _replace(path, write, binary=False, mode=mode)


def _replace(path: Path, write: Callable[[Any], object], binary: bool,
             mode: int | None = None) -> None:
    """``write`` fills a temp file beside ``path``, which is synced and renamed over it;
    on any failure the temp file is removed and ``path`` is as it was."""
    descriptor, temporary = _temporary(path)
    try:
        with (os.fdopen(descriptor, "wb") if binary else
              os.fdopen(descriptor, "w", encoding="utf-8", buffering=1 << 20)) as handle:
            if mode is not None:
                os.fchmod(descriptor, mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_EXCLUSIVE = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_CLOEXEC", 0))


def _temporary(path: Path) -> tuple[int, str]:
    """A new file of our own beside ``path`` (mode 0600), as ``tempfile.mkstemp`` makes it:
    the in-job wrapper writes through here at every run's start, and importing tempfile
    (with random and shutil) would cost it about 4 ms each time."""
    for _ in range(100):
        name = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}")
        try:
            return os.open(name, _EXCLUSIVE, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", str(path.parent))


def disk_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT)


def os_reason(error: OSError) -> str:
    """An OSError in words for a message; a full disk (or quota) says so plainly."""
    if error.errno == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    if error.errno == errno.EDQUOT:
        return "the disk is full (disk quota exceeded)"
    return error.strerror or str(error)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
