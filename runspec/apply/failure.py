"""Why a run failed, in one line: what the user reads first, before opening its logs."""

from __future__ import annotations

import re
from pathlib import Path

from runspec.measure import RESULT_FILE
from runspec.measure.files import read_json

TAIL_BYTES = 4096
LINE_CHARS = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def why_failed(run_dir: Path, error: str | None = None) -> str:
    """``exit code 1; stderr: ValueError: boom`` from the run's result and the last line
    of its stderr (``error``: what runspec itself recorded, such as a missing output)."""
    parts = [error] if error else []
    result = read_json(run_dir / RESULT_FILE)
    code = result.get("exit_code") if isinstance(result, dict) else None
    if isinstance(code, int) and not isinstance(code, bool):
        parts.append(f"exit code {code}" + (f" (signal {code - 128})" if code > 128 else ""))
    last = last_line(run_dir / "stderr.log")
    if last:
        parts.append(f"stderr: {last}")
    return "; ".join(parts) or "it wrote no result"


def last_line(path: Path) -> str:
    """The last non-empty line of a log (read from its end only), cut to one short line."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    if not lines:
        return ""
    line = _CONTROL.sub(" ", lines[-1])
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS - 1] + "…"
