"""Deterministic YAML text for plain data, fast enough for 100,000 rendered configs.

A general YAML library is slow per document and its output depends on its settings; the
rendered configs only hold plain dicts, lists and scalars, so this emitter writes block
mappings, flow lists of scalars, and quotes every string YAML could misread.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any

_quoted = encode_basestring
"""``json.dumps(text, ensure_ascii=False)`` for a string, without building an encoder per
call (a 1,000-run job.yaml render quoted 21,000 strings)."""
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./@+-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def scalar(value: Any) -> str:
    if isinstance(value, str):
        return _text(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"  # YAML 1.1 (PyYAML) reads 1e-10 as a string, 1.0e-10 as a float
        return f"{mantissa}{e}{exponent}"
    return _text(str(value))


@lru_cache(maxsize=8192)
def _text(text: str) -> str:
    """A string as a YAML scalar, remembered: keys and most values (a stage, a command's
    words) repeat in every run's job.yaml."""
    if _PLAIN.match(text) and text.lower() not in _RESERVED and ": " not in text:
        return text
    return _quoted(text)


def _key(key: Any) -> str:
    return _text(key if isinstance(key, str) else str(key))


def _lines(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out.append(f"{pad}{_key(key)}:")
            _lines(item, indent + 1, out)
        elif isinstance(item, list) and any(isinstance(i, dict | list) for i in item):
            out.append(f"{pad}{_key(key)}:")
            for element in item:
                _sequence_item(element, indent + 1, out)
        else:
            out.append(f"{pad}{_key(key)}: {_inline(item)}")


def _sequence_item(element: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(element, dict) and element:
        nested: list[str] = []
        _lines(element, indent + 1, nested)
        first = nested[0].lstrip()
        out.append(f"{pad}- {first}")
        out.extend(nested[1:])
    else:
        out.append(f"{pad}- {_inline(element)}")


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{" + ", ".join(f"{_key(k)}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return scalar(value)


def dump(data: dict[str, Any]) -> str:
    """YAML text for a mapping of plain values; keys keep their order."""
    out: list[str] = []
    _lines(data, 0, out)
    return "\n".join(out) + "\n" if out else "{}\n"
