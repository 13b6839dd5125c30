"""The content digest of an artifact's file or tree. Standard library only: it also runs
on a cluster with runspec's shipped source (an output of a run over SSH is hashed where it
was written), and the two sides must agree."""

from __future__ import annotations

import hashlib
from pathlib import Path

FULL_HASH_LIMIT = 64 * 2**20
"""Up to this total size content is hashed; above it, names, sizes and mtimes (checkpoints
of many GB would otherwise take minutes to fingerprint)."""


def digest_of(path: Path) -> str:
    """sha256 of a file or directory tree (content, or names/sizes/mtimes when huge)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    hasher = hashlib.sha256()
    for file in files:
        relative = file.name if file == path else str(file.relative_to(path))
        stat = file.stat()
        hasher.update(f"{relative}\0{stat.st_size}\0".encode())
        if total <= FULL_HASH_LIMIT:
            hasher.update(hashlib.sha256(file.read_bytes()).digest())
        else:
            hasher.update(str(stat.st_mtime_ns).encode())
    return hasher.hexdigest()
