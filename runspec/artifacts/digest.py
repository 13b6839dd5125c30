"""The content digest of an artifact's file or tree, and the per-file record that later
says which file changed. Standard library only: it also runs on a cluster with runspec's
shipped source (an output of a run over SSH is hashed where it was written), and the two
sides must agree.

Two schemes, named in the digest (``sha256:…``, ``sampled:…``):

* ``sha256``: every file's content is hashed. Used for trees up to ``FULL_HASH_LIMIT`` in
  total, and always for copies into the registry (content-addressed: the key must be the
  content).
* ``sampled``: above that, each file's size, modification time and three 64 KiB windows
  (head, middle, tail) are hashed: at most 192 KiB read per file. It catches a file that grew,
  shrank, was touched or rewritten by any ordinary tool; it misses only a same-size edit
  outside the windows that also restores the modification time.

A digest without a scheme prefix was written by runspec ≤ 0.2 (``legacy``): content up to
64 MB in total, names, sizes and modification times above.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat as stat_module
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

FULL_HASH_LIMIT = 2**30
"""Up to this total size (1 GiB) a tree's content is hashed in full: about 3 s at the
350 MB/s of one core's sha256; above it, hashing 100 GB of checkpoints would take minutes."""
SAMPLE_BYTES = 64 * 2**10
LEGACY_LIMIT = 64 * 2**20
_CHUNK = 2**20


class Scheme(StrEnum):
    CONTENT = "sha256"
    SAMPLED = "sampled"
    LEGACY = "legacy"


@dataclass(frozen=True)
class FileRecord:
    """One file of a tree as registered: its hash under the tree's scheme, and the stat
    fields that let a later check skip re-hashing a file nobody touched."""

    path: str          # relative, with "/"; a single-file artifact's own name
    size: int
    hash: str
    mtime_ns: int
    ctime_ns: int

    def to_json(self) -> list[Any]:
        return [self.size, self.hash, self.mtime_ns, self.ctime_ns]


@dataclass(frozen=True)
class Tree:
    """What was registered: a file or a directory's files, under one scheme."""

    scheme: Scheme
    is_dir: bool
    files: tuple[FileRecord, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def digest(self) -> str:
        hasher = hashlib.sha256(b"dir\n" if self.is_dir else b"file\n")
        for record in self.files:
            hasher.update(f"{record.path}\0{record.size}\0{record.hash}\n".encode())
        return f"{self.scheme}:{hasher.hexdigest()}"

    def to_json(self) -> dict[str, Any]:
        return {"scheme": str(self.scheme), "dir": self.is_dir, "digest": self.digest,
                "files": {f.path: f.to_json() for f in self.files}}

    @classmethod
    def from_json(cls, data: Any) -> Tree | None:
        try:
            files = tuple(FileRecord(path, int(size), str(hash_), int(mtime), int(ctime))
                          for path, (size, hash_, mtime, ctime) in sorted(data["files"].items()))
            return cls(Scheme(data["scheme"]), bool(data["dir"]), files)
        except (KeyError, TypeError, ValueError):
            return None


class Unreadable(OSError):
    """A file or directory of the tree being hashed or copied that cannot be read (its
    ``filename`` says which). An OSError, so callers that want a digest or nothing keep
    catching OSError; the registry tells it apart from a registry it cannot write."""


def _unreadable(error: OSError, path: Path | str) -> Unreadable:
    if isinstance(error, Unreadable):
        return error
    return Unreadable(error.errno, error.strerror or str(error), str(error.filename or path))


_KINDS = ((stat_module.S_ISFIFO, "a FIFO"), (stat_module.S_ISSOCK, "a socket"),
          (stat_module.S_ISCHR, "a character device"), (stat_module.S_ISBLK, "a block device"))


def _not_regular(path: Path | str, mode: int) -> Unreadable:
    kind = next((name for test, name in _KINDS if test(mode)), "neither")
    return Unreadable(errno.EINVAL, f"not a regular file or directory ({kind})", str(path))


def _open(path: Path) -> Any:
    """``path`` opened for reading, if it is a regular file: without blocking on a FIFO
    (nor on anything else put where a file was), and as ``Unreadable`` if it cannot be."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                             | getattr(os, "O_BINARY", 0))
    except OSError as error:
        raise _unreadable(error, path) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat_module.S_ISREG(mode):
            raise _not_regular(path, mode)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _read(handle: Any, path: Path, size: int) -> bytes:
    try:
        return handle.read(size)
    except OSError as error:
        raise _unreadable(error, path) from None


def scheme_of(digest: str) -> Scheme:
    head, sep, _ = digest.partition(":")
    return Scheme(head) if sep and head in (Scheme.CONTENT, Scheme.SAMPLED) else Scheme.LEGACY


def _files(path: Path) -> list[tuple[str, Path, os.stat_result]]:
    """``(relative name, path, stat)`` of every regular file, sorted; symlinks followed
    for files (their content is what a reader gets), never for directories (no loops).
    A directory that cannot be listed, or a ``path`` that is neither a file nor a directory
    (a FIFO: its "content" is whatever a writer sends), is ``Unreadable``."""
    if not path.is_dir():
        try:
            info = path.stat()
        except OSError as error:
            raise _unreadable(error, path) from None
        if not stat_module.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        return [(path.name, path, info)]
    found: list[tuple[str, Path, os.stat_result]] = []
    pending = [("", str(path))]
    while pending:
        prefix, directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                listed = list(entries)
        except OSError as error:
            raise _unreadable(error, directory) from None
        for entry in listed:
            name = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((name + "/", entry.path))
                    continue
            except OSError as error:
                raise _unreadable(error, entry.path) from None
            try:
                info = entry.stat()
            except OSError:  # a dangling link: nothing a reader could open
                continue
            if stat_module.S_ISREG(info.st_mode):  # a FIFO, a socket: no file's content
                found.append((name, Path(entry.path), info))
    return sorted(found, key=lambda item: item[0])


def file_hash(path: Path, scheme: Scheme, info: os.stat_result) -> str:
    """A file's hash under ``scheme``: its content, or its size, mtime and three windows."""
    hasher = hashlib.sha256()
    with _open(path) as handle:
        if scheme == Scheme.SAMPLED:
            hasher.update(f"{info.st_size}\0{info.st_mtime_ns}\0".encode())
            for start in sorted({0, max(0, info.st_size // 2 - SAMPLE_BYTES // 2),
                                 max(0, info.st_size - SAMPLE_BYTES)}):
                try:
                    handle.seek(start)
                except OSError as error:
                    raise _unreadable(error, path) from None
                hasher.update(_read(handle, path, SAMPLE_BYTES))
        else:
            while chunk := _read(handle, path, _CHUNK):
                hasher.update(chunk)
    return hasher.hexdigest()


def scan(path: Path, scheme: Scheme | None = None) -> Tree:
    """Hash ``path`` (a file or a directory) under ``scheme``, by default the full content
    up to ``FULL_HASH_LIMIT`` in total and sampled above."""
    files = _files(path)
    if scheme is None:
        total = sum(info.st_size for _, _, info in files)
        scheme = Scheme.CONTENT if total <= FULL_HASH_LIMIT else Scheme.SAMPLED
    records = tuple(FileRecord(name, info.st_size, file_hash(file, scheme, info),
                               info.st_mtime_ns, info.st_ctime_ns)
                    for name, file, info in files)
    return Tree(scheme, path.is_dir(), records)


def digest_of(path: Path) -> str:
    """The digest of a file or directory tree (see the module's schemes)."""
    return scan(path).digest


def legacy_digest(path: Path) -> str:
    """The digest runspec ≤ 0.2 wrote (no scheme prefix), to check versions it registered."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    hasher = hashlib.sha256()
    for file in files:
        relative = file.name if file == path else str(file.relative_to(path))
        info = file.stat()
        hasher.update(f"{relative}\0{info.st_size}\0".encode())
        if total <= LEGACY_LIMIT:
            hasher.update(hashlib.sha256(file.read_bytes()).digest())
        else:
            hasher.update(str(info.st_mtime_ns).encode())
    return hasher.hexdigest()


def copy_hashed(source: Path, destination: Path) -> tuple[Tree, Tree]:
    """Copy ``source`` (a file or directory) to ``destination`` reading each byte once and
    hashing it (sha256): ``(tree of the copy, tree of the source)``, equal but for their
    stat fields. The copies are made read-only: a version's content is not for editing.
    A source file written to during the copy keeps the stat read before: a later check
    re-hashes it and reports the difference. A source that cannot be read raises
    ``Unreadable``, a destination that cannot be written any other OSError; either way
    the caller removes the partial copy (``remove_copy``)."""
    copies, originals = [], []
    files = _files(source)
    if source.is_dir():
        destination.mkdir(parents=True)
    for name, file, info in files:
        target = destination / name if source.is_dir() else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        with _open(file) as reader, target.open("xb") as writer:
            while chunk := _read(reader, file, _CHUNK):
                hasher.update(chunk)
                writer.write(chunk)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
        target.chmod(0o444)
        copied, written = target.stat(), hasher.hexdigest()
        copies.append(FileRecord(name, copied.st_size, written, copied.st_mtime_ns,
                                 copied.st_ctime_ns))
        originals.append(FileRecord(name, copied.st_size, written, info.st_mtime_ns,
                                    info.st_ctime_ns))
    return (Tree(Scheme.CONTENT, source.is_dir(), tuple(copies)),
            Tree(Scheme.CONTENT, source.is_dir(), tuple(originals)))


def changes(path: Path, tree: Tree, limit: int = 3) -> list[str]:
    """How ``path`` differs from the registered ``tree``: files removed, added or changed
    (at most ``limit`` named, then how many more). A file whose size, mtime and ctime are
    those recorded is taken as unchanged without reading it; any other is re-hashed."""
    if not path.exists():
        return [f"{path} no longer exists"]
    if path.is_dir() != tree.is_dir:
        return [f"{path} is now a {'directory' if path.is_dir() else 'file'}"]
    current = {name: (file, info) for name, file, info in _files(path)}
    recorded = {f.path: f for f in tree.files}
    found = [f"{name} was removed" for name in sorted(recorded.keys() - current.keys())]
    found += [f"{name} was added" for name in sorted(current.keys() - recorded.keys())]
    for name in sorted(recorded.keys() & current.keys()):
        record, (file, info) = recorded[name], current[name]
        if info.st_size != record.size:
            found.append(f"{name} changed ({record.size} → {info.st_size} bytes)")
        elif (info.st_mtime_ns, info.st_ctime_ns) == (record.mtime_ns, record.ctime_ns):
            continue
        elif file_hash(file, tree.scheme, info) != record.hash:
            found.append(f"{name} changed")
    if len(found) > limit:
        found = found[:limit] + [f"{len(found) - limit} more"]
    return found


def remove_copy(path: Path) -> None:
    """Delete a copy made by ``copy_hashed`` (its files are read-only)."""
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:  # nothing there, or nowhere to be: nothing to remove
        return
