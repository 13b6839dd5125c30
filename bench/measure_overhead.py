"""What the in-job wrapper costs per run: `python -m runspec.measure --run-dir D -- CMD`
against CMD alone. Budget without energy: ≤ 0.15 s per run. With energy, the tracker's
start and stop are reported in result.json (energy.overhead_s) and kept out of wall_s.
Usage: python bench/measure_overhead.py [--runs 11]
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

BUDGET_S = 0.15


def timed(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    command = [sys.executable, "-c", "pass"]
    with tempfile.TemporaryDirectory() as tmp:
        wrapped = [sys.executable, "-m", "runspec.measure", "--run-dir", f"{tmp}/run", "--",
                   *command]
        timed(wrapped, 1)  # warm the page cache
        bare = statistics.median(timed(command, args.runs))
        measured = statistics.median(timed(wrapped, args.runs))
        energy = [sys.executable, "-m", "runspec.measure", "--run-dir", f"{tmp}/e", "--energy",
                  "--country", "USA", "--", *command]
        energy_total = statistics.median(timed(energy, 3))
        reported = json.loads(Path(f"{tmp}/e/result.json").read_text())["energy"]["overhead_s"]
    overhead = measured - bare
    verdict = "within" if overhead <= BUDGET_S else "OVER"
    print(f"command alone ({' '.join(command[1:])}): {bare:.3f} s median of {args.runs}")
    print(f"under the wrapper, no energy: {measured:.3f} s → overhead {overhead:.3f} s "
          f"({verdict} the {BUDGET_S} s budget)")
    print(f"under the wrapper with codecarbon energy: {energy_total:.3f} s; the tracker's own "
          f"start+stop reported as energy.overhead_s = {reported:.3f} s (not in wall_s)")


if __name__ == "__main__":
    main()
