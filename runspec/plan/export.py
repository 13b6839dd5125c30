"""``runspec render``: every rendered file of a plan, written to a directory for inspection."""

from __future__ import annotations

from pathlib import Path

from runspec import run_table
from runspec.ir import Plan
from runspec.manifest.models import Campaign
from runspec.plan.diff import diff_plan
from runspec.plan.launches import plan_launches
from runspec.state.store import State


def write_rendered(plan: Plan, out_dir: Path, campaigns: dict[str, Campaign]) -> list[Path]:
    """Files of every run (config.yaml, job.yaml, the backend's request) and of the launches
    that would submit all of them, under ``out_dir`` mirroring the run directories; a
    launch's run table too (run_table.py), beside them."""
    written: list[Path] = []
    for run in plan.runs:
        for name, text in run.files.items():
            written.append(_write(out_dir / run.run_dir / name, text))
    everything = diff_plan(plan, State(plan.name))
    by_key = plan.by_key()
    for launch in plan_launches(plan, everything, campaigns):
        for name, text in launch.files.items():
            written.append(_write(out_dir / launch.directory / name, text))
        if launch.table:
            run_table.write(out_dir / launch.table,
                            [(by_key[k].run_dir, by_key[k].files) for k in launch.keys])
            written.append(out_dir / launch.table)
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
