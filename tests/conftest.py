"""Shared test helpers: run the real CLI in-process from a chosen directory."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from runspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@contextmanager
def chdir(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def invoke(*args: str, cwd: Path | None = None) -> Result:
    """``runspec ARGS`` in-process; messages use paths relative to ``cwd``."""
    with chdir(cwd or Path.cwd()):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def cli():
    return invoke


@pytest.fixture(autouse=True)
def artifact_registry(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own artifact registry: nothing is published into ~/.runspec."""
    root = tmp_path_factory.mktemp("artifacts")
    monkeypatch.setenv("RUNSPEC_ARTIFACTS", str(root))
    return root


class TextSnapshotExtension(SingleFileSnapshotExtension):
    """One plain .txt file per snapshot: exactly what a person sees, readable in a diff."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"


class JsonTextSnapshotExtension(SingleFileSnapshotExtension):
    """The exact JSON text a command printed, as a .json file."""

    _write_mode = WriteMode.TEXT
    file_extension = "json"


@pytest.fixture
def text_snapshot(snapshot):
    return snapshot.use_extension(TextSnapshotExtension)


# -- recipes and state readers shared by the apply tests (local, Slurm, Ray) --------------

MARKER_RECIPE = """\
import os, sys, time
marker, value, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(marker, "a") as handle:  # one line per start: runs are counted, not assumed
    handle.write(value + "\\n")
time.sleep(pause)
print("ran", value)
sys.exit(1 if value == "bad" and not os.path.exists("fixed") else 0)
"""

DDP_SCRIPT = """\
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
if rank == 0:
    print(f"world={world} sum={value.item()}", flush=True)
dist.destroy_process_group()
"""


ADAPTIVE_SCORE = """\
import json, os
cycle = int(os.environ["RUNSPEC_RUN_KEY"].rsplit("/c", 1)[1])
value = [10, 11, 9, 10, 10, 10][cycle - 1]
open(os.environ["RUNSPEC_METRICS"], "a").write(json.dumps({"score": value}) + "\\n")
"""
"""A score per cycle whose 95% CI reaches ±7% of its mean at the 6th cycle (see
tests/test_adaptive.py): the adaptive campaigns of every backend use it."""


def adaptive_project(project: Path, name: str, env: str) -> None:
    """score.py and a run.toml on ``env`` (TOML lines): 3 cycles, then more until the
    score's CI is within ±7%, at most 6."""
    (project / "score.py").write_text(ADAPTIVE_SCORE)
    (project / "run.toml").write_text(
        f'schema = "runspec/v1"\nname = "{name}"\n[recipe]\ncommand = ["python", "score.py"]\n'
        f'{env}\n[measure]\nmetrics = ["score"]\n[campaign]\ncycles = 3\n'
        'until = { metric = "score", rel_ci = 0.07, max_cycles = 6 }\n')


def starts(project: Path) -> dict[str, int]:
    """Run directory → how many times the marker recipe started there."""
    return {str(p.parent.relative_to(project)): len(p.read_text().splitlines())
            for p in project.glob("runs/**/marker.txt")}


def state_members(project: Path, name: str):
    from runspec.state.store import StateStore

    return StateStore(str(project / f".runspec/state/{name}.json"), name).read().members


def wait_for_runs(project: Path, name: str, done, within: float):
    """``(status output, members)`` once ``done(members)`` holds or ``within`` s passed,
    asking ``runspec status`` (which refreshes) each second."""
    import time

    deadline = time.monotonic() + within
    while True:
        result = invoke("status", "run.toml", cwd=project)
        state = state_members(project, name)
        if done(state) or time.monotonic() > deadline:
            return result, state
        time.sleep(1)


# -- real services for the integration tests (tests/integration/, markers slurm and ray) -----
# A single-node Slurm and a Ray head on 127.0.0.1, started by the project's own scripts
# (tests/services/) the first time a test needs them, stopped when the session ends.

SERVICES = Path(__file__).resolve().parent / "services"


def _service(name: str) -> dict[str, str]:
    script = SERVICES / f"{name}.sh"
    started = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True,
                             timeout=600, check=False)
    if started.returncode != 0:
        pytest.fail(f"{name}.sh start failed:\n{started.stdout}\n{started.stderr}")
    exported = subprocess.run(["bash", str(script), "env"], capture_output=True, text=True,
                              timeout=60, check=True).stdout
    env = {}
    for line in exported.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(scope="session")
def slurm():
    env = _service("slurm")
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    subprocess.run(["bash", str(SERVICES / "slurm.sh"), "stop"], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def ray_head():
    env = _service("ray")
    yield env
    subprocess.run(["bash", str(SERVICES / "ray.sh"), "stop"], capture_output=True, timeout=120)


def scratch_copy(destination: Path) -> Path:
    """A scratch copy of this checkout (tracked and new files, not ignored ones), with the
    virtualenv linked in: the examples and docs run there, never in the checkout."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    (destination / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return destination


@pytest.fixture(scope="session")
def sshd():
    """A real OpenSSH server on 127.0.0.1 (tests/services/sshd.sh): the "login node".
    The env has RUNSPEC_SSH_HOST/PORT/USER/IDENTITY/KNOWN_HOSTS/REMOTE_DIR."""
    env = _service("sshd")
    yield env
    subprocess.run(["bash", str(SERVICES / "sshd.sh"), "stop"], capture_output=True, timeout=120)
