"""Re-applying an unchanged 10,000-run manifest: budget ≤ 1 s and zero backend calls.

Builds a 10,000-run local sweep, records every run as succeeded in its state (through the
state store, as apply would), then times `runspec apply --yes` in a fresh process and
checks it printed "No changes." and started nothing.
Usage: python bench/reapply_unchanged.py [--runs 10000]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("")
        (root / "run.toml").write_text(textwrap.dedent(f'''\
            schema = "runspec/v1"
            name = "reapply"
            [recipe]
            command = ["python", "-c", "pass", "${{sweep.i}}"]
            [sweep.parameters]
            i = {{ range = [0, {args.runs}] }}
            '''))
        from runspec.plan.pipeline import make_plan
        from runspec.state.store import Member

        result = make_plan(root / "run.toml")
        for run in result.plan.runs:
            result.state.members[run.key] = Member(
                run.key, run.stage, run.digest, "succeeded", {"pid": 1, "host": "bench"},
                run.request, point=run.point, slot=run.slot, run_dir=run.run_dir, attempts=1)
        result.store.write(result.state)
        runspec = Path(sys.executable).with_name("runspec")
        # The state above was written by hand, without the fingerprint of the inputs that a
        # real apply records; one untimed apply (which finds no changes) records it.
        subprocess.run([str(runspec), "apply", "--yes", "run.toml"], cwd=root, check=True,
                       capture_output=True)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            out = subprocess.run([str(runspec), "apply", "--yes", "run.toml"], cwd=root,
                                 capture_output=True, text=True, check=True).stdout
            times.append(time.perf_counter() - started)
            assert out.startswith("No changes."), out
        assert not (root / "runs").exists(), "something was launched"
    print(f"re-apply of an unchanged {args.runs}-run manifest: median "
          f"{statistics.median(times):.3f} s over {args.repeat} fresh processes "
          f"(min {min(times):.3f} s); backend calls: 0 (nothing active to refresh, nothing "
          f"to submit; no run directory created)")


if __name__ == "__main__":
    main()
