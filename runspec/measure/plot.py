"""``runspec results --plot FILE``: what each cycle measured, and what that says.

One subplot per chosen metric, against the first sweep parameter: every cycle's value as a
dot, the mean with its 95% CI as an error bar, one series per combination of the other
parameters (with ``--all``, also per configuration: current, previous, …), n in the
legend. Means are joined by a line only when x is a number: a line between categorical
values would suggest an order and a trend that are not there. matplotlib is an optional
extra, imported here only.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from runspec.manifest.suggest import did_you_mean
from runspec.measure.results import Group, Results
from runspec.measure.stats import summarize
from runspec.plan.identity import SINGLE_POINT, format_value, point_label

JITTER = 0.06       # categorical x: series side by side, not on top of each other
GENERATIONS = {0: "current", 1: "previous config"}


class PlotError(ValueError):
    """The plot asked for cannot be drawn (unknown metric, log scale of non-positive x)."""


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def plotted_metrics(results: Results, asked: list[str]) -> list[str]:
    """The metrics to draw: those asked for (each must be one some run reported), else the
    primary, else the first shown."""
    for name in asked:
        if name not in results.reported:
            hint = did_you_mean(name, results.reported)
            raise PlotError(f"--metric {name}: no run reported it (reported: "
                            f"{', '.join(results.reported) or 'nothing'})"
                            + (f" — {hint}" if hint else ""))
    if asked:
        return list(dict.fromkeys(asked))
    if results.primary and results.primary in results.reported:
        return [results.primary]
    if not results.metrics:
        raise PlotError("nothing to plot: no metric has a value")
    return [results.metrics[0].name]


def _series(results: Results, group: Group, x_name: str | None) -> str:
    rest = {k: v for k, v in group.point.items() if k != x_name}
    label = point_label(rest) if rest else ""
    if results.history:  # a point's configurations differ by point: series by generation
        label = (label + " " if label else "") + GENERATIONS.get(group.generation,
                                                                  f"config −{group.generation}")
    if len({g.stage for g in results.groups}) > 1:
        label = f"{group.stage} {label}".strip()
    return label


def plot(results: Results, out: Path, metrics: list[str] | None = None, logx: bool = False,
         logy: bool = False) -> Path:
    """Draw (see ``figure``) and write a PNG to ``out``."""
    drawn = figure(results, metrics, logx, logy)
    import matplotlib.pyplot as plt

    try:
        drawn.savefig(out, dpi=120)
    except OSError as error:
        raise PlotError(f"--plot {out}: cannot write it ({error.strerror or error})") from None
    finally:
        plt.close(drawn)
    return out


def figure(results: Results, metrics: list[str] | None = None, logx: bool = False,
           logy: bool = False) -> Any:
    """The matplotlib figure: a subplot per metric. Raises PlotError."""
    names = plotted_metrics(results, metrics or [])
    groups = [g for g in results.groups if any(g.values.get(n) for n in names)]
    if not groups:
        raise PlotError(f"nothing to plot: no sweep point has {', '.join(names)}")
    x_name = next((k for g in groups for k in g.point), None)
    xs: list[Any] = [g.point.get(x_name) if x_name else SINGLE_POINT for g in groups]
    numeric = x_name is not None and all(_numeric(x) for x in xs)
    if logx and not (numeric and all(x > 0 for x in xs)):
        raise PlotError(f"--logx needs positive numbers on the x axis ({x_name or 'no sweep'} "
                        f"has {', '.join(sorted({format_value(x) for x in xs}))})")
    for name in names if logy else []:
        if any(v <= 0 for g in groups for v in g.values.get(name, [])):
            raise PlotError(f"--logy needs positive values ({name} has values ≤ 0)")
    categories = list(dict.fromkeys(format_value(x) for x in xs))

    try:
        import matplotlib
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'runspec[plot]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn, axes_list = plt.subplots(len(names), 1, figsize=(7.5, 3.6 * len(names) + 0.6),
                                     sharex=True, squeeze=False)
    series_names = sorted({_series(results, g, x_name) for g in groups})
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    for axes, name in zip((row[0] for row in axes_list), names, strict=True):
        q = results.quantity(name)
        scale = q.scale if q else 1.0
        by_series: dict[str, list[tuple[Any, list[float]]]] = defaultdict(list)
        for group, x in zip(groups, xs, strict=True):
            values = group.values.get(name)
            if values:
                by_series[_series(results, group, x_name)].append((x, values))
        for index, label in enumerate(series_names):
            points = by_series.get(label)
            if not points:
                continue
            color = colors[index % len(colors)]
            offset = (index - (len(series_names) - 1) / 2) * JITTER
            if numeric:
                points.sort(key=lambda p: p[0])
            position = [p[0] if numeric else categories.index(format_value(p[0])) + offset
                        for p in points]
            means, low, high, counts = [], [], [], []
            for (_, values), at in zip(points, position, strict=True):
                s = summarize(values, results.ci)  # the table's interval, bootstrap too
                assert s is not None
                axes.scatter([at] * len(values), [v * scale for v in values], s=14,
                             alpha=0.45, color=color, linewidths=0)
                means.append(s.mean * scale)
                low.append((s.mean - s.ci95_low) * scale if s.ci95_low is not None else 0.0)
                high.append((s.ci95_high - s.mean) * scale if s.ci95_high is not None else 0.0)
                counts.append(s.n)
            n = (f"n={counts[0]}" if len(set(counts)) == 1
                 else f"n={min(counts)}–{max(counts)}")
            axes.errorbar(position, means, yerr=[low, high], fmt="o-" if numeric else "o",
                          capsize=4, color=color, label=f"{label or name} ({n})")
        axes.set_ylabel(q.header if q else name)
        axes.set_title(f"{results.name}: {name} — mean and 95% CI, dots: cycles", fontsize=10)
        if logy:
            axes.set_yscale("log")
        axes.legend(fontsize=8)
    bottom = axes_list[-1][0]
    if numeric:
        if logx:
            bottom.set_xscale("log")
    else:
        bottom.set_xticks(range(len(categories)), categories)
    bottom.set_xlabel(x_name or "point")
    drawn.tight_layout()
    return drawn
