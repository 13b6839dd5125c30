"""Adaptive cycles (``campaign.until``): how many cycles each point gets, decided by what the
runs measured.

A stage with ``until`` is rendered up to ``max_cycles`` and cut, per point, to the cycles it
needs now: its first cycles that ran on the current request and reported the metric count
as measured. Fewer than ``cycles`` measured: the minimum is planned. Otherwise the point's
95% CI half-width is compared with ``rel_ci`` × |mean|: within it, the point is done with
what it has; else one more cycle is planned, up to ``max_cycles``. So each plan is a pure
function of the manifest and the state, and apply adds cycles by planning again after a
round has run (``Applier.plan_again``). Without a state (validate, render) only the
minimum is planned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from runspec.ir import Run
from runspec.measure.metrics import metric_value
from runspec.measure.stats import summarize
from runspec.plan.identity import point_label
from runspec.state.status import RunStatus, read_result


class Progress(StrEnum):
    MEASURING = "measuring"   # its minimum cycles have not all reported yet
    MORE = "more"             # measured, CI too wide: one more cycle planned
    MET = "met"               # CI within the target
    LIMIT = "limit"           # max_cycles reached, CI still too wide


@dataclass(frozen=True)
class PointProgress:
    label: str
    planned: int                    # cycles planned now
    measured: int                   # of them, how many reported the metric
    rel_half_width: float | None    # 95% CI half-width / |mean| of what was measured
    progress: Progress


@dataclass(frozen=True)
class Adaptive:
    """One adaptive stage as planned: its target and where each point stands."""

    metric: str
    rel_ci: float
    minimum: int
    max_cycles: int
    points: tuple[PointProgress, ...]

    @property
    def done(self) -> bool:
        """Is no point waiting for a run or for another cycle?"""
        return all(p.progress in (Progress.MET, Progress.LIMIT) for p in self.points)

    @property
    def possible_extra(self) -> int:
        """Runs beyond those planned now that the stage may still add."""
        return sum(self.max_cycles - p.planned for p in self.points
                   if p.progress not in (Progress.MET, Progress.LIMIT))

    def stop_reason(self) -> str:
        """Why the stage has the cycles it has (what apply says when it ends)."""
        counts = sorted({p.measured for p in self.points})
        span = (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}") + " cycles"
        short = [p for p in self.points if p.progress == Progress.LIMIT]
        target = f"{self.metric}'s 95% CI within ±{self.rel_ci:.3g} of its mean"
        if not short:
            return f"every point has {target} ({span})"
        worst = ", ".join(f"{p.label} (±{p.rel_half_width:.2%})" if p.rel_half_width is not None
                          else p.label for p in short[:3])
        more = f" and {len(short) - 3} more" if len(short) > 3 else ""
        return (f"max_cycles = {self.max_cycles} reached with {len(short)} of "
                f"{len(self.points)} point(s) short of {target}: {worst}{more} ({span})")


def cycles_of(run: Run) -> int:
    return int(run.slot[1:]) if run.slot.startswith("c") else 0


def grow(runs: list[Run], until: Any, minimum: int, state: Any, root: Path
         ) -> tuple[list[Run], Adaptive]:
    """``runs`` (every point up to ``until.max_cycles``, in campaign order) cut to the cycles
    each point needs now, and where each point stands. ``state``: the applied runs (None:
    nothing was measured, plan the minimum)."""
    by_point: dict[str, dict[int, Run]] = {}
    for run in runs:
        if not run.warmup:
            by_point.setdefault(point_label(run.point), {})[cycles_of(run)] = run
    planned: dict[str, int] = {}
    points = []
    for label, cycles in by_point.items():
        values: list[float] = []
        for number in range(1, until.max_cycles + 1):
            value = _measured(cycles.get(number), until.metric, state, root)
            if value is None:
                break
            values.append(value)
        half = _rel_half_width(values)
        if len(values) < minimum:
            count, progress = minimum, Progress.MEASURING
        elif half is not None and half <= until.rel_ci:
            count, progress = len(values), Progress.MET
        elif len(values) >= until.max_cycles:
            count, progress = len(values), Progress.LIMIT
        else:
            count, progress = len(values) + 1, Progress.MORE
        planned[label] = count
        points.append(PointProgress(label, count, len(values), half, progress))
    kept = [r for r in runs if r.warmup or cycles_of(r) <= planned[point_label(r.point)]]
    return kept, Adaptive(until.metric, until.rel_ci, minimum, until.max_cycles, tuple(points))


def _measured(run: Run | None, metric: str, state: Any, root: Path) -> float | None:
    """The metric of ``run`` if it succeeded on exactly this request, else None."""
    if run is None or state is None:
        return None
    member = state.members.get(run.key)
    if member is None or member.digest != run.digest or member.status != RunStatus.SUCCEEDED:
        return None
    result, _ = read_result(root / member.run_dir)
    return metric_value(result, metric) if result is not None else None


def _rel_half_width(values: list[float]) -> float | None:
    summary = summarize(values)
    if summary is None or summary.ci95_high is None or summary.mean == 0:
        return None
    return (summary.ci95_high - summary.mean) / abs(summary.mean) if math.isfinite(
        summary.ci95_high) else None
