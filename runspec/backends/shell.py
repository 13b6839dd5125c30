"""Where a backend's commands run: this machine, or a login node over SSH.

A scheduler's clients (sbatch, squeue, scontrol, scancel) are run through a ``Shell``. The
SSH one is OpenSSH with one multiplexed connection (ControlMaster) per apply: a command over
an open master costs ~17 ms on the reference machine against ~310 ms for a fresh connection
(docs/benchmarks.md), it needs no new dependency, and it honours what users already have in
``~/.ssh/config`` (ProxyJump, agents, known hosts). Host keys are checked, never accepted
blindly (``StrictHostKeyChecking=yes``); every call is bounded by a timeout; no password
prompt can hang an apply (``BatchMode``). Secrets never travel in a command line: what must
reach the cluster goes through ``put``, on the connection's standard input.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runspec.backends.base import BackendError

CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 60
CONTROL_PERSIST_S = 600  # an idle master outlives a crashed apply by this long, no more
MISSING_COMMAND = 127  # what a POSIX shell answers for a command it cannot find


class Shell(Protocol):
    """Runs a scheduler client and moves files to where the jobs run."""

    @property
    def where(self) -> str:
        """For messages: "this machine", "login node user@host"."""

    def run(self, argv: list[str], *, cwd: str | None = None, stdin: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT_S
            ) -> subprocess.CompletedProcess[bytes]:
        """``argv`` run there (never through a local shell); its exit status is the caller's
        to judge. A command that is not there is a ``BackendError``."""

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        """``data`` written to ``path`` there atomically: a temporary name, then a rename, so
        a dropped connection never leaves a half file under the final name."""


@dataclass
class LocalShell:
    """The commands run here, as subprocesses."""

    where: str = "this machine"

    def run(self, argv: list[str], *, cwd: str | None = None, stdin: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT_S
            ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True,
                                  timeout=timeout, check=False)
        except FileNotFoundError:
            raise BackendError(f"{argv[0]} not found on PATH on {self.where}") from None
        except subprocess.TimeoutExpired:
            raise BackendError(f"{argv[0]} did not answer within {timeout:g} s",
                               ambiguous=True) from None

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


@dataclass
class SSHShell:
    """The commands run on a login node, over one OpenSSH connection kept open (``open``)
    until ``close``. ``known_hosts``: a file to check the host key against instead of the
    user's own (tests, CI); ``options``: further ``-o`` settings."""

    host: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    known_hosts: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = CONNECT_TIMEOUT_S
    _control_dir: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("host", "user"):
            value = getattr(self, name)
            if value is not None and (not value or value.startswith("-") or
                                      any(c.isspace() or ord(c) < 32 for c in value)):
                raise BackendError(f"{name} = {value!r} is not a {name} name ssh can be given",
                                   f"a {name} name has no spaces and does not start with -")

    @property
    def where(self) -> str:
        return f"login node {self.target}" + (f":{self.port}" if self.port else "")

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh_argv(self) -> list[str]:
        """``ssh`` with the settings every call shares (the master's socket once open)."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={max(1, round(self.connect_timeout))}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity:
            argv += ["-i", os.path.expanduser(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        for key, value in sorted(self.options.items()):
            argv += ["-o", f"{key}={value}"]
        if self._control_dir:
            argv += ["-o", f"ControlPath={self._control_dir}/master", "-o", "ControlMaster=no"]
        return argv

    # -- the connection ------------------------------------------------------------------
    def open(self) -> None:
        """Start the master connection (it authenticates once; later calls reuse it)."""
        if self._control_dir:
            return
        # A short private directory: the socket path must stay under ~100 bytes.
        control = tempfile.mkdtemp(prefix="rs-ssh-", dir="/tmp")
        # ControlPersist: a master whose apply died goes away on its own once idle.
        argv = self.ssh_argv() + ["-o", f"ControlPath={control}/master", "-o", "ControlMaster=yes",
                                  "-o", f"ControlPersist={CONTROL_PERSIST_S}", "-N", "-f", "--",
                                  self.target]
        try:
            done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                                  timeout=self.connect_timeout + 20, check=False)
        except subprocess.TimeoutExpired:
            shutil.rmtree(control, ignore_errors=True)
            raise self._unreachable(f"no answer within {self.connect_timeout:g} s") from None
        if done.returncode != 0:
            shutil.rmtree(control, ignore_errors=True)
            raise self._connection_error(done.stderr.decode(errors="replace"))
        self._control_dir = control

    def close(self) -> None:
        """Stop the master (and forget its socket); safe to call twice."""
        control, self._control_dir = self._control_dir, None
        if not control:
            return
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(["ssh", "-o", f"ControlPath={control}/master", "-O", "exit", "--",
                            self.target], capture_output=True, stdin=subprocess.DEVNULL,
                           timeout=10, check=False)
        shutil.rmtree(control, ignore_errors=True)

    def __enter__(self) -> SSHShell:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- commands ------------------------------------------------------------------------
    def run(self, argv: list[str], *, cwd: str | None = None, stdin: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT_S,
            hide: frozenset[str] = frozenset()) -> subprocess.CompletedProcess[bytes]:
        """``argv`` on the login node (``hide``: variables ssh must not have, so that no
        SendEnv in the user's ssh config can pass a secret's source on). The remote side
        gets one command line, every word quoted, so a value is never code there; ``env``
        becomes ``env NAME=value`` words (no secret belongs in it: command lines are
        visible to other users there)."""
        words = [shlex.quote(a) for a in argv]
        if env:
            words = ["env", *(shlex.quote(f"{k}={v}") for k, v in sorted(env.items())), *words]
        remote = " ".join(words)
        if cwd:
            remote = f"cd {shlex.quote(cwd)} && {remote}"
        try:
            done = subprocess.run(self.ssh_argv() + ["--", self.target, remote], input=stdin,
                                  stdin=None if stdin is not None else subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout, check=False,
                                  env={k: v for k, v in os.environ.items() if k not in hide}
                                  if hide else None)
        except subprocess.TimeoutExpired:
            raise BackendError(f"{argv[0]} on {self.where} did not answer within {timeout:g} s",
                               "is the login node reachable? (ssh " + self.target + " true)",
                               ambiguous=True) from None
        if done.returncode == 255:  # ssh's own failure (or, rarely, the command's own 255)
            # Refused before anything was sent, or dropped after: then the command may have
            # run (an sbatch that went through), so the caller must not assume it did not.
            error = self._connection_error(done.stderr.decode(errors="replace"))
            raise error if error.before_sending else BackendError(
                error.message, error.hint, ambiguous=True)
        if done.returncode == MISSING_COMMAND and b"not found" in done.stderr:
            raise BackendError(f"{argv[0]} not found on {self.where}",
                               f"is it on the login node's PATH for a non-interactive ssh "
                               f"command? (ssh {self.target} command -v {argv[0]})")
        return done

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        directory, name = os.path.split(path)
        temporary = os.path.join(directory, f".{name}.part-{os.getpid()}")
        script = (f"mkdir -p {shlex.quote(directory or '.')} && umask 077 && "
                  f"cat > {shlex.quote(temporary)} && chmod {mode:o} {shlex.quote(temporary)} "
                  f"&& mv -f {shlex.quote(temporary)} {shlex.quote(path)}")
        done = self.run(["sh", "-c", script], stdin=data)
        if done.returncode != 0:
            self.run(["rm", "-f", temporary])
            message = done.stderr.decode(errors="replace").strip()
            raise BackendError(f"cannot write {path} on {self.where}: {message}",
                               "is remote_job_dir writable by the cluster user?")

    # -- what went wrong -------------------------------------------------------------------
    def _connection_error(self, stderr: str) -> _ConnectionError:
        text = stderr.strip()
        last = text.splitlines()[-1] if text else "ssh exited with 255"
        if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION" in text:
            return _ConnectionError(
                f"the host key of {self.where} is not known or does not match: {last}",
                f"check its fingerprint with the cluster's admins, then add it to known_hosts "
                f"(ssh-keyscan -p {self.port or 22} {self.host}); runspec never accepts a host "
                "key on its own")
        if "Permission denied" in text or "Too many authentication failures" in text:
            return _ConnectionError(f"{self.where} refused the login: {last}",
                                "check user and identity in the profile (ssh -i IDENTITY "
                                f"{self.target} true)")
        refused = any(s in text for s in ("Connection refused", "Could not resolve",
                                          "No route to host", "Connection timed out",
                                          "Network is unreachable"))
        return self._unreachable(last, before_sending=refused)

    def _unreachable(self, why: str, before_sending: bool = True) -> _ConnectionError:
        return _ConnectionError(f"cannot reach {self.where}: {why}",
                                f"is host/port right and the login node up? "
                                f"(ssh {self.target} true)", before_sending=before_sending)


class _ConnectionError(BackendError):
    """ssh's own failure; ``before_sending``: nothing reached the login node."""

    def __init__(self, message: str, hint: str | None = None, before_sending: bool = True):
        super().__init__(message, hint)
        self.before_sending = before_sending
