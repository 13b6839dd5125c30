"""The pydantic field types every settings model shares (the manifest's, and each backend's
options): strict models, one-line text, and table keys that become names in a script.

Only the schema and plan paths import this module (it builds pydantic types);
``runspec validate`` checks documents against the generated JSON Schema instead.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from runspec.manifest.vocabulary import ENV_NAME_PATTERN, MEM_PATTERN, TIME_PATTERN

EnvValue = str | int | float | bool

CONTROL_PATTERN = r"[\x00-\x1f\x7f]"
"""A control character (a newline!): never part of text written into a line of a script."""
_CONTROL = re.compile(CONTROL_PATTERN)


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
                     Field(json_schema_extra={"not": {"type": "string",
                                                      "pattern": CONTROL_PATTERN}})]


OneLine: Any = one_line()


def name_type(pattern: str, title: str, description: str,
              rendered: dict[str, str] | None = None) -> Any:
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
    """A table of ``keys`` (a ``name_type``) → ``values``."""
    return Annotated[dict[keys, values], Field(json_schema_extra=_property_names)]


EnvName: Any = name_type(ENV_NAME_PATTERN, "environment variable name",
                         "use letters, digits and _, not starting with a digit")

# The field types built above, by name (an annotation must name a type, not call a function);
# ``Any`` for the type checker, which cannot evaluate what pydantic reads from them.
Memory: Any = one_line(MEM_PATTERN)
WallTime: Any = one_line(TIME_PATTERN)
SourceName: Any = one_line(ENV_NAME_PATTERN)
EnvTable: Any = named(EnvName, EnvValue)


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
