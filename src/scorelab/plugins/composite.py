"""Composite scores (Sesame / Zhima Credit): sub-scores on a 0-100 scale, combined by weight into a score
between ``low`` and ``high`` at every monthly update.

Config: ``[policy.composite]`` and ``policy.rules[].subscore`` (config/extensions.py). A rule with a
sub-score moves that sub-score, not the score (its event is recorded with 0 points); a sub-score with
``contacts`` is the mean score of the citizen's contacts in a network (plugins/graphs.py). Sub-scores start
per group from the legacy ``init`` stream.

Events: score changes of rule ``monthly_update``. Metrics: ``subscore_<name>`` (means as of the last update).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config.extensions import per_group_level
from .base import Mechanism, Metric


@dataclass(frozen=True)
class CompositeTables:
    low: int
    high: int
    every: int
    names: tuple[str, ...]
    weights: np.ndarray  # [S]
    initial: np.ndarray  # [S, G]
    spread: np.ndarray  # [S]
    contacts: tuple[str | None, ...]  # [S] network name for connection sub-scores
    subscore_of: np.ndarray  # [B] sub-score index, -1 none


class Composite(Mechanism):
    name = "composite"
    config = "policy.composite, policy.rules[].subscore"

    @staticmethod
    def compile(sc, params) -> CompositeTables | None:
        c = sc.policy.composite
        if not c:
            return None
        names = [s.name for s in c.subscores]
        behaviours = list(params.behaviours)
        subscore_of = np.full(len(behaviours), -1, dtype=np.int64)
        for r in sc.policy.rules:
            if r.subscore is not None:
                subscore_of[behaviours.index(r.behaviour)] = names.index(r.subscore)
        return CompositeTables(c.low, c.high, c.update_every, tuple(names), np.array([s.weight for s in c.subscores]),
                               np.array([per_group_level(sc, s.initial) for s in c.subscores]),
                               np.array([s.spread for s in c.subscores]), tuple(s.contacts for s in c.subscores),
                               subscore_of)

    @staticmethod
    def rules(c: CompositeTables) -> list[str]:
        return ["monthly_update"]

    @staticmethod
    def metrics(c: CompositeTables, params) -> list[Metric]:
        return [Metric(f"subscore_{name}", "mean", "0-100", f"mean sub-score {name} as of the last monthly update")
                for name in c.names]

    @staticmethod
    def max_daily_points(c: CompositeTables) -> int:
        return int(c.high - c.low)  # the monthly update sets the score within [low, high]

    @staticmethod
    def citizen_bytes(c: CompositeTables) -> float:
        return 4 * len(c.names) + 16

    @staticmethod
    def extra_rows(c: CompositeTables, penalty_rows: float) -> float:
        return 1.0 / c.every

    def __init__(self, c: CompositeTables, S):
        super().__init__(c, S)
        rng = S.legacy_stream("init")
        self.subs = np.empty((len(c.names), S.n), dtype=np.float32)
        gid = np.repeat(np.arange(S.G), S.sizes)
        for s in range(len(c.names)):
            v = c.initial[s][gid] + c.spread[s] * rng.standard_normal(S.n)
            self.subs[s] = np.clip(v, 0.0, 100.0)
        self.events: list[tuple[int, np.ndarray, bool]] = []

    def observe(self, S, D) -> None:
        """Sub-score rules do not touch the score directly: their observations move the sub-scores."""
        keep = []
        for entry in D.obs:
            (keep if self.c.subscore_of[entry[0]] < 0 else self.events).append(entry)
        D.obs[:] = keep

    def pre_score(self, S, D) -> None:
        if D.t % self.c.every == 0:
            D.extra.append(np.arange(S.n))

    def apply(self, S, D) -> None:
        c, P, t = self.c, S.P, D.t
        for b, ids, false in self.events:
            if len(ids) == 0:
                continue
            s = int(c.subscore_of[b])
            self.subs[s, ids] = np.clip(self.subs[s, ids] + P.points[b], 0.0, 100.0)
            # the event, for the record; the score moves monthly
            S.log.emit("score", t, ids, rule=b, points=0, sensor=int(P.sensor_of[b]), false=false)
            cnt = S.count(ids).astype(np.int64)
            if P.points[b] < 0:
                S.metrics["penalties"][t] += cnt
                if false:
                    S.metrics["wrongful_penalties"][t] += cnt
            elif false:
                S.metrics["wrongful_rewards"][t] += cnt
        self.events = []
        if t % c.every != 0:
            return
        span = c.high - c.low
        conn = [s for s, x in enumerate(c.contacts) if x is not None]
        fixed = [s for s, x in enumerate(c.contacts) if x is None]
        base = np.zeros(S.n)
        for s in fixed:
            base += c.weights[s] * self.subs[s]
        if conn:
            w_fixed = c.weights[fixed].sum()
            # contacts' scores as of the start of the day; on day 0 everyone still holds the start score,
            # so the contacts' own-record estimate stands in for it
            # (the scores as they are, whole numbers: means over contacts sum them exactly as integers)
            ref = (c.low + span * (base / max(w_fixed, 1e-12)) / 100.0) if t == 0 else S.score
            networks = S.plugins["graphs"].networks
            for s in conn:
                mean = networks[c.contacts[s]].mean_over_contacts(ref, empty=c.low)
                self.subs[s] = np.clip((mean - c.low) / span * 100.0, 0.0, 100.0)
                base += c.weights[s] * self.subs[s]
        new = np.clip(np.rint(c.low + span * base / 100.0), c.low, c.high).astype(np.int64)
        delta = new - S.score.astype(np.int64)
        ch = np.flatnonzero(delta != 0)
        S.score_change(t, ch, delta[ch], "monthly_update")

    def end_day(self, S, D) -> None:
        c, t = self.c, D.t
        gid = np.repeat(np.arange(S.G), S.sizes) if t % c.every == 0 else None
        for s, name in enumerate(c.names):  # sub-score means as of the last monthly update
            num, den = S.metrics[f"subscore_{name}.num"], S.metrics[f"subscore_{name}.den"]
            if gid is not None:
                num[t] = np.bincount(gid, weights=self.subs[s].astype(np.float64), minlength=S.G)
            else:
                num[t] = num[t - 1]
            den[t] = S.sizes

    def citizens(self, ids: np.ndarray, S) -> dict[str, np.ndarray]:
        return {f"x_subscore_{name}": self.subs[s, ids].astype(np.float32) for s, name in enumerate(self.c.names)}
