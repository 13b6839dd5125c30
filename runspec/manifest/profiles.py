"""env.toml: find it, read its profiles, and resolve ``extends`` chains.

Compatible with Nemotron's format: every top-level table is a profile except the reserved
``wandb``, ``artifacts``, ``cache`` and ``cli``; ``extends = "parent"`` inherits (the child
wins, key by key); cycles are errors. Works on plain data with positions so that
``runspec validate`` stays fast; the pydantic models in ``executors`` give the schema.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from runspec.manifest.document import Document, KeyPath, Located
from runspec.manifest.errors import Diagnostic, ManifestError
from runspec.manifest.load import MAX_EXTENDS, deep_merge, load_document
from runspec.manifest.suggest import did_you_mean, one_of
from runspec.manifest.vocabulary import RESERVED_TABLES

ENV_FILE_NAME = "env.toml"
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {"local": {"executor": "local"}}
"""Profiles that exist without an env.toml: the embedded local default."""


ENV_FILE_VARIABLE = "NEMOTRON_ENV_FILE"
"""Names the env.toml to use instead of searching for one (as in Nemotron)."""


def find_env_file(start: Path) -> Path | None:
    """``$NEMOTRON_ENV_FILE`` if set; else the nearest env.toml at or above ``start``,
    stopping at a project root (.git, pyproject.toml). A manifest's ``env.file`` wins over
    both."""
    named = os.environ.get(ENV_FILE_VARIABLE)
    if named:
        return Path(os.path.expanduser(named))
    try:
        directory = start.resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop: no env.toml to find
        return None
    for candidate in (directory, *directory.parents):
        path = candidate / ENV_FILE_NAME
        if _exists(path, file=True):
            return path
        if _exists(candidate / ".git") or _exists(candidate / "pyproject.toml", file=True):
            return None
    return None


def _exists(path: Path, file: bool = False) -> bool:
    try:
        return path.is_file() if file else path.exists()
    except (OSError, ValueError):
        return False


@dataclass
class EnvFileDocument:
    """A loaded env.toml."""

    document: Document

    @cached_property
    def profiles(self) -> dict[str, Any]:
        return {k: v for k, v in self.document.data.items() if k not in RESERVED_TABLES}

    @cached_property
    def positions_by_profile(self) -> dict[str, dict[KeyPath, Located]]:
        """Each profile's positions, relative to it: indexed once, not per chain step."""
        index: dict[str, dict[KeyPath, Located]] = {}
        for path, located in self.document.positions.items():
            if len(path) > 1 and isinstance(path[0], str):
                index.setdefault(path[0], {})[path[1:]] = located
        return index

    def names(self) -> list[str]:
        return sorted(set(self.profiles) | set(BUILTIN_PROFILES))


def load_env_file(path: Path, display: str | None = None) -> EnvFileDocument:
    """Load an env.toml; an ``[artifacts]`` table runspec cannot honour is refused here, so
    that validate, plan and the artifacts commands all say so at its line."""
    document = load_document(path, display)
    problems = artifacts_diagnostics(document)
    if problems:
        raise ManifestError(problems)
    return EnvFileDocument(document)


ARTIFACT_BACKENDS = ("file",)
ARTIFACT_MODES = ("copy", "reference")


def artifacts_diagnostics(document: Document) -> list[Diagnostic]:
    """``[artifacts]``: a backend other than the file system's (``"wandb"`` was accepted once
    and never used), a mode that is not copy or reference, a root URL no fsspec filesystem
    reads."""
    table = document.data.get("artifacts")
    if not isinstance(table, dict):
        return []
    out = []

    def refuse(key: str, message: str, hint: str) -> None:
        out.append(Diagnostic.at(document.value_position(("artifacts", key)),
                                 f"artifacts.{key}", message, hint, document))

    backend = table.get("backend")
    if backend == "wandb":
        refuse("backend", 'backend = "wandb" is not supported: runspec keeps its own registry '
               "(a path or an fsspec URL) and W&B mirrors it",
               'remove backend (or write backend = "file"); [measure.wandb] in a manifest '
               "logs its outputs to W&B as references, and root = \"s3://…\" shares the "
               "registry")
    elif backend is not None and backend not in ARTIFACT_BACKENDS:
        refuse("backend", f"backend {_shown(backend)} is not supported",
               'the registry backend is "file" (a path or an fsspec URL in root)')
    mode = table.get("mode")
    if mode is not None and mode not in ARTIFACT_MODES:
        refuse("mode", f"mode {_shown(mode)} is not an artifact mode",
               (did_you_mean(mode, ARTIFACT_MODES) if isinstance(mode, str) else None)
               or f"expected {one_of(ARTIFACT_MODES)}")
    root = table.get("root")
    if root is not None and (not isinstance(root, str) or not root):
        refuse("root", f"root {_shown(root)} is not a path or URL",
               'write a path (relative to env.toml) or an fsspec URL, e.g. "s3://bucket/artifacts"')
    elif isinstance(root, str) and "://" in root and not root.startswith("file://"):
        protocol = root.split("://", 1)[0]
        known = _fsspec_protocols()
        if protocol not in known:
            refuse("root", f'no fsspec filesystem reads "{protocol}://" URLs',
                   did_you_mean(protocol, known) or
                   "use a path, file://, or a protocol fsspec provides (s3, gs, memory, …)")
    return out


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _fsspec_protocols() -> list[str]:
    """The URL schemes fsspec knows (imported only for a URL root: not on validate's path)."""
    from fsspec.registry import known_implementations, registry

    return sorted(set(known_implementations) | set(registry))


@dataclass
class ResolvedProfile:
    """A profile with its ``extends`` chain merged; positions point at the defining lines."""

    name: str
    data: dict[str, Any]
    positions: dict[KeyPath, Located]
    chain: list[str]


class ChainTooLong(ManifestError):
    """A profile's ``extends`` chain passes ``MAX_EXTENDS`` (every profile on it says so:
    ``validate`` reports only where it starts)."""


def resolve_profile(env: EnvFileDocument | None, name: str, where: Diagnostic | None = None
                    ) -> ResolvedProfile:
    """Merge ``name`` over its ancestors. Raises ManifestError for unknown names, cycles and
    chains longer than ``MAX_EXTENDS``."""
    profiles = env.profiles if env else {}
    chain: list[str] = []
    current: str | None = name
    layers: list[tuple[dict[str, Any], dict[KeyPath, Located]]] = []
    while current is not None:
        if current in chain and env is not None:  # a chain exists only with an env.toml
            cycle = " → ".join([*chain, current])
            position = env.document.value_position((chain[-1], "extends"))
            raise ManifestError([Diagnostic.at(position, f"{chain[-1]}.extends",
                                               f"profile extends cycle: {cycle}",
                                               document=env.document)])
        table = profiles.get(current)
        if table is None and current in BUILTIN_PROFILES:
            table = BUILTIN_PROFILES[current]
        if not isinstance(table, dict):
            raise ManifestError([_unknown_profile(env, current, chain, where)])
        if len(chain) >= MAX_EXTENDS and env is not None:
            raise _chain_too_long(env, chain, current)
        chain.append(current)
        positions = env.positions_by_profile.get(current, {}) if env is not None else {}
        layers.append((table, positions))
        parent = table.get("extends")
        current = parent if isinstance(parent, str) else None
    data: dict[str, Any] = {}
    merged_positions: dict[KeyPath, Located] = {}
    for table, positions in reversed(layers):
        data = deep_merge(data, table)
        merged_positions.update(positions)
    data.pop("extends", None)
    return ResolvedProfile(name, data, merged_positions, chain)


def _chain_too_long(env: EnvFileDocument, chain: list[str], next_name: str) -> ChainTooLong:
    position = env.document.value_position((chain[0], "extends"))
    shown = " → ".join([*chain[:3], "…", chain[-1], next_name, "…"])
    return ChainTooLong([Diagnostic.at(
        position, f"{chain[0]}.extends",
        f'the extends chain of profile "{chain[0]}" is longer than {MAX_EXTENDS} profiles: {shown}',
        "flatten the chain: let the profiles extend one shared base", env.document)])


def _unknown_profile(env: EnvFileDocument | None, name: str, chain: list[str],
                     where: Diagnostic | None) -> Diagnostic:
    available = env.names() if env else sorted(BUILTIN_PROFILES)
    hint = did_you_mean(name, available) or f"available profiles: {one_of(available)}"
    if chain and env is not None:
        position = env.document.value_position((chain[-1], "extends"))
        return Diagnostic.at(position, f"{chain[-1]}.extends",
                             f'profile "{chain[-1]}" extends unknown profile "{name}"', hint,
                             env.document)
    if where is not None:
        return Diagnostic(where.file, where.line, where.col, where.path,
                          f'unknown profile "{name}"' + (
                              f" in {env.document.display}" if env else " (no env.toml found)"),
                          hint, length=where.length, source=where.source)
    return Diagnostic("(profile)", 1, 1, "env.profile", f'unknown profile "{name}"', hint)
