"""Did-you-mean hints: the closest allowed names to a misspelt one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The best match for ``word`` among ``choices``, if one is close enough to suggest."""
    options = [str(c) for c in choices]
    lowered = {o.lower(): o for o in options}
    if word.lower() in lowered:
        return lowered[word.lower()]
    matches = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """``did you mean "x"?`` or None."""
    match = closest(word, choices)
    return f'did you mean "{match}"?' if match is not None else None


def one_of(choices: Iterable[object], limit: int = 12) -> str:
    """``"a", "b" or "c"`` for listing what is allowed."""
    items = [f'"{c}"' if isinstance(c, str) else repr(c) for c in choices]
    if len(items) > limit:
        items = items[:limit] + ["…"]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
