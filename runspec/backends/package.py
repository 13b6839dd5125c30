"""The code a job on another machine runs: the project packed as NeMo-Run users know it.

``git`` packs HEAD (``include_uncommitted`` adds the working tree's changes and new files
that git does not ignore); ``pattern`` packs the files that globs match; ``none`` packs
nothing (a file system the cluster shares). The archive is deterministic (sorted entries,
no times, no owners), so its digest names it: an unchanged tree gives the same package,
which is then not uploaded again (``install`` on a login node).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shlex
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runspec.backends.base import BackendError
from runspec.backends.shell import Shell

PackageMode = Literal["git", "pattern", "none"]
MAX_PACKAGE_BYTES = 2 * 1024**3
"""A package larger than this is refused: a data directory was probably swept in."""


@dataclass(frozen=True)
class Package:
    """A packed tree: its gzipped tar, the files in it, and the digest that names it."""

    data: bytes
    files: tuple[str, ...]
    digest: str
    kind: str = "code"  # names its directory: code-<digest>, runspec-<digest>

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.digest[:16]}"

    def describe(self) -> str:
        """``code-0123abcd… (12 files, 3.4 KiB)``, for the plan."""
        size = len(self.data)
        amount = f"{size / 1024**2:.1f} MiB" if size >= 1024**2 else f"{size / 1024:.1f} KiB"
        return f"{self.name} ({len(self.files)} file{'s' * (len(self.files) != 1)}, {amount})"


def pack(root: Path, mode: PackageMode, patterns: tuple[str, ...] = (),
         include_uncommitted: bool = False, exclude: tuple[str, ...] = ()) -> Package | None:
    """The package of the project at ``root`` (None for ``none``). ``exclude``: directories
    (relative to ``root``) left out whatever git or the patterns say, such as the run
    directories and runspec's state: they change at every apply, the code does not."""
    if mode == "none":
        return None
    if mode == "git":
        contents = _git_files(root, include_uncommitted)
    elif mode == "pattern":
        if not patterns:
            raise BackendError('packager = "pattern" needs patterns to match',
                               'add package_patterns = ["src/**/*.py", …]')
        contents = _pattern_files(root, patterns)
    else:
        raise BackendError(f'unknown packager "{mode}"', "use git, pattern or none")
    prefixes = tuple(f"{e.strip('/')}/" for e in exclude if e.strip("/") not in ("", "."))
    return _archive({k: v for k, v in contents.items() if not k.startswith(prefixes)})


def pack_files(root: Path, patterns: tuple[str, ...], kind: str = "code") -> Package:
    """The files that ``patterns`` match under ``root``, packed as ``kind``."""
    return _archive(_pattern_files(root, patterns), kind)


def _git(root: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              timeout=120, check=False)
    except FileNotFoundError:
        raise BackendError("git is not installed here", 'install git, or use packager = '
                           '"pattern"') from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise BackendError(f"git {args[0]} failed in {root}: "
                           f"{message[-1] if message else done.returncode}",
                           'packager = "git" packs a git checkout: commit first, or use '
                           'packager = "pattern"')
    return done.stdout


def _git_files(root: Path, include_uncommitted: bool) -> dict[str, tuple[bytes, int]]:
    """path → (content, mode) of HEAD's tree, or of the working tree's files git tracks or
    would track (``include_uncommitted``). Paths are relative to ``root``."""
    prefix = _git(root, "rev-parse", "--show-prefix").decode().strip()
    if not include_uncommitted:
        changed = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".")
        if changed.strip():
            first = changed.decode(errors="replace").splitlines()[0][3:]
            raise BackendError(f"the working tree has uncommitted changes ({first}…), which "
                               "include_uncommitted = false leaves out of the package",
                               "commit them, or set include_uncommitted = true (the default)")
        archive = _git(root, "archive", "--format=tar", "HEAD", ".")
        files = {}
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar:
                if member.isfile():
                    data = tar.extractfile(member)
                    name = member.name.removeprefix(prefix)
                    files[name] = (data.read() if data else b"", member.mode & 0o777)
        return files
    listed = _git(root, "ls-files", "-co", "--exclude-standard", "-z", "--", ".")
    files = {}
    for name in filter(None, listed.decode().split("\0")):
        path = root / name
        if path.is_file() and not path.is_symlink():  # deleted files are simply not there
            files[name] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return files


def _pattern_files(root: Path, patterns: tuple[str, ...]) -> dict[str, tuple[bytes, int]]:
    """Files the globs match under ``root``; nothing outside it (``..``, an absolute
    pattern, a symlinked directory) is ever packed."""
    files = {}
    inside = root.resolve()
    for pattern in patterns:
        try:
            found = list(root.glob(pattern))
        except (NotImplementedError, ValueError) as error:  # absolute or empty pattern
            raise BackendError(f'package pattern "{pattern}": {error}',
                               "patterns are globs relative to the project root") from None
        matched = [p for p in found if p.is_file() and not p.is_symlink()
                   and p.resolve().is_relative_to(inside)]
        if not matched:
            raise BackendError(f'package pattern "{pattern}" matches no file under {root}',
                               "patterns are globs relative to the project root")
        for path in matched:
            files[path.relative_to(root).as_posix()] = (path.read_bytes(),
                                                        path.stat().st_mode & 0o777)
    return files


def _archive(files: dict[str, tuple[bytes, int]], kind: str = "code") -> Package:
    total = sum(len(content) for content, _ in files.values())
    if total > MAX_PACKAGE_BYTES:
        raise BackendError(f"the package would hold {total / 1024**3:.1f} GiB",
                           "leave data and checkpoints out of it (.gitignore, or narrower "
                           "patterns)")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content, mode = files[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o755 if mode & 0o111 else 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    digest = hashlib.sha256(raw.getvalue()).hexdigest()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as out:
        out.write(raw.getvalue())
    return Package(packed.getvalue(), tuple(sorted(files)), digest, kind)


def install(shell: Shell, package: Package, remote_dir: str) -> tuple[str, bool]:
    """``(path, uploaded)``: the package unpacked at ``remote_dir/<name>`` on the machine
    ``shell`` reaches, uploaded only if it is not there yet. It is unpacked under a
    temporary name and renamed, so a dropped connection never leaves a half tree in use."""
    final = f"{remote_dir}/{package.name}"
    if shell.run(["test", "-d", final]).returncode == 0:
        return final, False
    # Each installer has its own archive and directory, so two applies at once never
    # unpack into the same place; the first rename wins and the other drops its copy.
    archive = f"{remote_dir}/.{package.name}.{uuid.uuid4().hex[:12]}.tar.gz"
    q = shlex.quote
    unpack(shell, package.data, archive, "the code",
           f"partial=$(mktemp -d {q(final)}.part-XXXXXX) || exit 1; "
           f'if tar -xzf {q(archive)} -C "$partial"; then rm -f {q(archive)}; '
           f'chmod 755 "$partial"; mv -T "$partial" {q(final)} 2>/dev/null || '
           f'{{ test -d {q(final)} && rm -rf "$partial"; }}; '
           f'else rm -rf "$partial" {q(archive)}; exit 1; fi')
    return final, True


def unpack(shell: Shell, data: bytes, archive: str, what: str, script: str) -> None:
    """``data`` put at ``archive`` there (0600: it may hold secrets), then ``script`` run
    there to unpack it; a failure is a BackendError naming ``what`` it was."""
    shell.put(data, archive, mode=0o600)
    done = shell.run(["sh", "-c", script], timeout=600)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise BackendError(f"cannot unpack {what} on {shell.where}: {message}",
                           "is remote_job_dir writable, with space left?")
