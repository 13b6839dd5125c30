"""How the registry is shown: a listing, one version, a lineage tree."""

from __future__ import annotations

from typing import Any

from runspec.artifacts.registry import Registry, Version
from runspec.artifacts.uri import parse


def resolve_ref(registry: Registry, text: str) -> Version:
    """``NAME``, ``NAME:vN`` or ``NAME:ALIAS`` (``art://`` optional)."""
    return registry.resolve(parse(text if text.startswith("art://") else f"art://{text}"))


def listing(registry: Registry) -> str:
    names = registry.names()
    if not names:
        return f"No artifacts in {registry.root}.\n"
    lines = [f"Artifacts in {registry.root}:"]
    for name in names:
        versions = registry.versions(name)
        aliases = ", ".join(f"{a} → v{n}" for a, n in sorted(registry.aliases(name).items()))
        latest = registry.get(name, versions[-1]).metadata
        lines.append(f"  {name}  ({latest.get('type')}) versions v1…v{versions[-1]} "
                     f"[{len(versions)}]  aliases: {aliases}")
    return "\n".join(lines) + "\n"


def lineage_tree(node: dict[str, Any], prefix: str = "", last: bool = True, top: bool = True
                 ) -> str:
    """An indented tree: each version, the run that produced it, then its inputs."""
    branch = "" if top else ("└── " if last else "├── ")
    detail = " (missing)" if node.get("missing") else (
        f"  [{node.get('type')}] produced by {node.get('producer') or 'hand'}")
    out = f"{prefix}{branch}{node['label']}{detail}\n"
    children = node.get("inputs", [])
    child_prefix = prefix + ("" if top else ("    " if last else "│   "))
    for index, child in enumerate(children):
        out += lineage_tree(child, child_prefix, index == len(children) - 1, False)
    return out
