"""Planning speed and memory for big sweeps, rendered for Slurm (the heaviest backend).

Budgets: 10,000 runs ≤ 2 s and ≤ 500 MB peak RSS; 100,000 runs ≤ 20 s (linear);
re-planning against a state of 10,000 applied runs adds ≤ 1 s.
Each size runs in a fresh process so imports and peak RSS are counted honestly.
Usage: python bench/plan_sweep.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent('''
    import json, resource, sys, time
    started = time.perf_counter()
    from runspec.plan.pipeline import make_plan
    from runspec.state.store import Member
    manifest, with_state = sys.argv[1], sys.argv[2] == "1"
    result = make_plan(manifest)
    row = {"runs": len(result.plan.runs), "cold": time.perf_counter() - started}
    if with_state:
        started = time.perf_counter()
        make_plan(manifest)
        row["warm_empty"] = time.perf_counter() - started
        state = result.state
        for run in result.plan.runs:
            state.members[run.key] = Member(run.key, run.stage, run.digest, "succeeded",
                                            {"job_id": "1"}, run.request)
        result.store.write(state)
        started = time.perf_counter()
        again = make_plan(manifest)
        row["warm_state"] = time.perf_counter() - started
        assert again.changes.count("noop") == len(again.plan.runs), "state did not match"
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(row))
''')


def manifest_for(directory: Path, size: int) -> Path:
    """A sweep of exactly ``size`` points (grid of 10 × size/10), one cycle, Slurm profile."""
    (directory / "config.yaml").write_text(
        "optim:\n  lr: 0.001\n  wd: 0.0\nmodel:\n  n_layer: 2\n  d_model: 64\ntrain:\n  steps: 100\n"
        "  seed: 0\n")
    (directory / "train.py").write_text("print('train')\n")
    (directory / "env.toml").write_text(
        '[cluster]\nexecutor = "slurm"\npartition = "debug"\ntime = "00:10:00"\n')
    (directory / "pyproject.toml").write_text("")
    path = directory / "run.toml"
    path.write_text(textwrap.dedent(f'''
        schema = "runspec/v1"
        name = "bench"
        [recipe]
        script = "train.py"
        config = "config.yaml"
        launch = "torchrun"
        [recipe.overrides]
        "train.steps" = 10
        [resources]
        procs_per_node = 2
        [env]
        profile = "cluster"
        [env.vars]
        OMP_NUM_THREADS = "1"
        [sweep.parameters]
        "optim.lr" = {{ range = [0, {size // 10}] }}
        "train.seed" = {{ range = [0, 10] }}
        [campaign]
        max_parallel = 50
    '''))
    return path


def measure(size: int, with_state: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = manifest_for(Path(tmp), size)
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), "1" if with_state else "0"],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    print("Fresh process per size; 'plan' includes Python start-up and imports.")
    print(f"{'runs':>8} {'plan (s)':>9} {'peak MB':>8} {'µs/run':>7}")
    for size in [int(s) for s in args.sizes.split(",")]:
        row = measure(size, with_state=size == 10000)
        print(f"{row['runs']:>8} {row['cold']:>9.3f} {row['peak_mb']:>8.0f} "
              f"{1e6 * row['cold'] / row['runs']:>7.1f}")
        if "warm_state" in row:
            extra = row["warm_state"] - row["warm_empty"]
            print(f"{'':>8} re-plan against 10,000 applied runs: {row['warm_state']:.3f} s vs "
                  f"{row['warm_empty']:.3f} s with no state → state adds {extra:+.3f} s "
                  f"(all {row['runs']} unchanged)")


if __name__ == "__main__":
    main()
