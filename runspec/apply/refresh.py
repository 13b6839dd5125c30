"""Bring recorded statuses up to date: the wrapper's files first, the scheduler only if needed.

Only members still ``submitted`` or ``running`` are looked at, so refreshing a manifest whose
runs all finished makes no backend call at all.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from runspec.backends import backend_for
from runspec.state.status import ACTIVE
from runspec.state.store import Member, State


def refresh_state(state: State, root: Path) -> int:
    """Update active members in place; returns how many changed status."""
    active: dict[str, list[Member]] = defaultdict(list)
    for member in state.members.values():
        if member.status in ACTIVE:
            active[member.backend].append(member)
    changed = 0
    for backend_name, members in active.items():
        backend = backend_for(backend_name)
        statuses = backend.refresh_many(members, root)
        for member in members:
            new = statuses.get(member.key, member.status)
            if new != member.status:
                member.status = new
                changed += 1
    return changed
