"""apply on a real Ray head on 127.0.0.1 (Ray Jobs REST API), started by tests/services."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import MARKER_RECIPE, adaptive_project, invoke, starts, state_members

pytestmark = pytest.mark.ray

RECIPE = MARKER_RECIPE


def manifest(values, address: str, pause=0.0, name="ry", timeout=5) -> str:
    address_line = f'address = "{address}"\n' if address else ""
    return textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "{name}"
        [recipe]
        command = ["python", "recipe.py", "${{run.dir}}/marker.txt", "${{sweep.v}}", "{pause}"]
        [env]
        executor = "ray"
        timeout = {timeout}
        ''') + address_line + f"[sweep.parameters]\nv = {json.dumps(values)}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "recipe.py").write_text(RECIPE)
    return tmp_path


def members(project: Path, name: str = "ry"):
    return state_members(project, name)



def test_a_sweep_on_ray_and_reapply_submits_nothing(project, ray_head):
    address = ray_head["RUNSPEC_RAY_ADDRESS"]
    (project / "run.toml").write_text(manifest(["a", "b", "c", "bad"], address))
    result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert "Apply complete: 4 launched, 3 succeeded, 1 failed." in result.stdout, result.output
    state = members(project)
    assert {m.handle["submission_id"] for m in state.values()} == {
        f"runspec-{m.digest[:20]}" for m in state.values()}
    assert state["ry/main/v=bad/c1"].status == "failed"
    logs = invoke("logs", "run.toml", "ry/main/v=a/c1", cwd=project)
    assert "ran a" in logs.stdout
    (project / "run.toml").write_text(manifest(["a", "b", "c"], address))
    again = invoke("apply", "--yes", "run.toml", cwd=project)
    assert "0 launched" in again.stdout or again.stdout.startswith("No changes.")
    assert sorted(starts(project).values()) == [1, 1, 1, 1]


def test_rerun_of_a_failed_ray_job_gets_a_new_submission_id(project, ray_head):
    address = ray_head["RUNSPEC_RAY_ADDRESS"]
    # A name of its own: the head may remember jobs of earlier sessions with equal digests.
    name = f"rerun-{uuid.uuid4().hex[:8]}"
    # A generous REST timeout: this test is about reruns, not about a slow dashboard (on a
    # loaded 2-core machine a 5 s timeout once turned the first submission into an intent).
    (project / "run.toml").write_text(manifest(["bad"], address, name=name, timeout=30))
    once = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    first = members(project, name)[f"{name}/main/v=bad/c1"]
    assert first.status == "failed", once.output
    assert first.handle["submission_id"] == f"runspec-{first.digest[:20]}"
    again = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    second = members(project, name)[f"{name}/main/v=bad/c1"].handle["submission_id"]
    assert second == f"runspec-{first.digest[:20]}-r2", again.output  # the same id is refused
    assert starts(project) == {f"runs/{name}/main/v=bad/c1": 2}


def test_cancel_a_running_ray_job(project, ray_head):
    address = ray_head["RUNSPEC_RAY_ADDRESS"]
    (project / "run.toml").write_text(manifest(["slow"], address, pause=120))
    assert invoke("apply", "--yes", "run.toml", cwd=project).exit_code == 0
    deadline = time.monotonic() + 60
    while not starts(project) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert invoke("cancel", "run.toml", cwd=project).stdout == "cancelled ry/main/v=slow/c1\n"
    member = members(project)["ry/main/v=slow/c1"]
    assert member.status == "cancelled"
    from runspec.backends.ray_client import RayClient

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, job = RayClient(address).call("GET", f"/api/jobs/{member.handle['submission_id']}")
        if job.get("status") == "STOPPED":
            break
        time.sleep(0.5)
    assert job["status"] == "STOPPED"


def test_an_address_that_never_answers_times_out_cleanly(project):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never replies
    port = silent.getsockname()[1]
    held = []
    threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
    (project / "run.toml").write_text(manifest(["a"], f"http://127.0.0.1:{port}"))
    started = time.monotonic()
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    assert f"Ray at http://127.0.0.1:{port} did not answer within 5 s" in result.output
    # The request was sent and may have arrived: kept as an intent with its submission id,
    # never dropped (a later refresh asks Ray about exactly that id).
    assert "the submission may have arrived" in result.output
    (member,) = members(project).values()
    assert member.status == "submitted"
    assert member.handle["submission_id"] == f"runspec-{member.digest[:20]}"
    silent.close()


@pytest.mark.slow
def test_no_address_starts_and_stops_a_local_head(project, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNSPEC_RAY_DIR", str(tmp_path / "ray-head"))
    (project / "run.toml").write_text(manifest(["a"], ""))
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    assert "starting a local Ray head on 127.0.0.1" in result.stderr
    assert "stopping the local Ray head" in result.stderr
    assert members(project)["ry/main/v=a/c1"].status == "succeeded"
    from runspec.backends.ray_head import running_head

    assert running_head() is None


def test_apply_wait_follows_runs_an_earlier_apply_left_running(project, ray_head):
    address = ray_head["RUNSPEC_RAY_ADDRESS"]
    name = f"follow-{uuid.uuid4().hex[:8]}"
    (project / "run.toml").write_text(manifest(["a"], address, pause=4, name=name, timeout=30))
    first = invoke("apply", "--yes", "run.toml", cwd=project)  # submits, does not wait
    assert first.exit_code == 0, first.output
    (member,) = members(project, name).values()
    assert member.status in ("submitted", "running")
    followed = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    assert followed.exit_code == 0, followed.output
    assert "waiting for 1 run launched before this apply" in followed.output
    assert "Apply complete: 0 launched, 1 succeeded." in followed.output
    (member,) = members(project, name).values()
    assert member.status == "succeeded"


def test_ray_honours_campaign_order_gaps_max_parallel_and_retries(project, ray_head):
    """runspec feeds Ray in plan order, one run at a time when the campaign asks for order
    and gaps, with the idle gap measured from one run's end to the next start; a run that
    fails once is retried and succeeds."""
    from test_apply_local import idle_gaps

    address = ray_head["RUNSPEC_RAY_ADDRESS"]
    name = f"paced-{uuid.uuid4().hex[:8]}"
    (project / "flaky.py").write_text(textwrap.dedent('''\
        import os, sys
        marker = sys.argv[1]
        with open(marker, "a") as handle:
            handle.write("start\\n")
        sys.exit(1 if sys.argv[2] == "flaky" and open(marker).read().count("start") == 1 else 0)
        '''))
    (project / "run.toml").write_text(manifest(["a", "flaky"], address, name=name, timeout=30)
                                      .replace('"recipe.py", "${run.dir}/marker.txt", '
                                               '"${sweep.v}", "0.0"',
                                               '"flaky.py", "${run.dir}/marker.txt", "${sweep.v}"')
                                      + '[campaign]\ncycles = 2\norder = "interleaved"\n'
                                        'config_gap = 1\ncycle_gap = 2\nretries = 1\n')
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    assert "Apply complete: 4 launched, 4 succeeded." in result.stdout, result.output
    assert f"failed {name}/main/v=flaky/c1; retrying (1/1)" in result.stderr
    keys = [f"{name}/main/v={v}/c{c}" for c in (1, 2) for v in ("a", "flaky")]
    state = members(project, name)
    assert all(state[k].status == "succeeded" for k in keys)
    gaps = idle_gaps(project, keys)
    for measured, configured in zip(gaps, [1.0, 2.0, 1.0], strict=True):
        assert configured <= measured < configured + 10.0, gaps


def test_a_secret_reaches_a_ray_job_but_not_rays_records(project, ray_head):
    """The value is in the job's environment, not in what Ray keeps about the job."""
    import hashlib
    import os
    import urllib.request

    address = ray_head["RUNSPEC_RAY_ADDRESS"]
    canary = f"canary-{uuid.uuid4().hex}"
    (project / "secret.py").write_text(
        "import hashlib, os, sys\n"
        "open(sys.argv[1], 'w').write(hashlib.sha256(os.environ['TOKEN'].encode()).hexdigest())\n")
    name = f"secret-{uuid.uuid4().hex[:8]}"
    (project / "run.toml").write_text(textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "{name}"
        [recipe]
        command = ["python", "secret.py", "${{run.dir}}/hash.txt"]
        [env]
        executor = "ray"
        address = "{address}"
        timeout = 30
        [env.secrets]
        TOKEN = {{ from_env = "RUNSPEC_CANARY_SECRET" }}
        '''))
    os.environ["RUNSPEC_CANARY_SECRET"] = canary
    try:
        result = invoke("apply", "--yes", "--wait", "run.toml", cwd=project)
    finally:
        del os.environ["RUNSPEC_CANARY_SECRET"]
    assert result.exit_code == 0, result.output
    member = members(project, name)[f"{name}/main/default/c1"]
    run_dir = project / member.run_dir
    assert (run_dir / "hash.txt").read_text() == hashlib.sha256(canary.encode()).hexdigest()
    assert not (run_dir / "secrets.env").exists()
    with urllib.request.urlopen(f"{address}/api/jobs/{member.handle['submission_id']}",
                                timeout=30) as answer:
        assert canary not in answer.read().decode()
    leaked = [p for p in project.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()]
    assert leaked == []


def test_adaptive_cycles_on_ray_add_a_job_per_cycle_until_the_target(project, ray_head):
    """campaign.until is obeyed on Ray too: the minimum cycles, then one job per added
    cycle, until the 95% CI is within target (the figures of tests/test_adaptive.py)."""
    adaptive_project(project, "ry", f'[env]\nexecutor = "ray"\n'
                                    f'address = "{ray_head["RUNSPEC_RAY_ADDRESS"]}"')
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 0, result.output
    assert sorted(members(project)) == [f"ry/main/default/c{n}" for n in range(1, 7)]
    assert "every point has score's 95% CI within ±0.07 of its mean (6 cycles)" in result.output
