"""``runspec status``, ``logs`` and ``cancel``: look at and act on what apply launched.

They work from the state alone (no plan needed), refresh active runs from their backends,
check that succeeded runs still have their result, and write the refreshed state back when
the lock is free.
"""

from __future__ import annotations

import fnmatch
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runspec.apply.refresh import refresh_state, verify_finished
from runspec.backends import backend_for, by_backend
from runspec.backends.base import BackendError
from runspec.manifest.load import load_manifest
from runspec.measure.attempts import kept, log_range
from runspec.state.control import Outbox
from runspec.state.lock import LockInfo, lock_path, read_info, state_lock
from runspec.state.status import ACTIVE, RunStatus
from runspec.state.store import Member, State, StateError, StateStore, state_path


@dataclass
class Tracked:
    """A manifest's state, where it lives, and the directory its run paths start from."""

    name: str
    root: Path
    store: StateStore
    state: State


def tracked(manifest: Path) -> Tracked:
    document = load_manifest(manifest)
    name = document.data.get("name")
    if not isinstance(name, str):
        raise StateError(f"{manifest} has no name, so it has no state")
    root = Path(document.path).resolve().parent
    location = (document.data.get("outputs") or {}).get("state")
    store = StateStore(state_path(root, name, location), name)
    state = store.read()
    if state.lineage is None:
        raise StateError(f"{name} was never applied (no state at {store.location})",
                         f"run `runspec apply {manifest}` first")
    return Tracked(name, root, store, state)


def _update(target: Tracked, warn) -> int:
    return refresh_state(target.state, target.root, warn) + verify_finished(target.state,
                                                                            target.root)


def refresh(target: Tracked, warn=None) -> bool:
    """Refresh active runs from a fresh read of the state; write it back when the lock is
    free. Returns False when an apply holds the lock: the result is shown, not written. A
    lock that cannot be made (a full disk) is a warning: reading still works."""
    if not target.store.is_local:
        target.state = target.store.read()
        if _update(target, warn):
            target.store.write(target.state)
        return True
    try:
        lock = state_lock(target.store.local_path, "status")
        lock.__enter__()
    except StateError as error:
        target.state = target.store.read()  # the apply's latest writes, refreshed in memory
        _update(target, warn)
        if lock_path(target.store.local_path).exists():
            return False
        if warn is not None:
            warn(f"warning: {error}; shown fresh, not written")
        return True
    try:
        target.state = target.store.read()
        if _update(target, warn):
            target.store.write(target.state)
    finally:
        lock.__exit__(None, None, None)
    return True


def select(state: State, glob: str | None) -> list[Member]:
    members = sorted(state.members.values(), key=lambda m: m.key)
    return [m for m in members if glob is None or fnmatch.fnmatchcase(m.key, glob)]


ANSWER_TIMEOUT_S = 20.0   # an apply claims requests whenever it polls its runs (≤ 1 s)


def cancel(target: Tracked, glob: str | None, say=None,
           timeout_s: float = ANSWER_TIMEOUT_S) -> list[str]:
    """Cancel active runs matching ``glob`` (all active ones without it); returns their keys.

    With the state free, they are cancelled here and recorded under the lock. While an
    apply holds it, the apply is asked through its control channel (``state.control``):
    it stops those runs (and drops matching ones it has not started yet), records them and
    answers. ``say`` hears that it is being asked."""
    state_file = target.store.local_path
    deadline = time.monotonic() + timeout_s
    vanished = 0
    while True:
        lock = state_lock(state_file, "cancel")
        try:
            lock.__enter__()
        except StateError:
            holder = read_info(state_file)
            if holder is None and lock_path(state_file).exists():
                raise  # a lock whose holder cannot be read: force-unlock's business
            vanished += holder is None
            if vanished > 3:
                raise  # not held, yet it cannot be taken (a full disk, permissions)
            if holder is None or holder.operation != "apply" or holder.holder_is_dead():
                # released or left by a dead apply in between (taken over on the next try),
                # or a status or another cancel holding it for a moment
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
        else:
            try:
                return _cancel_here(target, glob)
            finally:
                lock.__exit__(None, None, None)
        if say is not None:
            say(f"asking the apply that holds the state ({holder.describe()}) to cancel "
                + (f'the runs matching "{glob}"' if glob else "its runs"))
        answer = Outbox(state_file, glob).wait(functools.partial(_holds, state_file, holder),
                                               max(deadline - time.monotonic(), 0.0))
        if answer is not None:
            if answer.error:
                raise BackendError(answer.error)
            return answer.cancelled
        if _holds(state_file, holder):
            raise StateError(f"the apply holding the state did not answer within "
                             f"{timeout_s:g} s ({holder.describe()})",
                             "it answers once it polls its runs; it may still be planning, "
                             "asking for confirmation or submitting: try again in a moment")


def _holds(state_file: Path, holder: LockInfo) -> bool:
    """Does ``holder`` still hold the lock, alive?"""
    now = read_info(state_file)
    return now is not None and now.id == holder.id and not now.holder_is_dead()


def _cancel_here(target: Tracked, glob: str | None) -> list[str]:
    """Cancel under the lock (held by the caller), and record it."""
    target.state = target.store.read()
    refresh_state(target.state, target.root)
    chosen = [m for m in select(target.state, glob) if m.status in ACTIVE]
    for backend, members in by_backend(chosen).items():
        backend_for(backend).cancel_many(members, target.root)
        for member in members:
            member.status = RunStatus.CANCELLED
    target.store.write(target.state)
    return [member.key for member in chosen]


def find_members(target: Tracked, key: str | None) -> list[Member]:
    """The runs ``key`` names: a run key, a glob, or (None) every run of the state."""
    if key is not None and key in target.state.members:
        return [target.state.members[key]]
    matches = select(target.state, key)
    if matches:
        return matches
    from runspec.manifest.suggest import did_you_mean

    if key is None:
        raise StateError(f"{target.name} has no runs yet", "apply it first")
    hint = did_you_mean(key, target.state.members) or "see `runspec status`"
    raise StateError(f'no run matches "{key}" in the state of {target.name}', hint)


def logs(target: Tracked, key: str | None, follow: bool, attempt: int | None = None
         ) -> Iterator[str]:
    """The output of the runs ``key`` names (their last attempt, or ``attempt``); with
    several, each after a ``==> key <==`` header (as ``tail`` does). ``follow`` follows
    one run: several are an error."""
    members = find_members(target, key)
    if follow and len(members) > 1:
        shown = ", ".join(m.key for m in members[:3]) + (", …" if len(members) > 3 else "")
        raise StateError(f"--follow follows one run, and {len(members)} match ({shown})",
                         "name one run key")
    for index, member in enumerate(members):
        attempts = kept(target.root / member.run_dir) + 1
        if attempt is not None and attempt > attempts:
            raise StateError(f"{member.key} has no attempt {attempt}",
                             f"it has {attempts}: pass --attempt 1 to {attempts}")
        if len(members) > 1:
            yield f"{chr(10) if index else ''}==> {member.key} ({member.status}) <==\n"
        yield from log_lines(target, member, follow, attempt=attempt)


def log_lines(target: Tracked, member: Member, follow: bool, poll_s: float = 0.5,
              attempt: int | None = None) -> Iterator[str]:
    """The run's output (stdout then stderr) of its last attempt (or ``attempt``),
    following it until the run ends with ``follow``."""
    backend = backend_for(member.backend)
    run_dir = target.root / member.run_dir
    if member.status in ACTIVE:  # a remote run's logs come back on refresh: bring them now
        refresh_state(State(target.name, members={member.key: member}), target.root)
    if not (run_dir / "stdout.log").exists():
        text = backend.log_text(member, target.root)
        if text is not None:
            if attempt is not None:  # the scheduler's log has no attempts to pick from
                raise StateError(f"{member.key}: its logs come from {member.backend}, which "
                                 "keeps only the last attempt's", "leave out --attempt")
            yield text
            return
    ranges = {name: log_range(run_dir, attempt, name) for name in ("stdout.log", "stderr.log")}
    offsets = {name: begin for name, (begin, _) in ranges.items()}
    while True:
        for name in offsets:
            path = run_dir / name
            end = ranges[name][1]
            if path.exists():
                with path.open("rb") as handle:
                    handle.seek(offsets[name])
                    chunk = handle.read() if end is None else handle.read(
                        max(end - offsets[name], 0))
                    offsets[name] = handle.tell()
                if chunk:
                    yield chunk.decode("utf-8", errors="replace")
        if not follow:
            return
        refresh_state(State(target.name, members={member.key: member}), target.root)
        if member.status not in ACTIVE:
            if not (run_dir / "stdout.log").exists():  # it ended before its command began
                text = backend.log_text(member, target.root)
                if text:
                    yield text
                return
            follow = False  # one last read above, then stop
            continue
        time.sleep(poll_s)
