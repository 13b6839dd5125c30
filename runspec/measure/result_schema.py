"""The result.json format, as models: the source of ``schemas/result.schema.json``.

The wrapper writes plain JSON (it must start fast and never import pydantic); these models
only describe that JSON for readers and tools, and a test checks real files against them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnergyMethod(_Open):
    """How each component's energy was obtained."""

    cpu: Literal["rapl", "cpu_load_tdp", "constant"]
    gpu: Literal["nvml", "none"]
    ram: Literal["estimate"]


class Energy(_Open):
    """codecarbon's measurement; ``energy_kwh`` is null (with ``error``) when it failed."""

    country: str
    tracker: str
    tracking_mode: str
    power_interval_s: float
    overhead_s: float = Field(description="Tracker start and stop time, not in wall_s.")
    energy_kwh: float | None
    cpu_kwh: float | None = None
    ram_kwh: float | None = None
    gpu_kwh: float | None = None
    emissions_kg: float | None = None
    method: EnergyMethod | None = None
    cpu_model: str | None = None
    cpu_tdp_w: float | None = None
    error: str | None


class Git(_Open):
    commit: str
    branch: str
    dirty: bool
    diff_sha256: str | None


class Gpu(_Open):
    model: str
    driver: str


class Provenance(_Open):
    """Where the result came from."""

    git: Git | None
    python: str
    runspec: str
    torch: str | None
    cuda: str | None
    cpu_model: str | None
    gpus: list[Gpu]
    executable: str
    slurm: dict[str, str] | None
    ray_submission_id: str | None


class WandbArtifact(_Open):
    type: str
    path: str = Field(description="The produced path, as the job saw it.")
    ref: str | None = Field(None, description="W&B name:version (online runs only).")


class WandbRecord(_Open):
    mode: str
    project: str | None
    run_id: str | None = None
    dir: str | None = None
    error: str | None = None
    used: dict[str, str] = Field(default_factory=dict,
                                 description="Inputs linked with use_artifact (online).")
    artifacts: dict[str, WandbArtifact] = Field(
        default_factory=dict, description="Outputs logged as W&B artifacts (file references).")


class Result(_Open):
    """What ``python -m runspec.measure`` writes to ``<run dir>/result.json``."""

    format: Literal[1]
    attempt: int | None = Field(None, ge=1, description="Which attempt of the run this is "
                                "(1, 2, …: retries, reruns, requeues); earlier ones are kept "
                                "as result.attempt-N.json.")
    exit_code: int = Field(description="The command's exit code (128 + N after signal N).")
    signal: int | None = None
    error: str | None = Field(None, description="Why the command could not be started.")
    host: str
    started_at: str
    ended_at: str
    wall_s: float = Field(description="Seconds the command ran, tracker start-up excluded.")
    peak_rss_mb: float | None = Field(None, description="Peak RSS of the whole process tree.")
    metrics: dict[str, float] = Field(default_factory=dict)
    metric_warnings: list[str] = Field(default_factory=list)
    energy: Energy | None = None
    provenance: Provenance | None = None
    wandb: WandbRecord | None = Field(None, description="Where the run was logged in W&B.")
