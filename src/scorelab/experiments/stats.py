"""Paired differences with Student-t confidence intervals (no SciPy needed).

The t distribution's CDF for an integer number of degrees of freedom has a closed form (Abramowitz &
Stegun 26.7.3-4); its quantile is found by bisection. Exact to the bisection tolerance (1e-10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with ``df`` degrees of freedom (A&S 26.7.3, 26.7.4)."""
    if t <= 0:
        return 0.0
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        term, acc = c, c
        for k in range(3, df - 1, 2):  # cos θ (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + ...)
            term *= c * c * (k - 1) / k
            acc += term
        return 2.0 / math.pi * (theta + s * acc)
    term, acc = 1.0, 1.0
    for k in range(2, df - 1, 2):  # 1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ...
        term *= c * c * (k - 1) / k
        acc += term
    return s * acc


def t_quantile(confidence: float, df: int) -> float:
    """The t value with P(|T| <= t) = confidence (e.g. 0.95 -> 12.706 for df=1, 2.571 for df=5)."""
    if df < 1:
        raise ValueError("a t interval needs at least 1 degree of freedom (2 replicates)")
    if df > 2000:  # the series gets long; the normal limit is within 1e-3 there
        lo, hi = 0.0, 10.0
        f = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2))) * 2 - 1  # noqa: E731
    else:
        lo, hi = 0.0, 1.0
        f = lambda x: t_two_sided_mass(x, df)  # noqa: E731
        while f(hi) < confidence:
            hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) < confidence:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Paired:
    """Mean of paired differences (arm minus baseline) over replicates, with a t interval."""

    n: int
    baseline_mean: float
    arm_mean: float
    diff_mean: float
    diff_sd: float  # NaN with one replicate
    ci_low: float  # NaN with one replicate: a CI needs >= 2
    ci_high: float
    confidence: float

    @property
    def has_ci(self) -> bool:
        return self.n >= 2 and not math.isnan(self.ci_low)

    @property
    def excludes_zero(self) -> bool:
        return self.has_ci and (self.ci_low > 0 or self.ci_high < 0)


def paired(baseline: np.ndarray, arm: np.ndarray, confidence: float = 0.95) -> Paired:
    """Paired difference ``arm - baseline`` over replicates (pairs with a NaN on either side are dropped)."""
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(arm, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    n = int(len(a))
    nan = float("nan")
    if n == 0:
        return Paired(0, nan, nan, nan, nan, nan, nan, confidence)
    d = b - a
    mean = float(d.mean())
    if n < 2:
        return Paired(n, float(a.mean()), float(b.mean()), mean, nan, nan, nan, confidence)
    sd = float(d.std(ddof=1))
    half = t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    return Paired(n, float(a.mean()), float(b.mean()), mean, sd, mean - half, mean + half, confidence)


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of ``values`` (NaNs dropped) with a Student-t interval: (mean, low, high, n); NaN bounds below n = 2."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    n = int(len(v))
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t_quantile(confidence, n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n
