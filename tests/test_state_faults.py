"""Faults in the state, its lock and the files around them: every command says what is wrong
and where, never with a traceback, and leaves what it found as it was.

The full-disk tests use a real full file system (a small tmpfs, which needs root); they are
skipped, saying so, where that cannot be mounted.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import invoke

from runspec.state.store import Member, State, StateError, StateStore, verify

FIRST = "loc/main/v=a/c1"
VALUES = ["a", "b", "c", "d", "e", "f", "g", "h"]  # a state of about 10 KB: more than its head


def manifest(values: list[str], extra: str = "") -> str:
    return textwrap.dedent(f'''\
        schema = "runspec/v1"
        name = "loc"
        [recipe]
        command = ["python", "-c", "pass", "${{sweep.v}}"]
        [sweep.parameters]
        v = {json.dumps(values)}
        ''') + extra


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    """A project applied once (every run succeeded); tests work on copies of it."""
    root = tmp_path_factory.mktemp("applied")
    (root / "pyproject.toml").write_text("")
    (root / "run.toml").write_text(manifest(VALUES))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNSPEC_ARTIFACTS", str(tmp_path_factory.mktemp("registry")))
        result = invoke("apply", "--yes", "run.toml", cwd=root)
    assert result.exit_code == 0, result.output
    assert invoke("apply", "--yes", "run.toml", cwd=root).stdout.startswith("No changes.")
    return root


@pytest.fixture
def project(applied: Path, tmp_path: Path) -> Path:
    """A copy, re-applied once: its inputs' fingerprint includes where it is, and with it
    recorded the next apply takes the unchanged fast path (reading only the state)."""
    copy = tmp_path / "project"
    shutil.copytree(applied, copy, symlinks=True)
    assert invoke("apply", "--yes", "run.toml", cwd=copy).stdout.startswith("No changes.")
    head = state_file(copy).read_bytes()[:4096].decode()
    assert '\n "complete": true,\n' in head and '\n "fingerprint": "' in head
    return copy


def state_file(project: Path) -> Path:
    return project / ".runspec/state/loc.json"


# -- item: the state is verified before it is trusted ----------------------------------------

def test_apply_refuses_a_state_truncated_after_its_first_4_kb(project):
    path = state_file(project)
    assert path.stat().st_size > 2 * 4096
    path.write_bytes(path.read_bytes()[:4096])
    before = path.read_bytes()
    result = invoke("apply", "--yes", "run.toml", cwd=project)
    assert result.exit_code == 1, result.output
    assert "No changes" not in result.output
    assert result.stderr.startswith(f"error: state {path} is corrupt (line ")
    assert path.read_bytes() == before


def _state(members: int) -> State:
    state = State("big", fingerprint="ab" * 32)
    for i in range(members):
        key = f"big/main/i={i}/c1"
        state.members[key] = Member(key, "main", "cd" * 32, "succeeded", {"pid": i, "host": "h"},
                                    point={"i": i}, slot="c1", run_dir=f"runs/{key}")
    return state


def test_the_checksum_lets_the_head_be_trusted_and_catches_any_other_change(tmp_path):
    store = StateStore(str(tmp_path / "big.json"), "big")
    store.write(_state(300))
    data = store.local_path.read_bytes()
    assert data.startswith(b'{\n "format": 1,\n "checksum": "sha256:')
    assert verify(data) is True
    assert store.read_summary() == ("ab" * 32, True)
    # One digit deep among the members, the JSON and every field still valid:
    damaged = data.replace(b'"pid": 271', b'"pid": 272', 1)
    assert damaged != data and json.loads(damaged)
    store.local_path.write_bytes(damaged)
    for read in (store.read_summary, store.read):
        with pytest.raises(StateError, match="its checksum does not match its content"):
            read()
    assert store.local_path.read_bytes() == damaged


def test_a_state_without_a_checksum_is_read_unverified_with_a_full_parse(tmp_path):
    """What the previous runspec wrote: no checksum line. It is read, and the fast path
    parses and checks all of it instead of trusting the head; the next write seals it."""
    store = StateStore(str(tmp_path / "big.json"), "big")
    store.write(_state(300))
    document = json.loads(store.local_path.read_bytes())
    del document["checksum"]
    legacy = (json.dumps(document, indent=1) + "\n").encode()
    store.local_path.write_bytes(legacy)
    assert verify(legacy) is None
    assert store.read_summary() == ("ab" * 32, True)
    assert len(store.read().members) == 300
    store.local_path.write_bytes(legacy[:4096])
    with pytest.raises(StateError, match="is corrupt"):
        store.read_summary()
    store.local_path.write_bytes(legacy)
    store.write(store.read())
    assert verify(store.local_path.read_bytes()) is True


# -- item: every field read from state is checked; every command says so --------------------

def _document(change, keep_checksum: bool):
    def corrupt(data: bytes) -> bytes:
        document = json.loads(data)
        if not keep_checksum:
            document.pop("checksum", None)  # as a hand edit, or the previous runspec, would leave it
        change(document)
        return (json.dumps(document, indent=1) + "\n").encode()
    return corrupt


def _set(*path_and_value):
    *path, value = path_and_value

    def change(document):
        target = document
        for part in path[:-1]:
            target = target[part]
        if value is _MISSING:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


_MISSING = object()
MEMBER = f'members["{FIRST}"]'

FIELD_CORRUPTIONS = {
    "serial-text": (_set("serial", "x"), "at serial: expected a whole number"),
    "serial-negative": (_set("serial", -1), "at serial: expected a whole number"),
    "members-list": (_set("members", []), "at members: expected an object"),
    "format-text": (_set("format", "1"), "is not a runspec state file"),
    "format-newer": (_set("format", 99), "was written by a newer runspec"),
    "lineage-number": (_set("lineage", 5), "at lineage: expected a string or null"),
    "fingerprint-list": (_set("fingerprint", []), "at fingerprint"),
    "complete-text": (_set("complete", "yes"), "at complete: expected true or false"),
    "member-number": (_set("members", FIRST, 5), f"at {MEMBER}: expected an object"),
    "status-number": (_set("members", FIRST, "status", 5), f"at {MEMBER}.status: expected one of"),
    "status-unknown": (_set("members", FIRST, "status", "exploded"), f"at {MEMBER}.status"),
    "handle-text": (_set("members", FIRST, "handle", "x"), f"at {MEMBER}.handle: expected an object"),
    "handle-pid-text": (_set("members", FIRST, "handle", "pid", "x"), f"at {MEMBER}.handle.pid"),
    "attempts-text": (_set("members", FIRST, "attempts", "x"), f"at {MEMBER}.attempts"),
    "attempts-bool": (_set("members", FIRST, "attempts", True), f"at {MEMBER}.attempts"),
    "point-list": (_set("members", FIRST, "point", []), f"at {MEMBER}.point"),
    "request-null": (_set("members", FIRST, "request", None), f"at {MEMBER}.request"),
    "outputs-text": (_set("members", FIRST, "outputs", "x"), f"at {MEMBER}.outputs"),
    "run-dir-number": (_set("members", FIRST, "run_dir", 5), f"at {MEMBER}.run_dir"),
    "backend-unknown": (_set("members", FIRST, "backend", "mars"), f"at {MEMBER}.backend"),
    "registered-text": (_set("members", FIRST, "registered", "no"), f"at {MEMBER}.registered"),
    "error-number": (_set("members", FIRST, "error", 1), f"at {MEMBER}.error"),
    "digest-missing": (_set("members", FIRST, "digest", _MISSING), f"at {MEMBER}.digest"),
    "field-unknown": (_set("members", FIRST, "colour", "red"),
                      f'at {MEMBER}: unknown field "colour" (a run\'s fields are key, stage,'),
    "key-mismatch": (_set("members", FIRST, "key", "loc/main/v=z/c1"), f"at {MEMBER}.key"),
}
CORRUPTIONS = {
    "truncated-after-4k": (lambda data: data[:4096], "is corrupt (line "),
    "truncated-in-head": (lambda data: data[:150], "is corrupt (line "),
    "empty": (lambda data: b"", "is corrupt: the file is empty (0 bytes)"),
    "not-utf8": (lambda data: data.replace(b'"succeeded"', b'"succ\xffeded"', 1),
                 "is not UTF-8 text"),
    "not-json": (lambda data: b"not json\n", "is corrupt (line 1, column 1"),
    "a-list": (lambda data: b"[]\n", "is not a runspec state file"),
    "one-digit-changed": (lambda data: data.replace(b'"attempts": 1', b'"attempts": 2', 1),
                          "its checksum does not match its content"),
    "checksum-garbled": (lambda data: data.replace(b'"sha256:', b'"sha256:zz', 1),
                         "at checksum: expected"),
    **{name: (_document(change, keep_checksum=False), expected)
       for name, (change, expected) in FIELD_CORRUPTIONS.items()},
    # The same edits with the (now stale) checksum kept: the field is named all the same.
    **{f"{name}+stale-checksum": (_document(FIELD_CORRUPTIONS[name][0], keep_checksum=True),
                                  FIELD_CORRUPTIONS[name][1])
       for name in ("serial-text", "members-list", "status-number", "handle-text")},
}
COMMANDS = {
    "plan": ["plan", "run.toml"],
    "apply": ["apply", "--yes", "run.toml"],
    "status": ["status", "run.toml"],
    "results": ["results", "run.toml"],
    "cancel": ["cancel", "run.toml"],
    "logs": ["logs", "run.toml", FIRST],
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_every_command_refuses_a_damaged_state_naming_file_and_field(project, corruption):
    corrupt, expected = CORRUPTIONS[corruption]
    path = state_file(project)
    damaged = corrupt(path.read_bytes())
    path.write_bytes(damaged)
    for name, argv in COMMANDS.items():
        result = invoke(*argv, cwd=project)
        assert result.exit_code == 1, (name, result.output)
        assert result.stderr.startswith(f"error: state {path} "), (name, result.stderr)
        assert expected in result.stderr, (name, result.stderr)
        assert " — " in result.stderr, (name, "no hint", result.stderr)  # what to do
        assert "Traceback" not in result.output and "No changes" not in result.output
        assert path.read_bytes() == damaged, name  # left exactly as found
        assert not path.with_suffix(".lock").exists(), name


def test_a_result_with_a_bad_field_is_reported_not_crashed_on(project):
    good = project / "runs" / FIRST / "result.json"
    bad = project / "runs" / "loc/main/v=b/c1" / "result.json"
    document = json.loads(bad.read_text())
    for field, value, named in [("metrics", "x", "field metrics: expected an object"),
                                ("metrics", {"loss": "low"}, "field metrics.loss: expected a"),
                                ("energy", "x", "field energy: expected an object or null"),
                                ("energy", {"method": 5}, "field energy.method"),
                                ("wall_s", "slow", "field wall_s: expected a number")]:
        bad.write_text(json.dumps({**document, field: value}))
        result = invoke("results", "run.toml", cwd=project)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert f"loc/main/v=b/c1 (bad result: {bad}: {named}" in result.stderr, result.stderr
        assert re.search(r"^main +a ", result.stdout, re.M)  # the others are still summarized
        assert not re.search(r"^main +b ", result.stdout, re.M)
        assert json.loads(good.read_text())["exit_code"] == 0
    # status is about the run's fate, which the result still tells: it succeeded.
    status = invoke("status", "run.toml", cwd=project).stdout
    assert re.search(r"^loc/main/v=b/c1 +succeeded ", status, re.M), status


# -- item: status re-derives a finished run whose result went away ----------------------------

def test_a_succeeded_run_whose_result_is_gone_is_lost_in_status_results_and_plan(project):
    emptied = project / "runs" / FIRST / "result.json"
    removed = project / "runs" / "loc/main/v=b/c1" / "result.json"
    emptied.write_text("")
    removed.unlink()
    status = invoke("status", "run.toml", cwd=project)
    assert status.exit_code == 0, status.output
    rows = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[1:9]}
    assert rows == {FIRST: "lost", "loc/main/v=b/c1": "lost",
                    **{f"loc/main/v={v}/c1": "succeeded" for v in VALUES[2:]}}
    assert f"  {FIRST}: recorded as succeeded, but {emptied} is empty" in status.stdout
    assert f"recorded as succeeded, but {removed} is missing" in status.stdout
    results = invoke("results", "run.toml", cwd=project)
    assert results.exit_code == 1
    assert "error: 2 run(s) have no complete result: " in results.stderr
    assert f"{FIRST} (lost: {emptied} is empty)" in results.stderr
    plan = invoke("plan", "run.toml", cwd=project).stdout
    assert f"↻ {FIRST}" in plan and "↻ loc/main/v=b/c1" in plan
    apply = invoke("apply", "--yes", "run.toml", cwd=project)
    assert "Apply complete: 2 launched, 2 succeeded." in apply.stdout, apply.output
    assert invoke("results", "run.toml", cwd=project).exit_code == 0


# -- item: locks survive faults --------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b'{"id": 5', b'{"id": "x"}'])
def test_a_lock_whose_holder_cannot_be_read_is_named_and_can_be_forced(project, content):
    lock = project / ".runspec/state/loc.lock"
    lock.write_bytes(content)
    blocked = invoke("apply", "--yes", "run.toml", cwd=project)
    assert blocked.exit_code == 1
    assert "the state of loc is locked, but its holder cannot be read (lock file " in blocked.stderr
    assert f"{len(content)} bytes, modified " in blocked.stderr
    assert "`runspec force-unlock unknown` breaks it" in blocked.stderr
    wrong = invoke("force-unlock", "0123456789ab", cwd=project)
    assert wrong.exit_code == 1 and "its holder cannot be read" in wrong.stderr
    assert lock.read_bytes() == content
    forced = invoke("force-unlock", "unknown", cwd=project)
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.startswith("Unlocked a lock whose holder could not be read: lock file ")
    assert f"{len(content)} bytes" in forced.stdout
    assert not lock.exists()
    assert invoke("apply", "--yes", "run.toml", cwd=project).stdout.startswith("No changes.")


def test_unknown_does_not_break_a_lock_whose_holder_is_known(project):
    from runspec.state.lock import state_lock

    with state_lock(state_file(project), "apply") as info:
        refused = invoke("force-unlock", "unknown", cwd=project)
        assert refused.exit_code == 1
        assert f"does not match the held lock (held by {info.describe()})" in refused.stderr
        assert state_file(project).with_suffix(".lock").exists()


# -- a full disk: a real one -----------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path):
    """A 64 KB tmpfs that ``fill()`` fills to the last byte and ``free()`` empties."""
    if os.geteuid() != 0:
        pytest.skip("a real full file system needs root to mount a small tmpfs")
    mount = tmp_path / "full"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")

    class Disk:
        path = mount
        filler = mount / "filler"

        def fill(self, leave_pages: int = 0) -> None:
            descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                while True:
                    os.write(descriptor, b"x" * 4096)
            except OSError as error:
                assert error.errno == errno.ENOSPC
            finally:
                os.close(descriptor)
            size = self.filler.stat().st_size
            os.truncate(self.filler, size - size % 4096 - 4096 * leave_pages)

        def free(self) -> None:
            self.filler.unlink(missing_ok=True)

    yield Disk()
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output and "Errno" not in result.output, result.output


def test_a_full_disk_at_the_lock_is_a_clear_error_and_leaves_no_lock(tmp_path, full_disk):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(manifest(["a"], '[outputs]\nstate = "full/state"\n'))
    (full_disk.path / "state").mkdir()
    full_disk.fill()
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    _no_traceback(result)
    lock = full_disk.path / "state/loc.lock"
    assert result.stderr == (
        f"error: cannot take the state lock {lock}: the disk is full (no space left on device)"
        f" — free space on the file system that holds {lock.parent}, then run the command "
        "again; nothing was changed\n")
    assert sorted(p.name for p in lock.parent.iterdir()) == []  # no lock, no temporary file
    full_disk.free()
    again = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert again.exit_code == 0 and "Apply complete: 1 launched, 1 succeeded." in again.stdout


def test_a_full_disk_at_the_state_write_keeps_the_previous_state(tmp_path, full_disk):
    (tmp_path / "pyproject.toml").write_text("")
    # Each run's request carries 3 KB, so the next state needs more than the page left (the
    # backup is a second name of the old file: it takes no space of its own).
    extra = '[outputs]\nstate = "full/state"\n[env.vars]\nPAD = "' + "x" * 3000 + '"\n'
    (tmp_path / "run.toml").write_text(manifest(["a"], extra))
    assert invoke("apply", "--yes", "run.toml", cwd=tmp_path).exit_code == 0
    path = full_disk.path / "state/loc.json"
    before = path.read_bytes()
    (tmp_path / "run.toml").write_text(manifest(["a", "b"], extra))
    full_disk.fill(leave_pages=1)  # room for the lock, not for the next state
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    _no_traceback(result)
    assert f"error: cannot write state {path}: the disk is full" in result.stderr
    assert "free space on the file system that holds" in result.stderr
    assert "the previous state is unchanged" in result.stderr
    assert path.read_bytes() == before
    assert list(StateStore(str(path), "loc").read().members) == [FIRST]
    assert not path.with_suffix(".lock").exists()
    full_disk.fill()  # not even room for a lock: status still shows, and says why not written
    status = invoke("status", "run.toml", cwd=tmp_path)
    assert status.exit_code == 0 and f"{FIRST}  succeeded" in status.stdout
    assert "warning: cannot take the state lock" in status.stderr
    assert "shown fresh, not written" in status.stderr and "an apply holds" not in status.stderr
    full_disk.free()
    again = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert "Apply complete: 1 launched, 1 succeeded." in again.stdout, again.output


def test_a_full_disk_under_the_run_directories_stops_launching(tmp_path, full_disk):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(manifest(["a", "b", "c"], '[outputs]\nroot = "full/runs"\n'))
    full_disk.fill()
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    _no_traceback(result)
    assert (f"error: {FIRST}: cannot write the run directory {full_disk.path}/runs/{FIRST}: "
            "the disk is full") in result.stdout
    assert (f"free space on the file system that holds {full_disk.path}/runs/loc/main/v=a, "
            "then apply again") in result.stderr
    assert "disk full: 2 run(s) not launched" in result.stderr
    members = StateStore(str(tmp_path / ".runspec/state/loc.json"), "loc").read().members
    assert {k: m.status for k, m in members.items()} == {FIRST: "failed"}  # b, c not launched
    full_disk.free()
    again = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert "Apply complete: 3 launched, 3 succeeded." in again.stdout, again.output


def test_a_full_disk_at_a_slurm_run_table_submits_nothing_and_records_nothing(
        tmp_path, full_disk, monkeypatch):
    """The table is written before sbatch (no sbatch here: it would be a different
    error): the apply says where and why, and the state holds no intent."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a Slurm that is not installed is not reached
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(manifest(
        ["a", "b", "c"], '[env]\nexecutor = "slurm"\n[outputs]\nroot = "full/runs"\n'))
    full_disk.fill()
    result = invoke("apply", "--yes", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    _no_traceback(result)
    assert f"cannot write the run table {full_disk.path}/runs/loc/main/runs-" in result.output
    assert "the disk is full" in result.output and "sbatch:" not in result.output
    assert "Apply stopped by an error: 0 launched." in result.output
    assert f"free space on the file system that holds {full_disk.path}/runs/loc/main" in \
        result.output
    state = tmp_path / ".runspec/state/loc.json"
    assert not state.exists() or not StateStore(str(state), "loc").read().members
    full_disk.free()
    assert not list((full_disk.path / "runs").rglob("*.table"))  # no half-written table


def test_a_full_disk_anywhere_else_in_apply_is_a_clear_error(tmp_path, full_disk):
    """Here: the saved plan that --detach hands to the background apply."""
    project = full_disk.path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    (project / "run.toml").write_text(manifest(["a"], textwrap.dedent(f"""\
        [outputs]
        state = "{tmp_path / 'state'}"
        root = "{tmp_path / 'runs'}"
        """)))
    full_disk.fill()
    result = invoke("apply", "--yes", "--detach", "run.toml", cwd=project)
    assert result.exit_code == 1
    _no_traceback(result)
    assert result.stderr.startswith(f"error: apply stopped at {project}/.runspec/plans/loc-")
    assert (": the disk is full (no space left on device) — free space on the file system that "
            f"holds {project}/.runspec/plans, then apply again; the state is intact") in result.stderr
    assert list((project / ".runspec/plans").iterdir()) == []  # no half-written plan
    assert not (tmp_path / "state/loc.lock").exists()
