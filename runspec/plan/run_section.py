"""A Nemotron recipe config's ``run:`` section: what the config says about its own launch.

Nemotron configs start with a ``run:`` table that is not the script's configuration:

* artifact references (``data: nano3-sft-data:latest``) that ``${art:data,path}`` reads;
* ``env``: container, mounts, env_vars, startup_commands and resource keys, under the
  env.toml profile (the profile wins, except for the resource keys and ``container_image``,
  where the recipe knows what it needs; mounts add up, env_vars merge);
* anything ``${run.…}`` refers to, with ``run.wandb`` from env.toml's ``[wandb]`` and
  ``run.recipe`` naming the script.

The script gets the config without the section, except the artifact references (as
Nemotron writes it), and with every ``${run.…}`` that the section answers resolved.
``${auto_mount:git+URL@REF,PATH}`` (Nemotron clones the repository at submit time) is
refused: runspec plans without touching the network, and would otherwise mount nothing.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from runspec.manifest.document import Document, format_path
from runspec.manifest.errors import Diagnostic
from runspec.manifest.vocabulary import ENV_NAME_PATTERN

RUN = "run"
ENV_RESOURCE_KEYS = ("container_image", "nodes", "gpus_per_node", "ntasks_per_node",
                     "nproc_per_node")
"""run.env keys where the recipe's value wins over the profile's (as in Nemotron)."""
_RUN_REFERENCE = re.compile(r"\$\{run\.([^${}:]+)\}")


def is_artifact_reference(value: Any) -> bool:
    """``nano3-sft-data:latest`` or ``model:v5``, not ``nvcr.io/nvidia/nemo:25.11``: the rule
    Nemotron uses to tell a run-section artifact from any other string."""
    if not isinstance(value, str):
        return False
    lowered = value.lower()
    if "/" in value or "nvcr" in lowered or "docker" in lowered:
        return False
    if "Artifact" in value:
        return True
    if ":" in value:
        name, version = value.rsplit(":", 1)
        if (version.startswith("v") or version == "latest" or version.isdigit()) and \
                "." not in name:
            return True
    return False


@dataclass(frozen=True)
class RunSection:
    """The parts of ``run:`` runspec acts on."""

    artifacts: dict[str, str] = field(default_factory=dict)   # name → NAME:VERSION
    env: dict[str, Any] = field(default_factory=dict)         # run.env, as written
    values: dict[str, Any] = field(default_factory=dict)      # the whole section

    def __bool__(self) -> bool:
        return bool(self.values)


def split(config: dict[str, Any]) -> tuple[dict[str, Any], RunSection]:
    """The config without ``run:``, and the section."""
    section = config.get(RUN)
    if not isinstance(section, dict):
        return config, RunSection()
    rest = {k: v for k, v in config.items() if k != RUN}
    # Nemotron's rule, and any other string a ${art:NAME} names (``omni3/rl/data:latest``):
    # the recipe's own resolver reads it.
    artifacts = {k: v for k, v in section.items() if isinstance(v, str) and (
        is_artifact_reference(v) or f"${{art:{k}" in _text(config))}
    given = section.get("env")
    env = {k: v for k, v in given.items() if is_set(v)} if isinstance(given, dict) else {}
    return rest, RunSection(artifacts, env, dict(section))


def _text(config: dict[str, Any]) -> str:
    import json

    return json.dumps(config, default=str)


def resolve_references(node: Any, context: dict[str, Any]) -> Any:
    """Every ``${run.A.B}`` that ``context`` answers, replaced (a whole-value reference keeps
    its type); others (runspec's own ``${run.key}``, ``${run.dir}``) stay."""
    if isinstance(node, dict):
        return {k: resolve_references(v, context) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_references(v, context) for v in node]
    if not isinstance(node, str) or "${run." not in node:
        return node
    whole = _RUN_REFERENCE.fullmatch(node)
    if whole:
        found, value = _lookup(context, whole.group(1))
        return value if found else node

    def substitute(match: re.Match[str]) -> str:
        found, value = _lookup(context, match.group(1))
        if not found or isinstance(value, dict | list):
            return match.group(0)
        return "" if value is None else str(value)

    return _RUN_REFERENCE.sub(substitute, node)


def _lookup(context: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = context
    for part in dotted.strip().split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def env_under_profile(run_env: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """Nemotron's merge of a config's ``run.env`` with the env.toml profile."""
    if not run_env:
        return profile
    merged = {**run_env, **profile}
    variables = {**(run_env.get("env_vars") or {}), **(profile.get("env_vars") or {})}
    if variables:
        merged["env_vars"] = variables
    mounts = list(run_env.get("mounts") or []) + list(profile.get("mounts") or [])
    if mounts:
        merged["mounts"] = mounts
    for key in ENV_RESOURCE_KEYS:
        if key in run_env:
            merged[key] = run_env[key]
    return merged


RUN_ENV_KEYS = ("container", "container_image", "mounts", "env_vars", "startup_commands",
                "nodes", "gpus_per_node", "ntasks_per_node", "nproc_per_node", "time",
                "partition", "account", "mem", "cpus_per_task", "workdir")
"""The run.env keys runspec applies (``workdir`` is the recipe's working directory, over the
script's run.workdir); any other key with a value is refused rather than ignored."""
COMMAND_KEYS = {
    "sandbox": "the sandbox containers are started by Nemotron's own RL command, not by "
               "its launcher; runspec does not start them",
    "persistent_cache": "Nemotron's RL command turns it into vLLM/FlashInfer cache variables; "
                        "set those in run.env.env_vars (or the profile's env_vars) instead",
}


def is_set(value: Any) -> bool:
    """An empty value (``""``, ``{}``, ``[]``, null) sets nothing: overriding a key with one
    is how a manifest turns a config's setting off."""
    return value not in (None, "", {}, [])


def diagnostics(document: Document, replaced: AbstractSet[str] = frozenset()
                ) -> list[Diagnostic]:
    """What in a config's ``run.env`` runspec would not do, at its position (keys the
    manifest's overrides replace, such as ``run.env.mounts``, are not looked at)."""
    section = document.data.get(RUN) if isinstance(document.data, dict) else None
    env = section.get("env") if isinstance(section, dict) else None
    if not isinstance(env, dict):
        return []
    out: list[Diagnostic] = []
    for key, value in env.items():
        path = (RUN, "env", key)
        if f"{RUN}.env.{key}" in replaced or not is_set(value):
            continue
        if key in COMMAND_KEYS:
            out.append(Diagnostic.at(
                document.key_position(path), format_path(path), COMMAND_KEYS[key],
                f'turn it off with recipe.overrides."run.env.{key}" = {{}} (an empty value)',
                document))
            continue
        if key not in RUN_ENV_KEYS:
            from runspec.manifest.suggest import did_you_mean, one_of

            out.append(Diagnostic.at(document.key_position(path), format_path(path),
                                     "a run.env key runspec does not apply",
                                     did_you_mean(key, RUN_ENV_KEYS) or
                                     f"expected one of {one_of(RUN_ENV_KEYS)}; set other "
                                     "executor keys in the env.toml profile", document))
            continue
        if key == "env_vars" and isinstance(value, dict):
            for name in value:  # each becomes `export NAME=…` in the job
                if not re.fullmatch(ENV_NAME_PATTERN, str(name)):
                    at_name = (*path, name)
                    out.append(Diagnostic.at(document.key_position(at_name), format_path(at_name),
                                             f"{name!r} is not an environment variable name",
                                             "letters, digits and _, not starting with a digit",
                                             document))
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(item, str) and "${auto_mount:" in item:
                where = path + ((index,) if isinstance(value, list) else ())
                out.append(Diagnostic.at(
                    document.value_position(where), format_path(where),
                    "${auto_mount:…} clones a git repository when Nemotron submits; runspec "
                    "plans without the network and does not clone",
                    "clone it on the cluster yourself and mount it: set run.env.mounts "
                    '(e.g. recipe.overrides."run.env.mounts" = ["/path/Megatron-LM:/opt/'
                    'megatron-lm"]) or add the mount to the profile', document))
    return out
