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
    """An indented tree: each version, the run that produced it, then its inputs (a plain
    path input as a leaf: where it is, and its digest when it was registered)."""
    branch = "" if top else ("└── " if last else "├── ")
    if node.get("plain"):
        digest = node.get("digest")
        shown = _short(digest) if isinstance(digest, str) else "(not found)"
        return f"{prefix}{branch}{_here(node['label'])}  [path] {shown}\n"
    detail = " (missing)" if node.get("missing") else (
        f"  [{node.get('type')}] produced by {node.get('producer') or 'hand'}")
    out = f"{prefix}{branch}{node['label']}{detail}\n"
    children = node.get("inputs", [])
    child_prefix = prefix + ("" if top else ("    " if last else "│   "))
    for index, child in enumerate(children):
        out += lineage_tree(child, child_prefix, index == len(children) - 1, False)
    return out


def _short(digest: str) -> str:
    """``sha256:`` and the first 16 hex digits (``artifacts show`` has all 64)."""
    scheme, sep, value = digest.partition(":")
    return f"{scheme}:{value[:16]}" if sep else digest[:16]


def _here(path: str) -> str:
    """A recorded absolute path, relative to the current directory when below it."""
    import os
    from pathlib import Path

    if "://" in path or not os.path.isabs(path):
        return path
    try:
        return os.path.relpath(path) if Path(path).is_relative_to(Path.cwd().resolve()) \
            else path
    except (OSError, ValueError):
        return path
