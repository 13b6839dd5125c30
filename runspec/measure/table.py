"""Results as text: the wide table (one row per point, a column per metric), the long one
(one row per point and metric), markdown, and tidy CSV/JSON (a column per sweep parameter,
values in result.json's units, so other tools never parse a "point" string).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from runspec.measure.figures import column_decimals, fixed
from runspec.measure.quantities import Quantity
from runspec.measure.results import Group, Results
from runspec.measure.stats import RELIABLE_N, CIMethod, Summary
from runspec.plan.identity import format_value

ROW_FIELDS = ("stage", "config", "current", "vs_current", "metric", "unit", "n", "mean", "std",
              "cv", "min", "max", "ci95_low", "ci95_high", "ci_method", "ci_crosses_bound",
              "unreliable")
PARAMETER_PREFIX = "sweep:"   # a parameter whose name is one of ROW_FIELDS ("n", "metric")
UNRELIABLE_MARK = "*"
BOUND_MARK = "!"
CI_NAMES = {CIMethod.T: "Student t", CIMethod.BOOTSTRAP: "percentile bootstrap, 10,000 "
            "resamples"}


def parameter_column(name: str) -> str:
    return PARAMETER_PREFIX + name if name in ROW_FIELDS else name


def parameter_name(column: str) -> str:
    return column.removeprefix(PARAMETER_PREFIX)


def crosses_bound(q: Quantity, s: Summary) -> bool:
    """Does the interval reach below 0 for a quantity that cannot?"""
    return q.nonnegative and s.ci95_low is not None and s.ci95_low < 0


def _summarized(results: Results) -> Iterator[tuple[Group, Quantity, Summary]]:
    """Each group with each metric it has a summary of, in table order."""
    for group in results.groups:
        for q in results.metrics:
            s = group.summaries.get(q.name)
            if s is not None:
                yield group, q, s


def rows(results: Results) -> list[dict[str, Any]]:
    """One flat row per group and metric: what csv and json print."""
    out = []
    for group, q, s in _summarized(results):
        row: dict[str, Any] = {"stage": group.stage}
        row.update({parameter_column(p): group.point.get(p) for p in results.parameters})
        if results.history:
            row.update({"config": group.config, "current": group.current,
                        "vs_current": group.changed})
        row.update({"metric": q.name, "unit": q.native_unit, "n": s.n, "mean": s.mean,
                    "std": s.std, "cv": s.cv, "min": s.min, "max": s.max,
                    "ci95_low": s.ci95_low, "ci95_high": s.ci95_high,
                    "ci_method": str(s.ci_method), "ci_crosses_bound": crosses_bound(q, s),
                    "unreliable": s.unreliable})
        out.append(row)
    return out


def render(results: Results, fmt: str, long: bool = False) -> str:
    if fmt == "json":
        return json.dumps({"manifest": results.name, "primary": results.primary,
                           "goal": results.goal, "group_by": results.group_by,
                           "ci": str(results.ci),
                           "parameters": [parameter_column(p) for p in results.parameters],
                           "missing": results.missing, "hidden_metrics": results.hidden,
                           "energy_methods": results.energy_methods, "rows": rows(results)},
                          indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        table = rows(results)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["stage"])
        writer.writeheader()
        writer.writerows(table)
        return buffer.getvalue()
    header, lines, right, marks = (_long if long else _wide)(results)
    notes = _notes(results, marks, long)
    if fmt == "md":
        return markdown(header, lines, right) + "".join(f"\n{n}\n" for n in notes)
    return layout(header, lines, right) + "".join(f"{n}\n" for n in notes)


def layout(header: list[str], lines: list[list[str]], right: set[int]) -> str:
    """Columns two spaces apart; the numbers right-aligned, so their decimals line up."""
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                     for r in [header, *lines]) + "\n"


def markdown(header: list[str], lines: list[list[str]], right: set[int]) -> str:
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return "".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |\n"
                   for r in [header, rule, *lines])


def _group_columns(results: Results, group: Group) -> list[str]:
    cells = [group.stage, *(format_value(group.point[p]) if p in group.point else "-"
                            for p in results.parameters)]
    return cells + ([group.config, group.changed] if results.history else [])


def _wide(results: Results) -> tuple[list[str], list[list[str]], set[int], set[str]]:
    """A row per group: n, then mean ± CI half-width per metric, in shown units."""
    head = ["stage", *results.parameters] + (["config", "vs current"] if results.history else [])
    header = head + ["n"] + [q.header for q in results.metrics]
    right = set(range(len(head), len(header)))
    marks: set[str] = set()
    decimals = {}
    for q in results.metrics:
        summaries = [g.summaries[q.name] for g in results.groups if q.name in g.summaries]
        decimals[q.name] = column_decimals(
            [s.half_width * q.scale if s.half_width is not None else None for s in summaries],
            [s.mean * q.scale for s in summaries])
    lines = []
    for group in results.groups:
        n = len(group.samples)
        cells = [*_group_columns(results, group), str(n)]
        if n < RELIABLE_N:
            cells[-1] += UNRELIABLE_MARK
            marks.add(UNRELIABLE_MARK)
        for q in results.metrics:
            s = group.summaries.get(q.name)
            if s is None:
                cells.append("-")
                continue
            places = decimals[q.name]
            cell = fixed(s.mean * q.scale, places)
            if s.half_width is not None:
                cell += " ± " + fixed(s.half_width * q.scale, places)
            if s.n != n:
                cell += f" (n={s.n})"
            if crosses_bound(q, s):
                cell += BOUND_MARK
                marks.add(BOUND_MARK)
            cells.append(cell)
        lines.append(cells)
    return header, lines, right, marks


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _long(results: Results) -> tuple[list[str], list[list[str]], set[int], set[str]]:
    """A row per group and metric, in result.json's units: n, mean, std, CV, min, max, CI."""
    head = ["stage", "point"] + (["config"] if results.history else [])
    header = head + ["metric", "n", "mean", "std", "cv", "min", "max", "95% CI"]
    marks: set[str] = set()
    lines = []
    for group, q, s in _summarized(results):
        ci = (f"[{_short(s.ci95_low)}, {_short(s.ci95_high)}]"
              if s.ci95_low is not None else "-")
        if crosses_bound(q, s):
            ci += BOUND_MARK
            marks.add(BOUND_MARK)
        flag = " (unreliable: n<3)" if s.unreliable else ""
        lines.append([group.stage, group.label, *([group.config] if results.history else []),
                      q.name, str(s.n) + flag, _short(s.mean), _short(s.std), _short(s.cv),
                      _short(s.min), _short(s.max), ci])
    return header, lines, set(), marks


def _notes(results: Results, marks: set[str], long: bool) -> list[str]:
    notes = []
    if not long and results.groups:
        notes.append(f"mean ± half-width of its 95% CI ({CI_NAMES[results.ci]}) over the "
                     "n cycles of each point")
    if UNRELIABLE_MARK in marks:
        notes.append(f"{UNRELIABLE_MARK} fewer than 3 cycles: the interval is unreliable")
    if BOUND_MARK in marks:
        notes.append(f"{BOUND_MARK} the 95% CI reaches below 0, which this quantity cannot: "
                     "too few cycles or too much spread for a t-interval (more cycles, or "
                     "--ci bootstrap)")
    if results.hidden:
        notes.append(f"not shown: {', '.join(results.hidden)} (reported, not in "
                     "measure.metrics; --metrics all shows them)")
    notes += energy_notes(results)
    return notes


def energy_notes(results: Results) -> list[str]:
    """How energy_kwh was measured (codecarbon's method per component), under the table."""
    return [f"energy_kwh measured by codecarbon with {methods} ({n} run{'s' * (n != 1)})"
            for methods, n in sorted(results.energy_methods.items())]
