"""Dotted keys into nested config mappings, with Hydra's ``+key`` convention for new keys."""

from __future__ import annotations

import copy
from typing import Any

from runspec.manifest.suggest import did_you_mean


class UnknownKey(KeyError):
    """An override names a key the base config does not have (and is not written ``+key``)."""

    def __init__(self, key: str, hint: str | None):
        super().__init__(key)
        self.key, self.hint = key, hint


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists and scalars are leaves)."""
    if not isinstance(node, dict) or not node:
        return {prefix: node} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def override_leaves(overrides: Any) -> dict[str, tuple[str, ...]]:
    """Override tables as leaves, the way OmegaConf merges them: ``{"train": {"iters": 5}}``
    sets ``train.iters`` and keeps ``train``'s other keys (it never replaces the subtree).

    Maps each dotted key to its path under ``recipe.overrides`` (for positions). A ``+`` on
    any segment marks the whole key as new (``train."+extra"`` → ``+train.extra``)."""
    leaves: dict[str, tuple[str, ...]] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        for key, value in node.items():
            here = (*path, str(key))
            if isinstance(value, dict) and value:
                walk(value, here)
                continue
            dotted = ".".join(part.removeprefix("+") for part in here)
            leaves["+" + dotted if any(p.startswith("+") for p in here) else dotted] = here

    if isinstance(overrides, dict):
        walk(overrides, ())
    return leaves


def leaf_value(overrides: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` (from ``override_leaves``) inside nested ``overrides``."""
    node: Any = overrides
    for part in path:
        node = node[part]
    return node


def all_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key in ``node``, tables included (``a`` and ``a.b``)."""
    keys: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            keys.append(dotted)
            keys.extend(all_keys(value, dotted))
    return keys


def check_key(config: dict[str, Any], key: str, known: list[str] | None = None) -> str:
    """The plain dotted key for an override; raises UnknownKey unless it exists or starts with +."""
    if key.startswith("+"):
        return key[1:]
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UnknownKey(key, did_you_mean(key, known if known is not None else all_keys(config)))
        node = node[part]
    return key


def assign(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in place, creating tables on the way (the key was checked before)."""
    parts = key.split(".")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def with_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``base`` with every (checked, plain) dotted key set, ``base`` left untouched.

    Only the tables on the path to each key are copied; everything else is shared, which
    keeps 100,000 rendered configs cheap. Nothing downstream mutates a config.
    """
    result = dict(base)
    copied: set[tuple[str, ...]] = {()}
    for key, value in values.items():
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1], start=1):
            child = node.get(part)
            prefix = tuple(parts[:depth])
            if not isinstance(child, dict):
                child = {}
            elif prefix not in copied:
                child = dict(child)
            copied.add(prefix)
            node[part] = child
            node = child
        node[parts[-1]] = copy.deepcopy(value) if isinstance(value, dict | list) else value
    return result
