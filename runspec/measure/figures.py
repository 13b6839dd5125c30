"""How measured numbers are written: fixed decimals, the same for a whole column.

A column's decimals come from its least certain-looking figure that still matters: enough
to show the narrowest 95% CI half-width to two significant digits (where no row has an
interval, the smallest mean to four). So 29093 and 5815 sit in one column as 29093 and
5815, never as 2.909e+04 next to 5815, and 0.0123 ± 0.0004 is not rounded to 0.01 ± 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

MAX_DECIMALS = 9
DEFAULT_DECIMALS = 2


def _needed(value: float, significant: int) -> int:
    return max(0, significant - 1 - math.floor(math.log10(abs(value))))


def column_decimals(halves: Iterable[float | None], means: Iterable[float]) -> int:
    """Decimals for a column of means (and half-widths)."""
    widths = [h for h in halves if h is not None and h > 0 and math.isfinite(h)]
    if widths:
        return min(MAX_DECIMALS, _needed(min(widths), 2))
    sizes = [abs(m) for m in means if m != 0 and math.isfinite(m)]
    if sizes:
        return min(MAX_DECIMALS, _needed(min(sizes), 4))
    return DEFAULT_DECIMALS


def fixed(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; never "-0.00"."""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def percent(fraction: float | None) -> str:
    if fraction is None:
        return "-"
    if fraction == 0:
        return "0.0%"
    return f"{fraction * 100:+.1f}%" if abs(fraction) >= 0.001 else f"{fraction * 100:+.2f}%"


def p_value(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"
