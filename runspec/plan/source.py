"""The recipe script's own text, kept beside its digest so a code edit plans as a diff.

A run's request carries ``code_digest`` (the sha256 of the script's bytes: an edit replaces
the run). To show *what* changed, the first run of each stage also carries
``recipe_source`` — the script's path and, when the script is UTF-8 text of at most
``MAX_SOURCE_BYTES``, its text. Apply stores requests verbatim, so the state then holds one
copy of each applied script version, not one per run. The field is left out of the run's
digest (``code_digest`` already covers the content), so recording it replaces nothing.

When a run's code changed, the old text is looked up by the old ``code_digest`` among
every stored request and the new one among the planned requests; with both, the plan shows
a unified diff of the script, else which file changed, from which digest to which. So that
the state never loses the text of a version some of its runs still use (runs kept on older
code while the first run is replaced), ``retain`` adds it to a request apply will record.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE_FIELD = "recipe_source"    # {path, text}: this run's own script
KEPT_FIELD = "kept_sources"       # [{digest, path, text}]: versions kept runs still use
SOURCE_FIELDS = frozenset({SOURCE_FIELD, KEPT_FIELD})
CODE_FIELDS = SOURCE_FIELDS | {"code_digest"}
MAX_SOURCE_BYTES = 64 * 1024
MAX_SCRIPT_DIFF_LINES = 80
SHORT = 12   # digest characters a reason shows


@dataclass(frozen=True)
class Source:
    """One version of a recipe script."""

    path: str
    digest: str
    text: str | None   # None: larger than MAX_SOURCE_BYTES, or not UTF-8 text

    def field(self) -> dict[str, str]:
        """What the request records (its ``recipe_source``)."""
        return {"path": self.path} if self.text is None else {"path": self.path,
                                                              "text": self.text}


def read_source(root: Path, path: str) -> Source | None:
    """The script at ``root / path`` (read once: its digest and, if small text, its text)."""
    try:
        data = (root / path).read_bytes()
    except OSError:
        return None
    text = None
    if len(data) <= MAX_SOURCE_BYTES:
        with contextlib.suppress(UnicodeDecodeError):
            text = data.decode("utf-8")
    return Source(path, hashlib.sha256(data).hexdigest(), text)


def without(request: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    fields = frozenset(fields)
    return {k: v for k, v in request.items() if k not in fields}


class Sources:
    """Script versions by digest, from requests (planned and stored)."""

    def __init__(self) -> None:
        self.by_digest: dict[str, Source] = {}
        self._changes: dict[tuple[Any, Any], tuple[str, list[str]]] = {}

    @classmethod
    def of(cls, requests: Iterable[dict[str, Any]]) -> Sources:
        sources = cls()
        for request in requests:
            sources.add(request)
        return sources

    def add(self, request: dict[str, Any]) -> None:
        self._add(request.get(SOURCE_FIELD), request.get("code_digest"))
        kept = request.get(KEPT_FIELD)
        for recorded in kept if isinstance(kept, list) else []:
            if isinstance(recorded, dict):
                self._add(recorded, recorded.get("digest"))

    def _add(self, recorded: Any, code: Any) -> None:
        if not isinstance(recorded, dict) or not isinstance(code, str):
            return
        path, text = recorded.get("path"), recorded.get("text")
        if not isinstance(path, str):
            return
        known = self.by_digest.get(code)
        if known is not None and (known.text is not None or not isinstance(text, str)):
            return
        # A text that does not hash to the digest (a state edited by hand) is not shown.
        if not isinstance(text, str) or hashlib.sha256(text.encode()).hexdigest() != code:
            text = None
        self.by_digest[code] = Source(path, code, text)

    def change(self, old: dict[str, Any], new: dict[str, Any]) -> tuple[str, list[str]]:
        """The reason for a code change between two requests, and the script's diff (empty
        when either text is not known)."""
        was, now = old.get("code_digest"), new.get("code_digest")
        if (was, now) not in self._changes:
            self._changes[was, now] = self._describe(was, now)
        return self._changes[was, now]

    def _describe(self, was: Any, now: Any) -> tuple[str, list[str]]:
        before = self.by_digest.get(was) if isinstance(was, str) else None
        after = self.by_digest.get(now) if isinstance(now, str) else None
        known = after or before
        path = known.path if known is not None else None
        if before is None or after is None or before.text is None or after.text is None:
            return (f"recipe {f'file {path}' if path else 'script'} changed "
                    f"(digest {_short(was)} → {_short(now)})"), []
        lines = [_printable(line) for line in difflib.unified_diff(
            before.text.splitlines(), after.text.splitlines(), f"{before.path} (applied)",
            f"{after.path} (planned)", lineterm="")]
        if len(lines) > MAX_SCRIPT_DIFF_LINES:
            lines = lines[:MAX_SCRIPT_DIFF_LINES] + [
                f"… {len(lines) - MAX_SCRIPT_DIFF_LINES} more lines"]
        return f"recipe script {path} edited", lines


def carried(request: dict[str, Any]) -> set[str]:
    """The script versions whose text ``request`` holds."""
    found = set()
    recorded, code = request.get(SOURCE_FIELD), request.get("code_digest")
    if isinstance(recorded, dict) and isinstance(recorded.get("text"), str) \
            and isinstance(code, str):
        found.add(code)
    kept = request.get(KEPT_FIELD)
    for entry in kept if isinstance(kept, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("digest"), str) \
                and isinstance(entry.get("text"), str):
            found.add(entry["digest"])
    return found


def retain(stored: list[dict[str, Any]], submitted: list[dict[str, Any]],
           sources: Sources) -> None:
    """Keep the text of every script version the state will still refer to in it: ``stored``
    are the requests apply leaves in the state, ``submitted`` the ones it will record. A
    version no request left carries (its one carrier is being replaced: a first run that
    failed while the others were kept on older code, or left out by ``--target``) is added
    to a submitted request: as its own ``recipe_source`` when it runs that version, else to
    the first one's ``kept_sources``. Adds each version once, so planning again changes
    nothing."""
    if not submitted:
        return  # the state keeps what it holds
    have = set().union(*map(carried, stored), *map(carried, submitted))
    for request in [*stored, *submitted]:
        code = request.get("code_digest")
        if not isinstance(code, str) or code in have:
            continue
        have.add(code)
        source = sources.by_digest.get(code)
        if source is None or source.text is None:
            continue
        carrier = next((r for r in submitted if r.get("code_digest") == code), None)
        if carrier is not None:
            carrier[SOURCE_FIELD] = source.field()
        else:
            submitted[0].setdefault(KEPT_FIELD, []).append({"digest": code, **source.field()})


def _short(value: Any) -> str:
    return value[:SHORT] if isinstance(value, str) else "(none)"


def _printable(line: str) -> str:
    """A diff line safe to print: control characters (an escape sequence in a comment)
    written as escapes, tabs kept."""
    if line.isprintable():
        return line
    return "".join(ch if ch.isprintable() or ch == "\t" else ascii(ch)[1:-1] for ch in line)
