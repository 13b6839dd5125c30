"""The login node's checks before the first upload (runspec/backends/login_node.py).

A real login node without sbatch, or with an old python, cannot be made on demand here (the
test sshd's user has Debian's PATH), so these use a FAKE connection that answers the check
script with the exit status such a node gives; everything else is the real code."""

from __future__ import annotations

import subprocess

import pytest

from runspec.backends import login_node
from runspec.backends.base import BackendError
from runspec.backends.login_node import LoginNode


class AnsweringShell:
    """FAKE: a login node whose check script exits with ``code``."""

    where = "login node me@login"

    def __init__(self, code: int) -> None:
        self.code = code

    def run(self, argv, **_kwargs):
        return subprocess.CompletedProcess(argv, self.code, b"", b"")

    def close(self) -> None:
        pass


@pytest.fixture
def node(monkeypatch):
    node = LoginNode(host="login", user="me", remote_job_dir="/lustre/me/jobs")

    def answering(code: int) -> LoginNode:
        monkeypatch.setitem(login_node._OPEN, (node.host, node.user, node.port, node.identity,
                                               node.known_hosts), AnsweringShell(code))
        return node
    yield answering
    login_node._CHECKED.clear()


@pytest.mark.parametrize(("code", "said"), [
    (3, "sbatch is not on the PATH of the login node me@login"),
    (4, "has no `python` on PATH"),
    (5, "is older than 3.11"),
    (6, "remote_job_dir /lustre/me/jobs is not writable"),
])
def test_what_the_login_node_lacks_is_said_before_anything_is_uploaded(node, code, said):
    with pytest.raises(BackendError, match=said) as caught:
        node(code).preflight()
    assert caught.value.hint


def test_a_node_that_passes_is_checked_once(node):
    checked = node(0)
    checked.preflight()
    login_node._OPEN[(checked.host, checked.user, None, None, None)] = AnsweringShell(3)
    checked.preflight()  # not asked again in this process


def test_a_relative_remote_dir_is_refused():
    with pytest.raises(BackendError, match="not an absolute path"):
        LoginNode.of({"tunnel": "ssh", "host": "login", "remote_job_dir": "jobs"})
