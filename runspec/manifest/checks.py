"""Semantic checks that JSON Schema cannot express: one recipe kind, files that exist,
sweep names, stage DAGs, secrets by reference, energy settings.

They run on the loaded data (not the pydantic models) and tolerate values of the wrong
type, which the schema pass reports, so one ``validate`` shows every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runspec.manifest.document import Document, KeyPath, format_path
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
STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class Checker:
    """Collects diagnostics about one manifest document."""

    def __init__(self, document: Document):
        self.document = document
        self.found: list[Diagnostic] = []
        self.fmt = document.notation

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
            for name, stage in stages.items():
                if not STAGE_NAME.match(name):
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
        return self.found

    def check_unit(self, unit: dict[str, Any], at: KeyPath) -> None:
        recipe = unit.get("recipe")
        if isinstance(recipe, dict):
            self.check_recipe(recipe, at + ("recipe",))
        sweep = unit.get("sweep")
        if isinstance(sweep, dict):
            self.check_sweep(sweep, at + ("sweep",))
        if at:
            self.check_env(unit.get("env"), at + ("env",))
            self.check_measure(unit.get("measure"), at + ("measure",))

    # -- recipe ----------------------------------------------------------------------------
    def check_recipe(self, recipe: dict[str, Any], at: KeyPath) -> None:
        kinds = [k for k in RECIPE_KINDS if k in recipe]
        if not kinds:
            self.error(at, f"the recipe needs one of {one_of(RECIPE_KINDS)}",
                       f"for example {self.kv('script', 'train.py')}", on_key=True)
        elif len(kinds) > 1:
            self.error(at + (kinds[1],), f"the recipe has both {kinds[0]} and {kinds[1]}",
                       f"keep exactly one of {one_of(RECIPE_KINDS)}", on_key=True)
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
                if len(bounds) == 3 and bounds[2] == 0:
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
