"""The local backend: one subprocess per run on this machine (the embedded default).

Each run starts in its own session (so a cancel reaches torchrun's workers too), with
stdout and stderr in its run directory. Its fate is read back from the measure wrapper's
files, so a run outlives a killed ``runspec apply`` without being lost or run twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from runspec.backends.base import (
    Capabilities,
    Handle,
    HandleError,
    RunHandle,
    executable_env,
    no_scheduler_logs,
    no_session,
    no_setting_problems,
    resolve_secrets,
)
from runspec.ir import Launch, LaunchContext, Run, RunSpec
from runspec.state import status as run_status
from runspec.state.status import RunStatus

KILL_GRACE_S = 5.0


@cache
def options_model() -> type:
    """The local keys of a profile and of `[env]`, built on first use (validate checks the
    schema generated from it and never builds it)."""
    from pydantic import Field

    from runspec.manifest.fields import Strict

    class LocalFields(Strict):
        """Keys of the local executor (subprocesses on this machine)."""

        nproc_per_node: int | None = Field(
            None, ge=1, le=4096,
            description="Processes per node for torchrun (Nemotron's local key).")

    return LocalFields


@dataclass(frozen=True)
class LocalProcess(RunHandle):
    """A local run: its process (the leader of its own session) and the host it runs on."""

    pid: int | None = None
    host: str | None = None


class LocalBackend:
    name = "local"
    title = "Local"
    summary = "runs on this machine"
    options_model = staticmethod(options_model)
    handle_type = LocalProcess
    setting_problems = staticmethod(no_setting_problems)
    capabilities = Capabilities(
        launch_modes=frozenset({"direct", "torchrun"}), containers=False, multi_node=False,
        paced_by_runspec=True, attached=True, default_parallel=1, stage_dependencies=False,
        poll_s=0.05, sees_all_gpus=True)
    session = staticmethod(no_session)
    log_text = staticmethod(no_scheduler_logs)

    def request(self, spec: RunSpec) -> dict:
        """Exactly what the local runner executes: argv, env (secrets by reference), cwd.
        Startup commands run first, as on Slurm: through bash, stopping at the first that
        fails, before the measured command replaces the shell."""
        return {"argv": with_startup_commands(spec.startup_commands, spec.argv), "env": spec.env,
                "secrets": {k: {"from_env": v} for k, v in spec.secrets.items()}, "cwd": spec.cwd}

    def render_run(self, spec: RunSpec, root: Path, digest: str) -> dict[str, str]:
        return {"local.json": json.dumps(self.request(spec), indent=2) + "\n"}

    def render_launch(self, context: LaunchContext, runs: list[Run], specs: dict[str, RunSpec]
                      ) -> list[Launch]:
        return [Launch("local", context.stage, [run.key], self.request(specs[run.key]),
                       directory=run.run_dir) for run in runs]

    @staticmethod
    def describe_launches(launches: list[Launch]) -> str:
        return f"{len(launches)} local process{'es' * (len(launches) != 1)}"

    @staticmethod
    def describe(handle: Handle | None) -> str:
        pid = LocalProcess.of(handle).pid
        return f"pid {pid}" if pid else ""

    @staticmethod
    def dependency_id(handle: Handle | None) -> str | None:
        return None

    @staticmethod
    def intent(launch: Launch, tag: str, index: int) -> Handle:
        return LocalProcess().record()

    # -- execution ---------------------------------------------------------------------------
    def submit(self, launch: Launch, root: Path, after: dict[str, str], tag: str = ""
               ) -> dict[str, Handle]:
        """Start the launch's run now (apply paces local runs through ``start``/``poll``)."""
        return {launch.keys[0]: self.start(launch, root, root / launch.directory)}

    def poll(self, handle: Handle, root: Path, run_dir: Path) -> RunStatus | None:
        """None while the process runs; then its fate from the wrapper's files (a process
        that ended without a result failed: it never got as far as the wrapper's end)."""
        process = handle.get("_process")
        if process is not None and process.poll() is None:
            return None
        status = self.refresh({"pid": None} if process is not None else handle, run_dir)
        if status == RunStatus.RUNNING:
            return None
        return RunStatus.FAILED if status == RunStatus.LOST else status

    def start(self, launch: Launch, root: Path, run_dir: Path) -> dict:
        """Start one run; returns its handle. Raises OSError if it cannot be started."""
        request = launch.request
        cwd = (root / request["cwd"]).resolve()
        env = executable_env({**request["env"], **resolve_secrets(
            {k: v["from_env"] for k, v in request["secrets"].items()})})
        env["PWD"] = str(cwd)  # as a shell's cd sets it: configs read ${oc.env:PWD}
        with (run_dir / "stdout.log").open("ab") as out, (run_dir / "stderr.log").open("ab") as err:
            process = subprocess.Popen(request["argv"], cwd=cwd, env=env,
                                       stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        return {**LocalProcess(process.pid, socket.gethostname()).record(), "_process": process}

    def refresh(self, handle: dict | None, run_dir: Path,
                current: RunStatus = RunStatus.RUNNING) -> RunStatus:
        """succeeded / failed / cancelled from the run's files; running; or lost.

        A run recorded without a pid (an apply died between starting it and saving the pid)
        is found through the wrapper's started.json; a run started on another host cannot be
        checked from here and keeps its status instead of being declared lost."""
        final = run_status.from_result(run_dir)
        if final is not None:
            return final
        here = socket.gethostname()
        candidates = [LocalProcess.of(handle)]
        began = run_status.started(run_dir)
        if began:
            with contextlib.suppress(HandleError):  # a started.json that says nothing usable
                candidates.append(LocalProcess.of({"host": began.get("host"),
                                                   "pid": began.get("pid")}))
        for candidate in candidates:
            if candidate.host == here and _alive(candidate.pid):
                return RunStatus.RUNNING
        if any(c.host not in (None, here) for c in candidates):
            return current
        return RunStatus.LOST

    def refresh_many(self, members, root: Path) -> dict[str, RunStatus]:
        """Statuses of local members, from their files and pids (no process is asked)."""
        return {m.key: self.refresh(m.handle, root / m.run_dir, m.status) for m in members}

    def cancel_many(self, members, root: Path) -> None:
        self.cancel_pids([m.handle for m in members])

    def cancel(self, handle: dict | None) -> None:
        self.cancel_pids([handle])

    @staticmethod
    def cancel_pids(handles: list[dict | None]) -> None:
        """Stop every run's whole session at once: SIGTERM to all, one shared grace period
        (so a recipe can checkpoint), then SIGKILL to whatever is left."""
        here = socket.gethostname()
        pids = [p.pid for p in map(LocalProcess.of, handles) if p.host == here and p.pid]
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.05)
        for pid in pids:
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)


def with_startup_commands(commands: list[str], argv: list[str]) -> list[str]:
    """``argv`` preceded by the profile's startup commands (``set -euo pipefail``, so the
    run stops, and fails, at the first one that fails), or ``argv`` itself without any."""
    if not commands:
        return argv
    script = "\n".join(["set -euo pipefail", *commands, 'exec "$@"'])
    return ["bash", "-c", script, "runspec-startup", *argv]


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (finished, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True

