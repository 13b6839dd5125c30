"""A Ray head on 127.0.0.1 that runspec starts when a profile names no ``address``.

Kept on loopback with authentication off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
``RAY_AUTH_MODE=disabled``; see shared/FACTS.md), started under ``setsid`` so that
stopping it means ending exactly that session, never killing processes by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runspec.backends.base import BackendError

START_TIMEOUT_S = 90


def head_file() -> Path:
    return Path(os.environ.get("RUNSPEC_RAY_DIR", "/tmp/runspec-ray")) / "head.json"


def running_head() -> dict | None:
    """The managed head's record if its session still has processes, else None."""
    try:
        head = json.loads(head_file().read_text())
    except (OSError, ValueError):
        return None
    return head if _session_pids(head["sid"]) else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def start_head() -> dict:
    """Start a head (or reuse ours if it is up); returns its record with ``address``."""
    existing = running_head()
    if existing is not None:
        return existing
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        raise BackendError("Ray is not installed in this environment",
                           "pip install 'runspec[ray]', or set env.address to a Ray cluster")
    # Every port free and our own, so this head can run beside another one (defaults clash).
    dashboard, gcs, client, agent = (_free_port() for _ in range(4))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
           "PATH": os.pathsep.join([str(ray.parent), os.environ.get("PATH", "")])}
    log = head_file().parent / "start.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            ["setsid", str(ray), "start", "--head", f"--num-cpus={os.cpu_count() or 1}",
             f"--port={gcs}", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}",
             f"--dashboard-agent-listen-port={agent}", "--disable-usage-stats"],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    head: dict[str, Any] = {"sid": process.pid, "address": f"http://127.0.0.1:{dashboard}",
                            "gcs_port": gcs}
    head_file().write_text(json.dumps(head))
    try:
        process.wait(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_head()
        raise BackendError(f"ray start did not finish within {START_TIMEOUT_S} s; see {log}") from None
    if process.returncode != 0:
        stop_head()
        raise BackendError(f"ray start failed (exit {process.returncode}); see {log}")
    from runspec.backends.ray_client import RayClient

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            RayClient(head["address"], 2).call("GET", "/api/version")
            return head
        except BackendError:
            if time.monotonic() > deadline:
                stop_head()
                raise BackendError(f"the Ray dashboard at {head['address']} never answered; "
                                   f"see {log}") from None
            time.sleep(0.5)


def stop_head() -> None:
    """End every process of the head's session (SIGTERM, then SIGKILL), and forget it."""
    try:
        head = json.loads(head_file().read_text())
    except (OSError, ValueError):
        return
    for signum, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in _session_pids(head["sid"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + grace
        while _session_pids(head["sid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
    head_file().unlink(missing_ok=True)
