"""What the plan-time estimate costs: `runspec plan` of a 1,000-run local sweep whose every
run will be replaced, with the estimate off (as before it existed), with a state but no
earlier results, and with 1,000 result.json files plus 1,000 results in the history.

BENCH-ONLY FAKES: the state, the result.json files and the history lines are written by
this script (through the state store and the history's own API, in the format the wrapper
and apply write), so no run is started; each result carries a provenance block of the
usual size. Each figure is the median of fresh `runspec plan` processes (start-up and
imports included) and, separately, of `estimate_plan` alone in this process.
Usage: python bench/plan_estimate.py [--runs 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MANIFEST = '''\
schema = "runspec/v1"
name = "est"
[recipe]
command = ["true", "{argument}", "${{sweep.i}}"]
[sweep.parameters]
i = {{ range = [0, {runs}] }}
'''
# `runspec plan` with estimate_plan switched off: the plan as it was before estimates.
WITHOUT = ("import sys, runspec.plan.estimate as e; e.estimate_plan = lambda *a, **k: None; "
           "from runspec.cli import main; sys.argv = ['runspec', 'plan', 'run.toml']; main()")


def fake_result(index: int, attempt: int) -> dict:
    """A FAKE result.json, shaped like the wrapper's (energy measured by codecarbon)."""
    return {
        "format": 1, "attempt": attempt, "exit_code": 0, "signal": None, "host": "bench",
        "started_at": f"2026-01-01T00:{attempt:02d}:{index % 60:02d}.{index:06d}+00:00",
        "ended_at": "2026-01-01T00:10:00+00:00", "wall_s": 1.0 + index % 7,
        "peak_rss_mb": 80.0, "metrics": {"loss": 0.5}, "metric_warnings": [],
        "energy": {"country": "USA", "tracker": "codecarbon.OfflineEmissionsTracker",
                   "tracking_mode": "machine", "power_interval_s": 1.0, "overhead_s": 1.9,
                   "energy_kwh": 1e-5, "cpu_kwh": 4e-6, "ram_kwh": 6e-6, "gpu_kwh": None,
                   "emissions_kg": 4e-6, "cpu_model": "CPU", "cpu_tdp_w": 85.0,
                   "method": {"cpu": "rapl", "gpu": "none", "ram": "estimate"},
                   "error": None},
        "provenance": {"git": {"commit": "0" * 40, "branch": "main", "dirty": False,
                               "diff_sha256": None}, "python": "3.11.7", "runspec": "0.2.0",
                       "torch": None, "cuda": None, "cpu_model": "CPU", "gpus": [],
                       "executable": "/usr/bin/python3", "slurm": None,
                       "ray_submission_id": None},
    }


def project(root: Path, runs: int, results: bool) -> Path:
    """A sweep whose ``runs`` runs are all recorded as applied and will all be replaced;
    with ``results``, each has a result.json and a result in the history (fakes)."""
    from runspec.plan.pipeline import make_plan
    from runspec.state.history import History, Retired, history_location
    from runspec.state.store import Member

    root.mkdir()
    (root / "pyproject.toml").write_text("")
    manifest = root / "run.toml"
    manifest.write_text(MANIFEST.format(argument="one", runs=runs))
    result = make_plan(manifest)
    retired = []
    for index, run in enumerate(result.plan.runs):
        member = result.state.members[run.key] = Member(
            run.key, run.stage, run.digest, "succeeded", {"pid": 1, "host": "bench"},
            run.request, point=run.point, slot=run.slot, run_dir=run.run_dir, attempts=1)
        if results:
            (root / run.run_dir).mkdir(parents=True)
            (root / run.run_dir / "result.json").write_text(
                json.dumps(fake_result(index, 2), indent=1))
            retired.append(Retired(member.key, member.stage, member.digest, "replace",
                                   "2026-01-01T00:00:00+00:00", "succeeded", member.point,
                                   member.slot, member.run_dir, 1, result=fake_result(index, 1)))
    result.store.write(result.state)
    History(history_location(result.store.location)).append(retired)
    manifest.write_text(MANIFEST.format(argument="two", runs=runs))  # every run replaced
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from runspec.plan.estimate import estimate_plan
    from runspec.plan.pipeline import make_plan
    from runspec.state.history import history_location

    runspec = [str(Path(sys.executable).with_name("runspec")), "plan", "run.toml"]
    with tempfile.TemporaryDirectory() as tmp:
        bare = project(Path(tmp) / "bare", args.runs, results=False)
        full = project(Path(tmp) / "full", args.runs, results=True)
        out = subprocess.run(runspec, cwd=full, check=True, capture_output=True, text=True)
        assert f"Estimate from {2 * args.runs} earlier results" in out.stdout, out.stdout
        cases = {
            "estimate off (as before), results present": (full, [sys.executable, "-c", WITHOUT]),
            "estimate on, no earlier results": (bare, runspec),
            f"estimate on, {args.runs} results + {args.runs} in the history": (full, runspec)}
        times: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(args.repeat):  # interleaved: a busy machine slows every case alike
            for label, (root, argv) in cases.items():
                started = time.perf_counter()
                subprocess.run(argv, cwd=root, check=True, capture_output=True)
                times[label].append(time.perf_counter() - started)

        planned = make_plan(full / "run.toml")
        alone = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            estimate_plan(planned.plan, planned.state, planned.changes,
                          {s.name: s.campaign for s in planned.resolved.stages},
                          history_location(planned.store.location))
            alone.append(time.perf_counter() - started)
    print(f"`runspec plan` of {args.runs} runs to replace, median of {args.repeat} processes:")
    for label, seconds in times.items():
        print(f"  {label:<50} {statistics.median(seconds):.3f} s")
    print(f"  {'estimate_plan alone (in process)':<50} {statistics.median(alone):.3f} s")


if __name__ == "__main__":
    main()
