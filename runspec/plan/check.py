"""What only planning can find, for ``validate``: the script's PEP 723 defaults, a config's
``run:`` section, artifact references and per-run rendering, checked by building the plan
(pure: reads files, writes and submits nothing). So ``validate`` refuses whatever ``plan``
would refuse, and shows the plan's notes as warnings, except what depends on this machine's
artifact registry (an ``art://`` input it lacks): ``plan`` reports that.

Cycles repeat every point with nothing new to check, so validate plans one cycle (and at
most one warmup run) per point: a million-run campaign is checked in the time of one
cycle, not the minutes its full plan takes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from runspec.manifest.document import Document
from runspec.manifest.errors import Diagnostic, ManifestError


def plan_diagnostics(path: str | Path, document: Document | None = None) -> list[Diagnostic]:
    """The plan's errors and notes; ``document``: the manifest, already validated."""
    from runspec.backends.base import RenderError
    from runspec.plan.diff import diff_plan
    from runspec.plan.launches import plan_launches
    from runspec.plan.render import build_plan
    from runspec.plan.resolve import resolve
    from runspec.state.store import State

    try:
        resolved = one_cycle(resolve(path, validated=document))
        plan = build_plan(resolved, offline=True)
        plan_launches(plan, diff_plan(plan, State(plan.name)),
                      {s.name: s.campaign for s in resolved.stages})
    except ManifestError as error:
        return list(error.diagnostics)
    except RenderError as error:
        return [Diagnostic(str(path), 1, 1, "(render)", error.message, error.hint)]
    return list(dict.fromkeys(plan.notes))


def one_cycle(resolved: Any) -> Any:
    """``resolved`` with each stage's campaign cut to one cycle and at most one warmup run
    (and no adaptive cycles, which would only add more cycles)."""
    stages = [replace(stage, campaign=stage.campaign.model_copy(update={
        "cycles": 1, "warmup_runs": min(stage.campaign.warmup_runs, 1), "until": None}))
        for stage in resolved.stages]
    return replace(resolved, stages=stages)
