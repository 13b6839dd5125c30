"""What the runs a plan submits will cost, from what earlier runs of the manifest cost.

Like a cost estimate in an infrastructure plan: each run to submit is given the mean wall
time and energy of the earlier successful results of its own sweep point (same stage, same
point), else of its stage. Earlier results are the current runs' result.json files and the
results the history kept of runs that left the state. A run whose stage has no earlier
result gets no estimate and is counted as such: nothing is guessed, and a plan with no
history has no estimate at all.

Core-hours and GPU-hours are wall time × what the run requests; a stage's wall time is its
run time divided by the runs apply lets run at once, where runspec paces them, and left to
the scheduler (run time only) where it does not. Pure: reads files, writes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runspec.backends import backend_for
from runspec.ir import Plan, Run
from runspec.plan.diff import Changes
from runspec.plan.identity import canonical
from runspec.plan.launches import gaps_before, one_at_a_time
from runspec.state.history import History
from runspec.state.status import read_result
from runspec.state.store import State, StateError

if TYPE_CHECKING:
    from runspec.manifest.models import Campaign

HOUR_S = 3600.0


@dataclass(frozen=True)
class Earlier:
    """One earlier successful result: what estimates are made of."""

    ident: tuple[str, str]              # (run key, started_at): one result read twice is one
    stage: str
    point: str                          # the sweep point, canonical JSON
    wall_s: float
    energy_kwh: float | None
    methods: tuple[tuple[str, str], ...]   # codecarbon's (component, method) pairs


@dataclass(frozen=True)
class Basis:
    """The earlier results of one sweep point, or of one stage, summed up once."""

    wall_s: float                       # their mean
    idents: tuple[tuple[str, str], ...]   # the results it came from
    energy_kwh: float | None            # the mean of those that measured energy
    energy_idents: tuple[tuple[str, str], ...]
    methods: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, results: list[Earlier]) -> Basis:
        wall = energy = 0.0
        measured: list[tuple[str, str]] = []
        methods: set[tuple[str, str]] = set()
        for result in results:
            wall += result.wall_s
            if result.energy_kwh is not None:
                energy += result.energy_kwh
                measured.append(result.ident)
                methods.update(result.methods)
        return cls(wall / len(results), tuple(r.ident for r in results),
                   energy / len(measured) if measured else None, tuple(measured),
                   tuple(sorted(methods)))


@dataclass
class Figures:
    """Summed estimates of some planned runs (a stage's, or the whole plan's)."""

    runs: int = 0                       # planned runs to submit
    estimated: int = 0                  # of them, with an estimate
    from_point: int = 0                 # of those, from results of their own sweep point
    run_s: float = 0.0                  # the runs' wall times, summed
    longest_s: float = 0.0
    core_h: float = 0.0
    gpu_h: float = 0.0
    energy_kwh: float = 0.0
    energy_runs: int = 0                # estimated runs with an energy estimate
    methods: dict[str, set[str]] = field(default_factory=dict)
    # The results used, as the distinct groups they were used in (one union at the end,
    # not one per run: a stage's mean may stand for thousands of new runs).
    groups: dict[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def unestimated(self) -> int:
        return self.runs - self.estimated

    def use(self, idents: tuple[tuple[str, str], ...]) -> None:
        self.groups[id(idents)] = idents

    @property
    def basis_runs(self) -> int:
        return len(frozenset().union(*self.groups.values()))

    def merge(self, other: Figures) -> None:
        self.runs += other.runs
        self.estimated += other.estimated
        self.from_point += other.from_point
        self.run_s += other.run_s
        self.longest_s = max(self.longest_s, other.longest_s)
        self.core_h += other.core_h
        self.gpu_h += other.gpu_h
        self.energy_kwh += other.energy_kwh
        self.energy_runs += other.energy_runs
        for component, methods in other.methods.items():
            self.methods.setdefault(component, set()).update(methods)
        self.groups.update(other.groups)

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "estimated_runs": self.estimated,
                "unestimated_runs": self.unestimated, "from_same_point": self.from_point,
                "basis_runs": self.basis_runs, "run_time_s": _round(self.run_s),
                "core_hours": _round(self.core_h), "gpu_hours": _round(self.gpu_h),
                "energy_kwh": _round(self.energy_kwh) if self.energy_runs else None,
                "energy_runs": self.energy_runs,
                "energy_methods": {c: sorted(m) for c, m in sorted(self.methods.items())}}


@dataclass
class StageEstimate:
    stage: str
    executor: str
    figures: Figures
    parallel: int | None                # runs at once; None: the scheduler decides
    gaps_s: float = 0.0                 # campaign gaps between runs (one at a time only)
    followed: bool = False              # apply waits for the stage before the next one

    @property
    def wall_s(self) -> float | None:
        """One at a time: run time plus gaps. N at once: run time / N, but never less than
        the longest run. Unknown where the scheduler decides."""
        if self.parallel is None or not self.figures.estimated:
            return None
        if self.parallel == 1:
            return self.figures.run_s + self.gaps_s
        return max(self.figures.run_s / self.parallel, self.figures.longest_s)

    def to_json(self) -> dict[str, Any]:
        wall = self.wall_s
        return {**self.figures.to_json(), "executor": self.executor,
                "parallel": self.parallel, "gaps_s": _round(self.gaps_s),
                "wall_s": None if wall is None else _round(wall)}


@dataclass
class Estimate:
    stages: list[StageEstimate]
    total: Figures

    @property
    def wall_s(self) -> float | None:
        """The estimated stages one after another, known only where apply follows each of
        them to its end before starting the next (runs it paces, with a known limit)."""
        estimated = [s for s in self.stages if s.figures.estimated]
        walls = [s.wall_s for s in estimated]
        if not all(s.followed for s in estimated) or any(w is None for w in walls):
            return None
        return sum(w for w in walls if w is not None)

    def to_json(self) -> dict[str, Any]:
        wall = self.wall_s
        return {"basis_runs": self.total.basis_runs,
                "stages": {s.stage: s.to_json() for s in self.stages},
                "total": {**self.total.to_json(), "wall_s": None if wall is None else _round(wall)}}


def estimate_plan(plan: Plan, state: State, changes: Changes, campaigns: dict[str, Campaign],
                  history: str | None) -> Estimate | None:
    """The estimate of the runs ``changes`` submits, or None when none of them has an
    earlier result to go by. ``history``: where the run history is (None: not read)."""
    by_key = plan.by_key()
    runs = [by_key[c.key] for c in changes.to_submit() if c.key in by_key]
    if not runs:
        return None
    stages = {run.stage for run in runs}
    earlier = _earlier(plan.root, state, history, stages)
    if not earlier:
        return None
    points: dict[tuple[str, str], list[Earlier]] = {}
    stage_results: dict[str, list[Earlier]] = {}
    for result in earlier:
        points.setdefault((result.stage, result.point), []).append(result)
        stage_results.setdefault(result.stage, []).append(result)
    by_point = {point: Basis.of(results) for point, results in points.items()}
    by_stage = {stage: Basis.of(results) for stage, results in stage_results.items()}
    estimates = []
    total = Figures()
    for stage, executor in plan.stages.items():
        mine = [run for run in runs if run.stage == stage]
        if not mine:
            continue
        figures = Figures()
        for run in mine:
            _add(figures, run, by_point.get((stage, canonical(run.point))),
                 by_stage.get(stage))
        estimates.append(_stage(stage, executor, mine, figures, campaigns.get(stage)))
        total.merge(figures)
    return Estimate(estimates, total) if total.estimated else None


def _stage(stage: str, executor: str, runs: list[Run], figures: Figures,
           campaign: Campaign | None) -> StageEstimate:
    """How many of the stage's runs apply will have running at once (as apply decides it)."""
    capabilities = backend_for(executor).capabilities
    parallel = capabilities.default_parallel if campaign is None else (
        campaign.max_parallel or (1 if one_at_a_time(campaign) else capabilities.default_parallel))
    gaps = sum(gaps_before(runs, campaign)) if parallel == 1 and campaign else 0.0
    followed = capabilities.paced_by_runspec and parallel is not None
    return StageEstimate(stage, executor, figures, parallel, gaps, followed)


def _add(figures: Figures, run: Run, own: Basis | None, stage: Basis | None) -> None:
    """One planned run: the mean of its own point's results (else its stage's), scaled by
    what it requests. Energy goes by the results that measured it, found the same way."""
    figures.runs += 1
    basis = own or stage
    if basis is None:
        return
    figures.estimated += 1
    figures.from_point += own is not None
    figures.run_s += basis.wall_s
    figures.longest_s = max(figures.longest_s, basis.wall_s)
    cores, gpus = requested(run.request.get("resources"))
    figures.core_h += basis.wall_s * cores / HOUR_S
    figures.gpu_h += basis.wall_s * gpus / HOUR_S
    figures.use(basis.idents)
    measured = own if own is not None and own.energy_kwh is not None else stage
    if measured is not None and measured.energy_kwh is not None:
        figures.energy_runs += 1
        figures.energy_kwh += measured.energy_kwh
        figures.use(measured.energy_idents)
        for component, method in measured.methods:
            figures.methods.setdefault(component, set()).add(method)


def requested(resources: Any) -> tuple[int, int]:
    """(CPU cores, GPUs) a run requests: nodes × processes per node × CPUs per process,
    and nodes × GPUs per node. ``procs_per_node = "gpu"`` is one process per GPU."""
    if not isinstance(resources, dict):
        return 1, 0
    nodes = _count(resources.get("nodes"), 1)
    gpus = _count(resources.get("gpus_per_node"), 0)
    procs = resources.get("procs_per_node")
    procs = max(gpus, 1) if procs == "gpu" else _count(procs, 1)
    return nodes * procs * _count(resources.get("cpus_per_task"), 1), nodes * gpus


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else default


def _earlier(root: Path, state: State, history: str | None, stages: set[str]) -> list[Earlier]:
    """The successful earlier results of these stages: of the runs in the state (their
    result.json), then of those that left it (the history), each result once."""
    found: dict[tuple[str, str], Earlier] = {}
    for member in state.members.values():
        if member.stage in stages and member.run_dir:
            result, _ = read_result(root / member.run_dir)
            _keep(found, member.key, member.stage, member.point, result)
    if history is not None:
        try:
            retired = History(history).read()
        except StateError:
            retired = []  # an estimate never fails a plan: go by the state's results alone
        for record in retired:
            if record.stage in stages:
                _keep(found, record.key, record.stage, record.point, record.result)
    return list(found.values())


def _keep(found: dict[tuple[str, str], Earlier], key: str, stage: str, point: Any,
          result: Any) -> None:
    """Add one result if it succeeded and says how long it ran."""
    if not isinstance(result, dict) or result.get("exit_code") != 0:
        return
    wall = _number(result.get("wall_s"))
    if wall is None or not isinstance(point, dict):
        return
    ident = (key, str(result.get("started_at")))
    measured = _object(result.get("energy"))
    methods = _object(measured.get("method"))
    found.setdefault(ident, Earlier(
        ident, stage, canonical(point), wall, _number(measured.get("energy_kwh")),
        tuple(sorted((str(c), str(m)) for c, m in methods.items()))))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    """A finite, non-negative number, else None (a hand-edited or damaged result)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _round(value: float) -> float:
    return float(f"{value:.6g}")


# -- text ----------------------------------------------------------------------------------

def describe(estimate: Estimate) -> list[str]:
    """The estimate block of the text plan: one line per stage (and a total where there
    are several), the measurement method, and the runs left out."""
    total = estimate.total
    lines = [f"Estimate from {_counted(total.basis_runs, 'earlier result')} "
             "(means of the same sweep point, else of the stage):"]
    width = max(len(s.stage) for s in estimate.stages) + 1
    for stage in estimate.stages:
        if stage.figures.estimated:
            lines.append(f"  {stage.stage + ':':<{width}} {_stage_time(stage)}, "
                         f"{_costs(stage.figures, bool(total.energy_runs))}")
    if sum(bool(s.figures.estimated) for s in estimate.stages) > 1:
        wall = estimate.wall_s
        run_time = f"{duration(total.run_s)} run time"
        time = (run_time if wall is None else f"~{duration(wall)} one stage after another"
                + ("" if duration(wall) == duration(total.run_s) else f" ({run_time})"))
        lines.append(f"  {'total:':<{width}} {time}, {_costs(total, bool(total.energy_runs))}")
    if total.methods:
        lines.append("  Energy measured by codecarbon: " + ", ".join(
            f"{component}={'/'.join(sorted(methods))}"
            for component, methods in sorted(total.methods.items())))
    elif not total.energy_runs:
        lines.append("  Energy: no earlier result measured it (measure.energy = true does).")
    missing = [s for s in estimate.stages if s.figures.unestimated]
    if missing:
        where = ", ".join(f"{_counted(s.figures.unestimated, 'run')} of stage {s.stage}"
                          for s in missing)
        lines.append(f"  No earlier results for {where}: not counted above.")
    return lines


def _stage_time(stage: StageEstimate) -> str:
    run_time = duration(stage.figures.run_s)
    wall = stage.wall_s
    if wall is None:
        return f"{run_time} run time ({stage.executor} decides how many run at once)"
    if stage.parallel == 1:
        gaps = f", {duration(stage.gaps_s)} of it campaign gaps" if stage.gaps_s else ""
        return f"~{duration(wall)} one run at a time{gaps}"
    return f"~{duration(wall)} with {stage.parallel} at once ({run_time} run time)"


def _costs(figures: Figures, measured: bool) -> str:
    """Core-hours, GPU-hours where the runs request GPUs, and energy where any earlier
    result measured it (``measured``: some result of the plan did)."""
    parts = [f"{amount(figures.core_h)} core-h"]
    if figures.gpu_h:
        parts.append(f"{amount(figures.gpu_h)} GPU-h")
    if figures.energy_runs:
        share = (f" for {figures.energy_runs} of {figures.estimated} runs"
                 if figures.energy_runs < figures.estimated else "")
        parts.append(energy(figures.energy_kwh) + share)
    elif measured:
        parts.append("energy not measured")
    return ", ".join(parts)


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``4 min 10 s``, ``2 h 5 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < HOUR_S:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(round(whole / 60), 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")


def amount(value: float) -> str:
    """Two significant digits, never in exponent form for the sizes plans have."""
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:.0f}"
    digits = max(0, 1 - math.floor(math.log10(value)))
    return f"{value:.{digits}f}"


def energy(kwh: float) -> str:
    """In kWh from 1 kWh up, else Wh, else mWh."""
    if kwh >= 1:
        return f"{amount(kwh)} kWh"
    if kwh >= 0.001:
        return f"{amount(kwh * 1000)} Wh"
    return f"{amount(kwh * 1e6)} mWh"
