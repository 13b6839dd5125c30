"""Statistics of repeated measurements: summaries with 95% intervals, Welch's t-test, and
the Student t distribution they need (for fractional degrees of freedom, as Welch's
approximation gives), written out here so that measuring needs no scipy.

The t CDF is the regularized incomplete beta function, evaluated by its continued fraction
(modified Lentz); the quantile inverts it by Newton steps kept inside a bisection bracket.
Both agree with scipy.stats.t to about 1e-9 relative, tails included, for the degrees of freedom
campaigns have (tests/test_results.py holds figures scipy computed).
"""

from __future__ import annotations

import functools
import math
import random
import statistics
from dataclasses import dataclass
from enum import StrEnum

RELIABLE_N = 3
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


# -- the Student t distribution ---------------------------------------------------------------

def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified Lentz)."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            step = d * c
            h *= step
        if abs(step - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` (> 0, fractional allowed) degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t)."""
    return t_sf(-t, df)


def t_pdf(t: float, df: float) -> float:
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
                    - (df + 1) / 2 * math.log1p(t * t / df))


def t_ppf(q: float, df: float) -> float:
    """The quantile: the t with P(T ≤ t) = q, for 0 < q < 1."""
    if not 0.0 < q < 1.0 or not df > 0:
        return math.nan
    if q == 0.5:
        return 0.0
    tail = min(q, 1.0 - q)          # solve t_sf(t) = tail for t > 0, then mirror
    low, high = 0.0, 1.0
    while t_sf(high, df) > tail:
        low, high = high, high * 2.0
        if high > 1e300:
            break
    t = (low + high) / 2.0
    for _ in range(400):
        excess = t_sf(t, df) - tail  # > 0: t is too small
        if excess > 0:
            low = t
        else:
            high = t
        density = t_pdf(t, df)
        step = excess / density if density > 0 else math.inf
        following = t + step
        if not low < following < high:
            following = (low + high) / 2.0
        if abs(following - t) <= 1e-15 * max(1.0, abs(t)):
            t = following
            break
        t = following
    return t if q > 0.5 else -t


@functools.lru_cache(maxsize=4096)
def t_critical(df: float) -> float:
    """t(0.975, df): the half-width factor of a two-sided 95% interval (cached: every
    point of a campaign asks for the same few)."""
    if df < 1:
        return math.nan
    return t_ppf(0.5 + CONFIDENCE / 2, df)


# -- summaries --------------------------------------------------------------------------------

class CIMethod(StrEnum):
    """How a mean's 95% interval is computed."""

    T = "t"                   # Student t: mean ± t(0.975, n − 1) · s / √n
    BOOTSTRAP = "bootstrap"   # percentile bootstrap of the mean (seeded: the same every time)


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
    ci_method: CIMethod = CIMethod.T

    @property
    def unreliable(self) -> bool:
        return self.n < RELIABLE_N

    @property
    def half_width(self) -> float | None:
        """Half the interval's width (for a bootstrap interval, which need not be symmetric,
        the larger distance from the mean)."""
        if self.ci95_low is None or self.ci95_high is None:
            return None
        return max(self.mean - self.ci95_low, self.ci95_high - self.mean)


def bootstrap_interval(values: list[float], resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """The 2.5th and 97.5th percentiles (linear interpolation) of the means of ``resamples``
    resamples drawn with ``random.Random(seed)``: deterministic, and unlike the t-interval
    never outside the range of the values (so never below 0 for a non-negative quantity)."""
    n = len(values)
    if n < 2:
        return None
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(values, k=n)) / n for _ in range(resamples))

    def percentile(fraction: float) -> float:
        position = fraction * (len(means) - 1)
        below = math.floor(position)
        above = min(below + 1, len(means) - 1)
        return means[below] + (means[above] - means[below]) * (position - below)

    alpha = (1 - CONFIDENCE) / 2
    return percentile(alpha), percentile(1 - alpha)


def summarize(values: list[float], ci: CIMethod = CIMethod.T) -> Summary | None:
    if not values:
        return None
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else None
    cv = std / abs(mean) if std is not None and mean != 0 else None
    interval: tuple[float, float] | None = None
    if ci == CIMethod.BOOTSTRAP:
        interval = bootstrap_interval(values)
    elif std is not None:
        half = t_critical(n - 1) * std / math.sqrt(n)
        interval = (mean - half, mean + half)
    return Summary(n, mean, std, cv, min(values), max(values),
                   interval[0] if interval else None, interval[1] if interval else None, ci)


# -- two samples ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of B − A, and the 95% interval of that difference."""

    difference: float          # mean(B) − mean(A)
    se: float
    df: float                  # Welch–Satterthwaite
    t: float
    p: float                   # two-sided
    ci_low: float
    ci_high: float


def welch(n_a: int, mean_a: float, std_a: float, n_b: int, mean_b: float,
          std_b: float) -> Welch | None:
    """From each side's n, mean and sample standard deviation (so a summary exported by
    another checkout is enough); None when a side has fewer than 2 values. Two samples
    without any spread: the difference is exact (p = 1 if it is 0, else 0)."""
    if n_a < 2 or n_b < 2:
        return None
    var_a, var_b = std_a * std_a / n_a, std_b * std_b / n_b
    difference = mean_b - mean_a
    se = math.sqrt(var_a + var_b)
    if se == 0.0:
        return Welch(difference, 0.0, float(n_a + n_b - 2),
                     0.0 if difference == 0 else math.copysign(math.inf, difference),
                     1.0 if difference == 0 else 0.0, difference, difference)
    df = (var_a + var_b) ** 2 / (var_a * var_a / (n_a - 1) + var_b * var_b / (n_b - 1))
    t = difference / se
    p = min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))
    half = t_ppf(0.5 + CONFIDENCE / 2, df) * se
    return Welch(difference, se, df, t, p, difference - half, difference + half)


def welch_of(a: list[float], b: list[float]) -> Welch | None:
    """Welch's test of two samples' values."""
    if len(a) < 2 or len(b) < 2:
        return None
    return welch(len(a), statistics.fmean(a), statistics.stdev(a),
                 len(b), statistics.fmean(b), statistics.stdev(b))
