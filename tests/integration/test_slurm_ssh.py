"""runspec's own Slurm backend through a login node: the real sshd of tests/services/sshd.sh
(the cluster account runspec-cluster) in front of the real single-node Slurm.

The projects live in pytest's temporary directories, which the cluster account cannot
read: a run that works was packed, uploaded and mirrored back by runspec. The login node
and this machine are one host here, so a test may look into ``remote_job_dir`` directly
(as root) to count what was uploaded."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from conftest import invoke, state_members, wait_for_runs

# NeMo-Run keeps a registry of its Slurm jobs in its home: one of this session's.
os.environ.setdefault("NEMORUN_HOME", tempfile.mkdtemp(prefix="runspec-nemorun-home-"))

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]

TRAIN = textwrap.dedent("""\
    import json, os, sys, time
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    print("trained lr", args.get("lr"), "as", os.environ.get("USER", "?"), flush=True)
    time.sleep(float(args.get("pause", 0)))
    with open(os.path.join(os.environ["RUNSPEC_RUN_DIR"], "model.txt"), "w") as out:
        out.write("weights for lr " + args["lr"] + "\\n")
    path = os.environ.get("RUNSPEC_METRICS")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"loss": float(args["lr"]) * 10}) + "\\n")
    print("done", flush=True)
    """)


def project(tmp_path: Path, sshd, values=("0.1", "0.2"), pause: float = 0.0, **changes
            ) -> tuple[Path, Path]:
    """A project with a Nemotron-format ssh profile in its env.toml; returns it and the
    (not yet existing) remote_job_dir it submits to."""
    remote = Path(sshd["RUNSPEC_SSH_REMOTE_DIR"]) / f"t-{uuid.uuid4().hex[:8]}"
    values_of = {"host": sshd["RUNSPEC_SSH_HOST"], "port": int(sshd["RUNSPEC_SSH_PORT"]),
                 "user": sshd["RUNSPEC_SSH_USER"], "identity": sshd["RUNSPEC_SSH_IDENTITY"],
                 "known_hosts": sshd["RUNSPEC_SSH_KNOWN_HOSTS"],
                 "remote_job_dir": str(remote), **changes}
    profile = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values_of.items())
    (tmp_path / "env.toml").write_text(
        '[cluster]\nexecutor = "slurm"\npartition = "debug"\ntunnel = "ssh"\n'
        'packager = "pattern"\npackage_patterns = ["*.py"]\n' + profile)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "run.toml").write_text(textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "rs"
        [recipe]
        script = "train.py"
        args = ["lr=${{sweep.lr}}", "pause={pause}"]
        [measure]
        metrics = ["loss"]
        [outputs.artifacts.rs-model]
        path = "${{run.dir}}/model.txt"
        type = "model"
        [env]
        profile = "cluster"
        [resources]
        time = "00:05:00"
        cpus_per_task = 1
        [sweep.parameters]
        lr = {json.dumps(list(values))}
        '''))
    return tmp_path, remote


def members(root: Path):
    return state_members(root, "rs")


def ended(state) -> bool:
    return bool(state) and all(m.status in ("succeeded", "failed", "cancelled")
                               for m in state.values())


def wait_for(root: Path, done, within: float = 120.0):
    return wait_for_runs(root, "rs", done, within)


def packages(remote: Path) -> list[str]:
    return sorted(p.name for p in remote.iterdir() if p.name.startswith("code-"))


def test_a_sweep_goes_through_the_login_node_and_comes_back(tmp_path, slurm, sshd):
    root, remote = project(tmp_path, sshd)
    assert os.stat(tmp_path).st_mode & 0o077 == 0  # the cluster user cannot read it
    plan = invoke("plan", "run.toml", cwd=root)
    assert plan.exit_code == 0, plan.output
    assert (f"through runspec-cluster@127.0.0.1:{sshd['RUNSPEC_SSH_PORT']}, in {remote}/code-"
            in plan.output)
    applied = invoke("apply", "--yes", "run.toml", cwd=root)
    assert applied.exit_code == 0, applied.output
    jobs = {m.handle["job_id"].split("_")[0] for m in members(root).values()}
    assert len(jobs) == 1, jobs  # one array for the whole sweep
    status, state = wait_for(root, ended)
    assert {m.status for m in state.values()} == {"succeeded"}, status.output
    # written on the cluster, as the cluster user, and mirrored back here
    run_dir = root / "runs/rs/main/lr=0.2/c1"
    assert json.loads((run_dir / "result.json").read_text())["exit_code"] == 0
    assert "trained lr 0.2 as runspec-cluster" in (run_dir / "stdout.log").read_text()
    logs = invoke("logs", "run.toml", "rs/main/lr=0.2/c1", cwd=root)
    assert "trained lr 0.2" in logs.output, logs.output
    results = invoke("results", "run.toml", "--format", "json", cwd=root)
    assert results.exit_code == 0, results.output
    assert "loss" in results.output
    # the outputs stay on the cluster: registered there by path, hashed there
    shown = invoke("artifacts", "show", "rs-model", cwd=root)
    assert shown.exit_code == 0, shown.output
    model = json.loads(shown.output)
    assert model["host"] == f"runspec-cluster@127.0.0.1:{sshd['RUNSPEC_SSH_PORT']}"
    assert model["path"].startswith(f"{remote}/code-") and model["path"].endswith("/model.txt")
    from runspec.artifacts.digest import digest_of

    assert model["digest"] == digest_of(Path(model["path"]))  # the cluster is this host
    lineage = invoke("artifacts", "lineage", "rs-model", cwd=root)
    assert lineage.exit_code == 0 and "rs/main/lr=" in lineage.output, lineage.output
    first = packages(remote)
    assert len(first) == 1

    again = invoke("apply", "--yes", "run.toml", cwd=root)
    assert again.exit_code == 0, again.output
    assert "No changes" in again.output
    assert packages(remote) == first
    assert {m.handle["job_id"].split("_")[0] for m in members(root).values()} == jobs

    (root / "train.py").write_text(TRAIN.replace("trained lr", "trained again lr"))
    edited = invoke("apply", "--yes", "run.toml", cwd=root)
    assert edited.exit_code == 0, edited.output
    assert len(packages(remote)) == 2, edited.output  # one new package, the old one kept
    status, state = wait_for(root, ended)
    assert {m.status for m in state.values()} == {"succeeded"}, status.output
    assert "trained again lr 0.1" in (root / "runs/rs/main/lr=0.1/c1/stdout.log").read_text()


def test_the_same_manifest_runs_through_nemo_run_on_the_same_cluster(tmp_path, slurm, sshd):
    """The profile switched to NeMo-Run's SlurmExecutor over its SSHTunnel; the manifest is
    the same but for its output artifact, which NeMo-Run cannot register (validate says so)."""
    root, _ = project(tmp_path, sshd)
    env_toml = (root / "env.toml").read_text()
    (root / "env.toml").write_text(env_toml.replace(
        'executor = "slurm"', 'executor = "nemo-run"\nnemo_executor = "slurm"'))
    refused = invoke("validate", "run.toml", cwd=root)
    assert refused.exit_code == 1 and "outputs.artifacts (rs-model)" in refused.stderr
    manifest = (root / "run.toml").read_text()
    (root / "run.toml").write_text(manifest[:manifest.index("[outputs.artifacts.rs-model]")]
                                   + manifest[manifest.index("[env]"):])
    applied = invoke("apply", "--yes", "run.toml", cwd=root)
    assert applied.exit_code == 0, applied.output
    status, state = wait_for(root, ended)
    assert {m.status for m in state.values()} == {"succeeded"}, status.output
    assert {m.backend for m in state.values()} == {"nemo-run"}
    run_dir = root / "runs/rs/main/lr=0.1/c1"
    assert "trained lr 0.1 as runspec-cluster" in (run_dir / "stdout.log").read_text()
    results = invoke("results", "run.toml", "--format", "json", cwd=root)
    assert results.exit_code == 0 and "loss" in results.output, results.output


def test_cancel_reaches_the_cluster(tmp_path, slurm, sshd):
    root, _ = project(tmp_path, sshd, values=("0.5",), pause=120)
    assert invoke("apply", "--yes", "run.toml", cwd=root).exit_code == 0
    # the log of a run still going comes back when asked for (a refresh first)
    deadline, logs = time.monotonic() + 60, ""
    while "trained lr 0.5" not in logs and time.monotonic() < deadline:
        time.sleep(1)
        logs = invoke("logs", "run.toml", "rs/main/lr=0.5/c1", cwd=root).output
    assert "trained lr 0.5" in logs
    cancelled = invoke("cancel", "run.toml", cwd=root)
    assert cancelled.exit_code == 0, cancelled.output
    _, state = wait_for(root, ended, 60)
    assert {m.status for m in state.values()} == {"cancelled"}
    job = next(iter(state.values())).handle["job_id"]
    queue = subprocess.run(["squeue", "-h", "-j", job.split("_")[0]], capture_output=True,
                           text=True, check=False)
    assert "R " not in queue.stdout


def refused(root: Path, *needles: str) -> str:
    applied = invoke("apply", "--yes", "run.toml", cwd=root)
    assert applied.exit_code != 0, applied.output
    assert "Traceback" not in applied.output
    for needle in needles:
        assert needle in applied.output, applied.output
    assert members(root) == {} or all(m.status in ("planned", "failed")
                                      for m in members(root).values())
    return applied.output


def test_an_unreachable_login_node_is_a_bounded_clear_error(tmp_path, sshd):
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    root, _ = project(tmp_path, sshd, port=port)
    started = time.monotonic()
    refused(root, "127.0.0.1")
    assert time.monotonic() - started < 60


def test_an_unknown_host_key_is_refused(tmp_path, sshd):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    root, _ = project(tmp_path, sshd, known_hosts=str(empty))
    refused(root, "host key")
    assert empty.read_text() == ""  # never learned


def test_a_refused_key_is_a_clear_error(tmp_path, sshd):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    root, _ = project(tmp_path, sshd, identity=str(other))
    refused(root, "refused the login")


def test_an_unwritable_remote_dir_is_a_clear_error(tmp_path, sshd):
    root, _ = project(tmp_path, sshd)
    text = (root / "env.toml").read_text()
    (root / "env.toml").write_text(text.replace(sshd["RUNSPEC_SSH_REMOTE_DIR"], "/root"))
    refused(root, "is not writable")


DESCRIBED = textwrap.dedent("""\
    import json, os, sys
    from pathlib import Path
    from runspec import artifacts
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    model = Path(os.environ["RUNSPEC_OUTPUT_RS_MODEL"])
    model.write_text("weights\\n")
    Path(f"{model}.metadata.json").write_text(
        json.dumps({"step": 7, "loss": 0.5, "tokens": "many"}) if args["sidecar"] == "good"
        else "{not json")
    ckpt = Path(os.environ["RUNSPEC_OUTPUT_RS_CKPT"])
    ckpt.mkdir()
    (ckpt / "state.bin").write_text("state")
    Path(f"{ckpt}.metadata.json").write_text(json.dumps({"step": 1, "loss": 9.0}))
    artifacts.save("rs-ckpt", metadata={"step": 3, "note": "saved in the job"})
    """)


def test_metadata_written_on_the_cluster_is_registered_with_its_outputs(tmp_path, slurm, sshd,
                                                                        artifact_registry):
    """A run whose outputs stay on the cluster gives them metadata as any run does: a
    <path>.metadata.json beside one, or runspec.artifacts.save in the job (its fields win);
    both are read there and registered. A sidecar that is not JSON fails its run, saying
    which file, and registers nothing of it."""
    from runspec.artifacts.registry import Registry

    root, _ = project(tmp_path, sshd)
    (root / "train.py").write_text(DESCRIBED)
    manifest = (root / "run.toml").read_text()
    (root / "run.toml").write_text(
        manifest.replace('"lr=${sweep.lr}", "pause=0.0"', '"sidecar=${sweep.sidecar}"')
        .replace('lr = ["0.1", "0.2"]', 'sidecar = ["good", "bad"]')
        .replace('[measure]\nmetrics = ["loss"]\n', "")
        .replace("[env]", '[outputs.artifacts.rs-ckpt]\npath = "${run.dir}/ckpt"\n'
                          'type = "checkpoint"\n[env]'))
    applied = invoke("apply", "--yes", "run.toml", cwd=root)
    assert applied.exit_code == 0, applied.output
    status, state = wait_for(root, ended)
    by_point = {m.key.split("/")[2]: m for m in state.values()}
    assert by_point["sidecar=good"].status == "succeeded", status.output
    assert by_point["sidecar=bad"].status == "failed", status.output
    error = by_point["sidecar=bad"].error or ""
    assert "output rs-model: " in error and "model.txt.metadata.json is not JSON" in error, error
    registry = Registry(artifact_registry)
    assert registry.versions("rs-model") == [1] and registry.versions("rs-ckpt") == [1]
    model, ckpt = registry.get("rs-model", 1), registry.get("rs-ckpt", 1)
    assert model.metadata["producer"] == ckpt.metadata["producer"] == by_point["sidecar=good"].key
    assert model.fields == {"step": 7, "loss": 0.5, "tokens": "many"}
    assert ckpt.fields == {"step": 3, "loss": 9.0, "note": "saved in the job"}
    assert "host" in ckpt.metadata and ckpt.metadata["type"] == "checkpoint"
    assert "warning" not in (root / by_point["sidecar=good"].run_dir / "stderr.log").read_text()
