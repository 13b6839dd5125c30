"""Bring recorded statuses up to date: the wrapper's files first, the scheduler only if needed.

Only members still ``submitted`` or ``running`` are looked at, so refreshing a manifest whose
runs all finished makes no backend call at all. ``status`` and ``results`` also check that a
run recorded as succeeded still has its result (``verify_finished``).
"""

from __future__ import annotations

from pathlib import Path

from runspec.backends import backend_for, by_backend
from runspec.backends.base import BackendError
from runspec.state.status import ACTIVE, RunStatus, read_result
from runspec.state.store import State


def refresh_state(state: State, root: Path, say=None) -> int:
    """Update active members in place; returns how many changed (status or handle). A backend that
    cannot be asked (a torn-down Ray cluster, Slurm down) leaves its members as they were,
    with a warning, rather than blocking every later command on this manifest. ``say``
    receives those warnings and the artifact versions registered on the way."""
    changed = 0
    active = by_backend(m for m in state.members.values() if m.status in ACTIVE)
    for backend_name, members in active.items():
        backend = backend_for(backend_name)
        handles = {m.key: m.handle for m in members}  # a refresh may complete an intent's handle
        try:
            statuses = backend.refresh_many(members, root)
        except BackendError as error:
            if say is not None:
                say(f"warning: could not refresh {len(members)} {backend_name} run(s): {error}")
            continue
        for member in members:
            new = statuses.get(member.key, member.status)
            if new == RunStatus.SUCCEEDED and not member.registered:
                # A run that ended after apply returned still records the versions it used
                # and publishes its outputs.
                from runspec.artifacts.publish import register_outputs

                published, problem = register_outputs(member, root)
                for label in published if say is not None else ():
                    say(f"registered {label} from {member.key}")
                if problem:
                    new, member.error = RunStatus.FAILED, problem
            if new != member.status or member.handle != handles[member.key]:
                member.status = new
                changed += 1
    return changed


def verify_finished(state: State, root: Path) -> int:
    """A run recorded as succeeded whose result.json is now missing or unreadable is marked
    ``lost`` (with why in ``error``): its evidence is gone, ``results`` cannot use it, and
    ``lost`` is what makes the next apply run it again. Returns how many changed."""
    changed = 0
    for member in state.members.values():
        if member.status != RunStatus.SUCCEEDED:
            continue
        _, problem = read_result(root / member.run_dir)
        if problem:
            member.status, member.error = RunStatus.LOST, f"recorded as succeeded, but {problem}"
            changed += 1
    return changed
