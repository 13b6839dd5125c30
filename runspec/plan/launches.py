"""Which submissions apply will make: the runs to submit, grouped into each backend's launches.

A Slurm stage becomes one job array of exactly the runs that change; local and Ray
runs are one launch each. Pure, so ``plan`` can show what ``apply`` will send.
"""

from __future__ import annotations

from runspec.backends import backend_for
from runspec.ir import Launch, LaunchContext, Plan, Run
from runspec.manifest.models import Campaign
from runspec.plan.diff import Changes
from runspec.plan.identity import slug


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
            sequential=stage in campaigns and one_at_a_time(campaigns[stage]),
            gaps=tuple(gaps_before(runs, campaigns[stage])) if stage in campaigns else (),
            retries=campaigns[stage].retries if stage in campaigns else 0,
            outputs=plan.outputs_root, manifest_digest=plan.manifest_digest,
        )
        launches += backend_for(executor).render_launch(context, runs, plan.specs)
    return launches


def gaps_before(runs: list[Run], campaign: Campaign) -> list[float]:
    """Idle seconds before each run, from the previous run's end (lem's cool-down): none
    before the first, ``config_gap`` between runs, at least ``cycle_gap`` where the cycle
    (or warmup slot) changes. The same list paces every backend."""
    gaps: list[float] = []
    for index, run in enumerate(runs):
        if index == 0:
            gaps.append(0.0)
        elif run.slot != runs[index - 1].slot:
            gaps.append(float(max(campaign.config_gap, campaign.cycle_gap)))
        else:
            gaps.append(float(campaign.config_gap))
    return gaps


def one_at_a_time(campaign: Campaign) -> bool:
    """Does the campaign ask for an order or pacing that parallel runs would break (and no
    ``max_parallel`` says otherwise)? Then every backend runs it one run at a time."""
    return (campaign.order != "grouped" or campaign.warmup_runs > 0 or campaign.config_gap > 0
            or campaign.cycle_gap > 0) and campaign.max_parallel is None
