"""apply on the local backend, for real: processes, state, reruns, crashes, locks, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import DDP_SCRIPT, MARKER_RECIPE, invoke, starts

from runspec.state.store import StateStore

RECIPE = MARKER_RECIPE


def manifest(values: list[str], pause: float = 0.0, cycles: int = 1, parallel: int = 1,
             extra: str = "") -> str:
    return textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "loc"
        [recipe]
        command = ["python", "recipe.py", "${{run.dir}}/marker.txt", "${{sweep.v}}", "{pause}"]
        [sweep.parameters]
        v = {json.dumps(values)}
        [campaign]
        cycles = {cycles}
        max_parallel = {parallel}
        ''') + extra


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "recipe.py").write_text(RECIPE)
    return tmp_path


def state_of(project: Path):
    return StateStore(str(project / ".runspec/state/loc.json"), "loc").read()



def test_a_sweep_runs_once_and_reapplying_makes_no_backend_call(project):
    (project / "run.toml").write_text(manifest(["a", "b", "c", "d"], parallel=2))
    first = invoke("apply", "--yes", "run.toml", cwd=project)
    assert first.exit_code == 0, first.output
    assert "Apply complete: 4 launched, 4 succeeded." in first.stdout
    assert sorted(starts(project).values()) == [1, 1, 1, 1]
    members = state_of(project).members
    assert {m.status for m in members.values()} == {"succeeded"}
    run_dir = project / members["loc/main/v=a/c1"].run_dir
    assert {"config.yaml", "job.yaml", "local.json", "stdout.log", "stderr.log", "result.json",
            "started.json"} <= {p.name for p in run_dir.iterdir()}
    assert json.loads((run_dir / "result.json").read_text())["exit_code"] == 0
    again = invoke("apply", "--yes", "run.toml", cwd=project)
    assert again.exit_code == 0
    assert again.stdout == "No changes. Everything planned was applied; nothing to launch.\n"
    assert sorted(starts(project).values()) == [1, 1, 1, 1]


def test_failed_run_is_recorded_and_only_it_is_rerun(project):
    (project / "run.toml").write_text(manifest(["good", "bad"]))
    first = invoke("apply", "--yes", "run.toml", cwd=project)
    assert first.exit_code == 1
    assert "Apply complete: 2 launched, 1 succeeded, 1 failed." in first.stdout
    assert ("s): exit code 1 — see `runspec logs run.toml loc/main/v=bad/c1`"
            in first.stderr), first.stderr  # why, and where to look
    assert state_of(project).members["loc/main/v=bad/c1"].status == "failed"
    plan = invoke("plan", "run.toml", cwd=project)
    assert "↻ loc/main/v=bad/c1" in plan.stdout and "# failed last time" in plan.stdout
    (project / "fixed").write_text("")
    second = invoke("apply", "--yes", "run.toml", cwd=project)
    assert second.exit_code == 0 and "1 launched, 1 succeeded" in second.stdout
    assert starts(project) == {"runs/loc/main/v=good/c1": 1, "runs/loc/main/v=bad/c1": 2}
    member = state_of(project).members["loc/main/v=bad/c1"]
    assert member.status == "succeeded" and member.attempts == 2
    run_dir = project / member.run_dir  # every attempt is kept, numbered
    assert json.loads((run_dir / "result.attempt-1.json").read_text())["exit_code"] == 1
    assert json.loads((run_dir / "result.json").read_text())["attempt"] == 2
    assert invoke("logs", "run.toml", "loc/main/v=bad/c1", cwd=project).stdout == "ran bad\n"


def test_retries_rerun_a_failure_within_one_apply(project):
    (project / "run.toml").write_text(manifest(["bad"], extra="retries = 2\n"))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 1
    assert "failed loc/main/v=bad/c1; retrying (1/2)" in result.stderr
    assert starts(project) == {"runs/loc/main/v=bad/c1": 3}
    assert "Apply complete: 1 launched, 1 failed." in result.stdout  # runs, not attempts
    run_dir = project / "runs/loc/main/v=bad/c1"
    assert [json.loads((run_dir / f"started.attempt-{n}.json").read_text())["attempt"]
            for n in (1, 2)] == [1, 2]
    assert json.loads((run_dir / "result.json").read_text())["attempt"] == 3
    for attempt in ("1", "2", "3"):  # each attempt's own part of the shared logs
        shown = invoke("logs", "run.toml", "loc/main/v=bad/c1", "--attempt", attempt,
                       cwd=project)
        assert shown.stdout == "ran bad\n", (attempt, shown.output)
    assert invoke("logs", "run.toml", "loc/main/v=bad/c1", cwd=project).stdout == "ran bad\n"
    assert (run_dir / "stdout.log").read_text() == "ran bad\n" * 3
    missing = invoke("logs", "run.toml", "loc/main/v=bad/c1", "--attempt", "4", cwd=project)
    assert missing.exit_code == 1 and "has no attempt 4" in missing.stderr


def _apply_in_background(project: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runspec", "apply", "--yes", "run.toml"],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_kill_9_halfway_then_apply_again_runs_everything_exactly_once(project):
    values = ["a", "b", "c", "d", "e", "f"]
    (project / "run.toml").write_text(manifest(values, pause=0.4))
    apply = _apply_in_background(project)
    _wait_for(lambda: len(starts(project)) >= 3)
    apply.send_signal(signal.SIGKILL)
    apply.wait()
    assert len(starts(project)) < len(values)
    lock = project / ".runspec/state/loc.lock"
    assert lock.exists()  # the killed apply never released it
    planned = invoke("plan", "run.toml", cwd=project)  # plan says so before the next apply
    assert planned.exit_code == 0
    assert ("note: the state is locked by a process that is no longer running: apply by "
            in planned.stderr and "the next apply, cancel or destroy here takes it over"
            in planned.stderr)
    # the holder died on this host: the next apply takes the lock over, no force-unlock
    second = invoke("apply", "--yes", "run.toml", cwd=project)
    assert second.exit_code == 0, second.output
    _wait_for(lambda: all((project / m.run_dir / "result.json").exists()
                          for m in state_of(project).members.values()) and
              len(state_of(project).members) == len(values))
    assert sorted(starts(project).values()) == [1] * len(values)
    final = invoke("apply", "--yes", "run.toml", cwd=project)
    assert final.stdout.startswith("No changes.")


def test_two_applies_at_once_the_second_fails_fast_naming_the_holder(project):
    (project / "run.toml").write_text(manifest(["a"], pause=3))
    first = _apply_in_background(project)
    _wait_for(lambda: (project / ".runspec/state/loc.lock").exists())
    started = time.monotonic()
    second = invoke("apply", "--yes", "run.toml", cwd=project)
    assert time.monotonic() - started < 2
    assert second.exit_code == 1
    assert "the state is locked: apply by " in second.stderr
    assert f"(pid {first.pid})" in second.stderr
    first.wait(timeout=60)
    assert starts(project) == {"runs/loc/main/v=a/c1": 1}


def test_sigterm_cancels_running_children_and_records_them(project):
    (project / "run.toml").write_text(manifest(["a", "b"], pause=30))
    apply = _apply_in_background(project)
    _wait_for(lambda: len(starts(project)) == 1)
    member = next(iter(state_of(project).members.values()))
    child = member.handle["pid"]
    apply.send_signal(signal.SIGTERM)
    _out, err = apply.communicate(timeout=30)
    assert apply.returncode == 1, err
    assert "cancelled loc/main/v=a/c1" in err
    members = state_of(project).members
    assert members["loc/main/v=a/c1"].status == "cancelled"
    assert "loc/main/v=b/c1" not in members  # never started: planned again next time
    _wait_for(lambda: not Path(f"/proc/{child}").exists() or
              Path(f"/proc/{child}/stat").read_text().split()[2] == "Z", timeout=10)
    assert "↻ loc/main/v=a/c1" in invoke("plan", "run.toml", cwd=project).stdout


def test_unwritable_run_directory_is_a_clear_error_and_nothing_is_recorded(project):
    (project / "blocker").write_text("a file where a directory must go")
    (project / "run.toml").write_text(manifest(["a"]) + '[outputs]\nroot = "blocker/runs"\n')
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 1
    assert "cannot write the run directory" in result.output
    assert "check the permissions of outputs.root" in result.output


def test_apply_without_terminal_needs_yes(project):
    (project / "run.toml").write_text(manifest(["a"]))
    result = invoke("apply", "run.toml", cwd=project)
    assert result.exit_code == 1
    assert result.stderr == ("error: apply needs confirmation and there is no terminal: "
                             "pass --yes\n")
    assert not (project / "runs").exists()


def test_saved_plan_applies_exactly_and_a_stale_one_is_refused(project):
    (project / "run.toml").write_text(manifest(["a", "b"]))
    assert invoke("plan", "run.toml", "--out", "plan.json", cwd=project).exit_code == 0
    (project / "run.toml").write_text(manifest(["a", "b", "c"]))
    stale = invoke("apply", "plan.json", cwd=project)
    assert stale.exit_code == 1
    assert "refusing a stale plan: the manifest changed since the plan was saved" in stale.stderr
    (project / "run.toml").write_text(manifest(["a", "b"]))
    applied = invoke("apply", "plan.json", cwd=project)
    assert applied.exit_code == 0, applied.output
    assert sorted(starts(project)) == ["runs/loc/main/v=a/c1", "runs/loc/main/v=b/c1"]
    again = invoke("apply", "plan.json", cwd=project)
    assert "the state moved on" in again.stderr


def test_missing_secret_fails_before_launching(project, monkeypatch):
    monkeypatch.delenv("RUNSPEC_TEST_SECRET", raising=False)
    (project / "run.toml").write_text(manifest(["a"]) + '[env.secrets]\nTOKEN = { from_env = '
                                      '"RUNSPEC_TEST_SECRET" }\n')
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 1
    assert "secret variable not set: RUNSPEC_TEST_SECRET" in result.output
    assert starts(project) == {}


def test_status_logs_and_cancel_commands(project):
    (project / "run.toml").write_text(manifest(["a"]))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    status = invoke("status", "run.toml", cwd=project)
    assert status.exit_code == 0
    assert "loc/main/v=a/c1  succeeded  local" in status.stdout
    assert status.stdout.splitlines()[-1] == "loc: 1 succeeded"
    rows = json.loads(invoke("status", "--json", "run.toml", cwd=project).stdout)
    assert rows[0]["key"] == "loc/main/v=a/c1" and rows[0]["status"] == "succeeded"
    missing = invoke("logs", "run.toml", "loc/main/v=z/c1", cwd=project)
    assert missing.exit_code == 1 and "no run" in missing.stderr
    assert invoke("cancel", "run.toml", cwd=project).stdout.startswith("Nothing to cancel")
    (project / "never.toml").write_text(manifest(["a"]).replace('name = "loc"', 'name = "nev"'))
    never = invoke("status", "never.toml", cwd=project)
    assert "nev was never applied" in never.stderr


def test_cancel_stops_a_detached_local_run(project):
    (project / "run.toml").write_text(manifest(["a"], pause=30))
    apply = _apply_in_background(project)
    _wait_for(lambda: len(starts(project)) == 1)
    apply.send_signal(signal.SIGKILL)  # leaves the run going, as a detached one would
    apply.wait()
    lock_id = json.loads((project / ".runspec/state/loc.lock").read_text())["id"]
    invoke("force-unlock", lock_id, "--manifest", "run.toml", cwd=project)
    result = invoke("cancel", "run.toml", "*v=a*", cwd=project)
    assert result.stdout == "cancelled loc/main/v=a/c1\n"
    assert state_of(project).members["loc/main/v=a/c1"].status == "cancelled"
    pid = state_of(project).members["loc/main/v=a/c1"].handle["pid"]
    _wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
              Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", timeout=10)


def test_cancel_one_run_while_the_apply_goes_on(project):
    """The user's case: a 4-run apply, one run cancelled from a second shell while it runs
    and one before it starts; the apply records both and finishes the other two."""
    (project / "run.toml").write_text(manifest(["a", "b", "c", "d"], pause=3, parallel=2))
    apply = _apply_in_background(project)
    _wait_for(lambda: len(starts(project)) == 2)
    running = invoke("cancel", "run.toml", "*v=b*", cwd=project)
    assert running.exit_code == 0, running.output
    assert running.stdout == "cancelled loc/main/v=b/c1\n"
    assert "asking the apply that holds the state (apply by " in running.stderr
    queued = invoke("cancel", "run.toml", "loc/main/v=d/c1", cwd=project)
    assert queued.stdout == "cancelled loc/main/v=d/c1\n", queued.output
    out, err = apply.communicate(timeout=60)
    assert apply.returncode == 1, out + err  # cancelled runs are not a success
    assert "Apply complete: 3 launched, 2 succeeded, 2 cancelled." in out, out
    assert "cancelled loc/main/v=b/c1 (" in err and "by `runspec cancel` (pid " in err
    assert "cancelled loc/main/v=d/c1 before it started" in err
    members = state_of(project).members
    assert {k: m.status for k, m in members.items()} == {
        "loc/main/v=a/c1": "succeeded", "loc/main/v=b/c1": "cancelled",
        "loc/main/v=c/c1": "succeeded", "loc/main/v=d/c1": "cancelled"}
    assert starts(project) == {"runs/loc/main/v=a/c1": 1, "runs/loc/main/v=b/c1": 1,
                               "runs/loc/main/v=c/c1": 1}  # d never started
    logs = invoke("logs", "run.toml", "loc/main/v=b/c1", cwd=project)
    assert logs.exit_code == 0  # the cancelled run's logs are still there
    status = invoke("status", "run.toml", cwd=project)
    assert "loc/main/v=b/c1  cancelled" in status.stdout
    again = invoke("apply", "--yes", "run.toml", cwd=project)  # the next apply reruns them
    assert "2 launched, 2 succeeded" in again.stdout, again.output


def test_cancel_reaches_a_detached_apply(project):
    (project / "run.toml").write_text(manifest(["a", "b"], pause=30))
    assert invoke("apply", "--yes", "--detach", "run.toml", cwd=project).exit_code == 0
    _wait_for(lambda: starts(project))  # the first recipe is running (its marker written)
    result = invoke("cancel", "run.toml", cwd=project)  # every run, the queued one too
    assert result.exit_code == 0, result.output
    assert result.stdout == "cancelled loc/main/v=a/c1\ncancelled loc/main/v=b/c1\n"
    _wait_for(lambda: not (project / ".runspec/state/loc.lock").exists(), timeout=30)
    assert {m.status for m in state_of(project).members.values()} == {"cancelled"}
    assert starts(project) == {"runs/loc/main/v=a/c1": 1}


def test_cancel_asks_no_apply_when_none_answers(project, monkeypatch):
    """An apply that holds the state but does not poll (asking for confirmation, say): the
    request is withdrawn after the timeout and cancel says what happened."""
    from runspec.apply import inspect
    from runspec.state.control import control_dir
    from runspec.state.lock import state_lock
    from runspec.state.store import StateError

    (project / "run.toml").write_text(manifest(["a"]))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    state_file = project / ".runspec/state/loc.json"
    with state_lock(state_file, "apply"), pytest.raises(StateError,
                                                         match="did not answer within 0.3 s"):
        inspect.cancel(inspect.tracked(project / "run.toml"), None, timeout_s=0.3)
    assert list(control_dir(state_file).iterdir()) == []  # withdrawn, nothing left behind


DDP = DDP_SCRIPT


def test_torchrun_ddp_with_two_processes(project):
    pytest.importorskip("torch", reason="the torch extra is installed by `make test`")
    (project / "ddp.py").write_text(DDP)
    (project / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "ddp"\n[recipe]\nscript = "ddp.py"\nlaunch = "torchrun"\n'
        '[resources]\nprocs_per_node = 2\n[env.vars]\nGLOO_SOCKET_IFNAME = "lo"\n'
        'OMP_NUM_THREADS = "1"\n')
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    run_dir = project / "runs/ddp/main/default/c1"
    assert json.loads((run_dir / "local.json").read_text())["argv"][6:9] == [
        "torchrun", "--standalone", "--nproc_per_node=2"]
    assert "world=2 sum=3.0" in (run_dir / "stdout.log").read_text()


def test_torchrun_launches_a_command_recipe_once_per_process(project):
    """launch = "torchrun" with a command recipe is honoured, not dropped: torchrun starts
    the command itself (--no-python) procs_per_node times, each with its own RANK."""
    pytest.importorskip("torch", reason="the torch extra is installed by `make test`")
    (project / "run.toml").write_text(
        'schema = "runspec/v1"\nname = "cmd"\n[recipe]\nlaunch = "torchrun"\n'
        'command = ["bash", "-c", "echo rank=$RANK of $WORLD_SIZE >> ${run.dir}/ranks.txt"]\n'
        '[resources]\nprocs_per_node = 2\n[env.vars]\nOMP_NUM_THREADS = "1"\n')
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    run_dir = project / "runs/cmd/main/default/c1"
    assert json.loads((run_dir / "local.json").read_text())["argv"][6:11] == [
        "torchrun", "--standalone", "--nproc_per_node=2", "--no-python", "bash"]
    assert sorted((run_dir / "ranks.txt").read_text().splitlines()) == [
        "rank=0 of 2", "rank=1 of 2"]


def test_unchanged_reapply_stops_before_rendering_and_input_edits_are_seen(project, monkeypatch):
    (project / "cfg.yaml").write_text("x: 1\n")
    (project / "run.toml").write_text(manifest(["a", "b"]).replace(
        '[recipe]\n', '[recipe]\n').replace('[sweep.parameters]', '[recipe.overrides]\n'
                                             '"+y" = 2\n[sweep.parameters]'))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    import runspec.apply.engine as engine

    def fake_build_plan_must_not_run(resolved):
        raise AssertionError("an unchanged re-apply rendered the plan")

    monkeypatch.setattr(engine, "build_plan", fake_build_plan_must_not_run)
    fast = invoke("apply", "--yes", "run.toml", cwd=project)
    assert fast.stdout.startswith("No changes."), fast.output
    monkeypatch.undo()
    # Any edit to an input file takes the full path again (and still finds what changed).
    (project / "recipe.py").write_text(RECIPE + "# edited\n")
    slow = invoke("apply", "--yes", "run.toml", cwd=project)
    assert slow.stdout.startswith("No changes."), slow.output  # a command recipe's script
    # is not an input of its request; a change in the manifest is:
    (project / "run.toml").write_text((project / "run.toml").read_text().replace('"+y" = 2',
                                                                                 '"+y" = 3'))
    changed = invoke("apply", "--yes", "run.toml", cwd=project)
    assert "2 launched, 2 succeeded" in changed.stdout


def test_detach_continues_in_the_background(project):
    (project / "run.toml").write_text(manifest(["a", "b"], pause=0.5))
    result = invoke("apply", "--yes", "--detach", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    assert "Applying 2 runs in the background (pid " in result.stdout
    assert "Follow it with `runspec status run.toml --watch`." in result.stdout  # as written
    status = invoke("status", "run.toml", cwd=project)  # the state exists when detach returns
    assert status.exit_code == 0 and "loc/main/v=a/c1" in status.stdout, status.output
    watched = invoke("status", "run.toml", "--watch", "--interval", "0.2", cwd=project)
    assert watched.exit_code == 0  # follows the background apply until it ends
    assert watched.stdout.rstrip().endswith("loc: 2 succeeded"), watched.output
    _wait_for(lambda: len(state_of(project).members) == 2 and all(
        m.status == "succeeded" for m in state_of(project).members.values()), timeout=60)
    assert sorted(starts(project).values()) == [1, 1]


def test_prune_cancels_running_runs_that_left_the_manifest(project):
    (project / "run.toml").write_text(manifest(["a", "gone"], pause=60, parallel=2))
    apply = _apply_in_background(project)
    _wait_for(lambda: len(starts(project)) == 2)
    apply.send_signal(signal.SIGKILL)
    apply.wait()
    lock_id = json.loads((project / ".runspec/state/loc.lock").read_text())["id"]
    invoke("force-unlock", lock_id, "--manifest", "run.toml", cwd=project)
    (project / "run.toml").write_text(manifest(["a"], pause=60, parallel=2))
    plan = invoke("plan", "run.toml", cwd=project)
    assert "# running: cancelled only with --prune" in plan.stdout
    kept = invoke("apply", "--yes", "run.toml", cwd=project)
    assert kept.stdout.startswith("No changes.")  # a running run is not cancelled without --prune
    assert state_of(project).members["loc/main/v=gone/c1"].status == "running"
    pruned = invoke("apply", "--yes", "--prune", "run.toml", cwd=project)
    assert "1 removed from state" in pruned.stdout, pruned.output
    assert "loc/main/v=gone/c1" not in state_of(project).members
    invoke("cancel", "run.toml", cwd=project)  # and stop the other one


def test_stages_run_in_order_and_a_failed_stage_stops_its_dependants(project):
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "loc"
        [stages.prep.recipe]
        command = ["python", "-c", "import os, sys; os.makedirs(sys.argv[1])", "${run.dir}/data"]
        [stages.prep.outputs.artifacts.data]
        path = "${run.dir}/data"
        [stages.train]
        needs = ["prep"]
        [stages.train.recipe]
        command = ["python", "-c", "import os; print(os.environ['RUNSPEC_RUN_KEY'])"]
        [stages.bad.recipe]
        command = ["python", "recipe.py", "${run.dir}/marker.txt", "bad", "0"]
        [stages.after_bad]
        needs = ["bad"]
        [stages.after_bad.recipe]
        command = ["true"]
        '''))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 1
    members = state_of(project).members
    assert members["loc/prep/default/c1"].status == "succeeded"
    assert members["loc/train/default/c1"].status == "succeeded"
    assert members["loc/bad/default/c1"].status == "failed"
    assert "loc/after_bad/default/c1" not in members
    assert "skipped stage after_bad: bad did not succeed" in result.stderr
    prep_env = json.loads((project / members["loc/prep/default/c1"].run_dir / "local.json").read_text())
    assert prep_env["env"]["RUNSPEC_OUTPUT_DATA"] == "runs/loc/prep/default/c1/data"


def test_paths_reach_a_recipe_in_its_own_workdir_as_it_sees_them(project):
    """A recipe with ``workdir`` gets ${run.dir}, its output paths and an upstream stage's
    outputs relative to where it runs; the artifact is still found and registered."""
    (project / "sub").mkdir()
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "loc"
        [stages.prep.recipe]
        command = ["python", "-c", "import sys; open(sys.argv[1], 'w').write('data')",
                   "${run.dir}/data.txt"]
        workdir = "sub"
        [stages.prep.outputs.artifacts.words]
        path = "${run.dir}/data.txt"
        [stages.use]
        needs = ["prep"]
        [stages.use.recipe]
        command = ["python", "-c", "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1]).read())",
                   "${stage.prep.outputs.words}", "${run.dir}/copy.txt", "${art:raw,path}"]
        workdir = "sub"
        [stages.use.artifacts.raw]
        uri = "data/raw.txt"
        bind = "raw"
        [stages.use.artifacts.bucket]
        uri = "s3://bucket/x"
        bind = "bucket"
        '''))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    members = state_of(project).members
    assert (project / members["loc/use/default/c1"].run_dir / "copy.txt").read_text() == "data"
    request = json.loads((project / members["loc/use/default/c1"].run_dir / "local.json").read_text())
    assert request["argv"][-3:] == ["../runs/loc/prep/default/c1/data.txt",
                                    "../runs/loc/use/default/c1/copy.txt", "../data/raw.txt"]
    config = (project / members["loc/use/default/c1"].run_dir / "config.yaml").read_text()
    assert config == 'raw: "../data/raw.txt"\nbucket: "s3://bucket/x"\n'
    assert invoke("artifacts", "list", cwd=project).exit_code == 0
    assert "words" in invoke("artifacts", "list", cwd=project).output


def test_logs_of_every_run_of_a_glob_and_follow_needs_one(project):
    (project / "run.toml").write_text(manifest(["a", "b"]))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    every = invoke("logs", "run.toml", cwd=project)
    assert every.exit_code == 0, every.output
    assert every.stdout == ("==> loc/main/v=a/c1 (succeeded) <==\nran a\n\n"
                            "==> loc/main/v=b/c1 (succeeded) <==\nran b\n")
    assert invoke("logs", "run.toml", "*c1", cwd=project).stdout == every.stdout
    one = invoke("logs", "run.toml", "*=b/*", cwd=project)
    assert one.stdout == "ran b\n"  # one run: no header
    followed = invoke("logs", "run.toml", "-f", cwd=project)
    assert followed.exit_code == 1
    assert "--follow follows one run, and 2 match" in followed.stderr
    nothing = invoke("logs", "run.toml", "*=z/*", cwd=project)
    assert nothing.exit_code == 1 and 'no run matches "*=z/*"' in nothing.stderr


def test_startup_commands_run_before_the_recipe_and_a_failing_one_fails_the_run(project):
    """The local backend honours env.startup_commands as Slurm does: in order, before the
    recipe, in the run's environment; the first that fails stops (and fails) the run."""
    (project / "check.py").write_text(textwrap.dedent('''\
        import os, pathlib, sys
        pathlib.Path(sys.argv[1]).write_text(os.environ.get("FROM_STARTUP", "unset"))
        '''))
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "loc"
        [recipe]
        command = ["python", "check.py", "${run.dir}/seen.txt"]
        [env]
        startup_commands = ["echo started >> startup.log", "export FROM_STARTUP=yes"]
        '''))
    first = invoke("apply", "--yes", "run.toml", cwd=project)
    assert first.exit_code == 0, first.output
    run_dir = project / state_of(project).members["loc/main/default/c1"].run_dir
    assert (run_dir / "seen.txt").read_text() == "yes"
    assert (project / "startup.log").read_text() == "started\n"

    text = (project / "run.toml").read_text().replace('"export FROM_STARTUP=yes"',
                                                      '"false", "export FROM_STARTUP=yes"')
    (project / "run.toml").write_text(text)
    (run_dir / "seen.txt").unlink()  # the replaced run reuses its directory
    second = invoke("apply", "--yes", "run.toml", cwd=project)
    assert second.exit_code == 1, second.output
    member = state_of(project).members["loc/main/default/c1"]
    assert member.status == "failed"
    assert not (project / member.run_dir / "seen.txt").exists()
    assert (project / "startup.log").read_text() == "started\nstarted\n"


def idle_gaps(project: Path, keys: list[str]) -> list[float]:
    """Idle seconds between consecutive runs, from the wrapper's own records: the next run's
    started_at minus the previous run's ended_at (the same measure on every backend)."""
    from datetime import datetime

    members = StateStore(str(next((project / ".runspec/state").glob("*.json"))), "").read().members
    times = []
    for key in keys:
        result = json.loads((project / members[key].run_dir / "result.json").read_text())
        times.append((datetime.fromisoformat(result["started_at"]),
                      datetime.fromisoformat(result["ended_at"])))
    return [(times[i][0] - times[i - 1][1]).total_seconds() for i in range(1, len(times))]


def test_gaps_are_idle_time_from_one_runs_end_to_the_next_start(project):
    """config_gap between runs of a cycle, cycle_gap where the cycle changes, measured from
    the runs' recorded end and start (a start-to-start gap would give ~0 s here: each run
    lasts longer than the gaps)."""
    (project / "run.toml").write_text(manifest(["a", "b"], pause=1.5, cycles=2, extra=(
        'order = "interleaved"\nconfig_gap = 1\ncycle_gap = 2.5\n')).replace(
        "max_parallel = 1\n", ""))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    keys = ["loc/main/v=a/c1", "loc/main/v=b/c1", "loc/main/v=a/c2", "loc/main/v=b/c2"]
    gaps = idle_gaps(project, keys)
    for measured, configured in zip(gaps, [1.0, 2.5, 1.0], strict=True):
        assert configured <= measured < configured + 2.0, gaps


def _as_written_by_0_1(project: Path) -> None:
    """Turn the state and run directories into what runspec 0.1 wrote for the same
    manifest: single-point keys and directories ``_`` (a fan-out's ``stage.prep=_@c1``),
    requests naming them, digests of those requests, no fingerprint."""
    from runspec.plan.diff import moved
    from runspec.plan.identity import digest, former_key
    from runspec.plan.source import SOURCE_FIELDS

    store = StateStore(str(project / ".runspec/state/loc.json"), "loc")
    state = store.read()
    back = []
    for key, member in state.members.items():
        old_key = former_key(key)
        old_dir = member.run_dir[: -len(key)] + old_key
        back += [(member.run_dir, old_dir), (key, old_key)]
    back.sort(key=lambda pair: -len(pair[0]))  # directories before the keys they contain
    members = {}
    for member in sorted(state.members.values(), key=lambda m: -len(m.run_dir)):
        (project / moved(member.run_dir, back)).parent.mkdir(parents=True, exist_ok=True)
        (project / member.run_dir).rename(project / moved(member.run_dir, back))
    for key, member in state.members.items():
        member.request = moved(member.request, back)
        member.key, member.run_dir = former_key(key), moved(member.run_dir, back)
        member.point = {k: moved(v, back) for k, v in member.point.items()}
        member.digest = digest({k: v for k, v in member.request.items() if k not in SOURCE_FIELDS})
        members[member.key] = member
    state.members, state.fingerprint = members, None
    store.write(state)


def test_a_state_from_runspec_0_1_is_renamed_not_rerun(project):
    """Single-point runs were keyed ``_``; now ``default``. A campaign applied by 0.1 plans
    as renames (nothing runs), and apply moves the records: the new directory links to the
    old one, and everything reads under the new names."""
    (project / "run.toml").write_text(textwrap.dedent('''\
        schema = "runspec/v1"
        name = "loc"
        [stages.prep.recipe]
        command = ["python", "../recipe.py", "${run.dir}/marker.txt", "prep", "0"]
        workdir = "sub"
        [stages.prep.outputs.artifacts.marks]
        path = "${run.dir}/marker.txt"
        [stages.use]
        needs = ["prep"]
        [stages.use.recipe]
        command = ["python", "recipe.py", "${run.dir}/marker.txt", "${stage.prep.outputs.marks}",
                   "0"]
        [campaign]
        cycles = 2
        '''))
    (project / "sub").mkdir()
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    assert "loc/use/stage.prep=default@c2/c1" in state_of(project).members
    _as_written_by_0_1(project)
    before = starts(project)
    assert set(before) == {"runs/loc/prep/_/c1", "runs/loc/prep/_/c2",
                           *(f"runs/loc/use/stage.prep=_@c{u}/c{c}" for u in (1, 2) for c in (1, 2))}

    plan = invoke("plan", "run.toml", cwd=project)
    assert "Plan: 0 to create, 0 to replace, 0 to rerun, 0 to destroy, 6 to rename, 0 unchanged." in plan.output
    assert "→ loc/prep/default/c1" in plan.output
    assert "loc/use/stage.prep={default@c1,default@c2}/{c1,c2}" in plan.output
    moves = json.loads(invoke("plan", "run.toml", "--json", cwd=project).output)["changes"]
    assert {(c["from"], c["key"]) for c in moves if c["stage"] == "prep"} == {
        ("loc/prep/_/c1", "loc/prep/default/c1"), ("loc/prep/_/c2", "loc/prep/default/c2")}

    applied = invoke("apply", "--yes", "run.toml", cwd=project)
    assert applied.exit_code == 0, applied.output
    assert "renamed loc/prep/_/c1 → loc/prep/default/c1" in applied.output
    assert "Apply complete: 0 launched, 6 renamed." in applied.output
    assert starts(project) == before  # nothing ran again
    members = state_of(project).members
    assert sorted(members) == sorted(m.replace("runs/", "").replace("_", "default")
                                     for m in before)
    link = project / "runs/loc/prep/default/c1"
    assert link.is_symlink() and link.resolve() == (project / "runs/loc/prep/_/c1").resolve()
    assert invoke("plan", "run.toml", cwd=project).output.count("No changes.") == 1
    assert invoke("logs", "run.toml", "loc/use/stage.prep=default@c1/c2", cwd=project).exit_code == 0
    results = invoke("results", "run.toml", cwd=project)
    assert "default@c1" in results.output and "_@" not in results.output

    # A later change reruns into the new name, which is the old directory: nothing is lost.
    replaced = invoke("apply", "--yes", "run.toml", "--replace", "loc/prep/default/c1", cwd=project)
    assert replaced.exit_code == 0, replaced.output
    assert starts(project)["runs/loc/prep/_/c1"] == 2


def test_unchanged_reapply_resolves_nothing_and_sees_new_files_and_variables(project,
                                                                           monkeypatch):
    """The quick no-op re-reads only what the last plan read: the manifest is not even
    resolved. A file that appears where discovery looks (an env.toml above the manifest)
    or a variable a profile names (${oc.env:…}) takes the full path again."""
    (project / "run.toml").write_text(manifest(["a"]))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    import runspec.apply.session as resolving  # where apply resolves the manifest

    def resolve_must_not_run(*args, **kwargs):
        raise AssertionError("an unchanged re-apply resolved the manifest")

    with monkeypatch.context() as patched:
        patched.setattr(resolving, "resolve", resolve_must_not_run)
        fast = invoke("apply", "--yes", "run.toml", cwd=project)
        assert fast.stdout == "No changes. Everything planned was applied; nothing to launch.\n"
        (project / "env.toml").write_text('[local]\nexecutor = "local"\n'
                                          'dir = "${oc.env:RS_TEST_DIR,/tmp}"\n')
        with pytest.raises(AssertionError, match="resolved the manifest"):
            invoke("apply", "--yes", "run.toml", cwd=project)
    assert invoke("apply", "--yes", "run.toml", cwd=project).stdout.startswith("No changes.")
    state = json.loads((project / ".runspec/state/loc.json").read_text())
    assert "RS_TEST_DIR" in state["inputs"]["environment"]
    monkeypatch.setenv("RS_TEST_DIR", "/elsewhere")
    with monkeypatch.context() as patched:
        patched.setattr(resolving, "resolve", resolve_must_not_run)
        with pytest.raises(AssertionError, match="resolved the manifest"):
            invoke("apply", "--yes", "run.toml", cwd=project)


def test_a_failed_run_is_never_hidden_by_the_quick_no_op(project):
    (project / "run.toml").write_text(manifest(["bad"]))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 1
    again = invoke("apply", "--yes", "run.toml", cwd=project)
    assert "Apply stopped" not in again.stdout and "1 launched, 1 failed" in again.stdout
