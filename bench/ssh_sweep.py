"""Time to submit an N-point sweep from "a laptop" through the test login node over SSH:
runspec (one connection, one package upload, one archive of run files, one sbatch of an
array) beside NeMo-Run through its SSHTunnel (bench/nemo_run_ssh_sweep.py: one Experiment,
one task per point), in one run, alternating, as a ratio.

The partition is set DOWN first, so jobs queue and nothing runs: the figures are
submission only (until sbatch has answered). Jobs are cancelled and the partition set UP
again afterwards, also on failure.

    eval "$(tests/services/slurm.sh env)"; eval "$(tests/services/sshd.sh env)"
    .venv/bin/python bench/ssh_sweep.py --points 1000 --peer-tasks 100 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = "import sys\nprint('lr', sys.argv[1:])\n"


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True)


def project(points: int) -> Path:
    env = os.environ
    work = Path(tempfile.mkdtemp(prefix="runspec-ssh-bench-"))
    remote = f"{env['RUNSPEC_SSH_REMOTE_DIR']}/bench-{uuid.uuid4().hex[:8]}"
    (work / "train.py").write_text(TRAIN)
    (work / "env.toml").write_text(
        '[cluster]\nexecutor = "slurm"\npartition = "debug"\ntunnel = "ssh"\n'
        'packager = "pattern"\npackage_patterns = ["*.py"]\n'
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in {
            "host": env["RUNSPEC_SSH_HOST"], "port": int(env["RUNSPEC_SSH_PORT"]),
            "user": env["RUNSPEC_SSH_USER"], "identity": env["RUNSPEC_SSH_IDENTITY"],
            "known_hosts": env["RUNSPEC_SSH_KNOWN_HOSTS"], "remote_job_dir": remote}.items()))
    (work / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "bench"\n[recipe]\nscript = "train.py"\n'
        'args = ["${sweep.i}"]\n[env]\nprofile = "cluster"\n[resources]\ntime = "00:05:00"\n'
        f"[sweep.parameters]\ni = {list(range(points))}\n")
    return work


def runspec_once(points: int) -> float:
    work = project(points)
    started = time.monotonic()
    done = subprocess.run([str(ROOT / ".venv/bin/runspec"), "apply", "--yes", "run.toml"],
                          cwd=work, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0 or f"{points} launched" not in done.stdout:
        raise SystemExit(f"runspec apply failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def nemo_run_once(tasks: int) -> float:
    done = subprocess.run([sys.executable, str(ROOT / "bench/nemo_run_ssh_sweep.py"),
                           "--tasks", str(tasks), "--keep-partition"],
                          capture_output=True, text=True, check=False)
    found = re.search(r"submitted in ([0-9.]+) s", done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"nemo-run bench failed:\n{done.stdout}\n{done.stderr}")
    return float(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--peer-tasks", type=int, default=1000,
                        help="NeMo-Run's sweep size (1,000 tasks take ~15 min here)")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    ours, peer = [], []
    scontrol("update", "PartitionName=debug", "State=DOWN")
    try:
        for _ in range(options.repeat):
            ours.append(runspec_once(options.points))
            subprocess.run(["scancel", "-u", os.environ["RUNSPEC_SSH_USER"]], capture_output=True)
            peer.append(nemo_run_once(options.peer_tasks))
            subprocess.run(["scancel", "-u", os.environ["RUNSPEC_SSH_USER"]], capture_output=True)
    finally:
        subprocess.run(["scancel", "-u", os.environ["RUNSPEC_SSH_USER"]], capture_output=True)
        scontrol("update", "PartitionName=debug", "State=UP")
    a, b = statistics.median(ours), statistics.median(peer)
    per_a, per_b = a / options.points * 100, b / options.peer_tasks * 100
    print(f"runspec : {options.points} points in {a:.2f} s (median of {len(ours)}: "
          f"{', '.join(f'{s:.2f}' for s in ours)})")
    print(f"nemo-run: {options.peer_tasks} tasks in {b:.2f} s (median of {len(peer)}: "
          f"{', '.join(f'{s:.2f}' for s in peer)})")
    print(f"per 100 points: runspec {per_a:.3f} s, nemo-run {per_b:.2f} s: "
          f"runspec {per_b / per_a:.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
