"""The README's main job: `runspec apply examples/tiny_gpt/run.toml --yes` — budget ≤ 3 min
on 2 cores — and where each run's time goes.

Copies examples/tiny_gpt into a temporary directory (nothing is written into the
checkout; the artifact registry is temporary too), times the whole apply in a fresh
process, then reads every run's result.json: wall time (the recipe: torchrun, imports,
training, checkpoint), codecarbon's start/stop overhead, and the training throughput.
Usage: python bench/main_job.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        example = Path(tmp) / "tiny_gpt"
        shutil.copytree(ROOT / "examples/tiny_gpt", example,
                        ignore=shutil.ignore_patterns("runs", ".runspec"))
        env = {**os.environ, "RUNSPEC_ARTIFACTS": str(Path(tmp) / "artifacts"),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        started = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).parent / "runspec"), "apply", "run.toml",
                               "--yes"], cwd=example, env=env, capture_output=True, text=True,
                              check=False)
        total = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"apply failed:\n{done.stdout}\n{done.stderr}")
        results = [json.loads(p.read_text()) for p in example.glob("runs/**/result.json")]
        walls = [r["wall_s"] for r in results]
        overheads = [r["energy"]["overhead_s"] for r in results if r.get("energy")]
        rates = [r["metrics"]["tokens_per_s"] for r in results]
        print(f"runs                      {len(results)}")
        print(f"apply, end to end         {total:.1f} s   (budget 180 s)")
        print(f"per run: recipe wall_s    median {statistics.median(walls):.1f} s, "
              f"min {min(walls):.1f} s, max {max(walls):.1f} s")
        print(f"per run: codecarbon       median {statistics.median(overheads):.1f} s")
        print(f"per run: everything else  {total / len(results) - statistics.median(walls) - statistics.median(overheads):.1f} s"
              " (wrapper, runspec, process start)")
        print(f"tokens/s (2 DDP ranks)    median {statistics.median(rates):,.0f}")


if __name__ == "__main__":
    main()
