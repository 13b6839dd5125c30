"""Code packaging for jobs on another machine: deterministic archives of a real git
checkout (HEAD, or HEAD plus uncommitted changes) or of globs, named by their content."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from runspec.backends.base import BackendError
from runspec.backends.package import pack


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src/train.py").write_text("print('train')\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / ".gitignore").write_text("runs/\n")
    (root / "runs").mkdir()
    (root / "runs/big.bin").write_bytes(b"0" * 1000)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return root


def members(package) -> dict[str, tuple[bytes, int]]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(package.data))) as tar:
        return {m.name: (tar.extractfile(m).read(), m.mode) for m in tar}


def test_git_head_is_packed_deterministically_without_ignored_files(project):
    first, second = pack(project, "git"), pack(project, "git")
    assert first.data == second.data and first.digest == second.digest
    assert first.files == (".gitignore", "run.sh", "src/train.py")
    assert members(first)["run.sh"] == (b"#!/bin/sh\n", 0o755)
    assert members(first)["src/train.py"][1] == 0o644


def test_uncommitted_changes_go_in_only_when_asked(project):
    head = pack(project, "git")
    (project / "src/new.py").write_text("x = 1\n")
    assert pack(project, "git").digest == head.digest  # an untracked file is not a change
    (project / "src/train.py").write_text("print('edited')\n")
    # HEAD alone while a tracked file differs would run other code than the tree shows
    with pytest.raises(BackendError, match=r"uncommitted changes \(src/train.py"):
        pack(project, "git")
    dirty = pack(project, "git", include_uncommitted=True)
    assert dirty.digest != head.digest
    assert members(dirty)["src/train.py"][0] == b"print('edited')\n"
    assert "src/new.py" in dirty.files and "runs/big.bin" not in dirty.files


def test_a_subdirectory_of_a_checkout_packs_only_itself(project):
    package = pack(project / "src", "git", include_uncommitted=True)
    assert package.files == ("train.py",)
    assert pack(project / "src", "git").files == ("train.py",)


def test_patterns_pack_what_they_match_and_an_empty_match_is_an_error(project):
    package = pack(project, "pattern", ("src/**/*.py", "run.sh"))
    assert package.files == ("run.sh", "src/train.py")
    with pytest.raises(BackendError, match='"conf/\\*.yaml" matches no file'):
        pack(project, "pattern", ("conf/*.yaml",))


def test_none_packs_nothing_and_git_outside_a_checkout_says_what_to_do(tmp_path):
    assert pack(tmp_path, "none") is None
    with pytest.raises(BackendError, match="git rev-parse failed") as refused:
        pack(tmp_path, "git")
    assert 'packager = "pattern"' in refused.value.hint


def test_patterns_never_reach_outside_the_project(project, tmp_path):
    (tmp_path / "outside.txt").write_text("secret")
    with pytest.raises(BackendError, match="matches no file"):
        pack(project, "pattern", ("../outside.txt",))
    with pytest.raises(BackendError, match='package pattern "/etc/host\\*"'):
        pack(project, "pattern", ("/etc/host*",))


class DroppingShell:
    """FAKE (a fault the real sshd cannot produce on demand): a connection that drops in the
    middle of an upload, after half the archive was written to its temporary name."""

    def __init__(self) -> None:
        from runspec.backends.shell import LocalShell

        self.real = LocalShell()
        self.where = "a login node that drops the connection"

    def run(self, argv, **kwargs):
        return self.real.run(argv, **kwargs)

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path + ".part").write_bytes(data[: len(data) // 2])
        raise BackendError("connection to the login node dropped")


def test_an_upload_dropped_midway_leaves_no_package_and_the_next_one_installs(project, tmp_path):
    from runspec.backends.package import install
    from runspec.backends.shell import LocalShell

    package = pack(project, "git", include_uncommitted=True)
    remote = tmp_path / "remote"
    with pytest.raises(BackendError, match="dropped"):
        install(DroppingShell(), package, str(remote))
    assert not (remote / package.name).exists()  # nothing under the name a job would use
    path, uploaded = install(LocalShell(), package, str(remote))
    assert uploaded and Path(path) == remote / package.name
    assert (remote / package.name / "src/train.py").read_text() == "print('train')\n"
    assert install(LocalShell(), package, str(remote)) == (path, False)  # not sent again
