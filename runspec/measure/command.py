"""``runspec results`` from options to output: read, group, compare or tabulate, plot, and
decide the exit code (strict: every planned run must have a complete result).

The command line only passes options here; every decision is made in this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from runspec.manifest.suggest import did_you_mean
from runspec.measure.compare import (
    DEFAULT_NOISE,
    CompareError,
    compare,
    needs_history,
    parse_spec,
    render_compare,
)
from runspec.measure.metrics import declared_metrics
from runspec.measure.plot import plot
from runspec.measure.results import collect
from runspec.measure.samples import read_samples
from runspec.measure.stats import CIMethod
from runspec.measure.table import render
from runspec.state.history import history_location

COMPARE_FORMATS = ("table", "json", "md")


@dataclass
class Options:
    path: Path
    fmt: str = "table"
    group_by: list[str] | None = None
    everything: bool = False            # --all: earlier configurations too
    compare: str | None = None
    long: bool = False
    all_metrics: bool = False
    ci: CIMethod = CIMethod.T
    plot: Path | None = None
    plot_metrics: list[str] = field(default_factory=list)
    logx: bool = False
    logy: bool = False
    strict: bool = True


@dataclass
class Outcome:
    out: str = ""
    messages: list[str] = field(default_factory=list)   # for stderr
    code: int = 0


def _setting(data: dict[str, Any], stage: str, name: str, default: Any) -> Any:
    """``measure.NAME`` of ``stage``: its own, else the top-level one (as resolving merges)."""
    stages = data.get("stages")
    own = ((stages.get(stage) or {}).get("measure") or {}) if isinstance(stages, dict) else {}
    if isinstance(own, dict) and name in own:
        return own[name]
    return (data.get("measure") or {}).get(name, default)


def _stage_names(data: dict[str, Any]) -> list[str]:
    stages = data.get("stages")
    return list(stages) if isinstance(stages, dict) and stages else ["main"]


def results_command(options: Options) -> Outcome:
    """Raises ManifestError or StateError (the caller prints them); everything else the
    user can get wrong is an Outcome with a message and exit code 1."""
    from runspec.apply import inspect
    from runspec.manifest.errors import ManifestError
    from runspec.manifest.load import load_manifest

    outcome = Outcome()
    try:
        spec = parse_spec(options.compare) if options.compare is not None else None
    except CompareError as error:
        return Outcome(messages=[f"error: {error}"], code=1)
    if spec is not None and options.fmt not in COMPARE_FORMATS:
        return Outcome(messages=[f"error: --compare prints {', '.join(COMPARE_FORMATS)}; "
                                 f"not {options.fmt}"], code=1)
    target = inspect.tracked(options.path)
    inspect.refresh(target)
    data = load_manifest(options.path).data
    measure = data.get("measure") or {}
    primary, goal = measure.get("primary"), measure.get("goal", "max")
    declared = list(dict.fromkeys(m for s in _stage_names(data) for m in declared_metrics(data, s)))
    found = read_samples(target, partial(declared_metrics, data),
                         history=options.everything or needs_history(spec, options.everything))
    results = collect(target.name, found, options.group_by, primary, goal,
                      declared or None, options.all_metrics, options.ci)
    if primary and primary not in results.reported and results.groups:
        return Outcome(messages=[f'error: measure.primary "{primary}" was reported by no run '
                                 f'(metrics seen: {", ".join(results.reported) or "none"})'],
                       code=1)
    known = sorted({k for s in found.samples for k in s.point})
    unknown = [name for name in options.group_by or [] if name not in known]
    if unknown and found.samples:
        hint = did_you_mean(unknown[0], known)
        return Outcome(messages=[f"error: --group-by {unknown[0]}: not a sweep parameter of "
                                 f"{target.name} (its parameters: {', '.join(known) or 'none'})"
                                 + (f" — {hint}" if hint else "")], code=1)
    if spec is not None:
        try:
            report = compare(spec, results, known,
                             lambda stage: float(_setting(data, stage, "noise", DEFAULT_NOISE)),
                             history_location(target.store.location))
        except CompareError as error:
            return Outcome(messages=[f"error: {error}"], code=1)
        outcome.out = render_compare(report, options.fmt)
    else:
        outcome.out = render(results, options.fmt, options.long)
    if options.plot:
        try:
            written = plot(results, options.plot, options.plot_metrics, options.logx,
                           options.logy)
        except ValueError as error:
            outcome.messages.append(f"error: {error}")
            outcome.code = 1
            return outcome
        outcome.messages.append(f"wrote {written}")
    missing = list(results.missing)
    try:
        from runspec.measure.completeness import never_applied

        missing += never_applied(options.path, target.state)
    except ManifestError as error:
        if options.strict:
            raise
        outcome.messages.append(f"warning: cannot plan {options.path} to count its runs: "
                                + "; ".join(d.message for d in error.diagnostics[:3]))
    if missing:
        word = "error" if options.strict else "warning"
        outcome.messages.append(f"{word}: {len(missing)} run(s) have no complete result: "
                                + ", ".join(missing))
        if options.strict:
            outcome.code = 1
    return outcome
