"""Which submissions apply will make: the runs to submit, grouped into each backend's launches.

A Slurm stage becomes one job array of exactly the runs that change; local and Ray
runs are one launch each. Pure, so ``plan`` can show what ``apply`` will send.
"""

from __future__ import annotations

from runspec.backends import backend_for
from runspec.manifest.models import Campaign
from runspec.plan.diff import Changes
from runspec.plan.identity import slug
from runspec.plan.ir import Launch, LaunchContext, Plan


def stage_directory(plan: Plan, stage: str) -> str:
    return f"{plan.outputs_root}/{slug(plan.name)}/{slug(stage)}"


def plan_launches(plan: Plan, changes: Changes, campaigns: dict[str, Campaign]) -> list[Launch]:
    submitting = {c.key for c in changes.to_submit()}
    active = {r.stage for r in plan.runs if r.key in submitting}
    launches: list[Launch] = []
    for stage, executor in plan.stages.items():
        runs = [r for r in plan.runs if r.stage == stage and r.key in submitting]
        if not runs:
            continue
        context = LaunchContext(
            manifest=plan.name, stage=stage, root=plan.root,
            directory=stage_directory(plan, stage),
            needs=tuple(n for n in plan.needs.get(stage, ()) if n in active),
            max_parallel=campaigns[stage].max_parallel if stage in campaigns else None,
            sequential=stage in campaigns and _ordered(campaigns[stage]),
            gap=campaigns[stage].config_gap if stage in campaigns else 0,
        )
        launches += backend_for(executor).render_launch(context, runs, plan.specs)
    return launches


def _ordered(campaign: Campaign) -> bool:
    """Does the campaign ask for an order or pacing that parallel runs would break?"""
    return (campaign.order != "grouped" or campaign.warmup_runs > 0 or campaign.config_gap > 0
            or campaign.cycle_gap > 0) and campaign.max_parallel is None
