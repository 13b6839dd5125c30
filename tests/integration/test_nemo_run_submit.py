"""apply through the real NeMo-Run package: its LocalExecutor, its SlurmExecutor with a
LocalTunnel against the test cluster, and with an SSHTunnel against the test login node
(tests/services/sshd.sh: the cluster user cannot read this user's temporary directories,
so a run that works there was packed and shipped by NeMo-Run). Then status, logs, cancel.

NeMo-Run keeps a registry of its Slurm jobs in its home (``.slurm_jobs``): it is pointed at
a directory of this session before nemo_run is first imported."""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import adaptive_project, invoke, state_members, wait_for_runs

os.environ.setdefault("NEMORUN_HOME", tempfile.mkdtemp(prefix="runspec-nemorun-home-"))

TRAIN = textwrap.dedent("""\
    import sys, time
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    print("trained lr", args.get("lr"), flush=True)
    time.sleep(float(args.get("pause", 0)))
    print("done", flush=True)
    """)


def project(tmp_path: Path, env: str, values=("0.1", "0.2"), pause: float = 0.0) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "run.toml").write_text(textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "nr"
        [recipe]
        command = ["python", "train.py", "lr=${{sweep.lr}}", "pause={pause}"]
        [resources]
        time = "00:05:00"
        cpus_per_task = 1
        ''') + env + f'\n[sweep.parameters]\nlr = {json.dumps(list(values))}\n')
    return tmp_path


def members(root: Path):
    return state_members(root, "nr")


def wait_for(root: Path, done, within: float = 90.0):
    return wait_for_runs(root, "nr", done, within)


def ended(state) -> bool:
    return all(m.status in ("succeeded", "failed", "cancelled", "lost") for m in state.values())


def test_local_executor_runs_the_sweep(tmp_path):
    root = project(tmp_path, '[env]\nexecutor = "nemo-run"\n')
    applied = invoke("apply", "--yes", "run.toml", cwd=root)
    assert applied.exit_code == 0, applied.output
    assert "submitted 2 runs of stage main to nemo-run: NeMo-Run nr-main_" in applied.output
    status, state = wait_for(root, ended)
    assert {m.status for m in state.values()} == {"succeeded"}, status.output
    experiments = list(root.glob("runs/nr/main/experiments/nr-main/nr-main_*/_CONFIG"))
    assert len(experiments) == 1  # one experiment for the stage
    logs = invoke("logs", "run.toml", "nr/main/lr=0.1/c1", cwd=root)
    assert "trained lr 0.1" in logs.output
    again = invoke("apply", "--yes", "run.toml", cwd=root)
    assert "No changes." in again.output


def test_adaptive_cycles_through_nemo_run_add_an_experiment_per_cycle(tmp_path):
    """campaign.until is obeyed through NeMo-Run too: the minimum cycles, then one
    submission per added cycle, until the 95% CI is within target (the figures of
    tests/test_adaptive.py)."""
    (tmp_path / "pyproject.toml").write_text("")
    adaptive_project(tmp_path, "nr", '[env]\nexecutor = "nemo-run"')
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert sorted(members(tmp_path)) == [f"nr/main/default/c{n}" for n in range(1, 7)]
    assert {m.status for m in members(tmp_path).values()} == {"succeeded"}
    assert "every point has score's 95% CI within ±0.07 of its mean (6 cycles)" in result.output
    assert result.output.count("to nemo-run: NeMo-Run nr-main_") == 4  # 3 cycles, then 1 each


SLURM_ENV = '[env]\nexecutor = "nemo-run"\nnemo_executor = "slurm"\npartition = "debug"\n'


@pytest.mark.slurm
def test_slurm_executor_with_a_local_tunnel(tmp_path, slurm):
    root = project(tmp_path, SLURM_ENV)
    started = time.monotonic()
    applied = invoke("apply", "--yes", "run.toml", cwd=root)
    submit_s = time.monotonic() - started
    assert applied.exit_code == 0, applied.output
    assert submit_s < 30, f"apply took {submit_s:.0f} s (NeMo-Run's sacct polling?)"
    status, state = wait_for(root, ended)
    assert {m.status for m in state.values()} == {"succeeded"}, status.output
    assert all(m.handle["job_id"].isdigit() for m in state.values())
    assert "trained lr 0.2" in (root / "runs/nr/main/lr=0.2/c1/stdout.log").read_text()
    sbatch = next(root.glob("runs/nr/main/experiments/**/r0_sbatch.sh")).read_text()
    assert "#SBATCH --partition=debug" in sbatch
    assert "#SBATCH --export=PATH," in sbatch


@pytest.mark.slurm
def test_slurm_executor_cancel(tmp_path, slurm):
    root = project(tmp_path, SLURM_ENV, values=("0.3",), pause=120)
    assert invoke("apply", "--yes", "run.toml", cwd=root).exit_code == 0
    _, state = wait_for(root, lambda s: all(m.status == "running" for m in s.values()), 30)
    cancelled = invoke("cancel", "run.toml", cwd=root)
    assert cancelled.exit_code == 0, cancelled.output
    assert {m.status for m in members(root).values()} == {"cancelled"}
    _, state = wait_for(root, ended, 30)
    assert {m.status for m in state.values()} == {"cancelled"}


def ssh_env(sshd, **changes) -> str:
    values = {"host": sshd["RUNSPEC_SSH_HOST"], "port": int(sshd["RUNSPEC_SSH_PORT"]),
              "user": sshd["RUNSPEC_SSH_USER"], "identity": sshd["RUNSPEC_SSH_IDENTITY"],
              "known_hosts": sshd["RUNSPEC_SSH_KNOWN_HOSTS"],
              "remote_job_dir": sshd["RUNSPEC_SSH_REMOTE_DIR"], **changes}
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    return (SLURM_ENV + 'tunnel = "ssh"\npackager = "pattern"\n'
            'package_patterns = ["*.py"]\n') + lines


@pytest.mark.slurm
@pytest.mark.ssh
def test_slurm_executor_over_ssh(tmp_path, slurm, sshd):
    root = project(tmp_path, ssh_env(sshd))
    applied = invoke("apply", "--yes", "run.toml", cwd=root)
    assert applied.exit_code == 0, applied.output
    status, state = wait_for(root, ended, 120)
    assert {m.status for m in state.values()} == {"succeeded"}, (
        status.output + (root / "runs/nr/main/lr=0.1/c1/stderr.log").read_text()
        if (root / "runs/nr/main/lr=0.1/c1/stderr.log").exists() else status.output)
    # the results were written on the cluster and mirrored back
    result = json.loads((root / "runs/nr/main/lr=0.1/c1/result.json").read_text())
    assert result["exit_code"] == 0
    assert all(m.handle["remote_dir"].startswith(sshd["RUNSPEC_SSH_REMOTE_DIR"])
               for m in state.values())
    logs = invoke("logs", "run.toml", "nr/main/lr=0.2/c1", cwd=root)
    assert "trained lr 0.2" in logs.output


@pytest.mark.slurm
@pytest.mark.ssh
def test_ssh_cancel(tmp_path, slurm, sshd):
    root = project(tmp_path, ssh_env(sshd), values=("0.5",), pause=120)
    assert invoke("apply", "--yes", "run.toml", cwd=root).exit_code == 0
    cancelled = invoke("cancel", "run.toml", cwd=root)
    assert cancelled.exit_code == 0, cancelled.output
    _, state = wait_for(root, ended, 30)
    assert {m.status for m in state.values()} == {"cancelled"}


@pytest.mark.ssh
def test_an_unknown_host_key_is_refused(tmp_path, sshd):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    root = project(tmp_path, ssh_env(sshd, known_hosts=str(empty)))
    applied = invoke("apply", "--yes", "run.toml", cwd=root)
    assert applied.exit_code != 0
    assert f"its host key is not in {empty}" in applied.output
    assert "never accepts an unknown key" in applied.output
    assert "Traceback" not in applied.output
    assert members(root) == {}
    assert empty.read_text() == ""  # nothing was added
