"""Semantic checks that JSON Schema cannot express: one recipe kind, files that exist,
sweep names, stage DAGs, secrets by reference, energy settings.

They run on the loaded data (not the pydantic models) and tolerate values of the wrong
type, which the schema pass reports, so one ``validate`` shows every problem at once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runspec.manifest.document import Document, KeyPath, format_path, subtable
from runspec.manifest.errors import Diagnostic
from runspec.manifest.suggest import (
    all_of,
    assignment,
    did_you_mean,
    did_you_mean_file,
    one_of,
    table,
)
from runspec.manifest.vocabulary import RECIPE_KINDS

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.I)
STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

MAX_RUNS = 1_000_000
"""Default limit on the runs of one plan (``--max-runs``): each run is rendered and kept in
memory, so a ten-million-point grid would take gigabytes before anything is shown."""
MAX_COUNT = 1_000_000
"""Largest ``cycles``, ``warmup_runs`` and ``samples`` (the models' schema bound)."""
MAX_NAME_BYTES = 255
"""Longest file name (one path segment) that common file systems accept."""
_SATURATED = 10**18
_RUN_LIMIT: ContextVar[int] = ContextVar("runspec_max_runs", default=MAX_RUNS)
_SWEEP_REFERENCE = re.compile(r"\$\{sweep\.([^${}]+)\}")
_STAGE_OUTPUT = re.compile(r"\$\{stage\.([A-Za-z0-9_-]+)\.outputs\.")


def run_limit() -> int:
    """The most runs a plan may hold here (``MAX_RUNS`` unless ``limit_runs`` says otherwise)."""
    return _RUN_LIMIT.get()


@contextmanager
def limit_runs(limit: int | None) -> Iterator[None]:
    """Within the block, validate and plan refuse sweeps of more than ``limit`` runs."""
    if limit is None:
        yield
        return
    token = _RUN_LIMIT.set(limit)
    try:
        yield
    finally:
        _RUN_LIMIT.reset(token)


class Checker:
    """Collects diagnostics about one manifest document."""

    def __init__(self, document: Document, max_runs: int | None = None):
        self.document = document
        self.found: list[Diagnostic] = []
        self.fmt = document.notation
        self.max_runs = run_limit() if max_runs is None else max_runs

    def kv(self, key: str, value: Any) -> str:
        return assignment(self.fmt, key, value)

    def error(self, path: KeyPath, message: str, hint: str | None = None, on_key: bool = False,
              severity: str = "error") -> None:
        position = (self.document.key_position(path) if on_key
                    else self.document.value_position(path))
        found = Diagnostic.at(position, format_path(path), message, hint, self.document, severity)
        if len(path) > 1 and path[-2] == "vars" and SECRET_NAME.search(str(path[-1])):
            found = found.redacted()
        self.found.append(found)

    def base_dir(self, path: KeyPath) -> Path:
        """Directory that relative paths at ``path`` are relative to: the declaring file's."""
        return Path(self.document.value_position(path).file).parent

    # -- entry -----------------------------------------------------------------------------
    def run(self) -> list[Diagnostic]:
        data = self.document.data
        stages = data.get("stages")
        if isinstance(stages, dict) and stages:
            for key in ("recipe", "artifacts", "sweep"):
                if key in data:
                    self.error((key,), f"top-level {table(self.fmt, key)} cannot be combined with "
                               f"{table(self.fmt, 'stages')}",
                               "move it into the stage that uses it, e.g. "
                               + table(self.fmt, f"stages.NAME.{key}"), on_key=True)
            outputs = data.get("outputs")
            if isinstance(outputs, dict) and "artifacts" in outputs:
                self.error(("outputs", "artifacts"), f"top-level "
                           f"{table(self.fmt, 'outputs.artifacts')} cannot be combined with "
                           f"{table(self.fmt, 'stages')}: no stage would register them",
                           "move them into the stage that writes them, e.g. "
                           + table(self.fmt, "stages.NAME.outputs.artifacts.OUT"), on_key=True)
            for name, stage in stages.items():
                if not STAGE_NAME.fullmatch(name) and name.isprintable():  # else: the schema
                    self.error(("stages", name), f'invalid stage name "{name}"',
                               "use letters, digits, - and _", on_key=True)
                if isinstance(stage, dict):
                    self.check_unit(stage, ("stages", name))
            self.check_needs(stages)
        elif "recipe" not in data:
            self.error(("recipe",), "required key is missing",
                       f"a manifest needs a {table(self.fmt, 'recipe')} table (or "
                       f"{table(self.fmt, 'stages.NAME.recipe')} tables)", on_key=True)
            self.found[-1] = self.found[-1].without_source()
        else:
            self.check_unit(data, ())
        self.check_env(data.get("env"), ("env",))
        self.check_measure(data.get("measure"), ("measure",))
        self.check_run_count(data)
        self.check_until(data)
        self.check_path_lengths(data)
        return self.found

    def check_unit(self, unit: dict[str, Any], at: KeyPath) -> None:
        recipe = unit.get("recipe")
        if isinstance(recipe, dict):
            self.check_recipe(recipe, at + ("recipe",))
        sweep = unit.get("sweep")
        if isinstance(sweep, dict):
            self.check_sweep(sweep, at + ("sweep",))
        artifacts = unit.get("artifacts")
        if isinstance(artifacts, dict):
            self.check_inputs(artifacts, at + ("artifacts",))
        if at:
            self.check_env(unit.get("env"), at + ("env",))
            self.check_measure(unit.get("measure"), at + ("measure",))
            self.check_ranking(unit.get("measure"), at + ("measure",))

    # -- inputs ----------------------------------------------------------------------------
    def check_inputs(self, artifacts: dict[str, Any], at: KeyPath) -> None:
        """A ``wandb://`` input cannot be pinned: runspec plans without reaching W&B (offline
        W&B cannot resolve an artifact at all), and the URI must not reach the recipe."""
        for name, spec in artifacts.items():
            uri = spec.get("uri") if isinstance(spec, dict) else None
            if not isinstance(uri, str) or not uri.startswith("wandb://"):
                continue
            artifact = uri.rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0] or str(name)
            self.error(at + (name, "uri"),
                       f'"{uri}" is a W&B artifact, which runspec cannot resolve: inputs are '
                       "pinned from runspec's own registry, without reaching W&B",
                       f"download it once (wandb artifact get {uri.removeprefix('wandb://')}), "
                       f"`runspec artifacts publish {artifact} PATH`, then "
                       f"{self.kv('uri', f'art://{artifact}')}")

    # -- recipe ----------------------------------------------------------------------------
    def check_recipe(self, recipe: dict[str, Any], at: KeyPath) -> None:
        kinds = [k for k in RECIPE_KINDS if k in recipe]
        if not kinds:
            self.error(at, f"the recipe needs one of {one_of(RECIPE_KINDS)}",
                       f"for example {self.kv('script', 'train.py')}", on_key=True)
        elif len(kinds) > 1:
            self.error(at + (kinds[1],), f"the recipe has both {kinds[0]} and {kinds[1]}",
                       f"keep exactly one of {one_of(RECIPE_KINDS)}", on_key=True)
        if "on_code_change" in recipe and len(kinds) == 1 and kinds[0] != "script":
            self.error(at + ("on_code_change",),
                       f"on_code_change is for script recipes: runspec hashes a script, not "
                       f"the code a {kinds[0]} runs, so an edit of it never replaces a run",
                       "remove on_code_change (`runspec apply --replace GLOB` runs runs again "
                       "on edited code), or make the recipe a script", on_key=True)
        for key in ("script", "config"):
            value = recipe.get(key)
            if isinstance(value, str) and "${" not in value:
                self.check_file(at + (key,), value)

    def check_file(self, path: KeyPath, value: str) -> None:
        base = self.base_dir(path)
        target = base / value
        try:
            if target.is_file():
                return
        except (OSError, ValueError):  # e.g. a lone surrogate: no file can have this name
            self.error(path, f'"{value.encode("utf-8", "backslashreplace").decode()}" is not a '
                       "usable file name")
            return
        what = "is a directory, expected a file" if target.is_dir() else "file not found"
        hint = did_you_mean_file(value, base)
        if hint is None and target.parent.is_dir():
            names = sorted(p.name for p in target.parent.iterdir() if not p.name.startswith("."))
            folder = value.rsplit("/", 1)[0] + "/" if "/" in value else "this folder"
            hint = f"{folder} has {all_of(names)}" if names else f"{folder} is empty"
        shown = target if base != Path(".") else Path(value)
        self.error(path, f'{what}: "{shown}"', hint or f"paths are relative to {base}/")

    # -- sweep -----------------------------------------------------------------------------
    def check_sweep(self, sweep: dict[str, Any], at: KeyPath) -> None:
        parameters = sweep.get("parameters")
        if not isinstance(parameters, dict):
            return
        if not parameters:
            self.error(at + ("parameters",), "the sweep has no parameters",
                       "add parameters or remove [sweep]", on_key=True)
        mode = sweep.get("mode", "grid")
        if mode == "random" and "samples" not in sweep:
            self.error(at, f"{self.kv('mode', 'random')} needs samples",
                       f"for example {self.kv('samples', 20)}", on_key=True)
        if mode != "random" and "samples" in sweep:
            default = "" if "mode" in sweep else ", the default"
            self.error(at + ("samples",), f"samples only applies to {self.kv('mode', 'random')}; "
                       f'this sweep\'s mode is "{mode}"{default}',
                       f"set {self.kv('mode', 'random')} or remove samples", on_key=True)
        lengths: dict[str, int] = {}
        for name, spec in parameters.items():
            where = at + ("parameters", name)
            if isinstance(spec, dict) and "distribution" in spec:
                self.check_distribution(spec, where, mode)
            elif isinstance(spec, dict) and isinstance(spec.get("range"), list):
                bounds = spec["range"]
                if any(isinstance(b, float) and not math.isfinite(b) for b in bounds):
                    self.error(where + ("range",), f"range {bounds} has a bound that is not a "
                               "finite number", "a range runs between two finite numbers")
                elif len(bounds) == 3 and bounds[2] == 0:
                    self.error(where + ("range", 2), "range step must not be 0")
                elif len(bounds) >= 2 and all(isinstance(b, int | float) for b in bounds):
                    step = bounds[2] if len(bounds) == 3 else 1
                    if (bounds[1] - bounds[0]) * step <= 0:
                        self.error(where + ("range",), f"range {bounds} is empty",
                                   "the stop is exclusive and must lie after the start")
            values = spec if isinstance(spec, list) else (
                spec.get("values") if isinstance(spec, dict) and "distribution" not in spec else None)
            if isinstance(values, list):
                lengths[name] = len(values)
                if not values:
                    self.error(where, "a parameter needs at least one value")
        if mode == "zip" and len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k}: {v}" for k, v in lengths.items())
            self.error(at + ("parameters",), f"zip needs lists of equal length, got {detail}",
                       on_key=True)
        for listing in ("include", "exclude"):
            entries = sweep.get(listing)
            if not isinstance(entries, list):
                continue
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict):
                    continue
                if not entry:
                    self.error(at + (listing, index), f"an empty {listing} entry matches nothing")
                for key in entry:
                    if key not in parameters:
                        self.error(at + (listing, index, key),
                                   f'"{key}" is not a sweep parameter',
                                   did_you_mean(key, parameters)
                                   or f"the parameters are {all_of(parameters)}", on_key=True)

    def check_distribution(self, spec: dict[str, Any], at: KeyPath, mode: str) -> None:
        kind = spec.get("distribution")
        if mode != "random":
            self.error(at + ("distribution",), f"a distribution needs {self.kv('mode', 'random')}; "
                       f'this sweep\'s mode is "{mode}"',
                       "use a list or values for grid and zip sweeps", on_key=True)
        if kind == "choice":
            if "values" not in spec:
                self.error(at, 'distribution "choice" needs values', on_key=True)
            return
        missing = [bound for bound in ("min", "max") if bound not in spec]
        if missing:
            self.error(at, f'distribution "{kind}" needs {" and ".join(missing)}', on_key=True)
        low, high = spec.get("min"), spec.get("max")
        for bound, value in (("min", low), ("max", high)):
            if isinstance(value, float) and not math.isfinite(value):
                self.error(at + (bound,), f"{bound} must be a finite number, got {value}")
                return
        if isinstance(low, int | float) and isinstance(high, int | float):
            if low >= high:
                self.error(at + ("max",), f"max must be greater than min ({low})")
            if kind == "log_uniform" and low <= 0:
                self.error(at + ("min",), f"log_uniform needs min > 0, got {low}")

    # -- stages ----------------------------------------------------------------------------
    def check_needs(self, stages: dict[str, Any]) -> None:
        graph: dict[str, list[str]] = {}
        for name, stage in stages.items():
            needs = stage.get("needs") if isinstance(stage, dict) else None
            graph[name] = []
            if not isinstance(needs, list):
                continue
            for index, other in enumerate(needs):
                if not isinstance(other, str):
                    continue
                if other == name:
                    self.error(("stages", name, "needs", index), f'stage "{name}" needs itself')
                elif other not in stages:
                    self.error(("stages", name, "needs", index), f'unknown stage "{other}"',
                               did_you_mean(other, stages) or f"the stages are {all_of(stages)}")
                else:
                    graph[name].append(other)
        cycle = find_cycle(graph)
        if cycle:
            self.error(("stages", cycle[0], "needs"), "stages form a cycle: " + " → ".join(cycle),
                       "needs must form a DAG", on_key=True)

    # -- env and measure -------------------------------------------------------------------
    def check_env(self, env: Any, at: KeyPath) -> None:
        if not isinstance(env, dict):
            return
        variables = env.get("vars")
        if isinstance(variables, dict):
            for name, value in variables.items():
                if SECRET_NAME.search(name) and isinstance(value, str) and value:
                    self.error(at + ("vars", name), f'"{name}" looks like a secret written as a value',
                               f"move it to {table(self.fmt, 'env.secrets')}: "
                               + self.kv(name, {"from_env": name}), on_key=True,
                               severity="warning")

    def check_measure(self, measure: Any, at: KeyPath) -> None:
        if not isinstance(measure, dict):
            return
        if measure.get("energy") is True and "country" not in measure:
            self.error(at + ("energy",), f"{self.kv('energy', True)} needs country",
                       f"codecarbon must not guess by IP: set {self.kv('country', 'USA')} "
                       "(ISO 3166-1 alpha-3)")
        metrics = measure.get("metrics")
        primary = measure.get("primary")
        if isinstance(primary, str) and isinstance(metrics, list) and metrics and primary not in metrics:
            self.error(at + ("primary",), f'primary metric "{primary}" is not in metrics',
                       did_you_mean(primary, metrics) or f"the metrics are {all_of(metrics)}")


    def check_ranking(self, measure: Any, at: KeyPath) -> None:
        """``runspec results`` ranks and compares every stage by the top-level primary and
        goal: a stage's own, where it differs, would be parsed and never used."""
        if not isinstance(measure, dict):
            return
        top = self.document.data.get("measure")
        top = top if isinstance(top, dict) else {}
        for key, default in (("primary", None), ("goal", "max")):
            if key in measure and measure[key] != top.get(key, default):
                self.error(at + (key,), f"a stage's own measure.{key} is not used: `runspec "
                           f"results` ranks every stage by the top-level measure.{key}",
                           f"set {self.kv(key, measure[key])} in the top-level [measure] "
                           "table, or remove it here", on_key=True)

    def check_until(self, data: dict[str, Any]) -> None:
        """``campaign.until`` of each stage (its own campaign over the top-level one): more
        cycles at most than at least, and a metric the runs will report."""
        stages = data.get("stages")
        units = ({name: s for name, s in stages.items() if isinstance(s, dict)}
                 if isinstance(stages, dict) and stages else {"": data})
        top_campaign, top_measure = subtable(data, "campaign"), subtable(data, "measure")
        for name, unit in units.items():
            own = subtable(unit, "campaign") if name else {}
            until = own.get("until", top_campaign.get("until"))
            if not isinstance(until, dict):
                continue
            at = ("stages", name, "campaign", "until") if "until" in own else ("campaign", "until")
            cycles = _bounded_int({**top_campaign, **own}.get("cycles"), 1, 1)
            most = until.get("max_cycles")
            if isinstance(most, int) and not isinstance(most, bool) and 2 <= most <= cycles:
                self.error(at + ("max_cycles",), f"max_cycles = {most} adds no cycle to "
                           f"campaign.cycles = {cycles}",
                           f"set max_cycles above {cycles}, or remove until to run exactly "
                           f"{cycles} cycle{'s' * (cycles != 1)}")
            measure = {**top_measure, **(subtable(unit, "measure") if name else {})}
            metric = until.get("metric")
            if not isinstance(metric, str):
                continue
            declared = [m for m in (measure.get("metrics") or []) if isinstance(m, str)]
            known = [*declared, "wall_s", "peak_rss_mb",
                     *(["energy_kwh"] if measure.get("energy") is True else [])]
            if metric not in known:
                hint = did_you_mean(metric, known) or (
                    f"declare it in {self.kv('metrics', [*declared, metric])} under "
                    f"{table(self.fmt, 'measure')}, or use one of {all_of(known)}")
                self.error(at + ("metric",), f'until.metric "{metric}" is not a metric the '
                           "runs report", hint)

    # -- bounds ----------------------------------------------------------------------------
    def check_run_count(self, data: dict[str, Any]) -> None:
        """Refuse a plan of more than ``max_runs`` runs, counted (not expanded) as plan would."""
        counts = count_runs(data)
        total = sum(count.runs for count in counts.values())
        if total <= self.max_runs:
            return
        over = [(at, count) for at, count in counts.items() if count.runs > self.max_runs]
        hint = (f"use fewer sweep values (or {self.kv('mode', 'random')} with samples) or "
                "fewer cycles, or raise the limit with --max-runs N")
        for at, count in over:
            self.error(count.where(at, self.document), f"{count.describe()}, more than "
                       f"--max-runs {self.max_runs:,}", hint, on_key=True)
        if not over:
            each = ", ".join(f"{at[-1]}: {_number(c.runs)}" for at, c in counts.items())
            self.error(("stages",), f"the stages add up to {_number(total)} runs ({each}), more "
                       f"than --max-runs {self.max_runs:,}", hint, on_key=True)

    def check_path_lengths(self, data: dict[str, Any]) -> None:
        """Every file name a path value makes (sweep values put in) fits in 255 bytes: a
        longer one fails only when a run is started, as "File name too long"."""
        for path, value, sweep in _path_values(data):
            for segment, parameter, choice in _segments(value, sweep):
                size = len(segment.encode("utf-8", "surrogatepass"))
                if size <= MAX_NAME_BYTES:
                    continue
                shown = (json.dumps(_shorten(choice), ensure_ascii=False)
                         if isinstance(choice, str) else _shorten(json.dumps(choice, default=str)))
                via = f" with {parameter} = {shown}" if parameter else ""
                self.error(path, f"a path segment of {size:,} bytes{via}, more than "
                           f"{MAX_NAME_BYTES}", f"file systems allow at most {MAX_NAME_BYTES} "
                           "bytes per name: shorten it")
                break
        name = data.get("name")
        state = (data.get("outputs") or {}).get("state") if isinstance(data.get("outputs"),
                                                                        dict) else None
        if isinstance(name, str) and not (isinstance(state, str) and state.endswith(".json")):
            size = len(f"{name}.json".encode("utf-8", "surrogatepass"))
            if size > MAX_NAME_BYTES:
                self.error(("name",), f"the state file {_shorten(name)}.json would have a name "
                           f"of {size:,} bytes, more than {MAX_NAME_BYTES}",
                           "use a shorter name")


@dataclass
class RunCount:
    """How many runs one stage (or the single-stage manifest) plans, and from what."""

    factors: list[int] = field(default_factory=list)  # per grid parameter; [n] for zip/random
    included: int = 0               # points added by include entries (at most)
    bound: bool = False             # exclude entries: ``points`` is an upper bound
    fan_out: list[tuple[str, int]] = field(default_factory=list)  # (upstream stage, its runs)
    cycles: int = 1
    warmups: int = 0
    swept: bool = False
    campaign_at: tuple[str, ...] = ("campaign",)

    @property
    def points(self) -> int:
        total = _product(self.factors) + self.included
        return _product([total, *(runs for _, runs in self.fan_out)])

    @property
    def runs(self) -> int:
        """Warmups and cycles of every point, as ``campaign_slots`` makes them."""
        return _product([self.points, self.cycles + self.warmups])

    def where(self, at: tuple[str, ...], document: Document) -> tuple[str, ...]:
        if self.swept:
            return at + ("sweep",)
        if self.fan_out:
            return at + ("recipe",)
        for key in ("cycles", "warmup_runs"):
            if self.campaign_at + (key,) in document.positions:
                return self.campaign_at + (key,)
        return self.campaign_at

    def describe(self) -> str:
        """``10 × 10 × … × 10 = 10,000,000 points × 3 cycles = 30,000,000 runs``."""
        shown = [_number(f) for f in self.factors]
        if len(shown) > 4:
            shown = [*shown[:2], "…", shown[-1]]
        parts = " × ".join(shown) if self.swept else ""
        if self.included:
            parts += f" + {_number(self.included)} included"
        base = _product(self.factors) + self.included
        text = f"{parts} = " if parts and (len(self.factors) > 1 or self.included) else ""
        text += ("at most " if self.bound else "") + _plural(base, "point")
        for stage, runs in self.fan_out:
            text += f" × {_number(runs)} runs of stage {stage}"
        if self.fan_out:
            text += f" = {_plural(self.points, 'point')}"
        repeats = [_plural(self.cycles, "cycle")] + (
            [_plural(self.warmups, "warmup")] if self.warmups else [])
        if self.cycles + self.warmups == 1:
            return f"{text} (one run each)"
        text += " × " + (f"({' + '.join(repeats)})" if self.warmups else repeats[0])
        return f"{text} = {_plural(self.runs, 'run')}"


def count_runs(data: dict[str, Any]) -> dict[tuple[str, ...], RunCount]:
    """Runs per stage (key: where it lives, ``()`` for the single-stage form), without
    expanding anything: grid = product, zip = length, random = samples, include adds
    (at most) its points, exclude is ignored (an upper bound). Wrong types count as one:
    the schema reports them."""
    top_campaign = subtable(data, "campaign")
    stages = data.get("stages")
    if not (isinstance(stages, dict) and stages):
        count = unit_count(data.get("sweep"), top_campaign, ("campaign",))
        return {(): count}
    counts: dict[tuple[str, ...], RunCount] = {}
    by_name: dict[str, RunCount] = {}
    for name in _dependency_order(stages):
        stage = stages[name]
        own = subtable(stage, "campaign")
        campaign = {**top_campaign, **own}
        at = ("stages", name, "campaign") if own else ("campaign",)
        count = unit_count(stage.get("sweep"), campaign, at)
        for upstream in _consumed(stage):
            before = by_name.get(upstream)
            if before is not None and before.points * before.cycles > 1:
                count.fan_out.append((upstream, _product([before.points, before.cycles])))
        counts[("stages", name)] = by_name[name] = count
    return counts


def unit_count(sweep: Any, campaign: dict[str, Any], campaign_at: tuple[str, ...] = ("campaign",)
               ) -> RunCount:
    """The runs of one sweep and campaign (plain data, as written in the manifest)."""
    until = campaign.get("until")
    most = until.get("max_cycles") if isinstance(until, dict) else None
    count = RunCount(cycles=max(_bounded_int(campaign.get("cycles"), 1, 1),
                                _bounded_int(most, 1, 1)),  # adaptive: as many as it may run
                     warmups=_bounded_int(campaign.get("warmup_runs"), 0, 0),
                     campaign_at=campaign_at)
    parameters = sweep.get("parameters") if isinstance(sweep, dict) else None
    if not (isinstance(parameters, dict) and parameters):
        return count
    count.swept = True
    mode = sweep.get("mode", "grid")
    sizes = {name: parameter_size(spec) for name, spec in parameters.items()}
    if mode == "random":
        count.factors = [_bounded_int(sweep.get("samples"), 0, 1)]
    elif mode == "zip":
        count.factors = [max(sizes.values())]
    else:
        count.factors = list(sizes.values())
    includes = sweep.get("include") if isinstance(sweep.get("include"), list) else []
    for entry in includes:
        if not isinstance(entry, dict):
            continue
        missing = [sizes[n] for n in sizes if n not in entry]
        extends = _product(missing) if mode == "grid" else _product(count.factors)
        count.included = min(count.included + (extends if missing else 1), _SATURATED)
    count.bound = bool(sweep.get("exclude"))
    return count


def parameter_size(spec: Any) -> int:
    """How many values a grid or zip parameter has (``expand.parameter_values``, counted)."""
    values = spec.get("values") if isinstance(spec, dict) else spec
    if isinstance(values, list):
        return len(values)
    if isinstance(spec, dict) and isinstance(spec.get("range"), list):
        return range_size(spec["range"])
    return 1


def range_size(bounds: list[Any]) -> int:
    """The length of ``expand._range(bounds)``, computed (saturating) rather than listed."""
    if not 2 <= len(bounds) <= 3 or not all(
            isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
        return 1
    start, stop = bounds[0], bounds[1]
    step = bounds[2] if len(bounds) == 3 else 1
    if not all(math.isfinite(b) for b in (start, stop, step)) or step == 0:
        return 1  # reported by check_sweep
    if all(float(b).is_integer() for b in (start, stop, step)):
        start, stop, step = int(start), int(stop), int(step)
        return min(max(0, -((start - stop) // step)), _SATURATED)
    ratio = (stop - start) / step
    if not math.isfinite(ratio):
        return _SATURATED
    return min(max(0, math.ceil(ratio - 1e-12)), _SATURATED)


def _bounded_int(value: Any, default: int, least: int) -> int:
    """An integer setting as plan would use it; out of range or of the wrong type is the
    schema's to report, and counts as the default here."""
    if isinstance(value, int) and not isinstance(value, bool) and least <= value <= MAX_COUNT:
        return value
    return default


def _product(values: list[int]) -> int:
    total = 1
    for value in values:
        total = min(total * value, _SATURATED)
    return total


def _number(value: int) -> str:
    return f"{value:,}" if value < _SATURATED else "more than 10^18"


def _plural(value: int, noun: str) -> str:
    return f"{_number(value)} {noun}{'' if value == 1 else 's'}"


def _shorten(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _consumed(stage: dict[str, Any]) -> list[str]:
    """Upstream stages whose every run this stage runs once for (``render._fan_out``)."""
    recipe = subtable(stage, "recipe")
    artifacts = subtable(stage, "artifacts")
    text = json.dumps([recipe.get(k) for k in ("script", "module", "target", "command",
                                                "args", "overrides")]
                      + [a.get("uri") for a in artifacts.values() if isinstance(a, dict)],
                      default=str)
    selected = {ref for a in artifacts.values() if isinstance(a, dict) and a.get("select")
                and isinstance(a.get("uri"), str) for ref in _STAGE_OUTPUT.findall(a["uri"])}
    return sorted(set(_STAGE_OUTPUT.findall(text)) - selected)


def _dependency_order(stages: dict[str, Any]) -> list[str]:
    """Stage names, each after the stages it needs (cycles are reported elsewhere)."""
    order: list[str] = []
    placed: set[str] = set()
    for start in stages:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in placed:
                stack.pop()
                continue
            stage = stages.get(name)
            needs = stage.get("needs") if isinstance(stage, dict) else None
            waiting = [n for n in (needs if isinstance(needs, list) else [])
                       if isinstance(n, str) and n in stages and n not in placed
                       and n not in stack]
            if waiting:
                stack.append(waiting[0])
                continue
            placed.add(name)
            stack.pop()
            if isinstance(stage, dict):
                order.append(name)
    return order


_PATH_KEYS = (("recipe", "script"), ("recipe", "config"), ("recipe", "workdir"),
              ("env", "file"), ("env", "template"))


def _path_values(data: dict[str, Any]) -> Iterator[tuple[KeyPath, str, dict[str, Any]]]:
    """(key path, value, the sweep parameters in scope) of every value that names a file."""
    stages = subtable(data, "stages")
    units = [((), data)] + [(("stages", n), u) for n, u in stages.items() if isinstance(u, dict)]
    for at, unit in units:
        sweep = subtable(unit, "sweep")
        parameters = subtable(sweep, "parameters")
        keys = [*_PATH_KEYS, *((("extends",), ("outputs", "root"), ("outputs", "state"))
                               if not at else ())]
        outputs = subtable(unit, "outputs")
        produced = subtable(outputs, "artifacts")
        keys += [("outputs", "artifacts", n, "path") for n in produced]
        for key in keys:
            node: Any = unit
            for part in key:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, str):
                yield at + key, node, parameters


def _segments(value: str, parameters: dict[str, Any]) -> Iterator[tuple[str, str | None, Any]]:
    """Each path segment of ``value``; one with ``${sweep.P}`` once per value of P."""
    for segment in value.split("/"):
        names = [n for n in _SWEEP_REFERENCE.findall(segment) if n in parameters]
        if not names:
            yield segment, None, None
            continue
        for name in names:
            spec = parameters[name]
            values = spec.get("values") if isinstance(spec, dict) else spec
            for choice in values if isinstance(values, list) else []:
                shown = choice if isinstance(choice, str) else json.dumps(choice, default=str)
                yield segment.replace("${sweep." + name + "}", shown), name, choice


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``graph`` as [a, b, …, a], or None (iterative DFS, deterministic order)."""
    state: dict[str, int] = {}
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        trail = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                trail.pop()
            elif state.get(child) == 1:
                return trail[trail.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                trail.append(child)
                stack.append((child, iter(graph.get(child, []))))
    return None
