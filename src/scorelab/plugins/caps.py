"""Score caps: an observed event of a capped rule holds the score at or below a value (drunk driving ->
grade C in Rongcheng, whatever else the citizen did).

Config: ``policy.rules[].cap_score``. Applied after the rules' points, on the day of the event. Events: a
score change of rule ``<behaviour>:cap`` (with the event's sensor and false-attribution flag). Metrics:
``capped``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Mechanism, Metric


@dataclass(frozen=True)
class CapTables:
    cap: np.ndarray  # [B] int64 cap value where has_cap
    has_cap: np.ndarray  # [B] bool
    rules: tuple[str, ...]  # event-log rule names, in policy order


class Caps(Mechanism):
    name = "caps"
    config = "policy.rules[].cap_score"

    @staticmethod
    def compile(sc, params) -> CapTables | None:
        behaviours = list(params.behaviours)
        cap = np.zeros(len(behaviours), dtype=np.int64)
        has_cap = np.zeros(len(behaviours), dtype=bool)
        rules = []
        for r in sc.policy.rules:
            if r.cap_score is not None:
                b = behaviours.index(r.behaviour)
                cap[b], has_cap[b] = r.cap_score, True
                rules.append(f"{r.behaviour}:cap")
        return CapTables(cap, has_cap, tuple(rules)) if rules else None

    @staticmethod
    def rules(c: CapTables) -> list[str]:
        return list(c.rules)

    @staticmethod
    def metrics(c: CapTables, params) -> list[Metric]:
        return [Metric("capped", "count", "citizens", "citizens whose score a capped rule brought down to its cap")]

    def apply(self, S, D) -> None:
        c, P, t = self.c, S.P, D.t
        for b, ids, false in D.obs:
            if len(ids) == 0 or not c.has_cap[b]:
                continue
            s = S.score[ids].astype(np.int64)
            delta = np.minimum(s, c.cap[b]) - s
            hit = delta != 0
            if hit.any():
                cids = ids[hit]
                S.score_change(t, cids, delta[hit], f"{P.behaviours[b]}:cap", int(P.sensor_of[b]), false)
                S.metrics["capped"][t] += S.count(cids)
