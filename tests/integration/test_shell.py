"""The SSH shell that Slurm's clients will run through, against the real OpenSSH login node
(tests/services/sshd.sh): one multiplexed connection, inert arguments, atomic uploads, and
each way a login node can fail as a clear error within a bounded time."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from runspec.backends.base import BackendError
from runspec.backends.shell import SSHShell

pytestmark = pytest.mark.ssh


def shell(env: dict[str, str], **changes) -> SSHShell:
    settings = dict(host=env["RUNSPEC_SSH_HOST"], user=env["RUNSPEC_SSH_USER"],
                    port=int(env["RUNSPEC_SSH_PORT"]), identity=env["RUNSPEC_SSH_IDENTITY"],
                    known_hosts=env["RUNSPEC_SSH_KNOWN_HOSTS"])
    return SSHShell(**{**settings, **changes})


def test_commands_share_one_connection_and_arguments_stay_data(sshd, tmp_path):
    canary = tmp_path / "PWNED"
    with shell(sshd) as login:
        control = login.ssh_argv()
        assert any(a.startswith("ControlPath=") for a in control)
        check = subprocess.run([*control, "-O", "check", login.target], capture_output=True,
                               timeout=30, check=False)
        assert check.returncode == 0, check.stderr
        hostile = ["a b", f"$(touch {canary})", "'; touch " + str(canary) + "; '", "*"]
        done = login.run(["printf", "%s\\n", *hostile])
        assert done.returncode == 0
        assert done.stdout.decode().splitlines() == hostile
        assert login.run(["id", "-un"]).stdout == b"runspec-cluster\n"
        assert login.run(["sh", "-c", "exit 3"]).returncode == 3  # the command's own status
    assert not canary.exists()
    again = subprocess.run([*control, "-O", "check", login.target], capture_output=True,
                           timeout=30, check=False)
    assert again.returncode != 0  # closed with the shell


def test_put_writes_atomically_with_its_mode(sshd):
    remote = sshd["RUNSPEC_SSH_REMOTE_DIR"] + f"/put-{time.monotonic_ns()}"
    with shell(sshd) as login:
        login.put(b"secret=1\n", f"{remote}/deep/secrets.env", mode=0o600)
        listed = login.run(["ls", "-la", f"{remote}/deep"]).stdout.decode()
        assert login.run(["cat", f"{remote}/deep/secrets.env"]).stdout == b"secret=1\n"
        assert login.run(["stat", "-c", "%a", f"{remote}/deep/secrets.env"]).stdout == b"600\n"
        assert ".part-" not in listed  # the temporary name is gone
        with pytest.raises(BackendError, match="cannot write /proc/nope") as refused:
            login.put(b"x", "/proc/nope/file")
        assert "writable" in (refused.value.hint or "")
        login.run(["rm", "-rf", remote])


def test_an_unknown_host_key_is_refused_never_accepted(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(BackendError, match="host key .* is not known") as refused:
        shell(sshd, known_hosts=str(empty)).open()
    assert "never accepts a host key" in (refused.value.hint or "")
    assert empty.read_text() == ""


def test_a_wrong_key_is_a_refused_login_not_a_prompt(sshd, tmp_path):
    key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    began = time.monotonic()
    with pytest.raises(BackendError, match="refused the login"):
        shell(sshd, identity=str(key)).open()
    assert time.monotonic() - began < 20


def test_an_unreachable_login_node_fails_within_the_timeout(sshd):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    began = time.monotonic()
    with pytest.raises(BackendError, match="cannot reach"):
        shell(sshd, port=port, connect_timeout=3).open()
    assert time.monotonic() - began < 20


def test_a_missing_command_on_the_login_node_names_it(sshd):
    with shell(sshd) as login, pytest.raises(BackendError, match="sbatchx not found on login"):
        login.run(["sbatchx", "--version"])


def test_slurm_answers_through_the_shell_as_the_cluster_user(sshd, slurm):
    with shell(sshd) as login:
        done = login.run(["squeue", "-h", "-u", "runspec-cluster", "-o", "%i"])
        assert done.returncode == 0, done.stderr
        info = login.run(["sinfo", "-h", "-o", "%P"])
        assert b"debug" in info.stdout


def test_a_command_that_never_answers_is_bounded(sshd):
    with shell(sshd) as login:
        began = time.monotonic()
        with pytest.raises(BackendError, match="did not answer within 2 s") as slow:
            login.run(["sleep", "30"], timeout=2)
        assert slow.value.ambiguous  # it may have run: a submission is kept as an intent
        assert time.monotonic() - began < 10


def test_the_local_shell_puts_atomically(tmp_path: Path):
    from runspec.backends.shell import LocalShell

    target = tmp_path / "a/b/c.txt"
    LocalShell().put(b"x", str(target), mode=0o600)
    assert target.read_bytes() == b"x" and oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in target.parent.iterdir()] == ["c.txt"]
    with pytest.raises(BackendError, match="not found on PATH"):
        LocalShell().run(["runspec-no-such-command"])


def test_a_package_is_uploaded_once_and_unpacked_where_the_cluster_user_reads_it(sshd, tmp_path):
    """The submitting side's project is unreadable to the cluster user; its package is not."""
    from runspec.backends.package import install, pack

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src/train.py").write_text("print('hello from the package')\n")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "add", "."], check=True)
    subprocess.run(["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "init"], check=True)
    remote = sshd["RUNSPEC_SSH_REMOTE_DIR"] + f"/pkg-{time.monotonic_ns()}"
    with shell(sshd) as login:
        assert login.run(["cat", str(project / "src/train.py")]).returncode != 0
        package = pack(project, "git")
        path, uploaded = install(login, package, remote)
        assert uploaded and path == f"{remote}/{package.name}"
        ran = login.run(["python3", "src/train.py"], cwd=path)
        assert ran.stdout == b"hello from the package\n", ran.stderr
        assert install(login, pack(project, "git"), remote) == (path, False)  # unchanged
        (project / "src/train.py").write_text("print('edited')\n")
        edited = pack(project, "git", include_uncommitted=True)
        new_path, uploaded = install(login, edited, remote)
        assert uploaded and new_path != path
        listed = login.run(["ls", "-A", remote]).stdout.decode().split()
        assert sorted(listed) == sorted([package.name, edited.name])  # no partial left
        login.run(["rm", "-rf", remote])


def test_two_installs_at_once_publish_one_whole_tree(sshd, tmp_path):
    import threading

    from runspec.backends.package import install, pack

    project = tmp_path / "many"
    project.mkdir()
    for i in range(300):
        (project / f"f{i}.py").write_text(f"x = {i}\n")
    package = pack(project, "pattern", ("*.py",))
    remote = sshd["RUNSPEC_SSH_REMOTE_DIR"] + f"/race-{time.monotonic_ns()}"
    results, errors = [], []
    with shell(sshd) as login:
        def one() -> None:
            try:
                results.append(install(login, package, remote))
            except BackendError as error:
                errors.append(error)

        threads = [threading.Thread(target=one) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        (path,) = {p for p, _ in results}
        count = login.run(["sh", "-c", f"ls {path} | wc -l"]).stdout.strip()
        assert count == b"300"
        assert login.run(["ls", "-A", remote]).stdout.decode().split() == [package.name]
        login.run(["rm", "-rf", remote])


def test_a_host_that_looks_like_an_option_is_refused():
    with pytest.raises(BackendError, match="not a host name"):
        SSHShell("-oProxyCommand=touch /tmp/x")
