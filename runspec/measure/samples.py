"""Every measurement a campaign has: one ``Sample`` per run with a usable result.json, from
the state (the runs of the current configuration) and, when asked, from the history (the
runs that left it: replaced, rerun, destroyed; see ``state.history``).

A key's *generation* says which of its configurations a sample ran: 0 is the run digest the
state holds now (a retired run with that same digest, e.g. one ``apply --replace`` ran
again, is the same configuration); 1 is the most recent other digest the key ran, 2 the
one before, and so on. A key no longer in the state starts at 1. Warmups are never
samples. A current run without a usable result is *missing* (strict results fail on it);
a retired one is simply not a sample.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from runspec.measure import RESULT_FILE
from runspec.measure.metrics import reported, unreported
from runspec.state.history import History, Retired, history_location
from runspec.state.status import RunStatus, read_result


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
                   ("energy.emissions_kg", energy.get("emissions_kg"), _optional_number,
                    "a number or null"),
                   ("energy.method", energy.get("method"), _optional_object, "an object or null")]
    for name, value, accepts, expected in checks:
        if not accepts(value):
            return f"field {name}: expected {expected}, got {json.dumps(value)[:60]}"
    return None


def measured_values(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of a (checked) result by metric name: the recipe's metrics, then what
    runspec measured itself (wall_s, peak_rss_mb, energy_kwh, emissions_kg)."""
    values = reported(result)
    return {name: float(value) for name, value in values.items() if _number(value)}


def energy_method(result: dict[str, Any]) -> str | None:
    """``cpu=rapl, gpu=none, ram=estimate``: how codecarbon measured this run's energy."""
    method = (result.get("energy") or {}).get("method")
    if not isinstance(method, dict):
        return None
    return ", ".join(f"{k}={v}" for k, v in sorted(method.items()))


@dataclass(frozen=True)
class Sample:
    """One run's measurement."""

    key: str
    stage: str
    point: dict[str, Any]
    digest: str
    generation: int
    config: Any
    values: dict[str, float]
    method: str | None = None          # energy method (see energy_method)
    retired_at: str | None = None      # None: a run of the state
    why: str | None = None             # replace, rerun or destroy (retired runs)


@dataclass
class Samples:
    samples: list[Sample]
    missing: list[str]                 # current runs of the state with no usable result
    current: dict[str, Any] = field(default_factory=dict)   # key → config it runs now
    history_read: bool = False


def _current(target, declared: Callable[[str], list[str]] | None
             ) -> tuple[list[Sample], list[str]]:
    samples: list[Sample] = []
    missing: list[str] = []
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
        samples.append(Sample(member.key, member.stage, dict(member.point), member.digest, 0,
                              member.request.get("config"), measured_values(result),
                              energy_method(result)))
    return samples, missing


def generations(retired: Iterable[Retired], current: dict[str, str]) -> dict[tuple[str, str], int]:
    """(key, digest) → generation, from the history (oldest first) and the key → digest
    the state holds now."""
    latest: dict[str, list[str]] = defaultdict(list)   # key → digests, most recent last
    for record in retired:
        seen = latest[record.key]
        if record.digest in seen:
            seen.remove(record.digest)
        seen.append(record.digest)
    out: dict[tuple[str, str], int] = {}
    for key, digests in latest.items():
        older = [d for d in reversed(digests) if d != current.get(key)]
        out.update({(key, d): i for i, d in enumerate(older, start=1)})
        if key in current:
            out[(key, current[key])] = 0
    return out


def read_history(target) -> list[Retired]:
    return History(history_location(target.store.location)).read()


def _retired(records: list[Retired], current: dict[str, str]) -> list[Sample]:
    generation = generations(records, current)
    samples = []
    for record in records:
        if record.slot.startswith("w") or record.status != RunStatus.SUCCEEDED:
            continue
        result = record.result
        if not isinstance(result, dict) or result.get("exit_code") != 0 or result_problem(result):
            continue
        samples.append(Sample(record.key, record.stage, dict(record.point), record.digest,
                              generation[(record.key, record.digest)], record.config,
                              measured_values(result), energy_method(result),
                              record.retired_at, record.why))
    return samples


def read_samples(target, declared: Callable[[str], list[str]] | None = None,
                 history: bool = False) -> Samples:
    """The samples of ``target`` (runspec.apply.inspect.Tracked); with ``history``, also
    those of its retired runs. A run that never reported a metric its stage ``declared``
    counts as missing (its other values still count)."""
    samples, missing = _current(target, declared)
    current = {m.key: m.request.get("config") for m in target.state.members.values()}
    if history:
        digests = {m.key: m.digest for m in target.state.members.values()}
        samples += _retired(read_history(target), digests)
    return Samples(samples, missing, current, history)


def config_changes(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted path → (old, new) of every config value that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for name in sorted(set(old) | set(new), key=str):
            out.update(config_changes(old.get(name), new.get(name), f"{prefix}{name}."))
        return out
    return {} if old == new else {prefix.rstrip("."): (old, new)}
