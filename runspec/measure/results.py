"""``runspec results``: the samples of a campaign grouped by sweep point, summarized.

Warmup runs are left out. A group is one stage's point (or, with ``--group-by``, the part
of it named there) run by one configuration: the current one, or with the history
(``--all``) an earlier one (see ``samples``). Metrics are the declared ones
(``measure.metrics`` and the primary) and what runspec measures itself (wall time, peak
RSS, energy, emissions); what a recipe reports beyond those is hidden unless asked for, so
a table shows what the manifest says it is about.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from runspec.measure.quantities import BUILTINS, Quantity, quantity
from runspec.measure.samples import Sample, Samples, config_changes
from runspec.measure.stats import CIMethod, Summary, summarize
from runspec.plan.identity import format_value, point_label

MAX_CHANGES_SHOWN = 3


@dataclass
class Group:
    stage: str
    point: dict[str, Any]
    generation: int = 0                 # 0: the current configuration (see samples)
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    summaries: dict[str, Summary] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    config: str = ""                    # short id of the runs' digests
    changed: str = ""                   # what differs from the current runs of its keys

    @property
    def label(self) -> str:
        return point_label(self.point)

    @property
    def current(self) -> bool:
        return self.generation == 0


@dataclass
class Results:
    name: str
    groups: list[Group]
    metrics: list[Quantity]             # shown, in order: primary, declared, others, runspec's
    missing: list[str]
    primary: str | None
    goal: str = "max"
    parameters: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)   # reported, undeclared, not shown
    reported: list[str] = field(default_factory=list)  # every metric some sample has
    energy_methods: dict[str, int] = field(default_factory=dict)  # "cpu=rapl, …" → runs
    history: bool = False               # groups of earlier configurations included
    group_by: list[str] | None = None
    ci: CIMethod = CIMethod.T

    @property
    def metric_names(self) -> list[str]:
        return [q.name for q in self.metrics]

    def quantity(self, name: str) -> Quantity | None:
        return next((q for q in self.metrics if q.name == name), None)


def config_id(digests: list[str]) -> str:
    """Seven hex digits naming the exact requests a group ran: equal ids, equal runs."""
    return hashlib.sha256(",".join(sorted(set(digests))).encode()).hexdigest()[:7]


def _changed(group: Group, current: dict[str, Any]) -> str:
    """What the group's runs ran differently from the runs of the same keys now."""
    if group.current:
        return "current"
    keys = [s for s in group.samples if s.key in current]
    if not keys:
        return "point not planned now"
    pairs: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for sample in keys:
        for path, (old, new) in config_changes(sample.config, current[sample.key]).items():
            pairs[path].add((format_value(old), format_value(new)))
    if not pairs:
        return "same config; command, code or environment"
    shown = [f"{path} {next(iter(p))[0]}→{next(iter(p))[1]}" if len(p) == 1 else path
             for path, p in sorted(pairs.items())]
    more = len(shown) - MAX_CHANGES_SHOWN
    return ", ".join(shown[:MAX_CHANGES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def collect(name: str, found: Samples, group_by: list[str] | None = None,
            primary: str | None = None, goal: str = "max", declared: list[str] | None = None,
            all_metrics: bool = False, ci: CIMethod = CIMethod.T,
            generations: bool = True) -> Results:
    """Group and summarize ``found``, the best ``primary`` first (largest, or smallest with
    ``goal = "min"``). ``declared``: the metrics the manifest names (all of them, when
    None or with ``all_metrics``); ``generations``: keep each configuration apart."""
    groups: dict[tuple, Group] = {}
    methods: dict[str, int] = defaultdict(int)
    seen: list[str] = []
    for sample in found.samples:
        point = ({k: v for k, v in sample.point.items() if k in group_by}
                 if group_by is not None else sample.point)
        generation = sample.generation if generations else 0
        key = (sample.stage, tuple(sorted((k, repr(v)) for k, v in point.items())), generation)
        group = groups.setdefault(key, Group(sample.stage, point, generation))
        group.samples.append(sample)
        if sample.method:
            methods[sample.method] += 1
        for metric, value in sample.values.items():
            group.values[metric].append(value)
            if metric not in seen:
                seen.append(metric)
    shown = _shown_metrics(seen, primary, declared, all_metrics)
    nonnegative = {m for m in shown if all(v >= 0 for g in groups.values()
                                           for v in g.values.get(m, []))}
    metrics = [quantity(m, primary, goal, m in nonnegative) for m in shown]
    for group in groups.values():
        group.summaries = {n: s for n, v in group.values.items() if n in shown
                           and (s := summarize(v, ci))}
        group.config = config_id([s.digest for s in group.samples])
        group.changed = _changed(group, found.current)
    ordered = sorted(groups.values(), key=lambda g: (g.stage, g.generation))
    if primary:
        sign = 1.0 if goal == "min" else -1.0
        ordered.sort(key=lambda g: (g.stage, sign * g.summaries[primary].mean
                                    if primary in g.summaries else float("inf")))
    parameters = sorted({k for g in ordered for k in g.point})
    hidden = [m for m in seen if m not in shown]
    return Results(name, ordered, metrics, found.missing, primary, goal, parameters, hidden,
                   seen, dict(methods), found.history_read, group_by, ci)


def _shown_metrics(seen: list[str], primary: str | None, declared: list[str] | None,
                   all_metrics: bool) -> list[str]:
    recipe = [m for m in seen if m not in BUILTINS]
    wanted = recipe if declared is None or all_metrics else \
        [m for m in recipe if m in declared or m == primary]
    if declared is not None:  # declared first, in their order; then the rest as seen
        wanted.sort(key=lambda m: (0, declared.index(m)) if m in declared else (1, 0))
    if primary in wanted:
        wanted.remove(primary)
        wanted.insert(0, primary)
    return wanted + [m for m in BUILTINS if m in seen]
