"""Re-applying an unchanged 1,000-run Slurm sweep whose jobs are still pending: budget
≤ 0.5 s and one squeue for the whole stage.

Needs the test cluster (`bash tests/services/slurm.sh start`; this script starts it). The
partition is set DOWN first, so the array is accepted but never runs; it is set UP again and
the array cancelled at the end. Each re-apply is a fresh process; prints the median.
Usage: python bench/reapply_pending.py [--runs 1000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_submit import slurm_env  # noqa: E402  (the same cluster set-up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    env = slurm_env()
    runspec = Path(sys.executable).with_name("runspec")
    partition = subprocess.run(["sinfo", "-h", "-o", "%R"], env=env, check=True,
                               capture_output=True, text=True).stdout.split()[0].rstrip("*")
    subprocess.run(["scontrol", "update", f"PartitionName={partition}", "State=DOWN"], env=env,
                   check=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "pyproject.toml").write_text("")
            (root / "run.toml").write_text(textwrap.dedent(f'''\
                schema = "runspec/v1"
                name = "pending-bench"
                [recipe]
                command = ["true", "${{sweep.i}}"]
                [env]
                executor = "slurm"
                partition = "{partition}"
                [sweep.parameters]
                i = {{ range = [0, {args.runs}] }}
                '''))
            subprocess.run([str(runspec), "apply", "--yes", "run.toml"], cwd=root, env=env,
                           check=True, capture_output=True)
            times, out = [], ""
            for _ in range(args.repeat):
                started = time.perf_counter()
                out = subprocess.run([str(runspec), "apply", "--yes", "run.toml"], cwd=root,
                                     env=env, capture_output=True, text=True, check=True).stdout
                times.append(time.perf_counter() - started)
                assert out.startswith("No changes."), out
    finally:
        subprocess.run(["scancel", "--name=pending-bench-main"], env=env, check=False)
        subprocess.run(["scontrol", "update", f"PartitionName={partition}", "State=UP"],
                       env=env, check=False)
    print(f"re-apply of an unchanged {args.runs}-run Slurm sweep, all pending: median "
          f"{statistics.median(times):.3f} s over {args.repeat} fresh processes (min "
          f"{min(times):.3f} s); it said: {out.strip()}")


if __name__ == "__main__":
    main()
