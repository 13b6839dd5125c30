"""The manifest v1 models: the single source of truth for `schemas/run.schema.json`.

Models describe structure only; rules that span several fields or need the file system
(exactly one recipe kind, stage DAG, files that exist) live in `manifest.checks` so that
`runspec validate` can apply them to a loaded document without building these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from runspec.manifest.executors import Env
from runspec.manifest.fields import Memory, OneLine, Strict, WallTime, one_line
from runspec.manifest.vocabulary import NAME_PATTERN

Scalar = str | int | float | bool
ManifestName: Any = one_line(NAME_PATTERN)  # a pydantic type built at run time


class Recipe(Strict):
    """What to run: exactly one of `script`, `module`, `target` or `command`."""

    script: str | None = Field(
        None, description="Python script to run, relative to the manifest.",
        examples=["examples/tiny_gpt/train.py"],
    )
    module: str | None = Field(
        None, pattern=r"^[A-Za-z_][\w.]*$", description="Python module to run with `python -m` (a dotted module name).",
        examples=["mypkg.train"],
    )
    target: str | None = Field(
        None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="A recipe function, `package.module:function` (e.g. a Megatron-Bridge recipe).",
        examples=["megatron.bridge.recipes.llama:llama32_1b_pretrain_config"],
    )
    command: list[str] | None = Field(
        None, min_length=1, description="A command line, as a list of arguments (no shell).",
        examples=[["python", "bench.py", "--size", "small"]],
    )
    launch: Literal["direct", "torchrun", "ray"] | None = Field(
        None,
        description="How the recipe is started (default: the script's PEP 723 run.launch, else direct).",
    )
    config: str | None = Field(
        None, description="Recipe config (YAML) file, relative to the manifest.",
        examples=["config/tiny.yaml"],
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Config overrides by dotted key; `+key` adds a key missing from the config.",
        examples=[{"train.steps": 200, "optim.lr": 0.001}],
    )
    args: list[str] = Field(
        default_factory=list, description="Extra command-line arguments passed to the recipe."
    )
    workdir: str | None = Field(
        None, description="Working directory of the recipe, relative to the manifest (or an "
        "absolute path, e.g. in a container); the paths runspec hands the recipe are relative "
        "to it.")
    on_code_change: Literal["replace", "keep"] = Field(
        "replace", description='What an edit of the recipe script does to runs that '
        'succeeded: "replace" runs them again on the new code; "keep" keeps them (the plan '
        "lists them as kept on older code) and runs only new, changed or failed runs on it.",
    )


class Resources(Strict):
    """Compute resources per run."""

    nodes: int = Field(1, ge=1, le=100_000, description="Number of nodes.", examples=[1, 2])
    procs_per_node: Annotated[int, Field(ge=1, le=4096)] | Literal["gpu"] = Field(
        1, description='Processes per node (torchrun --nproc_per_node, Slurm tasks); "gpu": '
        "one torchrun process per GPU the node has (torchrun launch only).",
        examples=[2, 8],
    )
    gpus_per_node: int = Field(0, ge=0, le=1024, description="GPUs per node.", examples=[0, 8])
    cpus_per_task: int | None = Field(
        None, ge=1, le=16_384, description="CPUs per Slurm task: per process; on Slurm a "
        "torchrun launcher is one task per node, whose workers share them.")
    mem: Memory | None = Field(
        None,
        description="Memory per node: a number with an optional K, M, G or T suffix, no space.",
        examples=["16G"],
    )
    time: WallTime | None = Field(
        None, description='Wall-time limit: "[D-]HH:MM[:SS]" or whole minutes.',
        examples=["00:20:00", "120"],
    )
    extra: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Further backend resources by name (e.g. Ray custom resources).",
    )


class Select(Strict):
    """Which run of a sweeping upstream stage to consume: the best by a metric."""

    metric: str = Field(description="A metric the upstream runs report.", examples=["loss"])
    goal: Literal["min", "max"] = Field("min", description="Smallest or largest value wins.")


class ArtifactInput(Strict):
    """An input artifact, resolved to a concrete version at plan time and bound into the config."""

    uri: str = Field(
        description="art://NAME[:vN|:ALIAS][/subpath], a path or file://… (a wandb:// URI is "
        "refused: publish it into runspec's registry and use art://).",
        examples=["art://tiny-shakespeare:latest"],
    )
    bind: str | None = Field(
        None, description="Dotted config key that receives the resolved path.",
        examples=["data.path"],
    )
    select: Select | None = Field(
        None, description="For ${stage.X.outputs.Y} of a sweeping stage: consume only the best "
        "run (decided once its results exist) instead of fanning out over every run.",
    )


class AliasBest(Strict):
    """Which metric of the producing run keeps an output's ``best`` alias."""

    metric: str = Field(description="A metric the producing runs report (result.json).",
                        examples=["loss"])
    goal: Literal["min", "max"] = Field("min", description="Smallest or largest value wins.")


class ArtifactOutput(Strict):
    """An output registered as a new artifact version when the run succeeds."""

    path: str = Field(description="Produced path, usually under ${run.dir}.",
                      examples=["${run.dir}/checkpoint"])
    type: str = Field("artifact", description="Artifact type. dataset, model, checkpoint, "
                      "pretrain-blends, sft-packed and split-jsonl check the metadata the run "
                      "gives (see docs/artifacts.md); any other name is free-form.",
                      examples=["model", "dataset"])
    mode: Literal["copy", "reference"] | None = Field(
        None, description='"copy": into the registry, content-addressed (the version can '
        'never change); "reference": keep the path, checked against its digests when a plan '
        "pins it. Default: env.toml [artifacts] mode, else copy up to 256 MiB, reference above.")
    alias_best: AliasBest | None = Field(
        None, description='Keep the alias "best" on the version whose producing run reported '
        "the best value of this metric, updated at each registration.",
        examples=[{"metric": "loss", "goal": "min"}])


class ValuesSpec(Strict):
    """An explicit list of values."""

    values: list[Any] = Field(min_length=1, description="The values, in order.")


class RangeSpec(Strict):
    """An arithmetic range (end exclusive, like Python's range)."""

    range: list[float] = Field(
        min_length=2, max_length=3, description="[start, stop] or [start, stop, step].",
        examples=[[1, 5], [0, 1, 0.25]],
    )


class DistributionSpec(Strict):
    """A distribution to sample from (random mode)."""

    distribution: Literal["uniform", "log_uniform", "int_uniform", "choice"] = Field(
        description="Sampling distribution."
    )
    min: float | None = Field(None, description="Lower bound (uniform, log_uniform, int_uniform).")
    max: float | None = Field(None, description="Upper bound (uniform, log_uniform, int_uniform).")
    values: list[Any] | None = Field(None, min_length=1, description="Choices (choice).")


ParameterSpec = list[Any] | ValuesSpec | RangeSpec | DistributionSpec


class Sweep(Strict):
    """Variants of the recipe: the sweep points."""

    mode: Literal["grid", "zip", "random"] = Field("grid", description="How parameters combine.")
    parameters: dict[str, ParameterSpec] = Field(
        default_factory=dict,
        description="Dotted config key → values: a list, {values}, {range} or {distribution, min, max}.",
        examples=[{"optim.lr": [0.001, 0.0003], "model.n_layer": {"values": [2, 4]}}],
    )
    samples: int | None = Field(None, ge=1, le=1_000_000,
                                 description="Number of draws (random mode).")
    seed: int | None = Field(None, ge=0, le=2**63 - 1,
                              description="Seed for random mode (default: from the name).")
    include: list[dict[str, Any]] = Field(
        default_factory=list, description="Extra points (or extensions of matching points)."
    )
    exclude: list[dict[str, Any]] = Field(
        default_factory=list, description="Points to drop: every listed key must match."
    )


class Until(Strict):
    """Adaptive cycles: after ``cycles``, keep adding one cycle to each point whose 95% CI
    of ``metric`` is still wider than ``rel_ci`` of its mean, up to ``max_cycles``."""

    metric: str = Field(description="The metric whose CI decides (a declared metric, "
                        "wall_s, peak_rss_mb, or energy_kwh with measure.energy).",
                        examples=["wall_s"])
    rel_ci: float = Field(gt=0, le=1, description="Target: 95% CI half-width ≤ rel_ci × |mean| "
                          "(0.02 = ±2%).", examples=[0.02])
    max_cycles: int = Field(ge=2, le=1_000_000, description="Most cycles a point gets.",
                            examples=[20])


class Campaign(Strict):
    """Statistical repetition of the sweep."""

    cycles: int = Field(1, ge=1, le=1_000_000, description="Repetitions of every sweep point.")
    order: Literal["grouped", "interleaved", "shuffled"] = Field(
        "grouped", description="grouped: a point's cycles together; interleaved: cycle by cycle; "
        "shuffled: seeded random order.",
    )
    seed: int | None = Field(None, ge=0, le=2**63 - 1,
                              description="Shuffle seed (default: derived from the name).")
    warmup_runs: int = Field(0, ge=0, le=1_000_000,
                             description="Runs per point marked warmup, excluded from results.")
    config_gap: float = Field(0, ge=0, le=604_800, description="Seconds to wait between runs.")
    cycle_gap: float = Field(0, ge=0, le=604_800, description="Seconds to wait between cycles.")
    max_parallel: int | None = Field(None, ge=1, le=1_000_000,
                                      description="Runs at once (Slurm array %N).")
    retries: int = Field(0, ge=0, le=100, description="Times a failed run is retried.")
    until: Until | None = Field(None, description="Add cycles until each point's CI is tight "
                                "enough (cycles is then the minimum).")


class Wandb(Strict):
    """Weights & Biases logging. Unset keys come from env.toml's `[wandb]` table."""

    project: str | None = Field(None, min_length=1, description="W&B project (default: env.toml "
                                "[wandb] project; one of the two must name it).",
                                examples=["tiny-gpt"])
    entity: str | None = Field(None, description="W&B entity, team or user (default: env.toml "
                               "[wandb] entity).")
    mode: Literal["online", "offline", "disabled"] = Field(
        "offline", description="W&B mode (default: env.toml [wandb] mode, else offline).")
    tags: list[str] = Field(default_factory=list,
                            description="Run tags (default: env.toml [wandb] tags).")
    group: str | None = Field(None, description="Run group (default: env.toml [wandb] group, "
                              "else the manifest name).")


class Measure(Strict):
    """What to measure for every run."""

    energy: bool = Field(False, description="Measure energy with codecarbon (needs `country`).")
    country: str | None = Field(
        None, pattern=r"^[A-Z]{3}$",
        description="ISO 3166-1 alpha-3 country code (three capital letters) for codecarbon.",
        examples=["USA", "FRA"],
    )
    power_interval: float = Field(1.0, gt=0, le=3600, description="Seconds between power samples.")
    metrics: list[str] = Field(
        default_factory=list, description="Metric names the recipe reports.",
        examples=[["tokens_per_s", "loss"]],
    )
    primary: str | None = Field(None, description="Metric that ranks the results.")
    goal: Literal["max", "min"] = Field(
        "max", description="Whether a larger (throughput) or smaller (loss) primary is better: "
        "`runspec results` lists the best point first.")
    noise: float = Field(
        0.02, gt=0, lt=1,
        description="Relative change below which `runspec results --compare` calls a "
        "difference noise, however small its p-value (a fraction: 0.02 = 2%).",
        examples=[0.02, 0.05])
    wandb: Wandb | None = Field(None, description="W&B logging; absent means off.")
    require_clean: bool = Field(False, description="Refuse to apply from a dirty git tree.")


class Outputs(Strict):
    """Where runs and state go, and which artifacts the recipe produces."""

    root: OneLine = Field("runs", description="Root of run directories, relative to the manifest.")
    state: str | None = Field(
        None, description="State location: a path or fsspec URL (default .runspec/state/).",
    )
    artifacts: dict[str, ArtifactOutput] = Field(
        default_factory=dict, description="Artifacts produced by a successful run."
    )


class StageOutputs(Strict):
    """Artifacts a stage produces."""

    artifacts: dict[str, ArtifactOutput] = Field(
        default_factory=dict, description="Artifacts produced by a successful run."
    )


class Stage(Strict):
    """One stage of a pipeline; unset sections fall back to the top-level ones."""

    description: str | None = Field(None, description="What this stage does.")
    needs: list[str] = Field(default_factory=list, description="Stages that must succeed first.")
    recipe: Recipe = Field(description="What this stage runs.")
    resources: Resources | None = Field(None, description="Compute per run of this stage.")
    env: Env | None = Field(None, description="Execution settings of this stage.")
    artifacts: dict[str, ArtifactInput] = Field(default_factory=dict, description="Input artifacts.")
    outputs: StageOutputs | None = Field(None, description="Artifacts this stage produces.")
    sweep: Sweep | None = Field(None, description="Variants of this stage.")
    campaign: Campaign | None = Field(None, description="Repetition of this stage's runs.")
    measure: Measure | None = Field(None, description="What to measure in this stage.")

    model_config = Strict.model_config | {"defer_build": True}  # its env: every executor's


class Manifest(Strict):
    """A runspec manifest (run.toml / run.yaml)."""

    schema_: Literal["runspec/v1"] = Field(
        alias="schema", description="Manifest format version.", examples=["runspec/v1"]
    )
    name: ManifestName = Field(
        description="Identity of this manifest in state and run keys: letters, digits, '.', '_' "
        "and '-', starting with a letter or digit.",
        examples=["tiny-gpt-lr"],
    )
    description: str | None = Field(None, description="What this manifest launches.")
    extends: str | None = Field(
        None, description="A base manifest, deep-merged under this one (path).",
        examples=["../base.toml"],
    )
    recipe: Recipe | None = Field(None, description="What to run (single-stage form).")
    resources: Resources = Field(default_factory=Resources, description="Compute per run.")
    env: Env | None = Field(None, description="Execution profile and inline overrides.")
    artifacts: dict[str, ArtifactInput] = Field(default_factory=dict, description="Input artifacts.")
    outputs: Outputs = Field(default_factory=Outputs,
                             description="Run directories, state location, output artifacts.")
    sweep: Sweep | None = Field(None, description="Variants: the sweep points.")
    campaign: Campaign = Field(default_factory=Campaign,
                               description="Cycles, order and pacing of the runs.")
    measure: Measure = Field(default_factory=Measure,
                             description="Energy, timing, metrics and W&B settings.")
    stages: dict[OneLine, Stage] = Field(
        default_factory=dict,
        description="Pipeline stages; the top-level recipe form is shorthand for one stage.",
    )

    model_config = Strict.model_config | {"populate_by_name": True, "defer_build": True}
