"""The real OpenSSH "login node" on 127.0.0.1 (tests/services/sshd.sh): key-only logins
as the unprivileged cluster account, host keys checked, and the Slurm cluster from
tests/services/slurm.sh usable over ssh, with jobs running as that account."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ssh

TIMEOUT = 60  # seconds for any one ssh process; every call is bounded


def ssh(env: dict[str, str], command: str, *options: str, identity: str | None = None,
        known_hosts: str | None = None, user: str | None = None,
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``ssh USER@HOST COMMAND`` with exactly one key and one known_hosts file: no
    ~/.ssh/config, no agent, no prompts, host key checked."""
    argv = [
        "ssh", "-F", "none",
        "-i", identity or env["RUNSPEC_SSH_IDENTITY"],
        "-p", env["RUNSPEC_SSH_PORT"],
        "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts or env['RUNSPEC_SSH_KNOWN_HOSTS']}",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        *options,
        f"{user or env['RUNSPEC_SSH_USER']}@{env['RUNSPEC_SSH_HOST']}",
    ]
    if command:
        argv.append(command)
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=timeout, check=False)


def other_key(directory: Path) -> str:
    key = directory / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True, capture_output=True)
    return str(key)


# -- logins and host keys --------------------------------------------------------------------


def test_the_cluster_user_logs_in_with_the_key_and_the_known_host(sshd):
    result = ssh(sshd, "id -un")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "runspec-cluster\n"
    assert sshd["RUNSPEC_SSH_HOST"] == "127.0.0.1"
    assert sshd["RUNSPEC_SSH_USER"] == "runspec-cluster"


def test_the_client_key_is_private_to_root(sshd):
    info = os.stat(sshd["RUNSPEC_SSH_IDENTITY"])
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == 0


def test_the_remote_dir_belongs_to_the_cluster_user(sshd):
    remote = sshd["RUNSPEC_SSH_REMOTE_DIR"]
    name = f"probe-{secrets.token_hex(4)}"
    result = ssh(sshd, f"cd {shlex.quote(remote)} && touch {name} && stat -c '%U %a' . {name}"
                       f" && rm {name}")
    assert result.returncode == 0, result.stderr
    owner_dir, owner_file = result.stdout.splitlines()
    assert owner_dir.split()[0] == "runspec-cluster"
    assert owner_file.split()[0] == "runspec-cluster"


def test_an_unknown_host_key_is_refused_not_accepted(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = ssh(sshd, "true", known_hosts=str(empty))
    assert result.returncode == 255
    assert "Host key verification failed." in result.stderr
    assert empty.read_text() == ""  # nothing was learnt on the way


def test_a_changed_host_key_is_refused(sshd, tmp_path):
    impostor = Path(other_key(tmp_path) + ".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd['RUNSPEC_SSH_HOST']}]:{sshd['RUNSPEC_SSH_PORT']} {' '.join(impostor)}\n")
    result = ssh(sshd, "true", known_hosts=str(known))
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_a_wrong_key_is_refused_without_a_password_prompt(sshd, tmp_path):
    started = time.monotonic()
    result = ssh(sshd, "id -un", identity=other_key(tmp_path), timeout=30)
    assert result.returncode == 255
    assert result.stdout == ""
    # The server offers public keys and nothing else (no password, no keyboard-interactive).
    assert "Permission denied (publickey)." in result.stderr
    assert time.monotonic() - started < 15


def test_root_cannot_log_in_even_with_the_key(sshd):
    result = ssh(sshd, "id -un", user="root", timeout=30)
    assert result.returncode == 255
    assert "Permission denied" in result.stderr
    assert result.stdout == ""


def test_the_cluster_user_cannot_read_the_submitting_project(sshd, tmp_path):
    secret = tmp_path / "project" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("do not copy me\n")
    assert secret.read_text() == "do not copy me\n"  # root (the submitting side) can
    result = ssh(sshd, f"cat {shlex.quote(str(secret))}")
    assert result.returncode == 1, (result.returncode, result.stderr)  # cat failed, not ssh
    assert "Permission denied" in result.stderr
    assert "do not copy me" not in result.stdout


# -- one connection, many commands -----------------------------------------------------------


def test_a_control_master_serves_later_commands_on_the_same_connection(sshd, tmp_path):
    control = Path(tempfile.mkdtemp(prefix="rscm-", dir="/tmp"))  # socket paths: <= 104 bytes
    path = str(control / "m")
    mux = ("-o", f"ControlPath={path}")
    try:
        first = ssh(sshd, 'printf %s "$SSH_CONNECTION"', "-o", "ControlMaster=yes",
                    "-o", "ControlPersist=60", *mux)
        assert first.returncode == 0, first.stderr
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        check = ssh(sshd, "", "-O", "check", *mux)
        assert check.returncode == 0, check.stderr
        assert "Master running" in check.stderr
        # A key the server refuses: these can only succeed through the master.
        refused = other_key(tmp_path)
        assert ssh(sshd, "true", identity=refused, timeout=30).returncode == 255
        later = [ssh(sshd, 'printf %s "$SSH_CONNECTION"', "-o", "ControlMaster=no", *mux,
                     identity=refused) for _ in range(3)]
        for result in later:
            assert result.returncode == 0, result.stderr
            # Same client port: the same TCP connection as the first command.
            assert result.stdout == first.stdout
        assert ssh(sshd, "", "-O", "exit", *mux, timeout=30).returncode == 0
        assert ssh(sshd, "", "-O", "check", *mux, timeout=30).returncode == 255
    finally:
        ssh(sshd, "", "-O", "exit", *mux, timeout=30)
        shutil.rmtree(control, ignore_errors=True)


# -- Slurm through the login node ------------------------------------------------------------


def remote_job(sshd, job_id: str) -> dict[str, str]:
    result = ssh(sshd, f"scontrol show job -o {job_id}")
    assert result.returncode == 0, result.stderr
    return dict(item.split("=", 1) for item in result.stdout.split() if "=" in item)


def ended_remote(sshd, job_id: str, within: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + within
    job = remote_job(sshd, job_id)
    while job["JobState"] in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING") and \
            time.monotonic() < deadline:
        time.sleep(0.3)
        job = remote_job(sshd, job_id)
    return job


def test_the_login_shell_sees_the_slurm_config(sshd, slurm):
    plain = ssh(sshd, 'printf %s "$SLURM_CONF"')
    login = ssh(sshd, shlex.join(["bash", "-lc", 'printf %s "$SLURM_CONF"']))
    assert plain.returncode == 0 and login.returncode == 0, (plain.stderr, login.stderr)
    assert plain.stdout == slurm["SLURM_CONF"]
    assert login.stdout == slurm["SLURM_CONF"]
    munge = ssh(sshd, "munge -n | unmunge")
    assert munge.returncode == 0, munge.stderr
    assert "runspec-cluster" in munge.stdout  # the credential names the cluster user


def test_a_job_submitted_over_ssh_runs_as_the_cluster_user(sshd, slurm):
    remote = sshd["RUNSPEC_SSH_REMOTE_DIR"]
    token = secrets.token_hex(6)  # job ids repeat across fresh Slurm states
    out = f"{remote}/who-{token}.txt"
    submit = ssh(sshd, shlex.join([
        "sbatch", "--parsable", "--partition", slurm["RUNSPEC_SLURM_PARTITION"],
        "--chdir", remote, "--output", f"{remote}/job-{token}.out", "--time", "00:02:00",
        "--wrap", f"id -un > {out}",
    ]))
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip()
    assert job_id.isdigit(), submit.stdout
    try:
        job = ended_remote(sshd, job_id)
        assert job["JobState"] == "COMPLETED", job
        assert job["UserId"].startswith("runspec-cluster("), job["UserId"]
        who = ssh(sshd, f"cat {out}")
        assert who.returncode == 0, who.stderr
        assert who.stdout == "runspec-cluster\n"
        owner = ssh(sshd, f"stat -c %U {out}")
        assert owner.stdout.strip() == "runspec-cluster"
    finally:
        ssh(sshd, f"rm -f {out} {remote}/job-{token}.out")


def test_squeue_and_scancel_work_over_ssh(sshd, slurm):
    submit = ssh(sshd, shlex.join([
        "sbatch", "--parsable", "--partition", slurm["RUNSPEC_SLURM_PARTITION"],
        "--output", "/dev/null", "--time", "00:05:00", "--wrap", "sleep 300",
    ]))
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip()
    try:
        deadline = time.monotonic() + 30
        listed = ""
        while time.monotonic() < deadline:
            listed = ssh(sshd, f"squeue -h -j {job_id} -o '%u %T'").stdout.strip()
            if listed == "runspec-cluster RUNNING":
                break
            time.sleep(0.3)
        assert listed == "runspec-cluster RUNNING"
        cancel = ssh(sshd, f"scancel {job_id}")
        assert cancel.returncode == 0, cancel.stderr
        job = ended_remote(sshd, job_id)
        assert job["JobState"] == "CANCELLED", job
        # The submitting side (root, same cluster) sees the same job and owner.
        local = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                               text=True, check=True, timeout=30).stdout
        assert "UserId=runspec-cluster(" in local
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30, check=False)
