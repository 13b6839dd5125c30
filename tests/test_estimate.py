"""Plan-time estimates: a plan of a manifest that ran before says what its runs will take
(wall time, core-hours, GPU-hours, energy) from the earlier results, and says nothing
without them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import invoke

from runspec.plan.estimate import amount, duration, energy
from runspec.plan.pipeline import make_plan
from runspec.state.history import History, history_location
from runspec.state.store import Member

CORES = 3   # resources.cpus_per_task of the local manifest: core-hours count them


def local_manifest(values: list[str], argument: str = "one", parallel: int = 1,
                   extra: str = "") -> str:
    return textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "est"
        [recipe]
        command = ["python", "-c", "import time; time.sleep(0.05)", "{argument}", "${{sweep.v}}"]
        [resources]
        cpus_per_task = {CORES}
        [sweep.parameters]
        v = {json.dumps(values)}
        [campaign]
        max_parallel = {parallel}
        ''') + extra


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


def apply(project: Path) -> None:
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output


def plan(project: Path) -> tuple[str, dict]:
    text = invoke("plan", "run.toml", cwd=project)
    data = invoke("plan", "--json", "run.toml", cwd=project)
    assert text.exit_code == 0 and data.exit_code == 0, text.output + data.output
    return text.stdout, json.loads(data.stdout)


def walls(project: Path, name: str = "est") -> dict[str, list[float]]:
    """Sweep value → the wall times of its earlier successful results: the current runs'
    result.json files and the results the history kept."""
    found: dict[str, list[float]] = {}
    for path in project.glob(f"runs/{name}/main/*/c1/result.json"):
        result = json.loads(path.read_text())
        found.setdefault(path.parent.parent.name.removeprefix("v="), []).append(result["wall_s"])
    location = history_location(str(project / f".runspec/state/{name}.json"))
    for record in History(location).read():
        if record.result and record.result["exit_code"] == 0:
            found.setdefault(str(record.point["v"]), []).append(record.result["wall_s"])
    return found


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_no_history_no_estimate(project):
    (project / "run.toml").write_text(local_manifest(["a", "b"]))
    text, data = plan(project)
    assert "Estimate" not in text and "estimate" not in data
    apply(project)
    text, data = plan(project)  # nothing to submit: nothing to estimate
    assert "No changes." in text and "Estimate" not in text and "estimate" not in data


def test_second_plan_estimates_from_the_first_apply_then_from_the_history(project):
    (project / "run.toml").write_text(local_manifest(["a", "b"]))
    apply(project)
    # An edited command argument replaces both runs; a new sweep value is created.
    (project / "run.toml").write_text(local_manifest(["a", "b", "c"], argument="two"))
    earlier = walls(project)
    assert {k: len(v) for k, v in earlier.items()} == {"a": 1, "b": 1}
    expected = earlier["a"][0] + earlier["b"][0] + mean(earlier["a"] + earlier["b"])
    text, data = plan(project)

    estimate = data["estimate"]
    stage, total = estimate["stages"]["main"], estimate["total"]
    assert estimate["basis_runs"] == 2 == total["basis_runs"]
    assert (stage["runs"], stage["estimated_runs"], stage["from_same_point"],
            stage["unestimated_runs"]) == (3, 3, 2, 0)
    assert stage["run_time_s"] == pytest.approx(expected, rel=1e-4)
    assert stage["parallel"] == 1 and stage["wall_s"] == pytest.approx(expected, rel=1e-4)
    assert stage["core_hours"] == pytest.approx(expected * CORES / 3600, rel=1e-4)
    assert stage["gpu_hours"] == 0
    assert stage["energy_kwh"] is None and stage["energy_runs"] == 0
    assert total["wall_s"] == pytest.approx(expected, rel=1e-4)

    assert "Estimate from 2 earlier results" in text
    line = next(line for line in text.splitlines() if line.startswith("  main:"))
    assert line == (f"  main: ~{duration(expected)} one run at a time, "
                    f"{amount(expected * CORES / 3600)} core-h")
    assert "Energy: no earlier result measured it" in text
    # After the stage list and its launches, right before the summary.
    lines = text.splitlines()
    assert lines.index("Stage main: 3 local processes") < lines.index(line) \
        < next(i for i, x in enumerate(lines) if x.startswith("Plan: "))

    apply(project)
    (project / "run.toml").write_text(local_manifest(["a", "b", "c"], argument="three"))
    earlier = walls(project)  # the replaced runs are in the history now, with their results
    assert {k: len(v) for k, v in earlier.items()} == {"a": 2, "b": 2, "c": 1}
    text, data = plan(project)
    stage = data["estimate"]["stages"]["main"]
    assert data["estimate"]["basis_runs"] == 5 and stage["from_same_point"] == 3
    assert stage["run_time_s"] == pytest.approx(sum(mean(v) for v in earlier.values()),
                                                rel=1e-4)
    assert "Estimate from 5 earlier results" in text
    # apply shows the plan it acts on with the same estimate, before anything starts
    shown = invoke("apply", "--yes", "run.toml", cwd=project)
    assert "Estimate from 5 earlier results" in shown.output, shown.output
    assert shown.output.index("Estimate from") < shown.output.index("started ")


def test_runs_at_once_divide_the_wall_time(project):
    (project / "run.toml").write_text(local_manifest(["a", "b", "c", "d"], parallel=2))
    apply(project)
    (project / "run.toml").write_text(local_manifest(["a", "b", "c", "d"], argument="two",
                                                     parallel=2))
    earlier = walls(project)
    run_time = sum(mean(v) for v in earlier.values())
    wall = max(run_time / 2, max(mean(v) for v in earlier.values()))
    text, data = plan(project)
    stage = data["estimate"]["stages"]["main"]
    assert stage["parallel"] == 2
    assert stage["wall_s"] == pytest.approx(wall, rel=1e-4)
    assert stage["run_time_s"] == pytest.approx(run_time, rel=1e-4)
    assert f"~{duration(wall)} with 2 at once ({duration(run_time)} run time)" in text


def test_failed_results_are_no_basis(project):
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "est"
        [recipe]
        command = ["python", "-c", "import sys; sys.exit(int(sys.argv[1]))", "${sweep.code}"]
        [sweep.parameters]
        code = [0, 1]
        '''))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 1
    text, data = plan(project)  # the failed run is rerun: estimated from the stage's success
    success = json.loads((project / "runs/est/main/code=0/c1/result.json").read_text())
    stage = data["estimate"]["stages"]["main"]
    assert data["summary"]["rerun"] == 1
    assert (stage["basis_runs"], stage["from_same_point"]) == (1, 0)
    assert stage["run_time_s"] == pytest.approx(success["wall_s"], rel=1e-4)
    assert "Estimate from 1 earlier result " in text


# -- a state recorded through the store's API, with result files written by the test -------

SLURM_MANIFEST = '''\
schema = "runspec/v1"
name = "big"
[stages.train.env]
executor = "slurm"
partition = "debug"
[stages.train.recipe]
command = ["python", "-c", "print(1)", "${sweep.v}"]
[stages.train.sweep.parameters]
v = [1, 2, 3]
[stages.train.resources]
nodes = 2
procs_per_node = 4
gpus_per_node = 4
cpus_per_task = 3
[stages.eval]
needs = ["train"]
[stages.eval.recipe]
command = ["true"]
[stages.eval.env]
executor = "slurm"
partition = "debug"
'''


def fake_codecarbon(kwh: float) -> dict:
    """A FAKE of the energy record codecarbon makes (see docs/measurement.md), so the test
    does not depend on codecarbon or on this machine's power readings."""
    return {"country": "USA", "tracker": "codecarbon.OfflineEmissionsTracker",
            "tracking_mode": "machine", "power_interval_s": 1.0, "overhead_s": 1.9,
            "energy_kwh": kwh, "cpu_kwh": kwh / 2, "ram_kwh": kwh / 2, "gpu_kwh": None,
            "method": {"cpu": "rapl", "gpu": "nvml", "ram": "estimate"}, "error": None}


def record(path: Path, walls: dict[str, float], energies: dict[str, float] | None = None,
           stages: tuple[str, ...] = ("train",)) -> None:
    """Record every planned run of ``stages`` as applied with an older request, each with
    a result.json of the given wall time (by sweep value)."""
    result = make_plan(path)
    for change in result.changes.to_submit():
        run = change.run
        assert run is not None
        if run.stage not in stages:
            continue
        value = str(run.point.get("v"))
        run_dir = path.parent / run.run_dir
        run_dir.mkdir(parents=True)
        data = {"format": 1, "exit_code": 0, "host": "h", "started_at": f"t-{value}",
                "ended_at": "e", "wall_s": walls[value]}
        if energies is not None:
            data["energy"] = fake_codecarbon(energies[value])
        (run_dir / "result.json").write_text(json.dumps(data))
        result.state.members[run.key] = Member(
            run.key, run.stage, "older", "succeeded", {"job_id": "1"},
            {**run.request, "argv": ["older"]}, point=run.point, slot=run.slot,
            run_dir=run.run_dir, backend="slurm")
    result.store.write(result.state)


def test_scheduler_stages_gpus_energy_and_stages_without_results(project):
    path = project / "run.toml"
    path.write_text(SLURM_MANIFEST)
    walls_s = {"1": 600.0, "2": 1200.0, "3": 1800.0}
    kwh = {"1": 0.5, "2": 1.0, "3": 1.5}
    record(path, walls_s, kwh)
    text, data = plan(project)
    estimate = data["estimate"]
    train, total = estimate["stages"]["train"], estimate["total"]
    hours = sum(walls_s.values()) / 3600
    assert train["parallel"] is None and train["wall_s"] is None  # Slurm decides
    assert train["core_hours"] == pytest.approx(hours * 2 * 4 * 3)
    assert train["gpu_hours"] == pytest.approx(hours * 2 * 4)
    assert train["energy_kwh"] == pytest.approx(sum(kwh.values()))
    assert train["energy_methods"] == {"cpu": ["rapl"], "gpu": ["nvml"], "ram": ["estimate"]}
    assert estimate["stages"]["eval"]["unestimated_runs"] == 1
    assert total["estimated_runs"] == 3 and total["unestimated_runs"] == 1
    assert total["wall_s"] is None
    assert ("  train: 1 h run time (slurm decides how many run at once), 24 core-h, "
            "8.0 GPU-h, 3.0 kWh") in text
    assert "  Energy measured by codecarbon: cpu=rapl, gpu=nvml, ram=estimate" in text
    assert "  No earlier results for 1 run of stage eval: not counted above." in text


def test_a_new_point_takes_its_stage_mean(project):
    path = project / "run.toml"
    path.write_text(SLURM_MANIFEST)
    record(path, {"1": 100.0, "2": 200.0, "3": 300.0}, {"1": 0.001, "2": 0.002, "3": 0.003})
    path.write_text(SLURM_MANIFEST.replace("v = [1, 2, 3]", "v = [1, 2, 3, 4]"))
    _, data = plan(project)
    train = data["estimate"]["stages"]["train"]
    assert (train["estimated_runs"], train["from_same_point"], train["basis_runs"]) == (4, 3, 3)
    assert train["run_time_s"] == pytest.approx(600 + 200)
    assert train["energy_kwh"] == pytest.approx(0.006 + 0.002)


def test_damaged_results_are_skipped(project):
    path = project / "run.toml"
    path.write_text(SLURM_MANIFEST)
    record(path, {"1": 60.0, "2": 120.0, "3": 180.0})
    (project / "runs/big/train/v=1/c1/result.json").write_text("{not json")
    damaged = project / "runs/big/train/v=2/c1/result.json"
    damaged.write_text(json.dumps({**json.loads(damaged.read_text()), "wall_s": "long"}))
    _, data = plan(project)
    train = data["estimate"]["stages"]["train"]
    assert (train["basis_runs"], train["from_same_point"]) == (1, 1)
    assert train["run_time_s"] == pytest.approx(3 * 180)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.42, "0.4 s"), (12.4, "12 s"), (250, "4 min 10 s"), (7500, "2 h 5 min"), (3600, "1 h")])
def test_durations_read_as_people_write_them(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(("kwh", "text"), [
    (2.5, "2.5 kWh"), (0.0032, "3.2 Wh"), (0.000_001_3, "1.3 mWh"), (0.14, "140 Wh")])
def test_energy_in_readable_units(kwh, text):
    assert energy(kwh) == text
