"""Execution settings per executor, shared by env.toml profiles and a manifest's `[env]`.

Each executor accepts only its own keys. A table that names no `executor` inherits it
(from its profile, or from the profile it `extends`) and may carry any executor's keys;
it is checked again, strictly, once the executor is known (see `profiles.resolve_env`).
Field names follow Nemotron's env.toml so existing files load unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from runspec.manifest.vocabulary import (
    ENV_NAME_PATTERN,
    EXECUTORS,
    MEM_PATTERN,
    TIME_PATTERN,
)

EnvValue = str | int | float | bool


class Strict(BaseModel):
    """Base for every manifest model: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)


class ResourceFields(Strict):
    """Resource keys a profile may set (Nemotron names); the manifest's `[resources]` wins."""

    nodes: int | None = Field(None, ge=1, description="Number of nodes.", examples=[1, 4])
    gpus_per_node: int | None = Field(None, ge=0, description="GPUs per node.", examples=[0, 8])
    cpus_per_task: int | None = Field(None, ge=1, description="CPUs per task (process).")
    mem: str | None = Field(
        None, pattern=MEM_PATTERN,
        description='Memory per node: a number with an optional K, M, G or T suffix; "0" means all.',
        examples=["16G", "0"],
    )
    time: str | None = Field(
        None, pattern=TIME_PATTERN, description='Wall-time limit: "[D-]HH:MM[:SS]" or whole minutes.',
        examples=["00:20:00", "1-00:00:00"],
    )


class CommonFields(Strict):
    """Keys every executor understands."""

    env_vars: dict[str, EnvValue] = Field(
        default_factory=dict,
        description="Environment variables for every job of this profile (Nemotron's name).",
        examples=[{"NCCL_DEBUG": "WARN"}],
    )
    startup_commands: list[str] = Field(
        default_factory=list,
        description="Shell commands run in order before the recipe; the job stops if one fails.",
    )
    container_image: str | None = Field(
        None, description="Container image (registry URI or .sqsh path).",
        examples=["nvcr.io/nvidia/nemo:25.11"],
    )
    mounts: list[str] = Field(
        default_factory=list, description='Container mounts, "host:container".',
        examples=[["/lustre:/lustre"]],
    )


class LocalFields(Strict):
    """Keys of the local executor (subprocesses on this machine)."""

    nproc_per_node: int | None = Field(
        None, ge=1, description="Processes per node for torchrun (Nemotron's local key)."
    )


class SlurmFields(Strict):
    """Keys of the Slurm executor (sbatch, locally or through a login node)."""

    account: str | None = Field(None, description="Slurm account to charge.")
    partition: str | None = Field(None, description="Slurm partition.", examples=["batch"])
    run_partition: str | None = Field(None, description="Partition for attached runs (Nemotron).")
    batch_partition: str | None = Field(None, description="Partition for detached runs (Nemotron).")
    qos: str | None = Field(None, description="Slurm quality of service.")
    constraint: str | None = Field(None, description="Node feature constraint (--constraint).")
    exclusive: bool | None = Field(None, description="Request whole nodes (--exclusive).")
    ntasks_per_node: int | None = Field(None, ge=1, description="Tasks per node (Nemotron's key).")
    extra_directives: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="Further #SBATCH directives, name → value (true for a bare flag).",
        examples=[{"reservation": "ml", "requeue": True}],
    )
    container: str | None = Field(None, description="Legacy alias of container_image (Nemotron).")
    template: str | None = Field(
        None, description="A Jinja2 sbatch template replacing the built-in one (path)."
    )
    tunnel: Literal["local", "ssh"] | None = Field(
        None, description='How sbatch is reached: "local" PATH, or "ssh" to `host`.'
    )
    host: str | None = Field(None, description="Login node for tunnel = \"ssh\".")
    user: str | None = Field(None, description="SSH user on the login node.")
    identity: str | None = Field(None, description="SSH private key path.")
    remote_job_dir: str | None = Field(
        None, description="Directory on the cluster where run directories are synced."
    )


class RayFields(Strict):
    """Keys of the Ray executor (Ray Jobs API)."""

    address: str | None = Field(
        None,
        description="Ray dashboard address; unset starts a local head on 127.0.0.1.",
        examples=["http://127.0.0.1:8265"],
    )
    runtime_env: dict[str, Any] = Field(
        default_factory=dict, description="Extra Ray runtime_env entries (pip, py_modules, …)."
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds to wait for the Ray address to answer."
    )


class NemoRunFields(Strict):
    """Keys of the NeMo-Run adapter, for users who already have NeMo-Run executors."""

    nemo_executor: Literal["local", "slurm", "docker"] | None = Field(
        None, description="Which NeMo-Run executor class to build."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the NeMo-Run executor."
    )


# --- one model per executor, for profiles and for a manifest's [env] -----------------------

EXECUTOR_FIELDS: dict[str, tuple[str, type[Strict], str]] = {
    "local": ("Local", LocalFields, "runs on this machine"),
    "slurm": ("Slurm", SlurmFields, "submits to Slurm"),
    "ray": ("Ray", RayFields, "submits Ray jobs"),
    "nemo-run": ("NemoRun", NemoRunFields, "launches through NeMo-Run"),
}


def _executor_tag(value: Any) -> str:
    raw = value.get("executor") if isinstance(value, dict) else getattr(value, "executor", None)
    return raw if raw in EXECUTORS else ("inherit" if raw is None else str(raw))


def executor_variants(base: type[Strict], suffix: str, noun: str) -> tuple[dict[str, type], Any]:
    """``{executor: model}`` and their discriminated union for one kind of settings table.

    Each model is ``base`` + that executor's fields + ``executor = "<name>"``; the extra
    ``Inheriting<suffix>`` model (no ``executor`` key) accepts every executor's keys and is
    checked again, strictly, once the executor is known from the profile chain.
    """
    models: dict[str, type] = {}
    for executor, (stem, fields, does) in EXECUTOR_FIELDS.items():
        models[executor] = type(f"{stem}{suffix}", (base, fields), {
            "__module__": __name__,
            "__doc__": f"{noun.capitalize()} that {does}.",
            "__annotations__": {"executor": Literal[executor]},
            "executor": Field(description=f"Executor of this {noun}."),
        })
    inheriting = type(f"Inheriting{suffix}", (base, *(f for _, f, _ in EXECUTOR_FIELDS.values())), {
        "__module__": __name__,
        "__doc__": f"{noun.capitalize()} without `executor`: it is inherited (default: local).",
    })
    tagged = [Annotated[m, Tag(e)] for e, m in models.items()]
    union = Annotated[Union[*tagged, Annotated[inheriting, Tag("inherit")]],  # noqa: UP007
                      Discriminator(_executor_tag)]
    return models | {"inherit": inheriting}, union


class ProfileBase(CommonFields, ResourceFields):
    extends: str | None = Field(
        None, description="Name of the profile this one inherits from.", examples=["my-cluster"]
    )


PROFILE_MODELS, Profile = executor_variants(ProfileBase, "Profile", "a profile")


class SecretRef(Strict):
    """A secret by reference: the value is read from the launching environment, never stored."""

    from_env: str = Field(
        pattern=ENV_NAME_PATTERN,
        description="Name of the environment variable holding the secret: letters, digits and _, "
        "not starting with a digit.",
        examples=["WANDB_API_KEY"],
    )


class EnvBase(CommonFields):
    profile: str | None = Field(
        None, description="Profile name from env.toml; the fields here override it.",
        examples=["local", "my-cluster"],
    )
    file: str | None = Field(
        None, description="Path of env.toml (default: the nearest env.toml at or above the manifest).",
    )
    vars: dict[str, EnvValue] = Field(
        default_factory=dict, description="Environment variables for the job.",
        examples=[{"OMP_NUM_THREADS": "1"}],
    )
    secrets: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="Secrets by reference only: NAME = { from_env = \"VAR\" }.",
        examples=[{"WANDB_API_KEY": {"from_env": "WANDB_API_KEY"}}],
    )


ENV_MODELS, Env = executor_variants(EnvBase, "Env", "an execution environment")
LocalEnv, SlurmEnv, RayEnv, NemoRunEnv, InheritingEnv = (
    ENV_MODELS[k] for k in (*EXECUTORS, "inherit"))


# --- env.toml as a whole ---------------------------------------------------------------------

class WandbDefaults(Strict):
    """`[wandb]` in env.toml: defaults for W&B logging."""

    project: str | None = Field(None, description="Default W&B project.")
    entity: str | None = Field(None, description="Default W&B entity.")


class ArtifactsSettings(Strict):
    """`[artifacts]` in env.toml: where the artifact registry lives."""

    backend: Literal["file", "wandb"] | None = Field(None, description="Registry backend.")
    root: str | None = Field(None, description="Registry root (path or fsspec URL).")


class CacheSettings(Strict):
    """`[cache]` in env.toml."""

    git_dir: str | None = Field(None, description="Cache directory for git checkouts.")


class CliSettings(Strict):
    """`[cli]` in env.toml."""

    theme: str | None = Field(None, description="Rich theme name.")


class EnvFile(Strict):
    """env.toml: every top-level table that is not reserved is an execution profile."""

    wandb: WandbDefaults | None = Field(None, description="Defaults for W&B logging.")
    artifacts: ArtifactsSettings | None = Field(None, description="Artifact registry location.")
    cache: CacheSettings | None = Field(None, description="Cache directories.")
    cli: CliSettings | None = Field(None, description="CLI appearance.")
    __pydantic_extra__: dict[str, Profile] = Field(init=False)
    model_config = Strict.model_config | {"extra": "allow"}
