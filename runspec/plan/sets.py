"""``--set KEY=VALUE`` arguments: the key path, and the value in the manifest's own language.

For a TOML manifest VALUE is the right side of a TOML ``key = VALUE``; for YAML, what
follows ``key:``. A malformed value is a diagnostic at ``--set:N`` that quotes the argument
and says how to write it (YAML syntax given to a TOML manifest is shown in TOML, and the
other way round).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from runspec.manifest.document import format_path
from runspec.manifest.errors import Diagnostic, ManifestError


def parse_set(assignment: str, notation: str = "yaml", index: int = 1) -> tuple[list[str], Any]:
    """``campaign.cycles=1`` → (["campaign", "cycles"], 1); quoted segments keep their dots.

    VALUE is written in the manifest's own language (``notation``): for TOML the right side
    of ``key = VALUE``, for YAML the value after ``key:``. An unquoted word that is not a
    value of that language (``--set name=foo`` in TOML) is taken as the string it spells;
    an unclosed table, list or string, or a malformed number, is an error at ``--set:N``
    (``index``, the argument's place on the command line)."""
    if "=" not in assignment:
        raise ManifestError([Diagnostic("--set", index, 1, assignment, "expected key=value",
                                        'for example --set campaign.cycles=1',
                                        length=len(assignment), source=_shown(assignment))])
    key, _, raw = assignment.partition("=")
    parts, current, quoted = [], "", False
    for char in key.strip():
        if char == '"':
            quoted = not quoted
        elif char == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    where = _SetValue(assignment, index, len(key) + 2, tuple(parts))
    if not raw.strip():
        value: Any = ""
    elif notation == "toml":
        value = _toml_set_value(raw, where)
    else:
        value = _yaml_set_value(raw, where)
    from runspec.manifest.load import bounded

    return parts, bounded(value, "--set", tuple(parts))


@dataclass(frozen=True)
class _SetValue:
    """Where a ``--set`` value sits: the argument, its place, the value's column, its key."""

    assignment: str
    index: int
    col: int
    parts: tuple[str, ...]

    @property
    def key(self) -> str:
        """The key as the argument writes it (``sweep.parameters."optim.lr"``)."""
        return self.assignment[:self.col - 2].strip()

    def error(self, language: str, reason: str, hint: str | None, offset: int | None = None
              ) -> ManifestError:
        """``--set:N:COL: error: KEY: invalid TOML value …``, at ``offset`` into the value
        (the whole value where the parser points past its end)."""
        raw = self.assignment[self.col - 1:]
        inside = offset is not None and 0 <= offset < len(raw)
        col = self.col + (offset if inside and offset is not None else 0)
        length = 1 if inside else max(len(raw.rstrip()), 1)
        message = (f"invalid {language} value (--set values are written in the manifest's "
                   f"{language}): {reason}")
        return ManifestError([Diagnostic("--set", self.index, col, format_path(self.parts),
                                         message, hint, length=length,
                                         source=_shown(self.assignment))])


def _shown(assignment: str) -> str | None:
    """The argument as a source line under a diagnostic, unless it is a wall of text."""
    return assignment if len(assignment) <= 400 and "\n" not in assignment else None


_BRACKETED = ("{", "[", '"', "'")
_NUMBERISH = re.compile(r"[+-]?[0-9._eE:+-]*[0-9][0-9._eE:+-]*")
"""Text that means a number (or a time) but is not a valid one: ``.5``, ``1.``, ``1:00:00``."""
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_set_value(raw: str, where: _SetValue) -> Any:
    """``raw`` as the right side of a TOML ``key = value`` (``{a = 1}``, ``[1, 2]``, ``1e-4``,
    ``"text"``); an unquoted word that is not TOML is that word, as a string."""
    from runspec.manifest.load import parse_toml

    prefix = "v = "
    try:
        data, _ = parse_toml(prefix + raw, "--set")
    except ManifestError as error:
        found = error.diagnostics[0]
        text = raw.strip()
        syntax = found.message.startswith("invalid TOML: ")
        if syntax and not text.startswith(_BRACKETED) and not _NUMBERISH.fullmatch(text):
            return text  # a bare word: --set name=foo
        reason = re.sub(r" \(first set on line \d+\)$", "", found.message.removeprefix(
            "invalid TOML: "))
        offset = found.col - 1 - len(prefix) if found.line == 1 else None
        if not syntax:  # too deep, a number too long: the loader's own account
            raise where.error("TOML", reason, found.hint, offset) from None
        if _NUMBERISH.fullmatch(text):
            reason, offset = f"{text} is not a TOML number, date or time", None
        hint = _toml_hint(reason, text, found.hint, where.key)
        raise where.error("TOML", reason, hint, offset) from None
    if set(data) != {"v"}:
        extra = next(k for k in data if k != "v")
        raise where.error("TOML", f'a second key "{extra}" follows the value',
                          "a --set sets one key: give each its own --set") from None
    return data["v"]


def _toml_hint(reason: str, text: str, parser_hint: str | None, key: str) -> str | None:
    """What to write instead: YAML syntax turned into TOML, the missing bracket, a number."""
    if reason.startswith("unclosed inline table"):
        return 'close the inline table with }, e.g. {distribution = "uniform", min = 0, max = 1}'
    if reason.startswith("unclosed array"):
        return "close the list with ], e.g. [1, 2]"
    if reason.startswith("unterminated string"):
        return ("close the string with its quote, and quote the whole argument for the "
                f"""shell: --set '{key}="a b"'""")
    if text.startswith(("{", "[")):
        toml = _as_toml(_yaml_or_none(text)) if len(text) <= 1000 else None
        if toml is not None:
            return f"that is YAML; in TOML write {toml}"
        return ('inline tables are written {key = value, other = 1}, lists [1, 2], strings '
                'in double quotes')
    if _NUMBERISH.fullmatch(text):
        if text.startswith("."):
            return f"TOML numbers need a digit before the point: 0{text}"
        if text.endswith("."):
            return f"TOML numbers need a digit after the point: {text}0"
        return f"""quote it to mean a string: --set '{key}="{text}"'"""
    return parser_hint


def _yaml_or_none(text: str) -> Any:
    from ruamel.yaml import YAML

    try:
        return YAML(typ="safe").load(text)
    except Exception:
        return None


def _as_toml(value: Any) -> str | None:
    """``value`` as an inline TOML value, or None where it holds what TOML cannot write."""
    import json

    if isinstance(value, dict) and value:
        items = []
        for key, item in value.items():
            shown = _as_toml(item)
            if shown is None:
                return None
            name = str(key) if _BARE_KEY.match(str(key)) else json.dumps(str(key))
            items.append(f"{name} = {shown}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list) and value:
        shown_items = [_as_toml(item) for item in value]
        if any(item is None for item in shown_items):
            return None
        return "[" + ", ".join(str(item) for item in shown_items) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return json.dumps(value) if not isinstance(value, bool) else str(value).lower()
    return None


def _yaml_set_value(raw: str, where: _SetValue) -> Any:
    """``raw`` as a YAML value (``{a: 1}``, ``[1, 2]``, ``1e-4``); text YAML cannot read is
    taken as it stands, unless it opens a flow table, list or quoted string."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError

    try:
        value = YAML(typ="safe").load(raw)
    except Exception as error:
        text = raw.strip()
        if not text.startswith(_BRACKETED):
            return raw
        mark = error.problem_mark if isinstance(error, MarkedYAMLError) else None
        problem = (error.problem if isinstance(error, MarkedYAMLError) else None) or "syntax error"
        offset = mark.index if mark is not None and mark.line == 0 else None
        hint = ("close the string with its quote, and quote the whole argument for the shell: "
                f"""--set '{where.key}="a b"'""" if text.startswith(('"', "'")) else
                "flow tables are written {key: value, other: 1}, lists [1, 2]; close every "
                "bracket")
        raise where.error("YAML", problem, hint, offset) from None
    if isinstance(value, dict) and any("=" in str(k) and v is None for k, v in value.items()):
        toml = _toml_or_none(raw)  # {a = 1} reads as YAML too: as the key "a = 1"
        if toml is not None:
            from runspec.manifest.suggest import literal

            raise where.error("YAML", "a TOML inline table, which YAML reads as keys "
                              "with no values", f"in YAML write {literal('yaml', toml)}")
    return value


def _toml_or_none(raw: str) -> Any:
    import tomllib

    if len(raw) > 1000:
        return None
    try:
        return tomllib.loads("v = " + raw)["v"]
    except Exception:
        return None
