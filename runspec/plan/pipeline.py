"""The pure pipeline, end to end: manifest → plan → changes → launches.

``make_plan`` is what ``runspec plan`` and (later) ``runspec apply`` call; it reads files
and the state, and never writes or submits anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runspec.ir import Launch, Plan
from runspec.plan.diff import Changes, diff_plan
from runspec.plan.launches import plan_launches
from runspec.plan.render import build_plan
from runspec.plan.resolve import Resolved, resolve
from runspec.plan.selection import Selection
from runspec.state.store import State, StateStore, state_path

if TYPE_CHECKING:
    from runspec.plan.estimate import Estimate


@dataclass
class PlanResult:
    resolved: Resolved
    plan: Plan
    store: StateStore
    state: State
    changes: Changes
    launches: list[Launch]
    lock_note: str | None = None   # the state is locked (by a running or a dead apply)
    estimate: Estimate | None = None   # what the runs to submit will cost (plan.estimate)


def make_plan(path: str | Path, selection: Selection | None = None,
              max_runs: int | None = None) -> PlanResult:
    """Plan one manifest against its state. Raises ManifestError or StateError; a sweep of
    more than ``max_runs`` runs (default ``checks.MAX_RUNS``) is refused before expanding."""
    from runspec.manifest.checks import limit_runs
    from runspec.plan.estimate import estimate_plan
    from runspec.state.history import history_location

    selection = selection or Selection()
    with limit_runs(max_runs):
        resolved = resolve(path, selection.sets)
        store = store_for(resolved)
        state = store.read()
        plan = build_plan(resolved, state=state)
    result = against_state(resolved, plan, store, state, selection)
    result.estimate = estimate_plan(plan, state, result.changes,
                                    {s.name: s.campaign for s in resolved.stages},
                                    history_location(store.location))
    if store.is_local:
        from runspec.state.lock import lock_note

        result.lock_note = lock_note(store.local_path,
                                     os.path.relpath(resolved.root / resolved.manifest_file))
    return result


def store_for(resolved: Resolved) -> StateStore:
    return StateStore(state_path(resolved.root, resolved.manifest.name, resolved.state_location),
                      resolved.manifest.name)


def against_state(resolved: Resolved, plan: Plan, store: StateStore, state: State,
                  selection: Selection) -> PlanResult:
    """Diff a built plan against a state, and group what changes into launches."""
    changes = diff_plan(plan, state, selection.targets, selection.excludes, selection.replace,
                        keep_code=code_kept(resolved))
    campaigns = {s.name: s.campaign for s in resolved.stages}
    return PlanResult(resolved, plan, store, state, changes,
                      plan_launches(plan, changes, campaigns))


def code_kept(resolved: Resolved) -> set[str]:
    """The stages whose ``recipe.on_code_change`` is ``"keep"``."""
    from runspec.plan.resolve import SINGLE_STAGE

    manifest = resolved.manifest
    recipes = ({name: stage.recipe for name, stage in manifest.stages.items()}
               if manifest.stages else {SINGLE_STAGE: manifest.recipe})
    return {name for name, recipe in recipes.items()
            if recipe is not None and recipe.on_code_change == "keep"}
