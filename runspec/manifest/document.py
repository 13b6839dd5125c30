"""A loaded manifest: plain data plus where every key and value came from.

Positions are what make errors useful (``run.toml:12:5``), so they travel with the data
through ``extends`` merges and profile resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KeyPath = tuple[str | int, ...]

MAX_DEPTH = 64
"""Deepest nesting of tables and lists in a document: settings need a handful of levels, and
hundreds would exhaust the stack of the parsers and of every pass that walks the data."""


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a file; ``length`` is how many characters to underline."""

    file: str
    line: int
    col: int
    length: int = 1


@dataclass(frozen=True)
class Located:
    """Where a key (``key``) and its value (``value``) start."""

    key: Position | None
    value: Position | None


@dataclass
class Document:
    """Data loaded from one file (or several, through ``extends``) with source positions."""

    path: Path
    data: Any
    display: str = ""
    positions: dict[KeyPath, Located] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)   # every file read (extends bases too)

    @property
    def notation(self) -> str:
        """``toml`` or ``yaml``: hints are written in the file's own syntax."""
        return "yaml" if self.path.suffix in (".yaml", ".yml") else "toml"

    def key_position(self, path: KeyPath) -> Position:
        """Position of the key at ``path``, else of its nearest ancestor, else the file start."""
        return self._nearest(path, prefer_value=False)

    def value_position(self, path: KeyPath) -> Position:
        """Position of the value at ``path``, else of its key or nearest ancestor."""
        return self._nearest(path, prefer_value=True)

    def _nearest(self, path: KeyPath, prefer_value: bool) -> Position:
        probe = tuple(path)
        while probe:
            located = self.positions.get(probe)
            if located is not None:
                first, second = (
                    (located.value, located.key) if prefer_value else (located.key, located.value)
                )
                found = first or second
                if found is not None:
                    return found
            probe = probe[:-1]
        return Position(self.display or str(self.path), 1, 1)

    def source_line(self, position: Position) -> str | None:
        lines = self.sources.get(position.file)
        if lines and 1 <= position.line <= len(lines):
            return lines[position.line - 1]
        return None


def subtable(node: Any, key: str) -> dict[str, Any]:
    """``node[key]`` if it is a table, else an empty one: data not yet checked by the
    schema, read without tripping over a wrong type."""
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def format_path(path: KeyPath) -> str:
    """``("sweep", "parameters", "optim.lr", 0)`` → ``sweep.parameters."optim.lr"[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if part and all(c.isalnum() or c in "_-" for c in part) else f'"{part}"'
            out += f".{text}" if out else text
    return out or "(top level)"
