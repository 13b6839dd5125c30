"""How a run's fate is read back: from the wrapper's files in its run directory.

``result.json`` (written when the command ended) is the truth wherever the run ran;
``started.json`` says it began. Backends ask their scheduler only for runs that have
neither, so refreshing finished runs costs no backend call.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from runspec.measure import RESULT_FILE, STARTED_FILE
from runspec.measure.files import os_reason, read_json


class RunStatus(StrEnum):
    """A run's status as the state records it (a ``str``, so state files, JSON views and
    tables hold the plain word)."""

    SUBMITTED = "submitted"   # handed to the scheduler (or its intent recorded), not started
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"             # the scheduler no longer knows it and it left no result


ACTIVE = frozenset({RunStatus.SUBMITTED, RunStatus.RUNNING})
"""Still the scheduler's: refreshed, cancellable, never rerun."""
FINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
"""Ended, as the run's own result says."""
ENDED = FINAL | {RunStatus.LOST}
"""Ended, one way or another: nothing more will happen to it."""
RERUN = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST})
"""Ended without success: the next apply starts it again."""


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_result(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(result, None)``, or ``(None, why)`` when result.json cannot tell the run's fate:
    missing, empty, not JSON, or without a whole-number exit code. The one reading that
    ``status`` and ``results`` share, so they never disagree about a result."""
    path = run_dir / RESULT_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, f"{path} is missing"
    except OSError as error:
        return None, f"cannot read {path}: {os_reason(error)}"
    if not data.strip():
        return None, f"{path} is empty"
    try:
        result = json.loads(data)
    except (ValueError, RecursionError) as error:
        return None, f"{path} is not valid JSON ({error})"
    if not isinstance(result, dict):
        return None, f"{path} is not a JSON object"
    if not _whole(result.get("exit_code")):
        return None, (f"{path}: field exit_code: expected a whole number, got "
                      f"{json.dumps(result.get('exit_code'))}")
    if result.get("signal") is not None and not _whole(result["signal"]):
        return None, (f"{path}: field signal: expected a whole number or null, got "
                      f"{json.dumps(result['signal'])}")
    return result, None


def from_result(run_dir: Path) -> RunStatus | None:
    """``succeeded`` / ``failed`` / ``cancelled`` from result.json, or None while there is
    none (or it says nothing usable)."""
    result, _ = read_result(run_dir)
    if result is None:
        return None
    code = result["exit_code"]
    if code == 0:
        return RunStatus.SUCCEEDED
    if result.get("signal") in (2, 15) or code in (130, 143):
        return RunStatus.CANCELLED
    return RunStatus.FAILED


def started(run_dir: Path) -> dict | None:
    return read_json(run_dir / STARTED_FILE)
