"""Intervals for the audit: stratified percentile bootstrap over the kept citizens, drawn as multinomials
over distinct values (the same cost for 1,000 or 1,000,000 citizens), and the ratios built on them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .rundata import BOOTSTRAP, DI_LOW, DI_HIGH



def _boot_means(values: np.ndarray, rng: np.random.Generator, b: int = BOOTSTRAP) -> np.ndarray:
    """[b] bootstrap means of ``values`` (resampled with replacement), drawn as multinomials over distinct values."""
    n = len(values)
    if n == 0:
        return np.full(b, np.nan)
    uniq, counts = np.unique(values, return_counts=True)
    draws = rng.multinomial(n, counts / n, size=b)
    return draws @ uniq.astype(np.float64) / n


def _boot_cells(cells: np.ndarray, rng: np.random.Generator, b: int = BOOTSTRAP) -> np.ndarray:
    """[b, C] bootstrap counts of C cells (a resample of the citizens counted in ``cells``)."""
    n = int(cells.sum())
    if n == 0:
        return np.zeros((b, len(cells)))
    return rng.multinomial(n, cells / n, size=b).astype(np.float64)


def _ci(draws: np.ndarray) -> tuple[float, float]:
    d = draws[np.isfinite(draws)]
    if len(d) == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi)


def _di(a, b):
    """Disparate impact a / b of restriction rates: +inf when only the reference group is never restricted
    (the largest disparity, not a missing value), 1 when neither group is."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(b > 0, a / np.where(b > 0, b, 1), np.where(a > 0, np.inf, np.where(a == 0, 1.0, np.nan)))
    return out


def _di_flag(v: float) -> bool:
    return bool(not np.isnan(v) and (v < DI_LOW or v > DI_HIGH))


def _ratio(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(b) > 0, np.asarray(a, dtype=np.float64) / np.where(np.asarray(b) > 0, b, 1), np.nan)


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal; 1: one has everything)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() <= 0:
        return 0.0 if n else math.nan
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum.sum() / cum[-1])) / n)
