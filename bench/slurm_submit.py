"""Submitting a 1,000-run sweep to the real Slurm cluster: one array vs 1,000 sbatch calls.

Needs the test cluster: `bash tests/services/slurm.sh start` (this script starts it if it is
not up, and cancels every job it submitted). Prints both wall times and their ratio.
Usage: python bench/slurm_submit.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def slurm_env() -> dict[str, str]:
    script = ROOT / "tests/services/slurm.sh"
    subprocess.run(["bash", str(script), "start"], check=True, capture_output=True)
    env = dict(os.environ)
    for line in subprocess.run(["bash", str(script), "env"], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0]
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    env = slurm_env()
    runspec = Path(sys.executable).with_name("runspec")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("")
        (root / "run.toml").write_text(textwrap.dedent(f'''\
            schema = "runspec/v1"
            name = "submit-bench"
            [recipe]
            command = ["true", "${{sweep.i}}"]
            [env]
            executor = "slurm"
            [sweep.parameters]
            i = {{ range = [0, {args.runs}] }}
            '''))
        started = time.perf_counter()
        subprocess.run([str(runspec), "apply", "--yes", "run.toml"], cwd=root, env=env,
                       check=True, capture_output=True)
        array_s = time.perf_counter() - started
        subprocess.run(["scancel", "--name=submit-bench-main"], env=env, check=False)
        ids = []
        started = time.perf_counter()
        for _ in range(args.runs):
            out = subprocess.run(["sbatch", "--parsable", "--output=/dev/null", "--wrap", "true"],
                                 env=env, check=True, capture_output=True, text=True).stdout
            ids.append(out.strip())
        loop_s = time.perf_counter() - started
        subprocess.run(["scancel", *ids], env=env, check=False)
    print(f"{args.runs} runs as one array via `runspec apply` (plan, render, write one run "
          f"table, one sbatch): {array_s:.2f} s")
    print(f"{args.runs} plain `sbatch --wrap true` calls in a loop: {loop_s:.2f} s")
    print(f"ratio: the loop takes {loop_s / array_s:.1f}× as long")


if __name__ == "__main__":
    main()
