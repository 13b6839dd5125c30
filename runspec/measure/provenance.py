"""Where a result came from: code version, software, hardware, scheduler ids."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def _run(argv: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(directory: Path) -> dict[str, Any] | None:
    """Commit, branch, dirty flag and the sha256 of the uncommitted diff; None outside git."""
    commit = _run(["git", "rev-parse", "HEAD"], directory)
    if commit is None:
        return None
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], directory) or ""
    diff = _run(["git", "diff", "HEAD"], directory) or ""
    return {"commit": commit.strip(),
            "branch": (_run(["git", "rev-parse", "--abbrev-ref", "HEAD"], directory) or "").strip(),
            "dirty": bool(status.strip()),
            "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None}


def _torch_version() -> str | None:
    """torch's version without importing torch or scanning every installed distribution
    (importlib.metadata takes ~70 ms): read torch/version.py where the package lives."""
    import importlib.util
    import re

    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        return None
    found = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", text, re.M)
    return found.group(1) if found else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _gpus() -> list[dict[str, str]]:
    if shutil.which("nvidia-smi") is None:
        return []
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]) or ""
    return [{"model": name.strip(), "driver": driver.strip()}
            for name, _, driver in (line.partition(",") for line in out.splitlines() if line)]


def collect(directory: Path) -> dict[str, Any]:
    from runspec import __version__

    env = os.environ
    torch = _torch_version()
    return {
        "git": git_state(directory),
        "python": platform.python_version(), "runspec": __version__, "torch": torch,
        "cuda": torch.split("+cu", 1)[1] if torch and "+cu" in torch else None,
        "cpu_model": _cpu_model(), "gpus": _gpus(), "executable": sys.executable,
        # SLURM_RESTART_COUNT: a requeued (preempted) job's later start says which start it is
        "slurm": {k: env[k] for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
                                      "SLURM_RESTART_COUNT") if k in env} or None,
        "ray_submission_id": env.get("RAY_JOB_SUBMISSION_ID") or env.get("RUNSPEC_RAY_SUBMISSION_ID"),
    }
