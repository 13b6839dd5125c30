"""``python -m runspec.measure --run-dir D -- CMD…``: run CMD, record how it went.

Signals (Ctrl-C, SIGTERM from a cancel, Slurm's time limit) are passed on to the command;
its exit status is recorded as the shell would report it (128 + signal number).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from runspec.measure import RESULT_FILE, RESULT_FORMAT, STARTED_FILE
from runspec.measure.files import write_json


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runspec.measure", description=__doc__)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    # On multi-node jobs every node runs this wrapper; only the first node records.
    if os.environ.get("SLURM_NODEID", "0") != "0":
        os.execvp(command[0], command)
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    started_at = _now()
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        write_json(run_dir / RESULT_FILE, {
            "format": RESULT_FORMAT, "exit_code": 127, "error": f"cannot start {command[0]}: {error}",
            "host": host, "started_at": started_at, "ended_at": _now(), "wall_s": 0.0})
        print(f"runspec.measure: cannot start {command[0]}: {error}", file=sys.stderr)
        return 127
    write_json(run_dir / STARTED_FILE, {"pid": os.getpid(), "child_pid": child.pid,
                                        "host": host, "started_at": started_at})
    clock = time.perf_counter()

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, forward)
    returncode = child.wait()
    wall = time.perf_counter() - clock
    exit_code = 128 - returncode if returncode < 0 else returncode
    write_json(run_dir / RESULT_FILE, {
        "format": RESULT_FORMAT, "exit_code": exit_code, "host": host,
        "started_at": started_at, "ended_at": _now(), "wall_s": round(wall, 6),
        **({"signal": -returncode} if returncode < 0 else {}),
    })
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
