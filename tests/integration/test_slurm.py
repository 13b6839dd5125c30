"""apply on a real single-node Slurm cluster (Debian slurm-wlm), started by tests/services."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import (
    DDP_SCRIPT,
    MARKER_RECIPE,
    adaptive_project,
    invoke,
    starts,
    state_members,
)

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


def ended(job_id: str, within: float = 30) -> list[dict[str, str]]:
    """The job's tasks once Slurm says they have ended. A task writes result.json (which
    apply --wait follows) before its script's cleanup (the EXIT trap) has run; slurmctld
    marks it ended a moment later."""
    deadline = time.monotonic() + within
    tasks = scontrol(job_id)
    while any(t["JobState"] in ("PENDING", "RUNNING", "COMPLETING") for t in tasks) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
        tasks = scontrol(job_id)
    return tasks


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
    tasks = ended(job_id)
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


def test_cancel_one_run_while_apply_wait_follows_the_array(project):
    """`apply --wait` holds the state while it follows the array; `runspec cancel KEY`
    from a second shell reaches it, which scancels just that task and goes on."""
    (project / "run.toml").write_text(manifest(["keep", "stop"], pause=6))
    apply = subprocess.Popen([sys.executable, "-m", "runspec", "apply", "--yes", "--wait",
                              "run.toml"], cwd=project, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(starts(project)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    result = invoke("cancel", "run.toml", "*v=stop*", cwd=project)
    assert result.stdout == "cancelled sl/main/v=stop/c1\n", result.output
    out, err = apply.communicate(timeout=120)
    assert "2 launched, 1 succeeded, 1 cancelled" in out, out + err
    state = members(project)
    assert state["sl/main/v=keep/c1"].status == "succeeded"
    assert state["sl/main/v=stop/c1"].status == "cancelled"
    tasks = {t["ArrayTaskId"]: t["JobState"]
             for t in ended(state["sl/main/v=stop/c1"].handle["job_id"])}
    assert tasks == {"0": "COMPLETED", "1": "CANCELLED"}


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
    member = members(project, "ddp")["ddp/main/default/c1"]
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
        member.handle = {"launch": "runs/sl/main", "tag": tag, "task": member.handle["task"]}
        member.status = "submitted"
    store.write(state)
    status = invoke("status", "run.toml", cwd=project)
    assert status.exit_code == 0, status.output
    recovered = store.read().members
    assert {m.handle["job_id"] for m in recovered.values()} == {job_id}
    # Where the job log is (runspec logs of a task that stopped early) is kept as well.
    assert {m.handle["launch"] for m in recovered.values()} == {"runs/sl/main"}
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


# -- hostile values and secrets on the real cluster --------------------------------------------

CANARY_RECIPE = """\
import json, os, sys
with open(os.path.join(os.environ["RUNSPEC_RUN_DIR"], "seen.json"), "w") as out:
    json.dump({"argv": sys.argv[1:], "payload": os.environ["PAYLOAD"]}, out)
"""


def test_canary_payloads_in_values_create_no_file(project):
    """Values that would run code if a shell evaluated them reach the job as plain data:
    the recipe's arguments and environment, a sweep value (the array's run list) and an
    #SBATCH directive's value (parsed by sbatch itself). Jobs start in the project, where
    each payload would create its CANARY_<x> file."""
    (project / "canary.py").write_text(CANARY_RECIPE)
    args = ["$(touch CANARY_a)", "`touch CANARY_b`", "x; touch CANARY_c", "a\ntouch CANARY_d",
            "'q' \"dq\" $HOME *"]
    payload = "$(touch CANARY_e)\n`touch CANARY_f`; touch CANARY_g 'q' \"dq\""
    mail_user = "a@b $(touch CANARY_h) `touch CANARY_i`;touch CANARY_j 'q' \"dq\""
    sweep = ["$(touch CANARY_k)", "x; touch CANARY_l"]
    (project / "run.toml").write_text(textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "canary"
        [recipe]
        command = ["python", "canary.py", "${{sweep.v}}"]
        args = {json.dumps(args)}
        [resources]
        time = "00:05:00"
        [env]
        executor = "slurm"
        partition = "debug"
        extra_directives = {{ mail-type = "END", mail-user = {json.dumps(mail_user)} }}
        [env.vars]
        PAYLOAD = {json.dumps(payload)}
        [sweep.parameters]
        v = {json.dumps(sweep)}
        '''))
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    state = members(project, "canary")
    seen = [json.loads((project / m.run_dir / "seen.json").read_text()) for m in state.values()]
    assert sorted(s["argv"][0] for s in seen) == sorted(sweep)
    assert [s["argv"][1:] for s in seen] == [args, args]
    assert [s["payload"] for s in seen] == [payload, payload]
    job_id = next(iter(state.values())).handle["job_id"]
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                           check=True).stdout
    assert f"MailUser={mail_user} MailType=END" in shown  # one value, quotes and all
    created = [p for p in project.rglob("CANARY_*") if len(p.name) == len("CANARY_a")]
    assert created == []


def _slurm_dirs() -> list[Path]:
    """slurmctld's StateSaveLocation, slurmd's spool, the log files' directories and the
    job completion file, read from the test cluster's slurm.conf."""
    keys = ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldLogFile", "SlurmdLogFile",
            "JobCompLoc")
    found = {}
    for line in Path(os.environ["SLURM_CONF"]).read_text().splitlines():
        key, _, value = line.partition("=")
        if key in keys:
            found[key] = Path(value.strip())
    assert set(found) == set(keys), found
    dirs = [found["StateSaveLocation"], found["SlurmdSpoolDir"],
            found["SlurmctldLogFile"].parent, found["SlurmdLogFile"].parent, found["JobCompLoc"]]
    return [d for d in dirs if d.exists()]


def _hits(needle: bytes, places: list[Path]) -> list[str]:
    """Files under ``places`` whose bytes contain ``needle``."""
    hits = []
    for place in places:
        for path in [place] if place.is_file() else place.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                    hits.append(str(path))
    return hits


def _command_lines_with(needle: bytes) -> list[str]:
    hits = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if needle in cmdline.read_bytes():
                hits.append(str(cmdline))
    return hits


SECRET_RECIPE = """\
import hashlib, os, sys, time
run_dir = os.environ["RUNSPEC_RUN_DIR"]
with open(os.path.join(run_dir, "token.sha256"), "w") as out:
    out.write(hashlib.sha256(os.environ["TOKEN"].encode()).hexdigest())
while not os.path.exists("go"):  # the test looks at Slurm's records while the job runs
    time.sleep(0.1)
"""


def test_a_secret_never_reaches_slurms_records_or_a_command_line(project, monkeypatch):
    """A canary secret: the job receives it (it writes the value's hash), yet no byte of it
    is in slurmctld's saved job state (the job's environment and script), slurmd's spool,
    the Slurm logs, the project tree (runs/, .runspec/) or any process's command line, and
    each run's secrets file is gone once its job has ended."""
    value = f"canary-{secrets.token_hex(16)}"
    monkeypatch.setenv("RUNSPEC_CANARY_SECRET", value)
    (project / "secret.py").write_text(SECRET_RECIPE)
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "secret"
        [recipe]
        command = ["python", "secret.py", "${sweep.v}"]
        [resources]
        time = "00:05:00"
        [env]
        executor = "slurm"
        partition = "debug"
        [env.secrets]
        TOKEN = { from_env = "RUNSPEC_CANARY_SECRET" }
        [sweep.parameters]
        v = [1, 2]
        '''))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    state = members(project, "secret")
    run_dirs = [project / m.run_dir for m in state.values()]
    expected = hashlib.sha256(value.encode()).hexdigest()
    deadline = time.monotonic() + 120
    while not all((d / "token.sha256").exists() for d in run_dirs) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    places = [*_slurm_dirs(), project]
    needle = value.encode()
    # While the jobs run: Slurm holds their environment (what sbatch sent) and script.
    (job_id,) = {m.handle["job_id"] for m in state.values()}
    environments = list(_slurm_dirs()[0].glob(f"hash.*/job.{job_id}/environment"))
    assert environments, "no saved job environment to look at"
    saved = b"".join(p.read_bytes() for p in environments)
    assert b"PATH=" in saved and b"RUNSPEC_CANARY_SECRET" not in saved
    running = (_hits(needle, places), _command_lines_with(needle))
    delivery = sorted(str(d / "secrets.env") for d in run_dirs)  # while a job runs: its file
    assert [oct(os.stat(f).st_mode & 0o777) for f in delivery] == ["0o600", "0o600"]
    (project / "go").write_text("")
    while any(m.status not in ("succeeded", "failed") for m in members(project, "secret").values()) \
            and time.monotonic() < deadline:
        invoke("status", "run.toml", cwd=project)
        time.sleep(0.5)
    assert {m.status for m in members(project, "secret").values()} == {"succeeded"}
    ended(job_id)  # the job script's cleanup (it removes secrets.env) has run
    assert [(d / "token.sha256").read_text() for d in run_dirs] == [expected, expected]
    assert [d for d in run_dirs if (d / "secrets.env").exists()] == []
    assert (sorted(running[0]), running[1]) == (delivery, [])
    assert _hits(needle, places) == []


# -- campaign semantics inside job arrays: gaps, order, retries; Ray; per-run resources -------


def _record(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / name).read_text())


def _instant(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def _by_plan_order(project: Path, name: str) -> list:
    """The stage's members in plan order: by job id (arrays are submitted in plan order),
    then array index."""
    return sorted(members(project, name).values(),
                  key=lambda m: (int(m.handle["job_id"]), m.handle.get("task", 0)))


def test_gaps_are_idle_time_from_one_runs_end_to_the_next_runs_start_in_plan_order(project):
    """config_gap between runs, cycle_gap where the cycle changes (interleaved: c1 c1 c2 c2),
    measured from each run's result.json end to the next run's started.json start: one task
    at a time, in array index order, each idle gap at least the configured one."""
    (project / "run.toml").write_text(manifest(["a", "b"], pause=1.0, extra=textwrap.dedent('''\
        [campaign]
        cycles = 2
        order = "interleaved"
        config_gap = 2
        cycle_gap = 6
        ''')))
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    runs = _by_plan_order(project, "sl")
    assert [m.key for m in runs] == ["sl/main/v=a/c1", "sl/main/v=b/c1", "sl/main/v=a/c2",
                                     "sl/main/v=b/c2"]
    assert [m.handle["task"] for m in runs] == [0, 1, 2, 3]
    (job_id,) = {m.handle["job_id"] for m in runs}
    assert {t["ArrayTaskThrottle"] for t in scontrol(job_id)} == {"1"}
    spans = [(_instant(_record(project / m.run_dir, "started.json")["started_at"]),
              _instant(_record(project / m.run_dir, "result.json")["ended_at"])) for m in runs]
    idle = [start - spans[i][1] for i, (start, _) in enumerate(spans[1:])]
    print("configured gaps [2, 6, 2] s; measured idle", [round(g, 2) for g in idle])
    for configured, measured in zip([2, 6, 2], idle, strict=True):
        assert configured <= measured < configured + 20, (configured, idle)


RETRY_RECIPE = """\
import sys
marker = sys.argv[1]
with open(marker, "a") as out:  # one line per start
    out.write("start\\n")
with open(marker) as done:
    starts = len(done.read().splitlines())
print("start", starts, flush=True)
sys.exit(0 if starts >= 2 else 3)  # fails on its first start only
"""


@pytest.mark.parametrize(("retries", "status", "count"), [(1, "succeeded", 2), (0, "failed", 1)])
def test_a_failed_run_is_started_again_inside_its_array_task(project, retries, status, count):
    (project / "retry.py").write_text(RETRY_RECIPE)
    (project / "run.toml").write_text(textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "retry"
        [recipe]
        command = ["python", "retry.py", "${{run.dir}}/marker.txt"]
        [resources]
        time = "00:05:00"
        [env]
        executor = "slurm"
        partition = "debug"
        [campaign]
        retries = {retries}
        '''))
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert result.exit_code == (0 if status == "succeeded" else 1), result.output
    (member,) = members(project, "retry").values()
    run_dir = project / member.run_dir
    assert member.status == status
    assert starts(project) == {member.run_dir: count}
    assert _record(run_dir, "result.json")["exit_code"] == (0 if retries else 3)
    if retries:  # the first attempt's records, kept beside the last one's
        assert _record(run_dir, "result.attempt-1.json")["exit_code"] == 3
        assert (run_dir / "started.attempt-1.json").exists()
        assert "starting it again (1/1)" in (run_dir / "stderr.log").read_text()
    else:
        assert not list(run_dir.glob("*.attempt-*.json"))
    state = scontrol(member.handle["job_id"])[0]["JobState"]
    assert state == ("COMPLETED" if status == "succeeded" else "FAILED")


@pytest.mark.parametrize("how", ["runspec cancel", "SIGTERM to the step"])
def test_a_cancelled_run_is_not_started_again(project, how):
    """``runspec cancel`` ends the whole job; a SIGTERM to the run's step alone (scancel
    --signal, as a preemption notice does) leaves the job script running, which must not
    take the run's exit 143 for a failure to retry."""
    (project / "run.toml").write_text(manifest(["slow"], pause=120, extra="[campaign]\nretries = 2\n"))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    (member,) = members(project).values()
    run_dir, job_id = project / member.run_dir, member.handle["job_id"]
    deadline = time.monotonic() + 60
    # The recipe itself, not just the job script, must have started (marker.txt, written
    # after Python starts), or a signal before it would leave nothing to count.
    while not (run_dir / "marker.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if how == "runspec cancel":
        assert invoke("cancel", "run.toml", cwd=project).exit_code == 0
    else:
        subprocess.run(["scancel", "--signal=TERM", job_id], check=True)
    while scontrol(job_id)[0]["JobState"] in ("RUNNING", "COMPLETING") and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # a retry would have started by now
    assert scontrol(job_id)[0]["JobState"] == ("CANCELLED" if how == "runspec cancel"
                                               else "FAILED")
    assert starts(project) == {member.run_dir: 1}
    assert not list(run_dir.glob("*.attempt-*.json"))


RAY_RECIPE = """\
import json, os
import ray

ray.init(address=os.environ["RAY_ADDRESS"])  # the cluster the job started


@ray.remote
def square(x):
    return x * x


total = sum(ray.get([square.remote(i) for i in range(10)]))
with open(os.environ["RUNSPEC_METRICS"], "a") as out:
    out.write(json.dumps({"sum": total, "nodes": sum(n["Alive"] for n in ray.nodes()),
                          "cpus": ray.cluster_resources().get("CPU", 0)}) + "\\n")
print("joined", os.environ["RAY_ADDRESS"], flush=True)
"""


def test_launch_ray_starts_a_ray_cluster_inside_the_job_for_the_run(project):
    """One node here, so the head only: the run's ray.init() joins the job's cluster (the
    node's two CPUs, given to the task), runs tasks, and the cluster is gone afterwards."""
    pytest.importorskip("ray")
    (project / "ray_recipe.py").write_text(RAY_RECIPE)
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "rayjob"
        [recipe]
        script = "ray_recipe.py"
        launch = "ray"
        [resources]
        cpus_per_task = 2
        time = "00:05:00"
        [env]
        executor = "slurm"
        partition = "debug"
        '''))
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    (member,) = members(project, "rayjob").values()
    run_dir = project / member.run_dir
    assert result.exit_code == 0, (result.output, (run_dir / "stderr.log").read_text())
    outcome = _record(run_dir, "result.json")
    assert outcome["metrics"] == {"sum": 285.0, "nodes": 1.0, "cpus": 2.0}
    assert "runspec: Ray cluster of 1 node(s) at " in (run_dir / "stdout.log").read_text()
    (task,) = ended(member.handle["job_id"])  # its EXIT trap has stopped Ray by then
    assert (task["NumNodes"], task["NumTasks"], task["NumCPUs"]) == ("1", "1", "2")
    job_id = member.handle["job_id"]
    assert not Path(f"/tmp/runspec-ray-{job_id}").exists()
    assert _command_lines_with(f"/tmp/runspec-ray-{job_id}".encode()) == []


def test_runs_of_different_resources_get_their_own_arrays_in_plan_order(project):
    """A sweep over resources.cpus_per_task: one job per shape, each with its own CPUs;
    with a gap the second waits for the first (afterany), so the campaign order holds."""
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "shapes"
        [recipe]
        command = ["python", "recipe.py", "${run.dir}/marker.txt", "x", "1"]
        [resources]
        time = "00:05:00"
        [env]
        executor = "slurm"
        partition = "debug"
        [sweep.parameters]
        "resources.cpus_per_task" = [2, 1]
        [campaign]
        config_gap = 2
        '''))
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    runs = _by_plan_order(project, "shapes")
    assert [m.key for m in runs] == ["shapes/main/resources.cpus_per_task=2/c1",
                                     "shapes/main/resources.cpus_per_task=1/c1"]
    assert len({m.handle["job_id"] for m in runs}) == 2
    shown = [scontrol(m.handle["job_id"])[0] for m in runs]
    assert [(s["NumCPUs"], s["NumTasks"], s["CPUs/Task"]) for s in shown] == [
        ("2", "1", "2"), ("1", "1", "1")]
    first_end = _instant(_record(project / runs[0].run_dir, "result.json")["ended_at"])
    second_start = _instant(_record(project / runs[1].run_dir, "started.json")["started_at"])
    print("configured gap 2 s across arrays; measured idle", round(second_start - first_end, 2))
    assert 2 <= second_start - first_end < 22


def test_adaptive_cycles_submit_each_added_cycle_as_its_own_job(project):
    """campaign.until on Slurm: apply follows the minimum cycles (one array), then submits
    each added cycle as a job of its own once the results call for it, without --wait."""
    adaptive_project(project, "sl", '[resources]\ncpus_per_task = 1\ntime = "00:05:00"\n'
                     '[env]\nexecutor = "slurm"\npartition = "debug"')
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    state = members(project)
    assert sorted(state) == [f"sl/main/default/c{n}" for n in range(1, 7)]
    assert all(m.status == "succeeded" for m in state.values())
    jobs = {m.handle["job_id"].split("_")[0] for m in state.values()}
    assert len(jobs) == 4  # the first 3 cycles as one array, then c4, c5, c6 one by one
    assert "every point has score's 95% CI within ±0.07 of its mean (6 cycles)" in result.output


def test_apply_writes_one_run_table_and_each_task_writes_its_own_run_directory(project):
    """While the array is pending there is one table and no run directory; status and
    logs say the runs are queued; each task writes its directory (with job.yaml's
    provenance) when it starts."""
    subprocess.run(["scontrol", "update", "PartitionName=debug", "State=DOWN"], check=True)
    try:
        (project / "run.toml").write_text(manifest(["a", "b", "c"]))
        assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
        # Two writes: the intents before sbatch; the job's handles with the inputs read.
        state = StateStore(str(project / ".runspec/state/sl.json"), "sl").read()
        assert state.serial == 2 and state.fingerprint, state
        assert {m.handle["job_id"] for m in state.members.values()} != {None}
        stage = project / "runs/sl/main"
        assert [p.name for p in stage.glob("runs-*.table")] and \
            not [p for p in stage.iterdir() if p.is_dir()]
        status = invoke("status", "run.toml", cwd=project)
        assert status.exit_code == 0 and "sl: 3 submitted" in status.stdout, status.output
        logs = invoke("logs", "run.toml", "sl/main/v=a/c1", cwd=project)
        assert logs.exit_code == 0 and logs.output == "", logs.output  # no output yet
    finally:
        subprocess.run(["scontrol", "update", "PartitionName=debug", "State=UP"], check=False)
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    assert {m.status for m in members(project).values()} == {"succeeded"}
    for value in "abc":
        run_dir = stage / f"v={value}/c1"
        assert (run_dir / "marker.txt").exists() and (run_dir / "launch.sh").exists()
        assert "launched_at:" in (run_dir / "job.yaml").read_text(encoding="utf-8")


def test_a_task_that_cannot_write_its_run_directory_fails_and_logs_say_why(project):
    """Its run table gone before it started (a fault made by hand): the run fails, and
    `runspec logs` shows the job's own log, which says what stopped it."""
    subprocess.run(["scontrol", "update", "PartitionName=debug", "State=DOWN"], check=True)
    try:
        (project / "run.toml").write_text(manifest(["a"]))
        assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
        (table,) = (project / "runs/sl/main").glob("runs-*.table")
        table.unlink()
        runspec = Path(sys.executable).with_name("runspec")  # following from before it starts
        follower = subprocess.Popen([str(runspec), "logs", "--follow", "run.toml",
                                     "sl/main/v=a/c1"], cwd=project, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
    finally:
        subprocess.run(["scontrol", "update", "PartitionName=debug", "State=UP"], check=False)
    followed, _ = follower.communicate(timeout=120)
    assert follower.returncode == 0 and "cannot write this task's run directory" in followed
    assert "sl: 1 failed" in invoke("status", "run.toml", cwd=project).stdout
    logs = invoke("logs", "run.toml", "sl/main/v=a/c1", cwd=project)
    assert logs.exit_code == 0, logs.output
    assert f"cannot write this task's run directory from runs/sl/main/{table.name}: No such " \
        "file or directory" in logs.stdout


def test_reapplying_while_jobs_are_pending_refreshes_once_and_changes_nothing(project):
    """The partition is down, so the array is accepted and stays pending: a re-apply finds
    no changes from the recorded inputs and one refresh, and says what is still queued."""
    subprocess.run(["scontrol", "update", "PartitionName=debug", "State=DOWN"], check=True)
    try:
        (project / "run.toml").write_text(manifest(["a", "b", "c"]))
        assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
        again = invoke("apply", "--yes", "run.toml", cwd=project)
        assert again.stdout == ("No changes. Everything planned was applied; nothing to "
                                "launch (3 runs still queued or running).\n"), again.output
        assert {m.status for m in members(project).values()} == {"submitted"}
    finally:
        subprocess.run(["scancel", "--name=sl-main"], check=False)
        subprocess.run(["scontrol", "update", "PartitionName=debug", "State=UP"], check=False)
    # Cancelled behind runspec's back: the next apply sees it and reruns, not "No changes".
    deadline = time.monotonic() + 30
    while subprocess.run(["squeue", "-h", "-n", "sl-main"], capture_output=True,
                         text=True).stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    rerun = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert "3 launched, 3 succeeded" in rerun.stdout, rerun.output
