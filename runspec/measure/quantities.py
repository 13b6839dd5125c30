"""What each measured quantity is: its unit, which direction is better, and its bounds.

Tables, comparisons and plots ask here, so that "energy" is shown in Wh everywhere it is
shown, and a verdict says "slower" only of something where lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runspec.measure.metrics import is_throughput


class Better(StrEnum):
    LOWER = "lower"
    HIGHER = "higher"
    UNKNOWN = "unknown"      # a recipe metric that is not the primary: no verdict of worth


@dataclass(frozen=True)
class Quantity:
    """One metric: ``name`` as in result.json and the JSON output (native units there),
    ``label``/``unit``/``scale`` as tables and plots show it."""

    name: str
    label: str
    unit: str | None = None          # the shown unit
    native_unit: str | None = None   # the unit of the value in result.json
    scale: float = 1.0               # shown = native × scale
    better: Better = Better.UNKNOWN
    speed: bool = False              # verdicts say faster/slower rather than better/worse
    nonnegative: bool = False        # a 95% CI below 0 crosses a physical bound
    builtin: bool = False            # measured by runspec itself, not reported by the recipe

    @property
    def header(self) -> str:
        return f"{self.label} {self.unit}" if self.unit else self.label


WALL = Quantity("wall_s", "wall", "s", "s", better=Better.LOWER, speed=True, nonnegative=True,
                builtin=True)
PEAK_RSS = Quantity("peak_rss_mb", "peak RSS", "MB", "MB", better=Better.LOWER,
                    nonnegative=True, builtin=True)
ENERGY = Quantity("energy_kwh", "energy", "Wh", "kWh", 1000.0, Better.LOWER, nonnegative=True,
                  builtin=True)
EMISSIONS = Quantity("emissions_kg", "emissions", "g CO₂e", "kg CO₂e", 1000.0, Better.LOWER,
                     nonnegative=True, builtin=True)
BUILTINS = {q.name: q for q in (WALL, PEAK_RSS, ENERGY, EMISSIONS)}


def quantity(name: str, primary: str | None = None, goal: str = "max",
             nonnegative: bool = False) -> Quantity:
    """The quantity of metric ``name``. A recipe metric is better higher if it is the
    primary with goal "max" or a throughput (``…_per_s``), lower if it is the primary with
    goal "min"; ``nonnegative``: every value seen is ≥ 0, so it is treated as bounded."""
    if name in BUILTINS:
        return BUILTINS[name]
    if name == primary:
        better = Better.LOWER if goal == "min" else Better.HIGHER
    elif is_throughput(name):
        better = Better.HIGHER
    else:
        better = Better.UNKNOWN
    return Quantity(name, name, better=better, speed=is_throughput(name),
                    nonnegative=nonnegative)
