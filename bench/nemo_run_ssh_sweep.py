"""How long NeMo-Run (the peer, used directly) takes to submit an N-task sweep through its
SSHTunnel to the test cluster: one Experiment, one inline run.Script per task, detached.

The partition is set DOWN first, so the jobs queue and nothing runs: the figure is
submission only (FACTS: State=DOWN isolates submission time). Afterwards the jobs are
cancelled and the partition is set UP again, also when the run fails.

    eval "$(tests/services/slurm.sh env)"; eval "$(tests/services/sshd.sh env)"
    .venv/bin/python bench/nemo_run_ssh_sweep.py --tasks 1000

Prints one line: ``nemo-run ssh sweep: N tasks submitted in S s (s per 100 tasks)``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = "import sys\nprint('lr', sys.argv[1])\n"


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--partition", default=os.environ.get("RUNSPEC_SLURM_PARTITION", "debug"))
    parser.add_argument("--keep-partition", action="store_true",
                        help="the caller sets the partition DOWN and UP (bench/ssh_sweep.py)")
    options = parser.parse_args()
    env = os.environ
    missing = [k for k in ("RUNSPEC_SSH_HOST", "RUNSPEC_SSH_PORT", "RUNSPEC_SSH_USER",
                           "RUNSPEC_SSH_IDENTITY", "RUNSPEC_SSH_KNOWN_HOSTS",
                           "RUNSPEC_SSH_REMOTE_DIR", "SLURM_CONF") if k not in env]
    if missing:
        print("set " + ", ".join(missing) + ": eval \"$(tests/services/slurm.sh env)\"; "
              "eval \"$(tests/services/sshd.sh env)\"", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="nemo-run-bench-"))
    os.environ.setdefault("NEMORUN_HOME", str(work / "home"))
    (work / "train.py").write_text(TRAIN)

    from runspec.backends.nemo_run_exec import SSH_SESSIONS, _check_tunnels, load

    started = time.monotonic()
    run = load()
    import_s = time.monotonic() - started
    if not options.keep_partition:
        scontrol("update", f"PartitionName={options.partition}", "State=DOWN")
    try:
        os.chdir(work)
        out = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            tunnel = run.SSHTunnel(host=env["RUNSPEC_SSH_HOST"], port=int(env["RUNSPEC_SSH_PORT"]),
                                   user=env["RUNSPEC_SSH_USER"], identity=env["RUNSPEC_SSH_IDENTITY"],
                                   job_dir=env["RUNSPEC_SSH_REMOTE_DIR"])
            executor = run.SlurmExecutor(
                account=None, partition=options.partition, time="00:05:00",
                job_name_prefix="bench.", tunnel=tunnel, poll_estimated_start_time=False,
                packager=run.PatternPackager(include_pattern=[str(work / "train.py")],
                                             relative_path=[str(work)]))
            with run.Experiment("bench", base_dir=str(work), log_level="WARN", clean_mode=True,
                                enable_goodbye_message=False, skip_status_at_exit=True,
                                threadpool_workers=SSH_SESSIONS) as exp:
                for index in range(options.tasks):
                    exp.add(run.Script(inline=f"python3 train.py {index}"), executor=executor,
                            name=f"t{index}")
                _check_tunnels(exp, env["RUNSPEC_SSH_KNOWN_HOSTS"])
                exp.run(detach=True)
        seconds = time.monotonic() - started
        launched = sum(bool(job.handle) for job in exp.jobs)
    finally:
        if not options.keep_partition:
            subprocess.run(["scancel", "-u", env["RUNSPEC_SSH_USER"]], capture_output=True)
            scontrol("update", f"PartitionName={options.partition}", "State=UP")
    print(f"nemo-run ssh sweep: {launched} tasks submitted in {seconds:.1f} s "
          f"({seconds / max(launched, 1) * 100:.1f} s per 100 tasks; import nemo_run "
          f"{import_s:.2f} s)")
    return 0 if launched == options.tasks else 1


if __name__ == "__main__":
    sys.exit(main())
