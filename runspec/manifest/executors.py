"""Execution settings per executor, shared by env.toml profiles and a manifest's `[env]`.

Each backend owns its options model (``options_model`` in its module); this module adds
the keys every executor shares and builds one model per executor, and their union, for a
profile and for `[env]`. Each executor accepts only its own keys. A table that names no `executor` inherits it
(from its profile, or from the profile it `extends`) and may carry any executor's keys;
it is checked again, strictly, once the executor is known (see `profiles.resolve_env`).
Field names follow Nemotron's env.toml so existing files load unchanged.

The unions are built when a model that holds one is first built (``Manifest``, ``EnvFile``:
``defer_build``), not when this module is imported: resolving a plan uses the smaller
models of ``models`` and never imports every backend just to name the union.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

from runspec.backends import REGISTRY, is_executor
from runspec.manifest.fields import (
    CommonFields,
    EnvName,
    EnvTable,
    ResourceFields,
    SourceName,
    Strict,
    named,
)

# --- one model per executor, for profiles and for a manifest's [env] -----------------------


@cache
def executor_options() -> dict[str, tuple[str, type[Strict], str]]:
    """executor → (its models' name stem, its options model, what it does): each backend
    owns its options; this module only combines them with the keys every executor shares."""
    out = {}
    for executor, load in REGISTRY.items():
        backend = load()
        out[executor] = (backend.title, backend.options_model(), backend.summary)
    return out


def _executor_tag(value: Any) -> str:
    raw = value.get("executor") if isinstance(value, dict) else getattr(value, "executor", None)
    return str(raw) if is_executor(raw) else ("inherit" if raw is None else str(raw))


def executor_variants(base: type[Strict], suffix: str, noun: str) -> tuple[dict[str, type], Any]:
    """``{executor: model}`` and their discriminated union for one kind of settings table.

    Each model is ``base`` + that executor's fields + ``executor = "<name>"``; the extra
    ``Inheriting<suffix>`` model (no ``executor`` key) accepts every executor's keys and is
    checked again, strictly, once the executor is known from the profile chain.
    """
    models: dict[str, type] = {}
    for executor, (stem, fields, does) in executor_options().items():
        models[executor] = type(f"{stem}{suffix}", (base, fields), {
            "__module__": __name__,
            "__doc__": f"{noun.capitalize()} that {does}.",
            "__annotations__": {"executor": Literal[executor]},
            "executor": Field(description=f"Executor of this {noun}."),
        })
    # An executor's options may extend another's (NeMo-Run's Slurm ones extend Slurm's):
    # only the most derived classes go in, or the bases could not be ordered.
    options = [f for _, f, _ in executor_options().values()]
    options = list(dict.fromkeys(f for f in options
                                 if not any(o is not f and issubclass(o, f) for o in options)))
    inheriting = type(f"Inheriting{suffix}", (base, *options), {
        "__module__": __name__,
        "__doc__": f"{noun.capitalize()} without `executor`: it is inherited (default: local).",
    })
    tagged = [Annotated[m, Tag(e)] for e, m in models.items()]
    # A union of classes made at run time, for pydantic: no static type to check.
    union = Annotated[Union[*tagged, Annotated[inheriting, Tag("inherit")]],  # type: ignore[valid-type]  # noqa: UP007
                      Discriminator(_executor_tag)]
    return models | {"inherit": inheriting}, union


class _Built:
    """A type that pydantic reads as ``build()``'s, built when a model holding it is."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build

    def __get_pydantic_core_schema__(self, _source: Any, handler: Any) -> Any:
        return handler.generate_schema(self.build())


class ProfileBase(CommonFields, ResourceFields):
    extends: str | None = Field(
        None, description="Name of the profile this one inherits from.", examples=["my-cluster"]
    )


@cache
def _profiles() -> tuple[dict[str, type], Any]:
    return executor_variants(ProfileBase, "Profile", "a profile")


Profile: Any = Annotated[Any, _Built(lambda: _profiles()[1])]  # the union pydantic reads


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


@cache
def _envs() -> tuple[dict[str, type], Any]:
    return executor_variants(EnvBase, "Env", "an execution environment")


Env: Any = Annotated[Any, _Built(lambda: _envs()[1])]  # the union pydantic reads


def __getattr__(name: str) -> Any:
    """The models per executor, built on first use (``ENV_MODELS["slurm"]``)."""
    built: dict[str, Callable[[], Any]] = {
        "EXECUTOR_OPTIONS": executor_options, "PROFILE_MODELS": lambda: _profiles()[0],
        "ENV_MODELS": lambda: _envs()[0], "InheritingEnv": lambda: _envs()[0]["inherit"]}
    if name in built:
        return built[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- env.toml as a whole ---------------------------------------------------------------------

class WandbDefaults(Strict):
    """`[wandb]` in env.toml: defaults for W&B logging."""

    project: str | None = Field(None, description="Default W&B project.")
    entity: str | None = Field(None, description="Default W&B entity.")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="Default W&B mode.")
    tags: list[str] | None = Field(None, description="Default run tags.")
    group: str | None = Field(None, description="Default run group.")


class ArtifactsSettings(Strict):
    """`[artifacts]` in env.toml: where the artifact registry lives, and how outputs go in."""

    backend: Literal["file"] | None = Field(
        None, description='Registry backend: "file" (a path or fsspec URL), the only one; '
        "W&B mirrors it through [measure.wandb].")
    root: str | None = Field(
        None, description="Registry root shared beyond this project: a path (relative to "
        "env.toml) or an fsspec URL (file://, s3://, memory://…). Default: "
        ".runspec/artifacts beside env.toml.", examples=["/lustre/team/artifacts"])
    mode: Literal["copy", "reference"] | None = Field(
        None, description="The project's default for outputs.artifacts.*.mode.")


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
    model_config = Strict.model_config | {"extra": "allow", "defer_build": True}
