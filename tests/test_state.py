"""The state store: atomic writes, refusing corrupt or newer files, and a lock that names its holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import invoke

from runspec.state.lock import force_unlock, held_error, read_info, state_lock
from runspec.state.store import Member, State, StateError, StateStore, state_path

MANIFEST = 'schema = "runspec/v1"\nname = "s"\n[recipe]\ncommand = ["true"]\n'


def test_write_is_atomic_versioned_and_keeps_a_backup(tmp_path):
    store = StateStore(str(tmp_path / "s.json"), "s")
    state = store.read()
    assert (state.lineage, state.serial, state.members) == (None, 0, {})
    state.members["s/main/default/c1"] = Member("s/main/default/c1", "main", "abc", "succeeded")
    store.write(state)
    first = store.read()
    assert first.serial == 1 and first.lineage and first.members["s/main/default/c1"].digest == "abc"
    store.write(first)
    assert store.read().serial == 2 and store.read().lineage == first.lineage
    assert json.loads((tmp_path / "s.json.backup").read_text())["serial"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".s.json")] == []


def test_corrupt_and_newer_states_are_refused_and_kept(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"format": 1, "members": {')
    with pytest.raises(StateError, match=r"is corrupt \(line 1, column 27"):
        StateStore(str(path), "s").read()
    path.write_text(json.dumps({"format": 99, "runspec_version": "9.0.0", "members": {}}))
    with pytest.raises(StateError, match=r"written by a newer runspec \(9.0.0, state format 99\)"):
        StateStore(str(path), "s").read()
    assert json.loads(path.read_text())["format"] == 99  # untouched


def test_plan_reports_a_corrupt_state_clearly(tmp_path):
    (tmp_path / "run.toml").write_text(MANIFEST)
    state = tmp_path / ".runspec/state/s.json"
    state.parent.mkdir(parents=True)
    state.write_text("not json")
    result = invoke("plan", "run.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: state {state} is corrupt (line 1, column 1")
    assert "runspec will not overwrite it" in result.stderr
    assert state.read_text() == "not json"


def test_state_location_forms(tmp_path):
    assert state_path(tmp_path, "n", None) == str(tmp_path / ".runspec/state/n.json")
    assert state_path(tmp_path, "n", "st") == str(tmp_path / "st/n.json")
    assert state_path(tmp_path, "n", "/abs/x.json") == "/abs/x.json"
    assert state_path(tmp_path, "n", "s3://bucket/prefix") == "s3://bucket/prefix/n.json"


def test_fsspec_url_state(tmp_path):
    store = StateStore(f"file://{tmp_path}/remote/n.json", "n")
    state = store.read()
    store.write(state)
    assert StateStore("memory://x/n.json", "n").read().serial == 0
    memory = StateStore("memory://x/n.json", "n")
    memory.write(State("n"))
    assert memory.read().serial == 1


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    path = tmp_path / "s.json"
    with state_lock(path, "apply") as info:
        assert read_info(path) == info
        with pytest.raises(StateError) as caught, state_lock(path, "apply"):
            pass
        message = str(caught.value)
        assert f"the state is locked: apply by {info.user}@{info.host} (pid {os.getpid()})" in message
        assert f"runspec force-unlock {info.id}`" in message  # run.toml: the default
        with pytest.raises(StateError) as elsewhere, state_lock(path, "apply", "specs/a b.run.toml"):
            pass
        assert f"runspec force-unlock {info.id} --manifest 'specs/a b.run.toml'`" in str(elsewhere.value)
    assert read_info(path) is None
    with state_lock(path, "apply"):
        pass  # released: can be taken again


def test_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "s.json"
    code = ("import os, sys\nfrom pathlib import Path\nfrom runspec.state.lock import state_lock\n"
            f"lock = state_lock(Path({str(path)!r}), 'apply')\nlock.__enter__()\nos._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    dead = read_info(path)
    assert dead is not None and dead.holder_is_dead()
    assert "the next apply, cancel or destroy here takes it over" in str(held_error(path))
    with state_lock(path, "apply") as mine:
        assert read_info(path).id == mine.id != dead.id
        # a live holder is never taken over
        with pytest.raises(StateError, match="the state is locked: apply by"), \
                state_lock(path, "apply"):
            pass
    assert read_info(path) is None
    assert not list(tmp_path.glob(".*dead-*"))  # nothing left aside


def test_a_dead_holders_lock_that_was_replaced_is_put_back(tmp_path):
    """_break_dead moves the lock aside and checks it is still the dead one's."""
    from runspec.state.lock import _break_dead, lock_path

    path = tmp_path / "s.json"
    with state_lock(path, "apply") as live:
        assert not _break_dead(lock_path(path), "the-dead-one")
        assert read_info(path).id == live.id  # put back
        with pytest.raises(StateError, match='lock id "wrong" does not match'):
            force_unlock(path, "wrong")


def test_force_unlock_command(tmp_path):
    (tmp_path / "run.toml").write_text(MANIFEST)
    state = tmp_path / ".runspec/state/s.json"
    code = ("import os\nfrom pathlib import Path\nfrom runspec.state.lock import state_lock\n"
            f"lock = state_lock(Path({str(state)!r}), 'apply')\nlock.__enter__()\nos._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    lock_id = read_info(state).id
    assert invoke("force-unlock", "nope", cwd=tmp_path).exit_code == 1
    result = invoke("force-unlock", lock_id, cwd=tmp_path)
    assert result.exit_code == 0 and result.stdout.startswith("Unlocked: apply by ")
    assert not state.with_suffix(".lock").exists()


def test_releasing_never_removes_someone_elses_lock(tmp_path):
    path = tmp_path / "s.json"
    with state_lock(path, "apply") as mine:
        force_unlock(path, mine.id)
        with state_lock(path, "apply") as theirs:
            pass  # (exits normally, removing only its own lock)
        with state_lock(path, "plan") as third:
            assert read_info(path) == third != theirs


def test_every_member_field_is_checked_on_reading():
    from dataclasses import fields

    from runspec.state.store import _MEMBER_FIELDS

    assert list(_MEMBER_FIELDS) == [f.name for f in fields(Member)]


def test_a_field_of_the_wrong_type_names_the_file_and_the_field(tmp_path):
    store = StateStore(str(tmp_path / "s.json"), "s")
    state = State("s")
    state.members["s/main/default/c1"] = Member("s/main/default/c1", "main", "abc", "succeeded")
    store.write(state)
    document = json.loads(store.local_path.read_text())
    document["members"]["s/main/default/c1"]["status"] = 5
    store.local_path.write_text(json.dumps(document))
    with pytest.raises(StateError) as caught:
        store.read()
    assert caught.value.message == (f'state {store.location} is corrupt at members["s/main/default/c1"]'
                                    ".status: expected one of submitted, running, succeeded, "
                                    "failed, cancelled, lost, got 5")
    assert caught.value.hint.startswith("runspec will not overwrite it; restore ")


def test_a_failed_write_leaves_the_serial_and_the_file_as_they_were(tmp_path):
    store = StateStore(str(tmp_path / "s.json"), "s")
    state = store.write(State("s"))
    before = store.local_path.read_bytes()
    (tmp_path / "s.json.backup").mkdir()  # a directory where the backup must go: a real error
    with pytest.raises(StateError, match="cannot write state .*the previous state is unchanged"):
        store.write(state)
    assert state.serial == 1 and store.local_path.read_bytes() == before


def test_unknown_breaks_only_a_lock_whose_holder_cannot_be_read(tmp_path):
    path = tmp_path / "s.json"
    lock = path.with_suffix(".lock")
    lock.write_text("")
    with pytest.raises(StateError, match=r"\(its holder cannot be read: lock file .*: 0 bytes"):
        force_unlock(path, "0123456789ab")
    assert force_unlock(path, "unknown") is None and not lock.exists()
    with state_lock(path, "apply") as info:
        with pytest.raises(StateError, match=f"held by apply by .*lock id {info.id}"):
            force_unlock(path, "unknown")
        assert read_info(path) == info
    assert [p.name for p in tmp_path.iterdir()] == []  # no lock and no temporary file left


def test_history_keeps_retired_runs_and_skips_a_torn_last_line(tmp_path):
    from runspec.state.history import History, Retired, history_location

    location = history_location(str(tmp_path / "s.json"))
    assert location.endswith("s.history.jsonl")
    history = History(location)
    assert history.read() == []
    first = Retired("s/main/x=1/c1", "main", "d1", "replace", "t", "succeeded", {"x": 1},
                    result={"metrics": {"score": 1.0}})
    history.append([first])
    with open(location, "a") as handle:
        handle.write('{"key": "s/main/x=2/c1", "stage"')  # a kill mid-write
    assert history.read() == [first]
    history.append([first])  # the next apply's lines start on a line of their own
    assert history.read() == [first, first]


def test_a_streamed_saved_plan_loads_and_is_fresh_until_the_state_moves_on(tmp_path):
    from runspec.apply.session import load_saved, saved_plan_json, stale_reasons, write_saved_plan
    from runspec.plan.pipeline import Selection, make_plan

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "run.toml").write_text(MANIFEST)
    selection = Selection(replace=["s/*"])
    result = make_plan(tmp_path / "run.toml", selection)
    write_saved_plan(result, selection, tmp_path / "plan.json")
    saved = load_saved(tmp_path / "plan.json")
    assert saved == saved_plan_json(result, selection)
    assert saved["apply"]["selection"]["replace"] == ["s/*"]
    assert stale_reasons(saved, make_plan(tmp_path / "run.toml", selection)) == []
    applied = invoke("apply", "plan.json", cwd=tmp_path)
    assert applied.exit_code == 0, applied.output
    assert "the state moved on" in "; ".join(
        stale_reasons(saved, make_plan(tmp_path / "run.toml", selection)))
