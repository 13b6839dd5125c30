"""A cluster reached from this machine through its login node (``tunnel = "ssh"``).

Layout under ``remote_job_dir`` on the cluster (a file system its nodes share):

* ``code-<digest>/``: the project's code, packed here (``packager``) and unpacked there
  once per content; the job starts in it, and each run's directory lives inside it at the
  same relative path as here, so every relative path of the rendered request holds there;
* ``runspec-<digest>/``: runspec's own source (pure Python), so the in-job wrapper
  (``python -m runspec.measure``) is the version that rendered the request, and the
  cluster needs only a ``python`` (3.11 or later) on PATH, not an installed runspec.

With ``packager = "none"``, ``remote_job_dir`` is the project itself as the cluster sees
it (a shared file system): nothing is packed, run directories go inside it.

What the plan shows is computed here without touching the cluster: the package's digest
names its directory. Submitting uploads what is missing (``install``), then the run files
in one archive; refreshing mirrors the jobs' files back (runspec/backends/mirror.py).
"""

from __future__ import annotations

import atexit
import io
import json
import shlex
import tarfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from runspec.backends import mirror
from runspec.backends.base import BackendError
from runspec.backends.package import Package, PackageMode, install, pack, pack_files, unpack
from runspec.backends.shell import SSHShell
from runspec.measure.attempts import rotate_shell

MIN_PYTHON = (3, 11)
LOGIN_KEYS = ("tunnel", "host", "user", "port", "identity", "known_hosts", "remote_job_dir",
              "packager", "package_patterns", "include_uncommitted")
"""The settings that say how to reach a login node and what to send it."""


@dataclass(frozen=True)
class LoginNode:
    """Where a profile with ``tunnel = "ssh"`` submits, and how its code gets there."""

    host: str
    remote_job_dir: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    known_hosts: str | None = None
    packager: PackageMode = "git"
    patterns: tuple[str, ...] = ()
    include_uncommitted: bool = True

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> LoginNode | None:
        """The login node a stage's settings name, or None (sbatch runs here)."""
        if settings.get("tunnel") != "ssh":
            return None
        host, remote = settings.get("host"), settings.get("remote_job_dir")
        if not host or not remote:
            raise BackendError('tunnel = "ssh" needs host and remote_job_dir')
        if not str(remote).startswith("/"):
            raise BackendError(f"remote_job_dir = {remote!r} is not an absolute path",
                               "give the directory as the cluster's nodes see it, from /")
        uncommitted = settings.get("include_uncommitted")
        return cls(host=str(host), remote_job_dir=str(remote).rstrip("/") or "/",
                   user=settings.get("user"), port=settings.get("port"),
                   identity=settings.get("identity"), known_hosts=settings.get("known_hosts"),
                   packager=settings.get("packager") or "git",
                   patterns=tuple(settings.get("package_patterns") or ()),
                   include_uncommitted=True if uncommitted is None else bool(uncommitted))

    @property
    def address(self) -> str:
        """``user@host:port``, for people and for the plan."""
        target = f"{self.user}@{self.host}" if self.user else self.host
        return target + (f":{self.port}" if self.port else "")

    # -- what the plan shows (no connection) -------------------------------------------------
    def package(self, root: Path, exclude: tuple[str, ...] = ()) -> Package | None:
        """The code package of the project at ``root`` (None with packager = "none"),
        without ``exclude`` (the run directories, runspec's state); remembered by digest,
        so that submitting sends exactly what was planned."""
        package = pack(root, self.packager, self.patterns, self.include_uncommitted, exclude)
        if package is not None:
            _PLANNED[package.digest] = package
        return package

    def code_dir(self, package: Package | None) -> str:
        """Where the job starts on the cluster: the package's directory (or the project)."""
        return f"{self.remote_job_dir}/{package.name}" if package else self.remote_job_dir

    def lib_dir(self) -> str:
        """Where runspec's own source is on the cluster (put first on the job's PYTHONPATH)."""
        return f"{self.remote_job_dir}/{runspec_source().name}"

    # -- the connection ----------------------------------------------------------------------
    def shell(self) -> SSHShell:
        """The open connection to this login node: one per process (so one per apply),
        shared by every command, closed at exit; checked once (``preflight``)."""
        key = (self.host, self.user, self.port, self.identity, self.known_hosts)
        shell = _OPEN.get(key)
        if shell is None:
            shell = SSHShell(self.host, self.user, self.port, self.identity, self.known_hosts)
            shell.open()
            _OPEN[key] = shell
            if len(_OPEN) == 1:
                atexit.register(close_all)
        return shell

    def preflight(self) -> None:
        """Before the first upload: sbatch and a recent enough python on the login node, and
        a writable remote_job_dir; each a clear error instead of a failed job later."""
        key = (self.address, self.remote_job_dir)
        if key in _CHECKED:
            return
        q = shlex.quote
        check = (f"command -v sbatch >/dev/null 2>&1 || exit 3; "
                 f"command -v python >/dev/null 2>&1 || exit 4; "
                 f"python -c 'import sys; sys.exit(sys.version_info < {MIN_PYTHON!r})' || exit 5; "
                 f"mkdir -p {q(self.remote_job_dir)} 2>/dev/null && test -w "
                 f"{q(self.remote_job_dir)} || exit 6")
        done = self.shell().run(["sh", "-c", check])
        where = f"the login node {self.address}"
        problems = {
            3: (f"sbatch is not on the PATH of {where} (for a non-interactive ssh command)",
                f"check `ssh {self.address.split(':')[0]} command -v sbatch`; a cluster whose "
                "Slurm needs a module loaded must put it on PATH in ~/.bashrc"),
            4: (f"{where} has no `python` on PATH: the jobs run runspec's wrapper with it",
                "put a Python 3.11 or later on PATH there (a module, conda or venv activated "
                "in ~/.bashrc)"),
            5: (f"the `python` of {where} is older than "
                f"{'.'.join(map(str, MIN_PYTHON))}: runspec's in-job wrapper needs 3.11",
                "put a newer Python first on PATH there"),
            6: (f"remote_job_dir {self.remote_job_dir} is not writable on {where}",
                "choose a directory the cluster user owns, on a file system the nodes share"),
        }
        if done.returncode in problems:
            raise BackendError(*problems[done.returncode])
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip()
            raise BackendError(f"checking {where} failed: {message or done.returncode}")
        _CHECKED.add(key)

    # -- submitting --------------------------------------------------------------------------
    def install_code(self, root: Path, digest: str | None, exclude: tuple[str, ...] = ()
                     ) -> list[str]:
        """The planned package and runspec's source on the cluster; what was uploaded."""
        self.preflight()
        shell = self.shell()
        uploaded = []
        if self.packager != "none":
            package = _PLANNED.get(digest or "") or self.package(root, exclude)
            if package is None or package.digest != digest:
                raise BackendError("the code changed since it was planned",
                                   "run apply again: it packs and plans the tree as it is now")
            _, sent = install(shell, package, self.remote_job_dir)
            if sent:
                uploaded.append(package.name)
        _, sent = install(shell, runspec_source(), self.remote_job_dir)
        if sent:
            uploaded.append(runspec_source().name)
        return uploaded

    def upload_runs(self, code_dir: str, files: dict[str, tuple[bytes, int]]) -> None:
        """The run and launch files (``relative path → (content, mode)``), in one archive,
        into ``code_dir``. A run directory's previous attempt is first kept aside, as
        here (``measure.attempts``), so a refresh never reads an old attempt's end."""
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for name in sorted(files):
                content, mode = files[name]
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(content), mode
                tar.addfile(info, io.BytesIO(content))
        staged = f"{code_dir}/.runs-{uuid.uuid4().hex[:12]}.tar.gz"
        q = shlex.quote
        unpack(self.shell(), archive.getvalue(), staged, "the run files",
               f"cd {q(code_dir)} || exit 1; "
               f"tar -tzf {q(staged)} | sed -n 's#/launch\\.sh$##p' | "
               f"while IFS= read -r d; do {rotate_shell(chr(34) + '$d' + chr(34))}; "
               f"done; tar -xzf {q(staged)} --no-same-owner; status=$?; "
               f"rm -f {q(staged)}; exit $status")

    def remove(self, paths: list[str]) -> None:
        """Files on the cluster, gone (a cancelled run's secrets)."""
        if paths:
            self.shell().run(["rm", "-f", "--", *paths])

    # -- refreshing --------------------------------------------------------------------------
    def fetch(self, pairs: list[tuple[str, Path]]) -> int:
        """Mirror the remote run directories of ``(remote_dir, local_dir)`` pairs; returns
        the bytes that came back."""
        if not pairs:
            return 0
        done = self.shell().run(mirror.agent_argv(), stdin=mirror.request(pairs), timeout=300)
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise BackendError(f"cannot read the run directories on {self.address}: "
                               f"{message[-1] if message else done.returncode}",
                               "is `python` on the login node's PATH?")
        return mirror.store(pairs, mirror.parse(done.stdout))


    def outputs_there(self, paths: list[str]) -> list[dict[str, Any]]:
        """Each path as the cluster has it, read there by runspec's shipped source (outputs
        stay where they were written): ``{"digest": …}`` (None where nothing is there), and
        for one that is there what ``ledger.sidecar`` finds beside it, ``"metadata": {…}``
        or why it cannot be used, ``"metadata_problem": "…"`` (see ``ledger.remote_sidecar``)."""
        if not paths:
            return []
        program = "\n".join((
            "import json, os, sys",
            "sys.path.insert(0, sys.argv[1])",
            "from pathlib import Path",
            "from runspec.artifacts.digest import digest_of",
            "from runspec.artifacts.ledger import sidecar",
            "def there(path):",
            "    if not os.path.exists(path):",
            "        return {'digest': None}",
            "    fields, problem = sidecar(path)",
            "    found = {'digest': digest_of(Path(path))}",
            "    found.update({'metadata_problem': problem} if problem else {'metadata': fields})",
            "    return found",
            "print(json.dumps([there(p) for p in json.load(sys.stdin)]))"))
        done = self.shell().run(["python", "-c", program, self.lib_dir()],
                                stdin=json.dumps(paths).encode(), timeout=600)
        try:
            found = json.loads(done.stdout) if done.returncode == 0 else None
        except ValueError:
            found = None
        if not isinstance(found, list) or len(found) != len(paths) or \
                not all(isinstance(f, dict) and "digest" in f for f in found):
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise BackendError(f"cannot hash the runs' outputs on {self.address}: "
                               f"{message[-1] if message else done.returncode}")
        return found


_OPEN: dict[tuple, SSHShell] = {}
_CHECKED: set[tuple] = set()
_PLANNED: dict[str, Package] = {}
"""Packages planned in this process, by digest: submitted as planned, not packed again."""


def close_all() -> None:
    """Close every open login node connection (at exit, or when a test wants fresh ones)."""
    for shell in list(_OPEN.values()):
        shell.close()
    _OPEN.clear()
    _CHECKED.clear()


@cache
def runspec_source() -> Package:
    """runspec's own modules and templates, packed: what the in-job wrapper needs."""
    import runspec

    package_dir = Path(runspec.__file__).resolve().parent
    return pack_files(package_dir.parent, ("runspec/**/*.py", "runspec/**/*.j2"), "runspec")
