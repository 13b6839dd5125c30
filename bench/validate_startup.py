"""Cold start of `runspec validate`, side by side with `python -c "import submitit"`.

Each sample is a fresh process. The pairs are interleaved (validate, import submitit,
validate, …) so that load from other work on the machine falls on both alike; the figures
are medians, and the ratio is validate's median over submitit's (≤ 1.00 is the goal; the
budget is also ≤ 0.25 s on a quiet 2-core machine). Both run with their bytecode cached,
as an installed tool does (PYTHONDONTWRITEBYTECODE is dropped for the children).

Rows: the quickstart (its script's [tool.runspec] block makes validate build the plan), a
manifest checked by the schema and the semantic checks alone, and the examples/ directory.
``--against DIR``: also time another tree's runspec package (e.g. `git archive HEAD runspec
schemas | tar -x -C DIR`), interleaved with the other two, to show a change's effect.
Usage: python bench/validate_startup.py [--runs N] [--against DIR]  (needs the `bench` extra)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 0.25
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
RUNSPEC = str(Path(sys.executable).with_name("runspec"))
SUBMITIT = [sys.executable, "-c", "import submitit"]
ROWS = {
    "validate examples/quickstart/run.toml": ["examples/quickstart/run.toml"],
    "validate tests/fixtures/valid/kinds.toml (no plan)": ["tests/fixtures/valid/kinds.toml"],
    "validate examples/ (every manifest under it)": ["examples/"],
}


def once(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env or ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="samples per row and command")
    parser.add_argument("--against", type=Path, default=None,
                        help="a directory holding another runspec/ (and schemas/) to compare")
    args = parser.parse_args()
    other = {**ENV, "PYTHONPATH": str(args.against.resolve())} if args.against else None
    commands = {"runspec": lambda paths: once([RUNSPEC, "validate", *paths])}
    if other is not None:
        commands["against"] = lambda paths: once([RUNSPEC, "validate", *paths], other)
    if importlib.util.find_spec("submitit") is not None:
        commands["submitit"] = lambda paths: once(SUBMITIT)
    else:
        print("submitit is not installed (pip install -e '.[bench]'): no ratios")
    for paths in ROWS.values():
        for command in commands.values():
            command(paths)  # warm the page cache and the .pyc files
    head = "".join(f"{name:>10}" for name in commands)
    print(f"{'median of ' + str(args.runs) + ', interleaved':<52}{head}  ratio to submitit")
    for label, paths in ROWS.items():
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                samples[name].append(command(paths))
        medians = {name: statistics.median(times) for name, times in samples.items()}
        ratios = ", ".join(f"{name} {medians[name] / medians['submitit']:.2f}×"
                           for name in commands if name != "submitit" and "submitit" in medians)
        verdict = "within" if medians["runspec"] <= BUDGET_S else "OVER"
        print(f"{label:<52}" + "".join(f"{m:>9.3f}s" for m in medians.values())
              + f"  {ratios} (runspec {verdict} {BUDGET_S:.2f} s)")


if __name__ == "__main__":
    main()
