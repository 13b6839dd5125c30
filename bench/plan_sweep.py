"""Planning speed and memory for big sweeps, rendered for Slurm (the heaviest backend).

Budgets: 10,000 runs ≤ 2 s; 100,000 runs ≤ 20 s and ≤ 500 MB peak RSS, for `plan` and for
`plan --json` alike; the cost per run from 10,000 to 100,000 no higher than from 1,000 to
10,000 (linear); re-planning against a state of 10,000 applied runs adds ≤ 1 s.

Each measurement is `runspec plan [--json]` in a fresh process writing to a file, so
start-up, imports and the output are counted, and the peak RSS is that process's own
(wait4). The sizes and both views are interleaved, round by round (every other round in
reverse), and the figures are medians over the rounds. Only one plan runs at a time.
With --against DIR (another checkout of runspec, e.g. the last commit's), its code is
measured in the same rounds, interleaved with this one's, and the ratios are printed.
Usage: python bench/plan_sweep.py [--sizes 1000,10000,100000] [--repeat 3] [--no-state]
                                  [--against DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

VIEWS = {"plan": [], "plan --json": ["--json"]}

# The re-plan row: make_plan with no state, then against a state of every run applied.
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


def run_view(directory: Path, view: str, code: Path | None = None) -> dict:
    """One `runspec plan` of the manifest in ``directory``: wall time, peak RSS, output size.
    ``code``: a checkout whose runspec to run instead of the installed one."""
    out = directory / "plan.out"
    environment = {**os.environ, "PYTHONPATH": str(code)} if code else None
    with out.open("wb") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "runspec", "plan", *VIEWS[view]],
                                   cwd=directory, stdout=stdout, stderr=subprocess.PIPE,
                                   env=environment)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{view} in {directory} failed ({process.returncode}): {error}")
    if view == "plan --json":  # the streamed document is one valid JSON value; checked in
        # a child, as parsing it here would grow this process, and a child's peak RSS
        # starts at its parent's (Linux keeps the high-water mark across fork and exec)
        subprocess.run([sys.executable, "-c", "import json, sys; json.load(open(sys.argv[1]))",
                        str(out)], check=True)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return {"time": wall, "peak_mb": usage.ru_maxrss * scale / 2**20,
            "output_mb": out.stat().st_size / 2**20}


def state_row(directory: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(directory / "run.toml"), "1"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def per_run(rows: dict[int, float], small: int, large: int) -> float:
    """The marginal cost per run between two sizes: what each added run costs."""
    return (rows[large] - rows[small]) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--views", default=",".join(VIEWS),
                        help=f"comma-separated, of: {', '.join(VIEWS)}")
    parser.add_argument("--no-state", action="store_true",
                        help="skip re-planning against a state of 10,000 applied runs")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="a checkout of runspec to measure interleaved with this one")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    views = [v.strip() for v in args.views.split(",")]
    codes: list[Path | None] = [None] + ([args.against.resolve()] if args.against else [])
    with tempfile.TemporaryDirectory() as tmp:
        directories = {}
        for size in sizes:
            directories[size] = Path(tmp) / str(size)
            directories[size].mkdir()
            manifest_for(directories[size], size)
        cases = [(size, view, code) for size in sizes for view in views for code in codes]
        samples: dict[tuple[int, str, Path | None], list[dict]] = {case: [] for case in cases}
        for code in codes:  # untimed: compiles the bytecode, warms the file cache
            run_view(directories[sizes[0]], views[0], code)
        for round_ in range(args.repeat):
            for case in (cases if round_ % 2 == 0 else cases[::-1]):
                samples[case].append(run_view(directories[case[0]], case[1], case[2]))
                print(f"  round {round_ + 1}: {case[1]:<11} {case[0]:>7} runs "
                      f"{samples[case][-1]['time']:7.2f} s {case[2] or ''}", file=sys.stderr)
        state = state_row(directories[10000]) if 10000 in sizes and not args.no_state else None
    for code in codes:
        print_figures({(size, view): found for (size, view, at), found in samples.items()
                if at == code}, sizes, views, args.repeat, code)
    if args.against:
        print(f"\nthis checkout / {args.against} (medians; < 1 is faster or smaller here)")
        for view in views:
            for size in sizes:
                ours, theirs = (
                    {k: statistics.median(s[k] for s in samples[size, view, code])
                     for k in ("time", "peak_mb")} for code in codes)
                print(f"{view:<12} {size:>8}  time {ours['time'] / theirs['time']:.2f}  "
                      f"peak RSS {ours['peak_mb'] / theirs['peak_mb']:.2f}")
    if state is not None:
        extra = state["warm_state"] - state["warm_empty"]
        print(f"\nre-plan against 10,000 applied runs (make_plan in one process): "
              f"{state['warm_state']:.3f} s vs {state['warm_empty']:.3f} s with no state → "
              f"state adds {extra:+.3f} s (all {state['runs']} unchanged; budget ≤ 1 s)")


def print_figures(samples: dict[tuple[int, str], list[dict]], sizes: list[int], views: list[str],
           repeat: int, code: Path | None) -> None:
    """The figures of one checkout: medians per size and view, per-run costs, budgets."""
    median = {case: {k: statistics.median(s[k] for s in found) for k in found[0]}
              for case, found in samples.items()}
    print(f"\n[{code or 'this checkout'}]")
    print(f"runspec plan, fresh process per run (start-up and imports included), output to a "
          f"file; medians of {repeat} interleaved rounds")
    print(f"{'view':<12} {'runs':>8} {'time (s)':>9} {'range (s)':>13} {'peak MB':>8} "
          f"{'output MB':>10} {'µs/run':>7}")
    for view in views:
        for size in sizes:
            row, times = median[size, view], [s["time"] for s in samples[size, view]]
            print(f"{view:<12} {size:>8} {row['time']:>9.2f} "
                  f"{f'{min(times):.2f}–{max(times):.2f}':>13} {row['peak_mb']:>8.0f} "
                  f"{row['output_mb']:>10.1f} {1e6 * row['time'] / size:>7.1f}")
    steps = list(zip(sizes, sizes[1:], strict=False))
    if steps:
        print("\nCost per added run (Δ/Δruns between sizes); ratio = last step / first step, "
              "≤ 1 is linear or better")
        heading = "".join(f" {f'{a:,}→{b:,}':>18}" for a, b in steps)
        print(f"{'view':<12} {'':>6}{heading} {'ratio':>6}")
        for view in views:
            for what, unit, scale in (("time", "µs", 1e6), ("peak_mb", "KB", 1024)):
                figures = [scale * per_run({n: median[n, view][what] for n in sizes}, a, b)
                           for a, b in steps]
                cells = "".join(f" {f'{f:.1f} {unit}':>18}" for f in figures)
                ratio = figures[-1] / figures[0] if len(figures) > 1 and figures[0] else None
                label = "time" if what == "time" else "memory"
                print(f"{view:<12} {label:>6}{cells} {f'{ratio:.2f}' if ratio else '':>6}")
    print()
    for view in views:
        verdicts = []
        if 10000 in sizes:
            verdicts.append(f"10,000 runs {median[10000, view]['time']:.2f} s (≤ 2 s)")
        if 100000 in sizes:
            row = median[100000, view]
            verdicts.append(f"100,000 runs {row['time']:.1f} s (≤ 20 s), "
                            f"{row['peak_mb']:.0f} MB (≤ 500 MB)")
        if verdicts:
            print(f"{view}: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
