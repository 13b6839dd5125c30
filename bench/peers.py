"""runspec against the tools users would pick instead, measured side by side in one run.

Rows (each interleaved A/B, medians of --repeat pairs; this machine is noisy, so compare
ratios from one run, never figures across runs):

* a 1,000-point sweep until Slurm has accepted it: `runspec apply` (one array) against
  submitit's `map_array`. The partition is set DOWN first, so the jobs queue and never run;
  both are timed until sbatch has returned, and the jobs are cancelled after each sample;
* re-applying that sweep, still pending: runspec's no-op (one squeue) against what
  submitit offers, submitting it again;
* 20 trivial runs one after another on this machine: `runspec apply` (each run its own
  process, measured by the wrapper) against Hydra's basic launcher (`-m`, every job in
  Hydra's own process);
* cold start: `runspec validate` of the quickstart against `python -c "import submitit"`.

Needs the test cluster (tests/services/slurm.sh, started here) and the `bench` extra
(`pip install -e .[bench]`: submitit, hydra-core, hydra-submitit-launcher).
Usage: python bench/peers.py [--points 1000] [--local-runs 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_submit import slurm_env  # noqa: E402  (the same cluster set-up)

ROOT = Path(__file__).resolve().parent.parent
RUNSPEC = str(Path(sys.executable).with_name("runspec"))


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def interleaved(a: Callable[[], float], b: Callable[[], float], repeat: int
                ) -> tuple[float, float]:
    """Medians of ``repeat`` alternating samples of two timings (A, B, A, B, …)."""
    first, second = [], []
    for _ in range(repeat):
        first.append(a())
        second.append(b())
    return statistics.median(first), statistics.median(second)


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n"
                         f"{done.stderr}")
    return done.stdout


class Slurm:
    """The test cluster with its partition down: jobs are accepted and stay pending."""

    def __init__(self) -> None:
        self.env = slurm_env()
        self.partition = run(["sinfo", "-h", "-o", "%R"], ROOT, self.env).split()[0].rstrip("*")

    def __enter__(self) -> Slurm:
        run(["scontrol", "update", f"PartitionName={self.partition}", "State=DOWN"], ROOT,
            self.env)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel_all()
        subprocess.run(["scontrol", "update", f"PartitionName={self.partition}", "State=UP"],
                       env=self.env, check=False)

    def cancel_all(self) -> None:
        subprocess.run(["scancel", "--user=" + self.env.get("USER", "root")], env=self.env,
                       check=False)
        deadline = time.monotonic() + 60
        while run(["squeue", "-h", "-o", "%i"], ROOT, self.env).strip() and \
                time.monotonic() < deadline:
            time.sleep(0.2)


def _submitit_map(folder: Path, partition: str, points: int, env: dict[str, str]) -> float:
    """submitit's map_array of ``points`` trivial calls, in a fresh process (as a user's
    script would run it), timed until it returns the jobs."""
    script = textwrap.dedent(f'''\
        import os, sys, time
        started = time.perf_counter()
        import submitit
        executor = submitit.AutoExecutor(folder={str(folder)!r}, cluster="slurm")
        executor.update_parameters(slurm_partition={partition!r}, timeout_min=5,
                                   slurm_array_parallelism={points})
        jobs = executor.map_array(abs, range({points}))
        assert len(jobs) == {points}
        print(time.perf_counter() - started)
        ''')
    started = time.perf_counter()
    run([sys.executable, "-c", script], folder.parent, env)
    return time.perf_counter() - started


def submission(slurm: Slurm, points: int, repeat: int) -> list[tuple[str, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("")
        (root / "run.toml").write_text(textwrap.dedent(f'''\
            schema = "runspec/v1"
            name = "peers"
            [recipe]
            command = ["true", "${{sweep.i}}"]
            [env]
            executor = "slurm"
            partition = "{slurm.partition}"
            [sweep.parameters]
            i = {{ range = [0, {points}] }}
            '''))

        def runspec_apply() -> float:
            subprocess.run(["rm", "-rf", str(root / ".runspec"), str(root / "runs")], check=True)
            took = timed(lambda: run([RUNSPEC, "apply", "--yes", "run.toml"], root, slurm.env))
            slurm.cancel_all()
            return took

        def submitit_map() -> float:
            folder = root / "submitit"
            subprocess.run(["rm", "-rf", str(folder)], check=True)
            took = _submitit_map(folder, slurm.partition, points, slurm.env)
            slurm.cancel_all()
            return took

        ours, theirs = interleaved(runspec_apply, submitit_map, repeat)
        rows.append((f"{points:,}-point sweep until Slurm accepted it (runspec: one array; "
                     "submitit: map_array)", ours, theirs))

        # Pending re-apply: runspec's answer is "no changes" after one squeue; submitit has
        # no state, so its user submits again.
        run([RUNSPEC, "apply", "--yes", "run.toml"], root, slurm.env)

        def runspec_again() -> float:
            return timed(lambda: run([RUNSPEC, "apply", "--yes", "run.toml"], root, slurm.env))

        def submitit_again() -> float:
            return _submitit_map(root / "submitit-again", slurm.partition, points, slurm.env)

        ours, theirs = interleaved(runspec_again, submitit_again, repeat)
        rows.append((f"re-apply of the unchanged {points:,}-point sweep, still pending "
                     "(submitit: submits again)", ours, theirs))
        slurm.cancel_all()
    return rows


def local_runs(count: int, repeat: int) -> tuple[str, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("")
        (root / "run.toml").write_text(textwrap.dedent(f'''\
            schema = "runspec/v1"
            name = "local-peers"
            [recipe]
            command = ["true", "${{sweep.i}}"]
            [sweep.parameters]
            i = {{ range = [0, {count}] }}
            '''))
        (root / "app.py").write_text(textwrap.dedent('''\
            import hydra

            @hydra.main(version_base=None, config_path=None)
            def main(cfg):
                pass

            if __name__ == "__main__":
                main()
            '''))

        def runspec_apply() -> float:
            subprocess.run(["rm", "-rf", str(root / ".runspec"), str(root / "runs")], check=True)
            return timed(lambda: run([RUNSPEC, "apply", "--yes", "run.toml"], root))

        def hydra_multirun() -> float:
            subprocess.run(["rm", "-rf", str(root / "multirun")], check=True)
            return timed(lambda: run([sys.executable, "app.py", "-m",
                                      f"+i=range(0,{count})"], root))

        ours, theirs = interleaved(runspec_apply, hydra_multirun, repeat)
    return (f"{count} trivial runs one after another, local (Hydra: basic launcher)",
            ours, theirs)


def cold_start(repeat: int) -> tuple[str, float, float]:
    manifest = "examples/quickstart/run.toml"
    run([RUNSPEC, "validate", manifest], ROOT)  # warm the page cache and .pyc files

    def validate() -> float:
        return timed(lambda: run([RUNSPEC, "validate", manifest], ROOT))

    def import_submitit() -> float:
        return timed(lambda: run([sys.executable, "-c", "import submitit"], ROOT))

    ours, theirs = interleaved(validate, import_submitit, repeat * 3)
    return f"`runspec validate {manifest}` vs `import submitit`, cold", ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--local-runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    versions = {name: importlib.metadata.version(name) for name in
                ("runspec", "submitit", "hydra-core", "hydra-submitit-launcher")}
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    rows = [cold_start(args.repeat), local_runs(args.local_runs, args.repeat)]
    with Slurm() as slurm:
        slurm.cancel_all()
        rows += submission(slurm, args.points, args.repeat)
    width = max(len(r[0]) for r in rows)
    print(f"{'work':<{width}}  {'runspec':>8}  {'peer':>8}  ratio (runspec / peer)")
    for what, ours, theirs in rows:
        print(f"{what:<{width}}  {ours:>7.3f}s  {theirs:>7.3f}s  {ours / theirs:.2f}×")


if __name__ == "__main__":
    main()
