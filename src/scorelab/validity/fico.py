"""The FICO TransRisk tables of Hardt, Price & Srebro (2016), as Liu et al. (2018) use them.

The tables ship as package data (``scorelab/data/fico``, with their SOURCE.md): per TransRisk score (0-100
in steps of 0.5, a percentile of the national population), each group's cumulative share at or below it
(per cent) and the per cent of its accounts that went bad. As in the paper, a TransRisk score x (a national
percentile) is mapped to the FICO scale 300-850 through the national FICO distribution, linear inside each
50-point band; the engine's scores are whole numbers, so each table score is rounded to the nearest whole
FICO score (the table's scores stay distinct: the narrowest band step is 1.47 points).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import numpy as np

# Per cent of the national population in each 50-point FICO band from 300 to 850 (Liu et al. 2018, whose
# code reads it from the Federal Reserve's 2007 report).
NATIONAL_BANDS = (2.1, 4.2, 5.4, 6.5, 7.9, 9.6, 12.0, 13.8, 17.0, 15.8, 5.7)
FICO_LOW, FICO_HIGH = 300, 850
COLUMNS = {"white": "Non- Hispanic white", "black": "Black", "hispanic": "Hispanic", "asian": "Asian"}


def _read(name: str) -> tuple[list[str], list[list[float]]]:
    text = resources.files("scorelab").joinpath("data", "fico", name).read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines()))
    return rows[0], [[float(v) for v in r] for r in rows[1:] if r]


def transrisk_to_fico(x) -> np.ndarray:
    """FICO score of each TransRisk score (national percentile, 0-100): linear inside the national bands."""
    cum = np.concatenate([[0.0], np.cumsum(NATIONAL_BANDS)])
    cum[-1] = 100.0  # the bands add up to 100 per cent (float sums drift by 1e-14)
    edges = np.arange(FICO_LOW, FICO_HIGH + 1, 50, dtype=np.float64)
    return np.interp(np.asarray(x, dtype=np.float64), cum, edges)


@dataclass(frozen=True)
class GroupTable:
    """One group on the FICO scale: the table's scores, the share of the group at each, P(repay) at each."""

    name: str
    share: float  # of the two (or more) groups together, from totals.csv
    fico: np.ndarray  # [m] float: the table's scores on the FICO scale
    scores: np.ndarray  # [m] int64: the same, rounded to whole scores (what the engine holds)
    pmf: np.ndarray  # [m] share of the group at each score (sums to 1)
    repay: np.ndarray  # [m] P(repay | score) = 1 - performance / 100


def load(groups: tuple[str, ...] = ("white", "black")) -> dict[str, GroupTable]:
    """The tables of ``groups`` (shares normalised over them), keyed by group name."""
    unknown = [g for g in groups if g not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown group {unknown[0]!r}; the FICO tables have {', '.join(COLUMNS)}")
    head_c, cdf = _read("transrisk_cdf_by_race_ssa.csv")
    head_p, perf = _read("transrisk_performance_by_race_ssa.csv")
    head_t, tot = _read_totals()
    cdf_a, perf_a = np.asarray(cdf), np.asarray(perf)
    x = cdf_a[:, 0]
    if not np.array_equal(x, perf_a[:, 0]):
        raise ValueError("the FICO tables' scores differ between the CDF and the performance table")
    fico = transrisk_to_fico(x)
    total = sum(tot[COLUMNS[g]] for g in groups)
    out = {}
    for g in groups:
        c = cdf_a[:, head_c.index(COLUMNS[g])] / 100.0
        pmf = np.diff(np.concatenate([[0.0], c]))
        pmf = np.clip(pmf, 0.0, None)
        pmf = pmf / pmf.sum()
        repay = 1.0 - perf_a[:, head_p.index(COLUMNS[g])] / 100.0
        out[g] = GroupTable(g, tot[COLUMNS[g]] / total, fico, np.rint(fico).astype(np.int64), pmf, repay)
    return out


def _read_totals() -> tuple[list[str], dict[str, float]]:
    text = resources.files("scorelab").joinpath("data", "fico", "totals.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines()))
    return rows[0], {k: float(v) for k, v in zip(rows[0][1:], rows[1][1:])}
