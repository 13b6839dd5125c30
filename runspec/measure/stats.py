"""Summary statistics of repeated measurements: n, mean, std, CV, min, max, 95% t-interval."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# Two-sided 95% Student t critical values, t(0.975, df), for df = 1…30.
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
         2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
         2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
         2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)
RELIABLE_N = 3


def t_critical(df: int) -> float:
    """t(0.975, df): the table up to 30, then a Cornish–Fisher expansion (error < 1e-4)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963985
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None          # sample standard deviation (n − 1)
    cv: float | None           # std / |mean|
    min: float
    max: float
    ci95_low: float | None
    ci95_high: float | None

    @property
    def unreliable(self) -> bool:
        return self.n < RELIABLE_N


def summarize(values: list[float]) -> Summary | None:
    if not values:
        return None
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else None
    cv = std / abs(mean) if std is not None and mean != 0 else None
    half = t_critical(n - 1) * std / math.sqrt(n) if std is not None else None
    return Summary(n, mean, std, cv, min(values), max(values),
                   mean - half if half is not None else None,
                   mean + half if half is not None else None)
