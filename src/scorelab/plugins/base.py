"""The mechanism plugin interface: what a mechanism brings, and the shard context it runs in.

A mechanism is one class, registered once in ``plugins/__init__.py``. It brings

* its config (a pydantic model the policy or scenario holds) and ``check(scenario)`` for cross-references;
* ``compile(scenario, params)`` -> its frozen tables (or None when the scenario does not use it);
* ``rules`` and ``targets`` it adds to the event log (rule names of its score changes, names of the lists
  or states its ``enter``/``leave`` events act on);
* ``metrics``: the per-day, per-group outputs it declares (name, kind, unit, meaning) — the store, the run
  summary and the report read these declarations, never name prefixes;
* per-shard state and the stages it joins: ``pre_score`` (before scores change; returns the citizens it will
  touch), ``apply`` (after the rules' points), ``end_day`` (after the aggregates), ``citizens`` (its
  per-citizen outputs).

The kernel calls the active mechanisms' stages in registry order; a mechanism draws from its own random
stream (``ctx.rng``), so switching it on never moves the behaviour streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

Kind = Literal["count", "stock", "sum", "mean"]


@dataclass(frozen=True)
class Metric:
    """One declared output column of metrics.parquet (per day and group, and `all`).

    kind: ``count`` events that day; ``stock`` citizens in a state at the end of the day (``target``: the
    event-log target whose enter/leave events give each citizen's days in it); ``sum`` a quantity that day;
    ``mean`` a ratio of two sums (``<name>.num`` / ``<name>.den``)."""

    name: str
    kind: Kind
    unit: str
    meaning: str
    target: str | None = None


class ShardContext:
    """What a mechanism may read and write in one shard: sizes, metrics, the event log, its own stream."""

    def __init__(self, P, spec, sizes: np.ndarray, starts: np.ndarray, bounds: np.ndarray,
                 metrics: dict[str, np.ndarray], log, rule_code: dict[str, int], target_code: dict[str, int]):
        self.P, self.spec, self.sizes, self.starts, self.bounds = P, spec, sizes, starts, bounds
        self.n, self.G, self.T = int(sizes.sum()), len(sizes), P.days
        self.metrics, self.log = metrics, log
        self.rule_code, self.target_code = rule_code, target_code

    def rng(self, key: int) -> np.random.Generator:
        """The mechanism's own stream in this shard (``key``: a number the mechanism owns)."""
        ss = np.random.SeedSequence(self.spec.seed, spawn_key=(self.spec.index, 0x9106, key))
        return np.random.Generator(np.random.PCG64(ss))

    def group_of(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.bounds, ids, side="right")

    def count(self, ids: np.ndarray, weights=None) -> np.ndarray:
        return np.bincount(self.group_of(ids), weights=weights, minlength=self.G)

    def declare(self, metric: Metric) -> None:
        if metric.kind == "mean":
            for part in ("num", "den"):
                self.metrics.setdefault(f"{metric.name}.{part}", np.zeros((self.T, self.G)))
        else:
            self.metrics.setdefault(metric.name, np.zeros((self.T, self.G), dtype=np.int64))

    def score_change(self, t: int, ids: np.ndarray, delta: np.ndarray, score: np.ndarray, rule: str) -> None:
        """Add ``delta`` to the scores of ``ids``: a score event of ``rule``, and the points metrics."""
        if len(ids) == 0:
            return
        delta = np.broadcast_to(np.asarray(delta, dtype=np.int64), (len(ids),))
        score[ids] = (score[ids].astype(np.int64) + delta).astype(score.dtype)
        self.log.emit("score", t, ids, rule=self.rule_code[rule], points=delta)
        pos = self.count(ids, weights=np.maximum(delta, 0).astype(np.float64))
        neg = self.count(ids, weights=np.maximum(-delta, 0).astype(np.float64))
        self.metrics["points_awarded"][t] += pos.astype(np.int64)
        self.metrics["points_deducted"][t] += neg.astype(np.int64)


class Mechanism:
    """Base class of a mechanism plugin: override what the mechanism needs."""

    name: ClassVar[str]

    # ---- declared once, from the scenario ----
    @staticmethod
    def check(sc) -> None:
        """Raise ValueError naming the field when the mechanism's config refers to unknown names."""

    @staticmethod
    def compile(sc, params) -> Any | None:
        """Frozen tables for the kernel, or None when the scenario does not use this mechanism."""
        return None

    @staticmethod
    def rules(compiled) -> list[str]:
        return []

    @staticmethod
    def targets(compiled) -> list[str]:
        return []

    @staticmethod
    def metrics(compiled, params) -> list[Metric]:
        return []

    @staticmethod
    def max_daily_points(compiled) -> int:
        """Largest score change per citizen and day the mechanism can make (sizes the score's dtype)."""
        return 0

    @staticmethod
    def citizen_bytes(compiled) -> float:
        """Resident bytes per citizen of the mechanism's shard state (memory estimates)."""
        return 0.0

    # ---- per shard ----
    def __init__(self, compiled, ctx: ShardContext):
        self.c, self.ctx = compiled, ctx
        for m in self.metrics(compiled, ctx.P):
            ctx.declare(m)

    def pre_score(self, t: int, obs: list, true_ids: list[np.ndarray], score: np.ndarray, listed) -> list[np.ndarray]:
        return []

    def apply(self, t: int, obs: list, score: np.ndarray, listed, calendar: dict) -> None:
        pass

    def end_day(self, t: int, touched: np.ndarray) -> None:
        pass

    def citizens(self, ids: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
        return {}
