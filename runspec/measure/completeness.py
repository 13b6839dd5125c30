"""Which planned runs have no result: what strict ``runspec results`` fails on.

The plan is built purely (as ``runspec plan`` builds it: the manifest and the state, nothing
written or submitted), so a point that was planned but never applied counts as missing just
like a launched run without a result, and a half-applied campaign is never mistaken for a
complete one. A stage that cannot be planned yet (it waits for another stage's outputs) is
named too.
"""

from __future__ import annotations

from pathlib import Path

from runspec.state.store import State


def never_applied(path: Path, state: State) -> list[str]:
    """``key (planned, never applied)`` for each planned measurement run the state lacks,
    and ``stage S (not planned yet: why)``. Raises ManifestError when the manifest cannot
    be planned."""
    from runspec.plan.render import build_plan
    from runspec.plan.resolve import resolve

    plan = build_plan(resolve(path), offline=True, state=state)
    missing = [f"{run.key} (planned, never applied)" for run in plan.runs
               if not run.warmup and run.key not in state.members]
    missing += [f"stage {stage} (not planned yet: {why})"
                for stage, why in sorted(plan.deferred.items())]
    return missing
