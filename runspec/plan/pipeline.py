"""The pure pipeline, end to end: manifest → plan → changes → launches.

``make_plan`` is what ``runspec plan`` and (later) ``runspec apply`` call; it reads files
and the state, and never writes or submits anything.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
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

    selection = selection or Selection()
    with limit_runs(max_runs), collector_paused():
        resolved = resolve(path, selection.sets)
        store = store_for(resolved)
        state = store.read()
        plan = build_plan(resolved, state=state)
        result = against_state(resolved, plan, store, state, selection)
        add_estimate(result)
    if store.is_local:
        from runspec.state.lock import lock_note

        result.lock_note = lock_note(store.local_path,
                                     os.path.relpath(resolved.root / resolved.manifest_file))
    return result


def add_estimate(result: PlanResult) -> None:
    """What the runs to submit will cost, from earlier results of the same manifest: plan
    and apply show the same figures."""
    from runspec.plan.estimate import estimate_plan
    from runspec.state.history import history_location

    result.estimate = estimate_plan(result.plan, result.state, result.changes,
                                    {s.name: s.campaign for s in result.resolved.stages},
                                    history_location(result.store.location))


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a plan is built. Planning allocates millions of
    small dicts and lists that all live as long as the plan, so the collector frees nothing
    among them, yet its passes over the growing heap took a third of a 100,000-run plan's
    time. Reference counting still frees what is dropped. Afterwards the survivors go
    straight to the oldest generation (``freeze`` then ``unfreeze``), where only full
    collections look, instead of being scanned again on the way up from the youngest."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


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
