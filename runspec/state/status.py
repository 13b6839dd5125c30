"""How a run's fate is read back: from the wrapper's files in its run directory.

``result.json`` (written when the command ended) is the truth wherever the run ran;
``started.json`` says it began. Backends ask their scheduler only for runs that have
neither, so refreshing finished runs costs no backend call.
"""

from __future__ import annotations

from pathlib import Path

from runspec.measure import RESULT_FILE, STARTED_FILE
from runspec.measure.files import read_json

FINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("submitted", "running")


def from_result(run_dir: Path) -> str | None:
    """``succeeded`` / ``failed`` from result.json, or None while there is none."""
    result = read_json(run_dir / RESULT_FILE)
    if result is None:
        return None
    code = result.get("exit_code")
    if code == 0:
        return "succeeded"
    if result.get("signal") in (2, 15) or code in (130, 143):
        return "cancelled"
    return "failed"


def started(run_dir: Path) -> dict | None:
    return read_json(run_dir / STARTED_FILE)
