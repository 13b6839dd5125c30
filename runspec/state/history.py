"""Runs that leave the state keep a record, so every configuration a campaign ran stays
readable (``runspec results --all``, ``--compare @previous``).

A replaced, rerun or destroyed run is one JSON line in ``<state>.history.jsonl`` beside the
state file: its key, stage, point, digest, config, status, times, why it left, and its
result.json as it was then. Results are small, and inlining them keeps the record true when
the run directory is reused by the next attempt. Lines are appended in one write per apply
step and fsynced; a torn last line (a full disk, a kill) is skipped when read, so a failed
append loses at most that step's lines and never the state itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runspec.measure.files import os_reason
from runspec.state.status import read_result
from runspec.state.store import Member, StateError

SUFFIX = ".history.jsonl"


@dataclass(frozen=True)
class Retired:
    """One run as it was when it left the state."""

    key: str
    stage: str
    digest: str
    why: str                              # replace, rerun, destroy
    retired_at: str
    status: str
    point: dict[str, Any] = field(default_factory=dict)
    slot: str = ""
    run_dir: str = ""
    attempts: int = 0
    submitted_at: str | None = None
    finished_at: str | None = None
    config: Any = None                    # the config it ran with (request.config)
    result: dict[str, Any] | None = None  # its result.json, when it had one

    @classmethod
    def of(cls, member: Member, why: str, at: str, root: Path) -> Retired:
        result, _ = read_result(root / member.run_dir) if member.run_dir else (None, None)
        return cls(member.key, member.stage, member.digest, why, at, str(member.status),
                   dict(member.point), member.slot, member.run_dir, member.attempts,
                   member.submitted_at, member.finished_at, member.request.get("config"),
                   result)


def history_location(state_location: str) -> str:
    """``.runspec/state/m.json`` → ``.runspec/state/m.history.jsonl``."""
    return state_location.removesuffix(".json") + SUFFIX


class History:
    """The retired runs of one manifest, at a local path or an fsspec URL."""

    def __init__(self, location: str):
        self.location = location
        self.is_local = "://" not in location or location.startswith("file://")

    def append(self, retired: list[Retired]) -> None:
        if not retired:
            return
        text = "".join(json.dumps(asdict(r), sort_keys=True, ensure_ascii=False) + "\n"
                       for r in retired)
        try:
            if self.is_local:
                path = Path(self.location.removeprefix("file://"))
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a+b") as handle:
                    if handle.tell():
                        handle.seek(-1, os.SEEK_END)
                        if handle.read(1) != b"\n":
                            text = "\n" + text  # after a torn line: start a new one
                    handle.write(text.encode("utf-8"))
                    handle.flush()
                    os.fsync(handle.fileno())
                return
            import fsspec

            fs, path = fsspec.core.url_to_fs(self.location)
            before = fs.cat_file(path).decode() if fs.exists(path) else ""
            with fsspec.open(self.location, "w", encoding="utf-8") as handle:
                handle.write(before + text)
        except OSError as error:
            raise StateError(f"cannot record {len(retired)} replaced run(s) in "
                             f"{self.location}: {os_reason(error)}",
                             "the state itself is unchanged; free space and apply again") from None

    def read(self) -> list[Retired]:
        """Every retired run, oldest first; unreadable lines (a torn last one) are skipped."""
        try:
            if self.is_local:
                text = Path(self.location.removeprefix("file://")).read_text(encoding="utf-8")
            else:
                import fsspec

                with fsspec.open(self.location, "r", encoding="utf-8") as handle:
                    text = handle.read()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StateError(f"cannot read the run history {self.location}: "
                             f"{os_reason(error)}") from None
        known = set(Retired.__dataclass_fields__)
        out = []
        for line in text.splitlines():
            try:
                raw = json.loads(line)
                out.append(Retired(**{k: v for k, v in raw.items() if k in known}))
            except (ValueError, TypeError):
                continue
        return out
