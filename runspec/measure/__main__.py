"""``python -m runspec.measure --run-dir D -- CMD…``: run CMD, record how it went.

Signals (Ctrl-C, SIGTERM from a cancel, Slurm's time limit) are passed on to the command;
its exit status is recorded as the shell would report it (128 + signal number). With
``--wandb``, the metrics the command reports are logged to W&B while it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from runspec.measure import RESULT_FILE, RESULT_FORMAT, STARTED_FILE
from runspec.measure.attempts import keep_previous, log_offsets
from runspec.measure.files import write_json
from runspec.measure.metrics import METRICS_FILE, read_metrics
from runspec.measure.rss import PeakRss, floor, reap


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _hostname() -> str:
    """What ``socket.gethostname()`` returns, without importing socket (~5 ms a run)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runspec.measure", description=__doc__)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--energy", action="store_true", help="measure energy with codecarbon")
    parser.add_argument("--country", help="ISO 3166-1 alpha-3 code (required with --energy)")
    parser.add_argument("--power-interval", type=float, default=1.0)
    parser.add_argument("--wandb", metavar="JSON", help="W&B settings: project, entity, mode, …")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    if args.energy and not args.country:
        parser.error("--energy needs --country (codecarbon must not guess it from the network)")
    # On multi-node jobs every node runs this wrapper; only the first node records.
    if os.environ.get("SLURM_NODEID", "0") != "0":
        os.execvp(command[0], command)
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    attempt = keep_previous(run_dir)  # a requeued job finds its last attempt's records
    offsets = log_offsets(run_dir)
    host = _hostname()
    metrics_path = (run_dir / METRICS_FILE).resolve()
    # $RUNSPEC_ATTEMPT tags what runspec.artifacts records (see artifacts.ledger).
    env = {**os.environ, "RUNSPEC_METRICS": str(metrics_path), "RUNSPEC_ATTEMPT": str(attempt)}
    live = None
    if args.wandb:
        import json

        from runspec.measure.wandb_log import LiveRun

        live = LiveRun(run_dir.resolve(), json.loads(args.wandb), metrics_path)
    meter = None
    if args.energy:
        from runspec.measure.energy import EnergyMeter

        meter = EnergyMeter(args.country, args.power_interval)
        meter.start()  # before the clock: its start-up is overhead, not run time
    started_at = _now()
    footprint = floor()  # the kernel counts it in the command's peak (see rss)
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as error:
        write_json(run_dir / RESULT_FILE, {
            "format": RESULT_FORMAT, "attempt": attempt, "exit_code": 127,
            "error": f"cannot start {command[0]}: {error}",
            "host": host, "started_at": started_at, "ended_at": _now(), "wall_s": 0.0})
        print(f"runspec.measure: cannot start {command[0]}: {error}", file=sys.stderr)
        return 127
    clock = time.perf_counter()
    write_json(run_dir / STARTED_FILE, {"pid": os.getpid(), "child_pid": child.pid,
                                        "host": host, "started_at": started_at,
                                        "attempt": attempt, "log_offsets": offsets})
    memory = PeakRss(child.pid).start()
    if live is not None:
        live.start()  # W&B starts beside the command, which does not wait for it

    def forward(signum, _frame):
        # Not child.poll(): that could reap the child before reap() gets its usage.
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, forward)
    returncode, child_peak = reap(child)
    wall = time.perf_counter() - clock
    ended_at = _now()
    peak = memory.stop(child_peak, footprint)
    if meter is not None:
        meter.stop()
    exit_code = 128 - returncode if returncode < 0 else returncode
    metrics, warnings = read_metrics(metrics_path)
    for warning in warnings:
        print(f"runspec.measure: warning: {warning}", file=sys.stderr)
    from runspec.measure.provenance import collect

    result = {
        "format": RESULT_FORMAT, "attempt": attempt, "exit_code": exit_code, "host": host,
        "started_at": started_at, "ended_at": ended_at, "wall_s": round(wall, 6),
        **({"signal": -returncode} if returncode < 0 else {}),
        "peak_rss_mb": round(peak / 2**20, 3),
        "metrics": metrics, "metric_warnings": warnings,
        "energy": meter.result() if meter is not None else None,
        "provenance": collect(Path.cwd()),
    }
    if live is not None:
        result["wandb"] = live.finish(result)
    write_json(run_dir / RESULT_FILE, result)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
