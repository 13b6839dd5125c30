"""``runspec results``: every run's result.json, grouped by sweep point, summarized.

Warmup runs are left out. Strict by default: a run of the campaign with no result, or with
a result.json that cannot be used (a field of the wrong type), is an error (listed, naming
the file and the field), so a half-finished campaign is never mistaken for a complete one.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runspec.measure import RESULT_FILE
from runspec.measure.metrics import unreported
from runspec.measure.stats import Summary, summarize
from runspec.plan.identity import point_label
from runspec.state.status import RunStatus, read_result

BUILTIN = ("wall_s", "energy_kwh", "peak_rss_mb")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _optional_number(value: Any) -> bool:
    return value is None or _number(value)


def _optional_object(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def result_problem(result: dict[str, Any]) -> str | None:
    """The first field of a result.json that results reads and cannot use (None if all can
    be used); the format is result_schema.Result."""
    checks: list[tuple[str, Any, Any, str]] = [
        ("wall_s", result.get("wall_s"), _optional_number, "a number"),
        ("peak_rss_mb", result.get("peak_rss_mb"), _optional_number, "a number or null"),
        ("metrics", result.get("metrics"), _optional_object, "an object of name → number"),
        ("energy", result.get("energy"), _optional_object, "an object or null")]
    metrics, energy = result.get("metrics"), result.get("energy")
    if isinstance(metrics, dict):
        checks += [(f"metrics.{name}", value, _number, "a finite number")
                   for name, value in metrics.items()]
    if isinstance(energy, dict):
        checks += [("energy.energy_kwh", energy.get("energy_kwh"), _optional_number,
                    "a number or null"),
                   ("energy.method", energy.get("method"), _optional_object, "an object or null")]
    for name, value, accepts, expected in checks:
        if not accepts(value):
            return f"field {name}: expected {expected}, got {json.dumps(value)[:60]}"
    return None


@dataclass
class Group:
    stage: str
    point: dict[str, Any]
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    summaries: dict[str, Summary] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return point_label(self.point)


@dataclass
class Results:
    name: str
    groups: list[Group]
    metrics: list[str]
    missing: list[str]
    primary: str | None
    energy_methods: dict[str, int] = field(default_factory=dict)  # "cpu=rapl, …" → runs


def collect(target, group_by: list[str] | None = None, primary: str | None = None,
            goal: str = "max", declared: Callable[[str], list[str]] | None = None) -> Results:
    """Read the results of ``target`` (runspec.apply.inspect.Tracked) into summarized groups,
    the best ``primary`` first (largest, or smallest with ``goal = "min"``). A run that
    never reported a metric its stage ``declared`` counts as missing (its other values
    still count)."""
    groups: dict[tuple, Group] = {}
    methods: dict[str, int] = defaultdict(int)
    missing: list[str] = []
    names: list[str] = []
    for member in sorted(target.state.members.values(), key=lambda m: m.key):
        if member.slot.startswith("w"):
            continue  # warmups are not measurements
        result, unreadable = read_result(target.root / member.run_dir)
        if result is None or member.status != RunStatus.SUCCEEDED:
            why = f": {unreadable}" if unreadable and member.status in (
                RunStatus.SUCCEEDED, RunStatus.LOST) else ""
            missing.append(f"{member.key} ({member.status}{why})")
            continue
        problem = result_problem(result)
        if problem:
            missing.append(f"{member.key} (bad result: "
                           f"{target.root / member.run_dir / RESULT_FILE}: {problem})")
            continue
        lacking = unreported(declared(member.stage), result) if declared else []
        if lacking:
            missing.append(f"{member.key} (never reported {', '.join(lacking)})")
        point = ({k: v for k, v in member.point.items() if k in group_by}
                 if group_by is not None else member.point)
        key = (member.stage, tuple(sorted((k, repr(v)) for k, v in point.items())))
        group = groups.setdefault(key, Group(member.stage, point))
        method = (result.get("energy") or {}).get("method")
        if isinstance(method, dict):
            methods[", ".join(f"{k}={v}" for k, v in sorted(method.items()))] += 1
        values = {"wall_s": result.get("wall_s"), "peak_rss_mb": result.get("peak_rss_mb"),
                  "energy_kwh": (result.get("energy") or {}).get("energy_kwh"),
                  **(result.get("metrics") or {})}
        for name, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                group.values[name].append(float(value))
                if name not in names:
                    names.append(name)
    for group in groups.values():
        group.summaries = {n: s for n, v in group.values.items() if (s := summarize(v))}
    metrics = [n for n in names if n not in BUILTIN] + [n for n in BUILTIN if n in names]
    if primary in metrics:
        metrics.remove(primary)
        metrics.insert(0, primary)
    ordered = list(groups.values())
    if primary:
        sign = 1.0 if goal == "min" else -1.0
        ordered.sort(key=lambda g: (g.stage, sign * g.summaries[primary].mean
                                    if primary in g.summaries else float("inf")))
    return Results(target.name, ordered, metrics, missing, primary, dict(methods))


def rows(results: Results) -> list[dict[str, Any]]:
    """One flat row per group and metric: what csv, json and md print."""
    out = []
    for group in results.groups:
        for metric in results.metrics:
            s = group.summaries.get(metric)
            if s is None:
                continue
            out.append({"stage": group.stage, "point": group.label, "metric": metric, "n": s.n,
                        "mean": s.mean, "std": s.std, "cv": s.cv, "min": s.min, "max": s.max,
                        "ci95_low": s.ci95_low, "ci95_high": s.ci95_high,
                        "unreliable": s.unreliable})
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(results: Results, fmt: str) -> str:
    import csv
    import io
    import json

    table = rows(results)
    if fmt == "json":
        return json.dumps({"manifest": results.name, "primary": results.primary,
                           "missing": results.missing, "energy_methods": results.energy_methods,
                           "rows": table}, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["stage"])
        writer.writeheader()
        writer.writerows(table)
        return buffer.getvalue()
    header = ["stage", "point", "metric", "n", "mean", "std", "cv", "min", "max", "95% CI"]
    lines = []
    for row in table:
        ci = (f"[{_fmt(row['ci95_low'])}, {_fmt(row['ci95_high'])}]"
              if row["ci95_low"] is not None else "-")
        flag = " (unreliable: n<3)" if row["unreliable"] else ""
        lines.append([row["stage"], row["point"], row["metric"], str(row["n"]) + flag,
                      _fmt(row["mean"]), _fmt(row["std"]), _fmt(row["cv"]), _fmt(row["min"]),
                      _fmt(row["max"]), ci])
    if fmt == "md":
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        note = energy_note(results)
        return "\n".join(out) + "\n" + (f"\n{note}" if note else "")
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [header, *lines]) + "\n" + energy_note(results)


def energy_note(results: Results) -> str:
    """How energy_kwh was measured (codecarbon's method per component), under the table."""
    return "".join(f"energy_kwh measured by codecarbon with {methods} ({n} run{'s' * (n != 1)})\n"
                   for methods, n in sorted(results.energy_methods.items()))


def plot(results: Results, out: Path) -> Path:
    """The primary metric against the first sweep parameter, 95% CI error bars, one line per
    value of the other parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = results.primary or (results.metrics[0] if results.metrics else None)
    if metric is None:
        raise ValueError("nothing to plot: no metric has a value")
    figure, axes = plt.subplots(figsize=(7, 4.5))
    lines: dict[str, list[tuple[Any, Summary]]] = defaultdict(list)
    first = None
    for group in results.groups:
        if metric not in group.summaries or not group.point:
            continue
        first = first or next(iter(group.point))
        rest = ",".join(f"{k}={v}" for k, v in group.point.items() if k != first) or metric
        lines[rest].append((group.point.get(first), group.summaries[metric]))
    if not lines:
        raise ValueError(f"nothing to plot: no sweep point has {metric}")
    for label, points in sorted(lines.items()):
        points.sort(key=lambda p: p[0])
        xs = [p[0] for p in points]
        ys = [p[1].mean for p in points]
        errors = [(p[1].mean - p[1].ci95_low) if p[1].ci95_low is not None else 0 for p in points]
        axes.errorbar(xs, ys, yerr=errors, marker="o", capsize=4, label=label)
    axes.set_xlabel(first)
    axes.set_ylabel(metric)
    axes.set_title(f"{results.name}: {metric} (mean, 95% CI)")
    if all(isinstance(p[0], int | float) and p[0] > 0 for pts in lines.values() for p in pts):
        spread = [p[0] for pts in lines.values() for p in pts]
        if max(spread) / min(spread) >= 100:
            axes.set_xscale("log")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
