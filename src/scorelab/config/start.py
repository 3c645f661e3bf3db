"""Start scores per group: a fixed value, a parametric distribution, a histogram or an empirical CDF.

Written in a scenario as ``start = {...}`` on a group::

    start = { kind = "normal", mean = 700, sd = 80 }            # rounded, clipped to [low, high] if given
    start = { kind = "uniform", low = 600, high = 800 }          # whole scores low..high, equally likely
    start = { kind = "histogram", edges = [300, 500, 700, 850], weights = [1, 3, 2] }
    start = { kind = "cdf", scores = [300, 600, 850], cdf = [0, 0.4, 1] }  # linear between the points
    start = { kind = "cdf", csv = "white.csv" }                  # columns score,cdf, next to the scenario
    start = { kind = "discrete", scores = [580, 640, 700], weights = [1, 2, 1] }  # only these scores
    start = { kind = "discrete", csv = "white.csv" }             # columns score,weight

A CSV is read when the scenario is loaded (loader.py) and its numbers are kept in the model, so a run's
manifest holds the whole distribution and a resumed or repeated run needs no file. Sampling happens on
day 0 from a stream of its own per (shard, group), so it is reproducible and changing one group's
distribution leaves every other group's draws as they were.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from .strict import StrictModel, new_list

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]


_Strict = StrictModel  # config/strict.py: strict types, finite floats, no unknown keys


class FixedStart(_Strict):
    kind: Literal["fixed"]
    value: int = Field(ge=-30000, le=30000)

    def support(self) -> tuple[int, int]:
        return self.value, self.value


class NormalStart(_Strict):
    kind: Literal["normal"]
    mean: Finite
    sd: Annotated[float, Field(ge=0.0, le=1e5, allow_inf_nan=False)]
    low: int | None = Field(None, ge=-30000, le=30000, description="draws below are set to low")
    high: int | None = Field(None, ge=-30000, le=30000, description="draws above are set to high")

    @model_validator(mode="after")
    def _check(self) -> "NormalStart":
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def support(self) -> tuple[int, int]:
        lo = self.low if self.low is not None else math.floor(self.mean - 8 * self.sd)
        hi = self.high if self.high is not None else math.ceil(self.mean + 8 * self.sd)
        return int(lo), int(hi)


class UniformStart(_Strict):
    kind: Literal["uniform"]
    low: int = Field(ge=-30000, le=30000)
    high: int = Field(ge=-30000, le=30000)

    @model_validator(mode="after")
    def _check(self) -> "UniformStart":
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def support(self) -> tuple[int, int]:
        return self.low, self.high


def _read_csv(path: Path, columns: tuple[str, str]) -> tuple[list[float], list[float]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path} is not a CSV file ({e})") from None
    if not rows or any(c not in rows[0] for c in columns):
        raise ValueError(f"{path} needs the columns {', '.join(columns)}")
    out: tuple[list[float], list[float]] = ([], [])
    for i, row in enumerate(rows, start=2):
        for j, c in enumerate(columns):
            try:
                v = float(row[c])
            except (TypeError, ValueError):
                raise ValueError(f"{path} line {i}: {c} = {row[c]!r} is not a number") from None
            if not math.isfinite(v):
                raise ValueError(f"{path} line {i}: {c} = {row[c]!r} is not a finite number")
            out[j].append(v)
    return out


class HistogramStart(_Strict):
    """Bins [edges[i], edges[i+1]) with relative weights; a score is uniform over its bin's whole scores."""

    kind: Literal["histogram"]
    edges: list[Finite] = Field(default_factory=new_list, max_length=100_001)
    weights: list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = Field(default_factory=new_list, max_length=100_000)
    csv: str | None = Field(None, description="columns edge_low,weight (one row per bin) plus a last row's edge")

    @model_validator(mode="after")
    def _check(self) -> "HistogramStart":
        if len(self.edges) < 2:
            raise ValueError("edges: give at least two bin edges (or a csv)")
        if len(self.weights) != len(self.edges) - 1:
            raise ValueError(f"weights: {len(self.weights)} weights for {len(self.edges) - 1} bins; give one per bin")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError("edges: must be strictly increasing")
        if sum(self.weights) <= 0:
            raise ValueError("weights: at least one weight must be above 0")
        if self.edges[0] < -30000 or self.edges[-1] > 30001:
            raise ValueError("edges: scores must lie in -30000..30000")
        return self

    def support(self) -> tuple[int, int]:
        return math.ceil(self.edges[0]), math.ceil(self.edges[-1]) - 1


class CdfStart(_Strict):
    """An empirical CDF: P(score <= scores[i]) = cdf[i], linear between the points, rounded to whole scores."""

    kind: Literal["cdf"]
    scores: list[Finite] = Field(default_factory=new_list, max_length=100_000)
    cdf: list[Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]] = Field(default_factory=new_list, max_length=100_000)
    csv: str | None = Field(None, description="columns score,cdf")

    @model_validator(mode="after")
    def _check(self) -> "CdfStart":
        if len(self.scores) < 2:
            raise ValueError("scores: give at least two points of the CDF (or a csv)")
        if len(self.cdf) != len(self.scores):
            raise ValueError(f"cdf: {len(self.cdf)} values for {len(self.scores)} scores; give one per score")
        if any(b <= a for a, b in zip(self.scores, self.scores[1:])):
            raise ValueError("scores: must be strictly increasing")
        if any(b < a for a, b in zip(self.cdf, self.cdf[1:])):
            raise ValueError("cdf: must not decrease")
        if self.cdf[-1] < 1.0 - 1e-9 or self.cdf[-1] > 1.0 + 1e-9:
            raise ValueError(f"cdf: the last value must be 1 (it is {self.cdf[-1]:g})")
        if self.scores[0] < -30000 or self.scores[-1] > 30000:
            raise ValueError("scores: must lie in -30000..30000")
        return self

    def support(self) -> tuple[int, int]:
        return math.floor(self.scores[0]), math.ceil(self.scores[-1])


class DiscreteStart(_Strict):
    """Whole scores with relative weights: a citizen starts at scores[i] with probability weights[i] / sum.
    The form of a score table such as FICO's (Liu et al. 2018 use the table's scores as they are)."""

    kind: Literal["discrete"]
    scores: list[Annotated[int, Field(ge=-30000, le=30000)]] = Field(default_factory=new_list, max_length=100_000)
    weights: list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = Field(default_factory=new_list, max_length=100_000)
    csv: str | None = Field(None, description="columns score,weight")

    @model_validator(mode="after")
    def _check(self) -> "DiscreteStart":
        if not self.scores:
            raise ValueError("scores: give at least one score (or a csv)")
        if len(self.weights) != len(self.scores):
            raise ValueError(f"weights: {len(self.weights)} weights for {len(self.scores)} scores; give one per score")
        if any(b <= a for a, b in zip(self.scores, self.scores[1:])):
            raise ValueError("scores: must be strictly increasing whole numbers")
        if sum(self.weights) <= 0:
            raise ValueError("weights: at least one weight must be above 0")
        return self

    def support(self) -> tuple[int, int]:
        return self.scores[0], self.scores[-1]


StartScores = Annotated[Union[FixedStart, NormalStart, UniformStart, HistogramStart, CdfStart, DiscreteStart],
                        Field(discriminator="kind")]


def embed_csv(start: dict, base: Path) -> dict:
    """A raw ``start`` table with its ``csv`` read (relative to ``base``) into scores/cdf or edges/weights; the
    ``csv`` key is dropped, so that a dumped scenario (run.json, to_toml, sweeps) needs no file beside it."""
    if not isinstance(start, dict) or not isinstance(start.get("csv"), str):
        return start
    path = (base / start["csv"]).resolve()
    out = {k: v for k, v in start.items() if k != "csv"}  # the values are embedded: the scenario stands alone
    kind = start.get("kind")
    if kind == "cdf":
        out["scores"], out["cdf"] = _read_csv(path, ("score", "cdf"))
    elif kind == "histogram":
        lo, w = _read_csv(path, ("edge_low", "weight"))
        if len(lo) < 2:
            raise ValueError(f"{path}: give at least two rows (the last row's edge_low closes the last bin)")
        out["edges"], out["weights"] = lo, w[:-1]
    elif kind == "discrete":
        scores, out["weights"] = _read_csv(path, ("score", "weight"))
        if any(v != int(v) for v in scores):
            raise ValueError(f"{path}: the column score must hold whole numbers")
        out["scores"] = [int(v) for v in scores]
    else:
        raise ValueError("csv: only a start of kind 'cdf', 'histogram' or 'discrete' is read from a CSV file")
    return out


def sample_start(dist, n: int, rng: np.random.Generator) -> np.ndarray:
    """n whole start scores (int64) drawn from ``dist``."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if isinstance(dist, FixedStart):
        return np.full(n, dist.value, dtype=np.int64)
    if isinstance(dist, NormalStart):
        v = np.rint(dist.mean + dist.sd * rng.standard_normal(n))
        lo, hi = dist.support()
        return np.clip(v, lo, hi).astype(np.int64)
    if isinstance(dist, UniformStart):
        return rng.integers(dist.low, dist.high + 1, n, dtype=np.int64)
    if isinstance(dist, HistogramStart):
        w = np.asarray(dist.weights, dtype=np.float64)
        edges = np.asarray(dist.edges, dtype=np.float64)
        b = rng.choice(len(w), size=n, p=w / w.sum())
        lo = np.ceil(edges[b]).astype(np.int64)
        hi = np.ceil(edges[b + 1]).astype(np.int64) - 1  # whole scores inside [edge, next edge)
        hi = np.maximum(hi, lo)
        return lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(np.int64)
    if isinstance(dist, DiscreteStart):
        w = np.asarray(dist.weights, dtype=np.float64)
        return np.asarray(dist.scores, dtype=np.int64)[rng.choice(len(w), size=n, p=w / w.sum())]
    if isinstance(dist, CdfStart):
        xs = np.asarray(dist.scores, dtype=np.float64)
        ps = np.asarray(dist.cdf, dtype=np.float64)
        u = 1.0 - rng.random(n)  # (0, 1]; mass at or below scores[0] sits at scores[0]
        j = np.searchsorted(ps, u, side="left")  # ps[j-1] < u <= ps[j]: a segment of positive mass
        j = np.clip(j, 1, len(ps) - 1)
        p0, p1 = ps[j - 1], ps[j]
        frac = np.clip((u - p0) / np.where(p1 > p0, p1 - p0, 1.0), 0.0, 1.0)
        v = np.where(u <= ps[0], xs[0], xs[j - 1] + frac * (xs[j] - xs[j - 1]))
        return np.clip(np.rint(v), xs[0], xs[-1]).astype(np.int64)
    raise TypeError(f"unknown start distribution {dist!r}")  # pragma: no cover - the union is closed
