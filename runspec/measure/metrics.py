"""The metrics protocol: JSON lines a recipe appends to ``$RUNSPEC_METRICS``.

Each line is an object of metric name → number, optionally with ``"rank"`` (default: the
``RANK`` environment variable, else 0) and ``"step"``. A script needs no runspec import:
``open(os.environ["RUNSPEC_METRICS"], "a").write(json.dumps({"loss": 0.5}) + "\\n")``, or
``runspec.report(loss=0.5)``. Per rank the last value of each metric counts; then
throughput-type metrics (names ending in ``_per_s``, ``_per_sec``, ``_per_second`` or
``throughput``) are summed across ranks, and every other metric is taken from rank 0.
Malformed lines are skipped with a warning that names the line; they never fail a run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
THROUGHPUT_SUFFIXES = ("_per_s", "_per_sec", "_per_second", "throughput")
RESERVED = ("rank", "step", "time")


def is_throughput(name: str) -> bool:
    return name.endswith(THROUGHPUT_SUFFIXES)


def reported(result: dict) -> dict:
    """Every value a result.json holds by metric name: the recipe's, and what runspec
    measured itself (wall time, peak RSS, energy and emissions)."""
    energy = result.get("energy") or {}
    return {**(result.get("metrics") or {}), "wall_s": result.get("wall_s"),
            "peak_rss_mb": result.get("peak_rss_mb"), "energy_kwh": energy.get("energy_kwh"),
            "emissions_kg": energy.get("emissions_kg")}


def metric_value(result: dict, name: str) -> float | None:
    """One metric of a result as a finite number, or None."""
    value = reported(result).get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def unreported(declared: list[str], result: dict) -> list[str]:
    """The declared metrics (``measure.metrics``) a run's result lacks: a recipe reporting
    ``val_mse`` where ``val_loss`` was declared is incomplete, not quietly fine."""
    values = reported(result)
    return [name for name in declared if values.get(name) is None]


def declared_metrics(manifest: dict, stage: str) -> list[str]:
    """``measure.metrics`` of ``stage`` in a manifest's data: the stage's own list, else the
    top-level one (as resolving merges them)."""
    stages = manifest.get("stages")
    own = ((stages.get(stage) or {}).get("measure") or {}) if isinstance(stages, dict) else {}
    names = own.get("metrics") if isinstance(own, dict) and "metrics" in own else \
        (manifest.get("measure") or {}).get("metrics")
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def read_metrics(path: Path) -> tuple[dict[str, float], list[str]]:
    """(metrics, warnings) from a metrics file, aggregated over ranks by the rule above."""
    per_rank: dict[int, dict[str, float]] = {}
    warnings: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}, []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            warnings.append(f"{path.name}:{number}: skipped a malformed line ({error})")
            continue
        rank = record.get("rank", 0)
        rank = rank if isinstance(rank, int) else 0
        for name, value in record.items():
            if name in RESERVED:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                warnings.append(f"{path.name}:{number}: skipped {name}={value!r} (not a finite number)")
                continue
            per_rank.setdefault(rank, {})[name] = float(value)
    metrics: dict[str, float] = {}
    first = min(per_rank) if per_rank else 0
    for rank, values in sorted(per_rank.items()):
        for name, value in values.items():
            if is_throughput(name):
                metrics[name] = metrics.get(name, 0.0) + value
            elif rank == first:
                metrics[name] = value
    return metrics, warnings
