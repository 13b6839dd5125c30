"""``runspec results --compare SPEC``: did a change change what the runs measure?

Three kinds of SPEC name the two sides, A (the baseline) and B:

* ``PARAM=A..B``: the runs with sweep parameter PARAM = A against those with PARAM = B. The
  other parameters are *kept*: one comparison per combination of them (pooling points of
  different depth, say, would mix their effects into the noise); ``--group-by PARAM`` pools
  them, as it does for the table. With ``--all`` a value that only ran before (it is in the
  history) can be a side; each side is the most recent configuration that has its value.
* ``@previous``: each current point against the same keys' previous configuration (the
  most recent other digest each key ran, from the history).
* ``FILE.json``: what ``runspec results --format json`` wrote elsewhere (another checkout,
  main in CI) as A, against the current runs here, point by point.

Per metric: the difference of means B − A with its 95% CI (Welch), the relative change
(B − A) / |A|, a two-sided p-value (Welch's t-test), and a verdict: "no significant change"
when p ≥ 0.05 or |relative change| < ``measure.noise``; else faster/slower (wall time,
throughput), better/worse (where lower or higher is known to be better: energy, memory,
the primary), or just higher/lower.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from runspec.manifest.suggest import did_you_mean
from runspec.measure.figures import column_decimals, fixed, p_value, percent
from runspec.measure.quantities import Better, Quantity
from runspec.measure.results import Group, Results
from runspec.measure.stats import Welch, welch
from runspec.measure.table import layout, markdown, parameter_column, parameter_name
from runspec.plan.identity import format_value, point_label

SIGNIFICANCE = 0.05
DEFAULT_NOISE = 0.02
PREVIOUS = "@previous"


class CompareError(Exception):
    """A SPEC that cannot be compared: what was expected, and a suggestion."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message + (f" — {hint}" if hint else ""))
        self.message, self.hint = message, hint


class Verdict(StrEnum):
    FASTER = "faster"
    SLOWER = "slower"
    BETTER = "better"
    WORSE = "worse"
    HIGHER = "higher"
    LOWER = "lower"
    NO_CHANGE = "no significant change"
    TOO_FEW = "too few runs"          # a side has fewer than 2 values: no test


SIGNIFICANT = frozenset(Verdict) - {Verdict.NO_CHANGE, Verdict.TOO_FEW}


# -- what SPEC says ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Between:
    parameter: str
    a: str
    b: str

    def __str__(self) -> str:
        return f"{self.parameter}={self.a}..{self.b}"


@dataclass(frozen=True)
class Previous:
    def __str__(self) -> str:
        return PREVIOUS


@dataclass(frozen=True)
class Export:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


Spec = Between | Previous | Export
EXPECTED = ("expected PARAM=A..B (e.g. optim.lr=0.01..0.03), @previous, or a file that "
            "`runspec results --format json` wrote")


def parse_spec(text: str) -> Spec:
    """What ``--compare TEXT`` asks for; raises CompareError naming the accepted forms."""
    text = text.strip()
    if text.startswith("@"):
        if text == PREVIOUS:
            return Previous()
        hint = did_you_mean(text, [PREVIOUS])
        raise CompareError(f"--compare {text}: unknown reference ({EXPECTED})", hint)
    if text.endswith(".json") or (Path(text).exists() and "=" not in text):
        return Export(Path(text))
    name, equals, values = text.partition("=")
    a, dots, b = values.partition("..")
    if not equals or not dots or not name.strip() or not a.strip() or not b.strip():
        raise CompareError(f"--compare {text}: {EXPECTED}",
                           f"write the two values with two dots: {name or 'PARAM'}=A..B"
                           if equals else None)
    if a.strip() == b.strip():
        raise CompareError(f"--compare {text}: A and B are the same value",
                           "name two different values of the parameter")
    return Between(name.strip(), a.strip(), b.strip())


def needs_history(spec: Spec | None, everything: bool) -> bool:
    """Must the history be read for this comparison?"""
    return isinstance(spec, Previous) or (isinstance(spec, Between) and everything)


# -- the comparisons --------------------------------------------------------------------------

@dataclass(frozen=True)
class Side:
    label: str
    n: int
    mean: float
    std: float | None


@dataclass(frozen=True)
class Comparison:
    stage: str
    scope: dict[str, Any]            # the point compared (PARAM=A..B: the parameters kept)
    metric: Quantity
    a: Side
    b: Side
    test: Welch | None
    relative: float | None           # (B − A) / |A|; None when A's mean is 0
    verdict: Verdict


@dataclass
class Report:
    manifest: str
    spec: str
    a: str                           # what side A is
    b: str
    noise: dict[str, float]          # stage → measure.noise
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[Verdict, int]:
        out: dict[Verdict, int] = {}
        for c in self.comparisons:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return out


def verdict(q: Quantity, test: Welch | None, relative: float | None, noise: float) -> Verdict:
    """Whether B differs from A beyond chance (p < 0.05) and beyond noise, and which way."""
    if test is None:
        return Verdict.TOO_FEW
    if test.p >= SIGNIFICANCE or (relative is not None and abs(relative) < noise):
        return Verdict.NO_CHANGE
    up = test.difference > 0
    if q.better == Better.UNKNOWN:
        return Verdict.HIGHER if up else Verdict.LOWER
    good = up == (q.better == Better.HIGHER)
    if q.speed:
        return Verdict.FASTER if good else Verdict.SLOWER
    return Verdict.BETTER if good else Verdict.WORSE


def compare_sides(stage: str, scope: dict[str, Any], q: Quantity, a: Side, b: Side,
                  noise: float) -> Comparison:
    test = welch(a.n, a.mean, a.std or 0.0, b.n, b.mean, b.std or 0.0)
    relative = (b.mean - a.mean) / abs(a.mean) if a.mean != 0 else None
    return Comparison(stage, scope, q, a, b, test, relative, verdict(q, test, relative, noise))


def _side(group: Group, metric: str, label: str) -> Side | None:
    s = group.summaries.get(metric)
    return Side(label, s.n, s.mean, s.std) if s else None


def _pairs(results: Results, pairs: list[tuple[Group, Group, dict[str, Any], str, str]],
           noise: Callable[[str], float]) -> list[Comparison]:
    out = []
    for a, b, scope, a_label, b_label in pairs:
        for q in results.metrics:
            side_a, side_b = _side(a, q.name, a_label), _side(b, q.name, b_label)
            if side_a and side_b:
                out.append(compare_sides(a.stage, scope, q, side_a, side_b, noise(a.stage)))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _matches(value: Any, text: str) -> bool:
    if format_value(value) == text:
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return False


def _between(spec: Between, results: Results, known: list[str],
             noise: Callable[[str], float]) -> Report:
    if spec.parameter not in results.parameters:
        if spec.parameter in known:
            raise CompareError(f"--compare {spec}: {spec.parameter} is not grouped on "
                               f"(--group-by {','.join(results.group_by or [])})",
                               f"add {spec.parameter} to --group-by")
        names = ", ".join(known) or "none: the campaign has no sweep"
        raise CompareError(f"--compare {spec}: {spec.parameter} is not a sweep parameter of "
                           f"{results.name} (its parameters: {names})",
                           did_you_mean(spec.parameter, known))
    values = sorted({format_value(g.point[spec.parameter]) for g in results.groups
                     if spec.parameter in g.point})
    for text in (spec.a, spec.b):
        if not any(_matches(g.point.get(spec.parameter), text) for g in results.groups
                   if spec.parameter in g.point):
            hint = None if _is_number(text) else did_you_mean(text, values)
            if not results.history:
                hint = (f"{hint}; " if hint else "") + ("a value that ran before is in the "
                                                        "history: add --all")
            raise CompareError(f"--compare {spec}: no run has {spec.parameter}={text} "
                               f"(its values: {', '.join(values)})", hint)
    by_scope: dict[tuple, dict[str, Group]] = {}
    for group in sorted(results.groups, key=lambda g: g.generation, reverse=True):
        value = group.point.get(spec.parameter)
        side = "a" if _matches(value, spec.a) else "b" if _matches(value, spec.b) else None
        if side is None:
            continue
        rest = {k: v for k, v in group.point.items() if k != spec.parameter}
        scope_key = (group.stage, point_label(rest))
        by_scope.setdefault(scope_key, {})[side] = group   # the most recent one wins
    pairs, notes = [], []
    for (stage, label), sides in sorted(by_scope.items()):
        if "a" not in sides or "b" not in sides:
            lacking = spec.a if "a" not in sides else spec.b
            notes.append(f"{stage} {label}: no run with {spec.parameter}={lacking}")
            continue
        a, b = sides["a"], sides["b"]
        scope = {k: v for k, v in a.point.items() if k != spec.parameter}
        pairs.append((a, b, scope, _label(spec.parameter, spec.a, a),
                      _label(spec.parameter, spec.b, b)))
    return Report(results.name, str(spec), f"{spec.parameter}={spec.a}",
                  f"{spec.parameter}={spec.b}", {}, _pairs(results, pairs, noise), notes)


def _label(parameter: str, value: str, group: Group) -> str:
    return f"{parameter}={value}" + ("" if group.current else f" (config {group.config})")


def _previous(results: Results, where: str, noise: Callable[[str], float]) -> Report:
    def key(g: Group) -> tuple:
        return g.stage, point_label(g.point)

    earlier = {key(g): g for g in results.groups if g.generation == 1}
    pairs, notes = [], []
    for group in results.groups:
        if not group.current:
            continue
        before = earlier.get(key(group))
        if before is None:
            notes.append(f"{group.stage} {group.label}: no previous configuration")
            continue
        pairs.append((before, group, dict(group.point), f"previous (config {before.config})",
                      f"current (config {group.config})"))
    if not pairs:
        raise CompareError(f"--compare {PREVIOUS}: no current point of {results.name} has a "
                           f"previous configuration in its history ({where})",
                           "the history records runs that apply replaced; change the "
                           "manifest and apply, then compare")
    return Report(results.name, PREVIOUS, "previous configuration", "current configuration",
                  {}, _pairs(results, pairs, noise), notes)


def read_export(path: Path) -> dict[str, Any]:
    """A ``runspec results --format json`` document, checked enough to compare with."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompareError(f"--compare {path}: no such file ({EXPECTED})",
                           "write one with `runspec results --format json > FILE.json`") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CompareError(f"--compare {path}: cannot read it ({error})") from None
    except ValueError as error:
        raise CompareError(f"--compare {path}: not JSON ({error})",
                           "write it with `runspec results --format json > FILE.json`") from None
    rows = document.get("rows") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and _row_ok(r) for r in rows):
        raise CompareError(f"--compare {path}: not the output of `runspec results --format "
                           "json` (it needs rows with stage and metric, a whole n, a numeric "
                           "mean, and std a number or null)",
                           "write it with `runspec results --format json > FILE.json`")
    return document


def _row_ok(row: dict[str, Any]) -> bool:
    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    return (isinstance(row.get("stage"), str) and isinstance(row.get("metric"), str)
            and isinstance(row.get("n"), int) and not isinstance(row.get("n"), bool)
            and number(row.get("mean")) and (row.get("std") is None or number(row["std"])))


def _export(spec: Export, results: Results, noise: Callable[[str], float]) -> Report:
    document = read_export(spec.path)
    columns = [c for c in document.get("parameters") or [] if isinstance(c, str)]
    if (document.get("group_by") or None) != (results.group_by or None):
        theirs = document.get("group_by")
        raise CompareError(
            f"--compare {spec}: it was grouped "
            + (f"by {','.join(theirs)}" if theirs else "by whole points")
            + (f", these results by {','.join(results.group_by)}" if results.group_by
               else ", these results by whole points"),
            f"group both the same way{f': --group-by {chr(44).join(theirs)}' if theirs else ''}")
    theirs_by: dict[tuple, Side] = {}
    points: dict[tuple, str] = {}
    for row in document["rows"]:
        if row.get("current") is False:
            continue  # an --all export: earlier configurations are not the baseline
        point = {parameter_name(c): row[c] for c in columns if row.get(c) is not None}
        where = (row["stage"], point_label(point))
        points[where] = f"{row['stage']} {point_label(point)}"
        theirs_by[(*where, row["metric"])] = Side(spec.path.name, int(row["n"]),
                                                  float(row["mean"]),
                                                  float(row["std"]) if row.get("std") is not None
                                                  else None)
    ours = {(g.stage, point_label(g.point)): g for g in results.groups if g.current}
    pairs = []
    comparisons = []
    for where, group in sorted(ours.items()):
        if where not in points:
            continue
        for q in results.metrics:
            a = theirs_by.get((*where, q.name))
            b = _side(group, q.name, "here")
            if a and b:
                comparisons.append(compare_sides(group.stage, dict(group.point), q, a, b,
                                                 noise(group.stage)))
        pairs.append(where)
    if not pairs:
        raise CompareError(f"--compare {spec}: it has no point in common with {results.name} "
                           f"(it has: {', '.join(sorted(points.values())[:5]) or 'none'}; "
                           f"here: {', '.join(f'{s} {p}' for s, p in sorted(ours)[:5])})",
                           "export the same manifest's results on the other checkout")
    notes = [f"only in {spec.path.name}: {points[w]}" for w in sorted(points) if w not in ours]
    notes += [f"not in {spec.path.name}: {s} {p}" for s, p in sorted(ours) if (s, p) not in points]
    if document.get("manifest") not in (None, results.name):
        notes.insert(0, f"{spec.path.name} holds the results of {document['manifest']}, "
                        f"not {results.name}")
    return Report(results.name, str(spec), spec.path.name, "here", {}, comparisons, notes)


def compare(spec: Spec, results: Results, known: list[str], noise: Callable[[str], float],
            history_location: str = "") -> Report:
    """The comparisons ``spec`` asks for. ``known``: every sweep parameter of the campaign
    (for did-you-mean); ``noise``: a stage's ``measure.noise``."""
    if isinstance(spec, Between):
        report = _between(spec, results, known, noise)
    elif isinstance(spec, Previous):
        report = _previous(results, history_location, noise)
    else:
        report = _export(spec, results, noise)
    report.noise = {c.stage: noise(c.stage) for c in report.comparisons}
    return report


# -- as text ----------------------------------------------------------------------------------

def _scope_columns(report: Report) -> list[str]:
    return sorted({k for c in report.comparisons for k in c.scope})


def _decimals(report: Report) -> dict[str, int]:
    """Per metric, one precision for A, B, the difference and its CI."""
    out = {}
    for name in dict.fromkeys(c.metric.name for c in report.comparisons):
        mine = [c for c in report.comparisons if c.metric.name == name]
        scale = mine[0].metric.scale
        out[name] = column_decimals(
            [(c.test.ci_high - c.test.difference) * scale for c in mine if c.test],
            [m * scale for c in mine for m in (c.a.mean, c.b.mean)])
    return out


def _ordered(report: Report) -> list[Comparison]:
    order = list(dict.fromkeys(c.metric.name for c in report.comparisons))
    return sorted(report.comparisons, key=lambda c: (c.stage, order.index(c.metric.name),
                                                     point_label(c.scope)))


def _cells(report: Report) -> tuple[list[str], list[list[str]], set[int]]:
    """A row per comparison, the metric first (the stage too, when there are several)."""
    scope = _scope_columns(report)
    staged = len({c.stage for c in report.comparisons}) > 1
    header = ["stage"] * staged + ["metric", *scope, "A (n)", "B (n)", "B − A", "95% CI",
                                   "change", "p", "verdict"]
    first = staged + 1 + len(scope)
    right = set(range(first, first + 6))
    decimals = _decimals(report)
    lines = []
    for c in _ordered(report):
        places, scale = decimals[c.metric.name], c.metric.scale
        ci = (f"[{fixed(c.test.ci_low * scale, places)}, {fixed(c.test.ci_high * scale, places)}]"
              if c.test else "-")
        lines.append([c.stage] * staged + [
            c.metric.header, *(format_value(c.scope[k]) if k in c.scope else "-" for k in scope),
            f"{fixed(c.a.mean * scale, places)} ({c.a.n})",
            f"{fixed(c.b.mean * scale, places)} ({c.b.n})",
            fixed((c.b.mean - c.a.mean) * scale, places), ci, percent(c.relative),
            p_value(c.test.p if c.test else None), str(c.verdict)])
    return header, lines, right


def _legend(report: Report) -> list[str]:
    noise = sorted(set(report.noise.values()))
    shown = "/".join(f"{n:.3g}" for n in noise) or f"{DEFAULT_NOISE:.3g}"
    counts = report.counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in Verdict if v in counts) or "nothing compared"
    return [f"A: {report.a}   B: {report.b}",
            "B − A with its 95% CI (Welch); p: Welch's two-sided t-test; no significant change "
            f"when p ≥ {SIGNIFICANCE} or |change| < measure.noise ({shown})",
            f"verdicts: {summary}", *report.notes]


def render_compare(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(_json(report), indent=2, ensure_ascii=False) + "\n"
    header, lines, right = _cells(report)
    legend = _legend(report)
    if fmt == "md":
        title = f"**{report.manifest}**: `runspec results --compare {report.spec}`"
        return (f"{title}\n\n{legend[0]}\n\n" + markdown(header, lines, right)
                + "".join(f"\n{line}\n" for line in legend[1:]))
    return f"{legend[0]}\n" + layout(header, lines, right) + "".join(f"{line}\n"
                                                                  for line in legend[1:])


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _json(report: Report) -> dict[str, Any]:
    items = []
    for c in _ordered(report):
        item: dict[str, Any] = {"stage": c.stage}
        item.update({parameter_column(k): v for k, v in c.scope.items()})
        item.update({
            "metric": c.metric.name, "unit": c.metric.native_unit,
            "a": {"label": c.a.label, "n": c.a.n, "mean": c.a.mean, "std": c.a.std},
            "b": {"label": c.b.label, "n": c.b.n, "mean": c.b.mean, "std": c.b.std},
            "difference": c.b.mean - c.a.mean,
            "ci95_low": c.test.ci_low if c.test else None,
            "ci95_high": c.test.ci_high if c.test else None,
            "relative": c.relative, "df": _finite(c.test.df) if c.test else None,
            "t": _finite(c.test.t) if c.test else None, "p": c.test.p if c.test else None,
            "noise": report.noise.get(c.stage), "verdict": str(c.verdict),
            "significant": c.verdict in SIGNIFICANT})
        items.append(item)
    return {"manifest": report.manifest, "compare": report.spec, "a": report.a, "b": report.b,
            "alpha": SIGNIFICANCE, "notes": report.notes, "comparisons": items}

