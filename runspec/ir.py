"""The neutral IR between the plan and the backends, below both: the plan
builds it and the backends read it, so neither package imports the other's internals.

``Plan`` → ``Run`` (one sweep point × one cycle, with every file rendered for it) and
``Launch`` (one schedulable unit: a single run, or a Slurm job array of runs). Backends
read these, never the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runspec.plan.adaptive import Adaptive


@dataclass(frozen=True)
class RunSpec:
    """What a backend needs to render one run; every path is relative to the plan root."""

    key: str
    stage: str
    run_dir: str
    argv: list[str]
    env: dict[str, str]
    secrets: dict[str, str]
    cwd: str
    resources: dict[str, Any]
    executor: str
    settings: dict[str, Any]
    container_image: str | None
    mounts: list[str]
    startup_commands: list[str]
    launch: str = "direct"            # recipe.launch: direct | torchrun | ray


@dataclass
class Run:
    key: str
    stage: str
    point: dict[str, Any]
    slot: str                          # c1…cN, or w1…wW for warmups
    warmup: bool
    run_dir: str
    request: dict[str, Any]            # the canonical request the digest covers
    digest: str
    renderer: Callable[[], dict[str, str]] | None = field(default=None, repr=False, compare=False)
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (path, type)
    _files: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def files(self) -> dict[str, str]:
        """Rendered files by name, produced on first use: a plan that is only diffed (the
        common case) never pays for writing 10,000 configs it does not show."""
        if self._files is None:
            self._files = self.renderer() if self.renderer else {}
        return self._files


@dataclass(frozen=True)
class LaunchContext:
    """What a backend needs besides the runs to render one stage's submissions."""

    manifest: str
    stage: str
    root: Path
    directory: str                     # the stage's launch directory, relative to the root
    needs: tuple[str, ...] = ()
    max_parallel: int | None = None
    sequential: bool = False           # the campaign's order or gaps matter: one run at a time
    gaps: tuple[float, ...] = ()       # idle seconds before each run, aligned with the runs
    retries: int = 0                   # times a failed run is started again (campaign.retries)
    outputs: str = ""                  # the run directories' root, relative to the root
    manifest_digest: str = ""          # names a launch's run table (run_table.py)


@dataclass
class Launch:
    """One submission: what the backend sends, for some runs of one stage."""

    backend: str
    stage: str
    keys: list[str]
    request: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    directory: str = ""                # where the launch's files go, relative to the root
    table: str | None = None
    """Where apply writes the launch's run table (relative to the root), from which each
    task writes its own run directory when it starts (run_table.py); None: apply writes
    every run directory itself before it submits."""


@dataclass
class Plan:
    """Every run a manifest describes, in execution order, rendered for its backend."""

    name: str
    manifest_path: str
    manifest_digest: str
    root: Path
    outputs_root: str
    stages: dict[str, str]             # stage → backend (executor)
    needs: dict[str, list[str]]
    runs: list[Run]
    specs: dict[str, RunSpec] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)   # stage → why it is not planned yet
    adaptive: dict[str, Adaptive] = field(default_factory=dict)  # stage → its campaign.until
    notes: list[Any] = field(default_factory=list)   # Diagnostic warnings shown with the plan

    def by_key(self) -> dict[str, Run]:
        return {run.key: run for run in self.runs}
