"""apply on a real single-node Slurm cluster (Debian slurm-wlm), started by tests/services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import DDP_SCRIPT, MARKER_RECIPE, invoke, starts, state_members

from runspec.state.store import StateStore

pytestmark = pytest.mark.slurm

RECIPE = MARKER_RECIPE


def manifest(values, pause=0.0, extra=""):
    return textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "sl"
        [recipe]
        command = ["python", "recipe.py", "${{run.dir}}/marker.txt", "${{sweep.v}}", "{pause}"]
        [resources]
        cpus_per_task = 1
        time = "00:05:00"
        [env]
        executor = "slurm"
        partition = "debug"
        [sweep.parameters]
        v = {json.dumps(values)}
        ''') + extra


@pytest.fixture
def project(tmp_path: Path, slurm) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "recipe.py").write_text(RECIPE)
    return tmp_path


def members(project: Path, name: str = "sl"):
    return state_members(project, name)



def scontrol(job_id: str) -> list[dict[str, str]]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                         text=True, check=True).stdout
    return [dict(item.split("=", 1) for item in line.split() if "=" in item)
            for line in out.splitlines()]


def test_a_sweep_is_one_array_job_and_reapply_submits_nothing(project):
    (project / "run.toml").write_text(manifest(["a", "b", "c", "d"]))
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    assert "Apply complete: 4 launched, 4 succeeded." in result.stdout
    state = members(project)
    job_ids = {m.handle["job_id"] for m in state.values()}
    assert len(job_ids) == 1, job_ids  # ONE sbatch: an array
    (job_id,) = job_ids
    tasks = scontrol(job_id)
    assert sorted(int(t["ArrayTaskId"]) for t in tasks) == [0, 1, 2, 3]
    assert {t["ArrayJobId"] for t in tasks} == {job_id}
    assert {t["JobState"] for t in tasks} == {"COMPLETED"}
    assert sorted(starts(project).values()) == [1, 1, 1, 1]
    again = invoke("apply", "--yes", "run.toml", cwd=project)
    assert again.stdout.startswith("No changes.")
    assert {m.handle["job_id"] for m in members(project).values()} == {job_id}


def test_a_failing_member_is_recorded_and_only_it_is_rerun(project):
    (project / "run.toml").write_text(manifest(["good", "bad"]))
    first = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert first.exit_code == 1
    assert members(project)["sl/main/v=bad/c1"].status == "failed"
    (project / "fixed").write_text("")
    second = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert second.exit_code == 0, second.output
    assert "1 launched, 1 succeeded" in second.stdout
    assert starts(project) == {"runs/sl/main/v=good/c1": 1, "runs/sl/main/v=bad/c1": 2}


def test_cancel_a_running_job(project):
    (project / "run.toml").write_text(manifest(["slow"], pause=120))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    deadline = time.monotonic() + 60
    while not starts(project) and time.monotonic() < deadline:
        time.sleep(0.2)
    status = invoke("status", "run.toml", cwd=project)
    assert "running" in status.stdout
    result = invoke("cancel", "run.toml", cwd=project)
    assert result.stdout == "cancelled sl/main/v=slow/c1\n"
    member = members(project)["sl/main/v=slow/c1"]
    assert member.status == "cancelled"
    deadline = time.monotonic() + 60
    while scontrol(member.handle["job_id"])[0]["JobState"] not in ("CANCELLED",) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert scontrol(member.handle["job_id"])[0]["JobState"] == "CANCELLED"


def test_a_job_slurm_rejects_is_a_clear_error_and_nothing_is_recorded(project):
    (project / "run.toml").write_text(manifest(["a"]).replace("cpus_per_task = 1",
                                                              "cpus_per_task = 512"))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 1
    assert "sbatch failed:" in result.output
    assert "More processors requested than permitted" in result.output
    assert result.output.count("More processors requested") == 1
    assert members(project) == {}


def test_no_sbatch_on_path_is_a_clear_error(project, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    (project / "run.toml").write_text(manifest(["a"]))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 1
    assert "sbatch not found on PATH" in result.output
    assert members(project) == {}


def test_a_controller_that_is_down_is_a_clear_error(project, tmp_path, monkeypatch):
    conf = Path(os.environ["SLURM_CONF"]).read_text()
    dead = tmp_path / "dead-slurm.conf"
    port = conf.split("SlurmctldPort=")[1].split()[0] if "SlurmctldPort=" in conf else "6817"
    dead.write_text(conf.replace(f"SlurmctldPort={port}", "SlurmctldPort=1")
                    if "SlurmctldPort=" in conf else conf + "\nSlurmctldPort=1\n")
    monkeypatch.setenv("SLURM_CONF", str(dead))
    (project / "run.toml").write_text(manifest(["a"]))
    started = time.monotonic()
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 1
    assert "sbatch" in result.output and ("controller" in result.output.lower()
                                          or "did not answer" in result.output)
    assert time.monotonic() - started < 90
    assert members(project) == {}


def test_torchrun_ddp_with_two_processes_inside_a_slurm_job(project):
    pytest.importorskip("torch", reason="the torch extra is installed by `make test`")
    (project / "ddp.py").write_text(DDP)
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "ddp"
        [recipe]
        script = "ddp.py"
        launch = "torchrun"
        [resources]
        procs_per_node = 2
        time = "00:05:00"
        [env]
        executor = "slurm"
        [env.vars]
        GLOO_SOCKET_IFNAME = "lo"
        OMP_NUM_THREADS = "1"
        '''))
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    member = members(project, "ddp")["ddp/main/_/c1"]
    out = (project / member.run_dir / "stdout.log").read_text()
    assert "world=2 sum=3.0" in out


DDP = DDP_SCRIPT


def test_a_submission_whose_answer_was_lost_is_found_again_by_its_tag(project):
    """A crash between sbatch answering and the state being written leaves only the intent;
    refreshing finds the job by its runspec:<tag> comment instead of submitting it again."""
    (project / "run.toml").write_text(manifest(["a", "b"], pause=60))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    state_file = project / ".runspec/state/sl.json"
    store = StateStore(str(state_file), "sl")
    state = store.read()
    job_id = next(iter(state.members.values())).handle["job_id"]
    queue = subprocess.run(["squeue", "-h", "-o", "%F %k"], capture_output=True, text=True,
                           check=True).stdout
    tag = next(line.split()[1] for line in queue.splitlines()
               if line.split()[0] == job_id).removeprefix("runspec:")
    for member in state.members.values():  # what a crash right after sbatch leaves behind
        member.handle = {"launch": "x", "tag": tag, "task": member.handle["task"]}
        member.status = "submitted"
    store.write(state)
    status = invoke("status", "run.toml", cwd=project)
    assert status.exit_code == 0, status.output
    recovered = store.read().members
    assert {m.handle["job_id"] for m in recovered.values()} == {job_id}
    assert sorted(m.handle["task"] for m in recovered.values()) == [0, 1]
    assert invoke("plan", "run.toml", cwd=project).stdout.count("No changes.") == 1
    invoke("cancel", "run.toml", cwd=project)


def test_outputs_of_a_job_that_ends_after_apply_returned_are_registered_by_status(
        project, artifact_registry):
    from runspec.artifacts.registry import Registry

    (project / "run.toml").write_text(manifest(["a"]).replace(
        'command = ["python", "recipe.py", "${run.dir}/marker.txt", "${sweep.v}", "0.0"]',
        'command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1])", "${run.dir}/out"]')
        + '[outputs.artifacts.result]\npath = "${run.dir}/out"\n')
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0  # returns at once
    member = members(project)["sl/main/v=a/c1"]
    deadline = time.monotonic() + 60
    while not (project / member.run_dir / "result.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    status = invoke("status", "run.toml", cwd=project)
    assert "succeeded" in status.stdout, status.output
    version = Registry(artifact_registry).get("result", 1)
    assert version.metadata["producer"] == "sl/main/v=a/c1"
    assert members(project)["sl/main/v=a/c1"].registered


def test_a_requeued_job_is_not_recorded_as_cancelled(project):
    """A preemption or node failure that Slurm requeues sends the run SIGTERM, so the wrapper
    writes a signal-ended result.json; the scheduler, not that file, says the job goes on."""
    (project / "run.toml").write_text(manifest(["a"], pause=60).replace(
        '[env]\nexecutor = "slurm"', '[env]\nexecutor = "slurm"\nextra_directives = { requeue = true }'))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    member = members(project)["sl/main/v=a/c1"]
    run_dir = project / member.run_dir
    deadline = time.monotonic() + 60
    while not (run_dir / "started.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", member.handle["job_id"]], check=True)
    while not (run_dir / "result.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert json.loads((run_dir / "result.json").read_text())["exit_code"] in (143, 130, 137)
    status = invoke("status", "--json", "run.toml", cwd=project)
    (row,) = json.loads(status.stdout)
    assert row["status"] in ("submitted", "running"), row
    invoke("cancel", "run.toml", cwd=project)
