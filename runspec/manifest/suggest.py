"""Did-you-mean hints: the closest allowed names to a misspelt one."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ALIASES = {
    "python": ("direct", '"direct" runs the script with python'),
    "python3": ("direct", '"direct" runs the script with python'),
    "torch": ("torchrun", None),
    "torch.distributed.run": ("torchrun", None),
}
"""Words users bring from other tools, and the value runspec calls the same thing."""


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The best match for ``word`` among ``choices``, if one is close enough to suggest."""
    options = [str(c) for c in choices]
    lowered = {o.lower(): o for o in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    matches = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    if matches:
        return matches[0]
    # A truncated name ("gpus" for "gpus_per_node") is a near miss too, if it is unambiguous.
    prefixed = [o for o in options if len(word) >= 3 and o.lower().startswith(word.lower())]
    return prefixed[0] if len(prefixed) == 1 else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """``did you mean "x"?`` or None; knows a few aliases from other tools (python → direct)."""
    choices = list(choices)
    alias = ALIASES.get(word)
    if alias and alias[0] in choices:
        return f'did you mean "{alias[0]}"?' + (f" ({alias[1]})" if alias[1] else "")
    match = closest(word, choices)
    return f'did you mean "{match}"?' if match is not None else None


def suggested(hint: str | None) -> str | None:
    """The name a did-you-mean hint suggests, if it is one."""
    found = re.match(r'did you mean "(.*?)"\?', hint or "")
    return found.group(1) if found else None


def all_of(items: Iterable[object]) -> str:
    """``"a", "b" and "c"`` for listing what exists."""
    return one_of(items).replace(" or ", " and ")


_PLAIN_YAML = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def literal(fmt: str, value: Any) -> str:
    """``value`` written as ``fmt`` (toml or yaml) would write it, inline."""
    if isinstance(value, dict):
        sep = " = " if fmt == "toml" else ": "
        inner = ", ".join(f"{k}{sep}{literal(fmt, v)}" for k, v in value.items())
        return f"{{ {inner} }}" if fmt == "toml" else f"{{{inner}}}"
    if isinstance(value, str) and fmt == "yaml" and _PLAIN_YAML.match(value) and value not in (
            "true", "false", "null", "yes", "no", "on", "off"):
        return value
    return json.dumps(value)


def assignment(fmt: str, key: str, value: Any) -> str:
    """```key = "v"``` in TOML, ```key: v``` in YAML (with backticks)."""
    return f"`{key} = {literal(fmt, value)}`" if fmt == "toml" else f"`{key}: {literal(fmt, value)}`"


def table(fmt: str, dotted: str) -> str:
    """```[a.b]``` in TOML, ```a.b``` in YAML."""
    return f"`[{dotted}]`" if fmt == "toml" else f"`{dotted}`"


def one_of(choices: Iterable[object], limit: int = 12) -> str:
    """``"a", "b" or "c"`` for listing what is allowed (long lists say how many are left)."""
    items = [f'"{c}"' if isinstance(c, str) else json.dumps(c) for c in choices]
    if len(items) > limit:
        items = items[: limit - 1] + [f"{len(items) - limit + 1} more"]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def did_you_mean_file(value: str, base: Path) -> str | None:
    """A near-miss for a missing file, written the way the user wrote the path."""
    target = base / value
    if not target.parent.is_dir():
        return None
    candidates = [p for p in target.parent.iterdir() if p.is_file()]
    same_suffix = {p.stem: p.name for p in candidates if p.suffix == target.suffix}
    match = closest(target.stem, same_suffix) if same_suffix else None
    if match is None:
        return None
    folder = value.rsplit("/", 1)[0] + "/" if "/" in value else ""
    return f'did you mean "{folder}{same_suffix[match]}"?'
