"""Cold-start time of `runspec validate` on a typical manifest, against a bare interpreter.

Budget: ≤ 0.25 s wall. Each sample is a fresh process (no warm imports). Prints medians.
Usage: python bench/validate_startup.py [MANIFEST] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 0.25


def sample(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=False, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("manifest", nargs="?", default="examples/quickstart/run.toml")
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    runspec = Path(sys.executable).with_name("runspec")
    sample([str(runspec), "--version"], 2)  # warm the page cache and .pyc files
    rows = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "runspec --version": [str(runspec), "--version"],
        f"runspec validate {args.manifest}": [str(runspec), "validate", args.manifest],
        "runspec validate examples/quickstart/run.yaml": [str(runspec), "validate",
                                                          "examples/quickstart/run.yaml"],
    }
    print(f"{'command':<52} {'median':>8} {'min':>8}  (n={args.runs})")
    medians = {}
    for label, argv in rows.items():
        times = sample(argv, args.runs)
        medians[label] = statistics.median(times)
        print(f"{label:<52} {medians[label]:>7.3f}s {min(times):>7.3f}s")
    validate = medians[f"runspec validate {args.manifest}"]
    verdict = "within" if validate <= BUDGET_S else "OVER"
    print(f"validate cold start: {validate:.3f} s — {verdict} the {BUDGET_S:.2f} s budget")


if __name__ == "__main__":
    main()
