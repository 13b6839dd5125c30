"""Sweep × campaign → the ordered list of run slots (the plan's ``expand`` step).

Deterministic: random sweeps and shuffled campaigns use ``random.Random(seed)`` where the
seed is given (0 is a real seed) or derived from the manifest name, never the clock.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runspec.manifest.checks import run_limit, unit_count
from runspec.manifest.models import Campaign, DistributionSpec, RangeSpec, Sweep, ValuesSpec

_TOO_MANY = "use fewer sweep values or cycles, or raise the limit with --max-runs N"


class ExpandError(ValueError):
    """A sweep that cannot be expanded; ``path`` names the manifest key to point at."""

    def __init__(self, path: tuple[str, ...], message: str, hint: str | None = None):
        super().__init__(message)
        self.path, self.message, self.hint = path, message, hint


Point = dict[str, Any]


@dataclass(frozen=True)
class Slot:
    """One run: a sweep point in one cycle (``cycle`` 1…N) or warmup (``warmup`` 1…W)."""

    point_index: int
    point: Point
    cycle: int
    warmup: int = 0

    @property
    def label(self) -> str:
        return f"w{self.warmup}" if self.warmup else f"c{self.cycle}"


def derived_seed(*parts: str) -> int:
    """A stable 32-bit seed from names (so an unseeded manifest still plans reproducibly)."""
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:4], "big")


def parameter_values(name: str, spec: Any) -> list[Any]:
    """The values of a grid/zip parameter."""
    if isinstance(spec, list):
        return list(spec)
    if isinstance(spec, ValuesSpec):
        return list(spec.values)
    if isinstance(spec, RangeSpec):
        return _range(spec.range)
    raise ExpandError(("parameters", name), "a distribution needs mode = \"random\"")


def _range(bounds: list[float]) -> list[Any]:
    start, stop = bounds[0], bounds[1]
    step = bounds[2] if len(bounds) == 3 else 1
    integral = all(float(b).is_integer() for b in bounds)
    if integral:
        return list(range(int(start), int(stop), int(step)))
    count = max(0, math.ceil((stop - start) / step - 1e-12))
    return [round(start + i * step, 12) for i in range(count)]


def sweep_points(sweep: Sweep | None, seed_name: str) -> list[Point]:
    """Every sweep point, in order, after include and exclude. One empty point without a sweep."""
    if sweep is None or not sweep.parameters:
        return [{}]
    count = unit_count(sweep.model_dump(exclude_none=True), {})
    if count.points > run_limit():  # counted first: a huge grid is refused, not listed
        raise ExpandError((), f"{count.describe()}, more than --max-runs {run_limit():,}",
                          _TOO_MANY)
    names = list(sweep.parameters)
    if sweep.mode == "random":
        points = _random_points(sweep, seed_name)
    else:
        columns = [parameter_values(n, sweep.parameters[n]) for n in names]
        rows: Iterable[tuple[Any, ...]]
        if sweep.mode == "zip":
            lengths = {n: len(c) for n, c in zip(names, columns, strict=True)}
            if len(set(lengths.values())) > 1:
                detail = ", ".join(f"{k}: {v}" for k, v in lengths.items())
                raise ExpandError(("parameters",), f"zip needs lists of equal length, got {detail}")
            rows = zip(*columns, strict=True)
        else:
            rows = itertools.product(*columns)
        points = [dict(zip(names, row, strict=True)) for row in rows]
    points = _include(points, sweep.include, names, sweep)
    points = [p for p in points if not any(_matches(p, e) for e in sweep.exclude)]
    if not points:
        raise ExpandError(("exclude",), "the sweep is empty: exclude removed every point",
                          "loosen the exclude entries")
    return points


def _random_points(sweep: Sweep, seed_name: str) -> list[Point]:
    if sweep.samples is None:
        raise ExpandError((), 'mode = "random" needs samples', "for example samples = 20")
    rng = random.Random(sweep.seed if sweep.seed is not None else derived_seed(seed_name, "sweep"))
    points = []
    for _ in range(sweep.samples):
        point = {}
        for name, spec in sweep.parameters.items():
            point[name] = _draw(rng, name, spec)
        points.append(point)
    return points


def _draw(rng: random.Random, name: str, spec: Any) -> Any:
    if isinstance(spec, DistributionSpec):
        kind = spec.distribution
        if kind == "choice":
            return rng.choice(spec.values or [None])
        if spec.min is None or spec.max is None:
            raise ExpandError(("parameters", name), f'distribution "{kind}" needs min and max')
        if kind == "uniform":
            return rng.uniform(spec.min, spec.max)
        if kind == "log_uniform":
            if spec.min <= 0:
                raise ExpandError(("parameters", name), "log_uniform needs min > 0")
            return math.exp(rng.uniform(math.log(spec.min), math.log(spec.max)))
        return rng.randint(int(spec.min), int(spec.max))
    return rng.choice(parameter_values(name, spec))


def _include(points: list[Point], entries: list[dict[str, Any]], names: list[str],
             sweep: Sweep) -> list[Point]:
    """An entry naming every parameter adds that point; a partial one adds its values for
    every combination of the parameters it leaves out (it extends the sweep along them)."""
    result = list(points)
    seen = {_frozen(p) for p in result}
    for entry in entries:
        missing = [n for n in names if n not in entry]
        if missing and sweep.mode == "random":
            raise ExpandError(("include",), "include entries of a random sweep must name "
                              "every parameter", f"missing: {', '.join(missing)}")
        if missing:
            others = sorted({tuple(p[n] for n in missing) for p in points},
                            key=lambda row: [_frozen_value(v) for v in row])
            candidates = [{**dict(zip(missing, row, strict=True)), **entry} for row in others]
        else:
            candidates = [dict(entry)]
        for candidate in candidates:
            ordered = {n: candidate[n] for n in names}
            if _frozen(ordered) not in seen:
                seen.add(_frozen(ordered))
                result.append(ordered)
    return result


def _matches(point: Point, entry: dict[str, Any]) -> bool:
    return all(k in point and point[k] == v for k, v in entry.items())


def _frozen_value(value: Any) -> str:
    return repr(value)


def _frozen(point: Point) -> tuple[tuple[str, str], ...]:
    return tuple((k, _frozen_value(v)) for k, v in point.items())


def campaign_slots(points: list[Point], campaign: Campaign, seed_name: str) -> list[Slot]:
    """Runs in execution order: warmups first, then cycles, grouped / interleaved / shuffled.
    With ``campaign.until``, every cycle up to ``max_cycles`` (``plan.adaptive`` cuts them to
    what each point needs now)."""
    count = campaign.until.max_cycles if campaign.until else campaign.cycles
    campaign = campaign.model_copy(update={"cycles": max(count, campaign.cycles)})
    runs = len(points) * (campaign.cycles + campaign.warmup_runs)
    if runs > run_limit():
        raise ExpandError((), f"{len(points):,} points × {campaign.cycles + campaign.warmup_runs:,} "
                          f"cycles and warmups = {runs:,} runs, more than --max-runs "
                          f"{run_limit():,}", _TOO_MANY)
    indexed = list(enumerate(points))
    warmups = [Slot(i, p, 0, w) for w in range(1, campaign.warmup_runs + 1) for i, p in indexed]
    if campaign.order == "grouped":
        slots = []
        for i, p in indexed:
            slots += [Slot(i, p, 0, w) for w in range(1, campaign.warmup_runs + 1)]
            slots += [Slot(i, p, c) for c in range(1, campaign.cycles + 1)]
        return slots
    cycles = [[Slot(i, p, c) for i, p in indexed] for c in range(1, campaign.cycles + 1)]
    if campaign.order == "shuffled":
        seed = campaign.seed if campaign.seed is not None else derived_seed(seed_name, "campaign")
        rng = random.Random(seed)
        for round_ in cycles:
            rng.shuffle(round_)
    return warmups + [slot for round_ in cycles for slot in round_]
