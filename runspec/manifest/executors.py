"""Execution settings per executor, shared by env.toml profiles and a manifest's `[env]`.

Each executor accepts only its own keys. A table that names no `executor` inherits it
(from its profile, or from the profile it `extends`) and may carry any executor's keys;
it is checked again, strictly, once the executor is known (see `profiles.resolve_env`).
Field names follow Nemotron's env.toml so existing files load unchanged.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
)

from runspec.manifest.vocabulary import (
    ENV_NAME_PATTERN,
    EXECUTORS,
    MEM_PATTERN,
    TIME_PATTERN,
)

EnvValue = str | int | float | bool

CONTROL_PATTERN = r"[\x00-\x1f\x7f]"
"""A control character (a newline!): never part of text written into a line of a script."""
_CONTROL = re.compile(CONTROL_PATTERN)
DIRECTIVE_NAME_PATTERN = r"^[a-z][a-z0-9-]*$"
RENDERED_DIRECTIVES: dict[str, str] = {
    "job-name": "the job is named after the manifest and stage",
    "chdir": "jobs start in the manifest's directory",
    "output": "the job log goes beside the stage's runs; each run writes stdout.log and stderr.log",
    "error": "the job log goes beside the stage's runs; each run writes stdout.log and stderr.log",
    "array": "a sweep becomes the job array; campaign.max_parallel sets its %limit",
    "dependency": "a stage's needs become the dependency",
    "export": "the job's environment is explicit: use env.vars (or env_vars in the profile)",
    "comment": "runspec tags its jobs with it, to find a submission whose answer was lost",
    "parsable": "runspec reads the job id with it",
    "partition": "use partition = … in the profile or [env] instead",
    "account": "use account = … in the profile or [env] instead",
    "qos": "use qos = … in the profile or [env] instead",
    "constraint": "use constraint = … in the profile or [env] instead",
    "exclusive": "use exclusive = true in the profile or [env] instead",
    "time": "use resources.time (or time in the profile) instead",
    "nodes": "use resources.nodes (or nodes in the profile) instead",
    "ntasks-per-node": "use resources.procs_per_node (or ntasks_per_node in the profile) instead",
    "gpus-per-node": "use resources.gpus_per_node (or gpus_per_node in the profile) instead",
    "cpus-per-task": "use resources.cpus_per_task (or cpus_per_task in the profile) instead",
    "mem": "use resources.mem (or mem in the profile) instead",
}
"""The sbatch options runspec writes itself, and what to use instead: a second
``--output`` in extra_directives would silently win over runspec's."""


def _one_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be one line, without control characters")
    return value


def one_line(pattern: str | None = None) -> Any:
    """Text written into a line of the job script (an ``#SBATCH`` directive, a comment).

    ``pattern`` is the form it must also have: the JSON Schema's ``$`` (Python's, which
    validate uses) lets a trailing newline through, the control character check does not."""
    constraints = [StringConstraints(pattern=pattern)] if pattern else []
    return Annotated[str, *constraints, AfterValidator(_one_line),
                     Field(json_schema_extra={"not": {"pattern": CONTROL_PATTERN}})]


OneLine: Any = one_line()


def _name(pattern: str, title: str, description: str, rendered: dict[str, str] | None = None
          ) -> Any:
    """A table key that becomes a name in a script (an ``export NAME=``, an ``#SBATCH --NAME``).

    The schema says it with ``propertyNames`` (pydantic's ``patternProperties`` for a
    constrained key would let a key that does not match through unchecked); ``title`` and
    ``description`` are what validate's message says."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"not a valid {title}: {description}")
        if rendered and value in rendered:
            raise ValueError(f"runspec writes --{value} itself: {rendered[value]}")
        return value

    forbidden: list[dict[str, Any]] = [{"pattern": CONTROL_PATTERN}]
    if rendered:
        forbidden.append({"enum": sorted(rendered)})
    schema: dict[str, Any] = {"x-name": title, "description": description, "pattern": pattern,
                              "not": {"anyOf": forbidden}}
    if rendered:
        schema["x-rendered"] = dict(sorted(rendered.items()))
    return Annotated[str, AfterValidator(check), Field(json_schema_extra=schema)]


def _property_names(schema: dict[str, Any]) -> None:
    """pydantic writes a key's pattern as ``patternProperties``: move it into ``propertyNames``."""
    ((pattern, values),) = schema.pop("patternProperties").items()
    schema["additionalProperties"] = values
    schema["propertyNames"] = {"pattern": pattern, **schema["propertyNames"]}


def named(keys: Any, values: Any) -> Any:
    """A table of ``keys`` (an ``_name`` type) → ``values``."""
    return Annotated[dict[keys, values], Field(json_schema_extra=_property_names)]


EnvName: Any = _name(ENV_NAME_PATTERN, "environment variable name",
                "use letters, digits and _, not starting with a digit")
DirectiveName: Any = _name(DIRECTIVE_NAME_PATTERN, "sbatch option name",
                      "use the long option name in lowercase without its dashes, e.g. "
                      "reservation or mail-type", RENDERED_DIRECTIVES)

# The field types built above, by name (an annotation must name a type, not call a function);
# ``Any`` for the type checker, which cannot evaluate what pydantic reads from them.
Memory: Any = one_line(MEM_PATTERN)
WallTime: Any = one_line(TIME_PATTERN)
SourceName: Any = one_line(ENV_NAME_PATTERN)
EnvTable: Any = named(EnvName, EnvValue)
DirectiveTable: Any = named(DirectiveName, OneLine | int | bool)


class Strict(BaseModel):
    """Base for every manifest model: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)


class ResourceFields(Strict):
    """Resource keys a profile may set (Nemotron names); the manifest's `[resources]` wins."""

    nodes: int | None = Field(None, ge=1, le=100_000, description="Number of nodes.",
                              examples=[1, 4])
    gpus_per_node: int | None = Field(None, ge=0, le=1024, description="GPUs per node.",
                                      examples=[0, 8])
    cpus_per_task: int | None = Field(None, ge=1, le=16_384,
                                      description="CPUs per Slurm task, as Nemotron means it.")
    mem: Memory | None = Field(
        None,
        description='Memory per node: a number with an optional K, M, G or T suffix; "0" means all.',
        examples=["16G", "0"],
    )
    time: WallTime | None = Field(
        None, description='Wall-time limit: "[D-]HH:MM[:SS]" or whole minutes.',
        examples=["00:20:00", "1-00:00:00"],
    )


class CommonFields(Strict):
    """Keys every executor understands."""

    env_vars: EnvTable = Field(
        default_factory=dict,
        description="Environment variables for every job of this profile (Nemotron's name); "
        "names are letters, digits and _, not starting with a digit.",
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
        None, ge=1, le=4096, description="Processes per node for torchrun (Nemotron's local key)."
    )


class SlurmFields(Strict):
    """Keys of the Slurm executor (sbatch, locally or through a login node)."""

    account: OneLine | None = Field(None, description="Slurm account to charge.")
    partition: OneLine | None = Field(None, description="Slurm partition.", examples=["batch"])
    run_partition: OneLine | None = Field(None, description="Partition for attached runs (Nemotron).")
    batch_partition: OneLine | None = Field(None,
                                            description="Partition for detached runs (Nemotron).")
    qos: OneLine | None = Field(None, description="Slurm quality of service.")
    constraint: OneLine | None = Field(None, description="Node feature constraint (--constraint).")
    exclusive: bool | None = Field(None, description="Request whole nodes (--exclusive).")
    ntasks_per_node: int | None = Field(None, ge=1, le=4096,
                                        description="Tasks per node (Nemotron's key).")
    extra_directives: DirectiveTable = Field(
        default_factory=dict,
        description="Further #SBATCH directives, long option name → value (true for a bare flag, "
        "false leaves it out); not the ones runspec writes itself (job-name, output, partition…).",
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
        None, gt=0, le=86_400, description="Seconds to wait for the Ray address to answer."
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
    # A union of classes made at run time, for pydantic: no static type to check.
    union = Annotated[Union[*tagged, Annotated[inheriting, Tag("inherit")]],  # type: ignore[valid-type]  # noqa: UP007
                      Discriminator(_executor_tag)]
    return models | {"inherit": inheriting}, union


class ProfileBase(CommonFields, ResourceFields):
    extends: str | None = Field(
        None, description="Name of the profile this one inherits from.", examples=["my-cluster"]
    )


Profile: Any  # the union pydantic reads (built at run time)
PROFILE_MODELS, Profile = executor_variants(ProfileBase, "Profile", "a profile")


class SecretRef(Strict):
    """A secret by reference: the value is read from the launching environment, never stored."""

    from_env: SourceName = Field(
        description="Name of the environment variable holding the secret: letters, digits and _, "
        "not starting with a digit.",
        examples=["WANDB_API_KEY"],
    )


SecretTable: Any = named(EnvName, SecretRef)


class EnvBase(CommonFields):
    profile: str | None = Field(
        None, description="Profile name from env.toml; the fields here override it.",
        examples=["local", "my-cluster"],
    )
    file: str | None = Field(
        None, description="Path of env.toml (default: the nearest env.toml at or above the manifest).",
    )
    vars: EnvTable = Field(
        default_factory=dict, description="Environment variables for the job; names are "
        "letters, digits and _, not starting with a digit.",
        examples=[{"OMP_NUM_THREADS": "1"}],
    )
    secrets: SecretTable = Field(
        default_factory=dict,
        description="Secrets by reference only: NAME = { from_env = \"VAR\" }.",
        examples=[{"WANDB_API_KEY": {"from_env": "WANDB_API_KEY"}}],
    )


Env: Any  # the union pydantic reads (built at run time)
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
