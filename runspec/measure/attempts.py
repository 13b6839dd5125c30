"""Every attempt of a run is kept: a retry, a rerun or a Slurm requeue never overwrites one.

The last attempt's records are the run directory's ``started.json``, ``result.json`` and
``metrics.jsonl`` (what status, results and the mirror read). Before another attempt
starts, they are moved aside as ``started.attempt-N.json``, ``result.attempt-N.json`` and
``metrics.attempt-N.jsonl``, N = 1, 2, … in order. Whoever starts the next attempt moves
them: apply before it relaunches a run, the Slurm script before a retry (before its gap,
so a refresh never reads the failed attempt's end as the run's), and the wrapper itself
when it finds a previous attempt's records (a requeued job). The logs are shared, one
attempt after the other; each attempt's ``started.json`` records where its part of
``stdout.log`` and ``stderr.log`` begins, so ``runspec logs --attempt N`` shows just it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STARTED, RESULT, METRICS = "started.json", "result.json", "metrics.jsonl"
RECORDS = (STARTED, RESULT, METRICS)
LOGS = ("stdout.log", "stderr.log")


def kept_name(name: str, number: int | str) -> str:
    """``result.json`` → ``result.attempt-3.json`` (``number`` may be a shell ``$kept``)."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}.attempt-{number}{dot}{suffix}"


def kept(run_dir: Path) -> int:
    """How many earlier attempts are kept (the numbers are 1 … this, without gaps)."""
    number = 0
    while any((run_dir / kept_name(name, number + 1)).exists() for name in (STARTED, RESULT)):
        number += 1
    return number


def keep_previous(run_dir: Path) -> int:
    """Move the last attempt's records aside, if there are any; returns the number the
    next attempt gets."""
    present = [name for name in RECORDS if (run_dir / name).exists()]
    number = kept(run_dir)
    if any(name != METRICS for name in present):
        number += 1
        for name in present:
            os.replace(run_dir / name, run_dir / kept_name(name, number))
    return number + 1


def rotate_shell(run_dir: str, indent: str = "") -> str:
    """``keep_previous`` in POSIX shell (the Slurm script, a login node): ``run_dir`` is
    a shell word (quoted or a variable in double quotes)."""
    d, records = run_dir, " ".join(RECORDS)
    lines = [f"if [ -e {d}/{STARTED} ] || [ -e {d}/{RESULT} ]; then",
             "  kept=1",
             f"  while [ -e {d}/{kept_name(STARTED, '$kept')} ] || "
             f"[ -e {d}/{kept_name(RESULT, '$kept')} ]; do kept=$((kept + 1)); done",
             f"  for f in {records}; do",
             f'    if [ -e {d}/"$f" ]; then mv -f -- {d}/"$f" {d}/"${{f%%.*}}.attempt-$kept.${{f#*.}}"; fi',
             "  done",
             "fi"]
    return f"\n{indent}".join(lines)


def log_offsets(run_dir: Path) -> dict[str, int]:
    """Where this attempt's part of each log begins (its size now)."""
    offsets = {}
    for name in LOGS:
        try:
            offsets[name] = (run_dir / name).stat().st_size
        except OSError:
            offsets[name] = 0
    return offsets


def log_range(run_dir: Path, attempt: int | None, name: str) -> tuple[int, int | None]:
    """The byte range of ``name`` that attempt ``attempt`` wrote (None: the last attempt;
    an end of None: to the end of the file)."""
    latest = kept(run_dir) + 1
    number = latest if attempt is None else attempt

    def start_of(n: int) -> int | None:
        path = run_dir / (STARTED if n == latest else kept_name(STARTED, n))
        try:
            offsets = json.loads(path.read_text(encoding="utf-8")).get("log_offsets") or {}
        except (OSError, ValueError, AttributeError):
            return None
        value = offsets.get(name)
        return value if isinstance(value, int) and value >= 0 else None

    begin = start_of(number)
    if begin is None:  # not started yet (or records from before offsets): all of it so far
        begin = 0 if number < latest or latest == 1 else _size(run_dir / name)
    end = start_of(number + 1) if number < latest else None
    return begin, end


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
