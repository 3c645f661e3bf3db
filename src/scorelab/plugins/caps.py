"""Score caps: an observed event of a capped rule holds the score at or below a value (drunk driving ->
grade C in Rongcheng, whatever else the citizen did), on the day of the event and, with ``cap_days``, for
that many days from it: points gained while the hold lasts are forfeited, so the downgrade cannot be
bought back (with a donation, say) before it ends.

Config: ``policy.rules[].cap_score``, ``policy.rules[].cap_days``. Applied after the rules' points and after
the other mechanisms' score changes of the day (due process's reversals come before it in the registry).
Events: a score change of rule ``<behaviour>:cap`` (on the event's day with its sensor and
false-attribution flag; while a hold lasts with no sensor and the false-attribution flag of the event
that set it). Metrics: ``capped`` (citizens brought down on the event's day), ``held`` (citizens whose
gain a running hold took back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.sampling import distinct
from .base import Mechanism, Metric


@dataclass(frozen=True)
class CapTables:
    cap: np.ndarray  # [B] int64 cap value where has_cap
    has_cap: np.ndarray  # [B] bool
    days: np.ndarray  # [B] int64 hold length (0: the event's day only)
    rules: tuple[str, ...]  # event-log rule names, in policy order


class Caps(Mechanism):
    name = "caps"
    config = "policy.rules[].cap_score, policy.rules[].cap_days"

    @staticmethod
    def compile(sc, params) -> CapTables | None:
        behaviours = list(params.behaviours)
        cap = np.zeros(len(behaviours), dtype=np.int64)
        has_cap = np.zeros(len(behaviours), dtype=bool)
        days = np.zeros(len(behaviours), dtype=np.int64)
        rules = []
        for r in sc.policy.rules:
            if r.cap_score is not None:
                b = behaviours.index(r.behaviour)
                cap[b], has_cap[b], days[b] = r.cap_score, True, r.cap_days
                rules.append(f"{r.behaviour}:cap")
        return CapTables(cap, has_cap, days, tuple(rules)) if rules else None

    @staticmethod
    def rules(c: CapTables) -> list[str]:
        return list(c.rules)

    @staticmethod
    def metrics(c: CapTables, params) -> list[Metric]:
        out = [Metric("capped", "count", "citizens", "citizens whose score a capped rule brought down to its cap")]
        if c.days.any():
            out.append(Metric("held", "count", "citizens",
                              "citizens whose gain a running cap hold (cap_days) took back that day"))
        return out

    @staticmethod
    def citizen_bytes(c: CapTables) -> float:
        return 10.0 if c.days.any() else 0.0  # hold end (int32), cap (int32), rule (uint8), false flag (bool)

    def __init__(self, c: CapTables, S):
        super().__init__(c, S)
        self.hold = bool(c.days.any())
        if self.hold:
            self.until = np.zeros(S.n, dtype=np.int32)  # held while day < until
            self.value = np.zeros(S.n, dtype=np.int32)
            self.rule = np.zeros(S.n, dtype=np.uint8)
            self.false = np.zeros(S.n, dtype=bool)

    def apply(self, S, D) -> None:
        c, P, t = self.c, S.P, D.t
        if self.hold and len(D.touched):  # running holds first: today's own events are capped below
            ids = D.touched[self.until[D.touched] > t]
            if len(ids):
                s = S.score[ids].astype(np.int64)
                over = s > self.value[ids]
                ids, s = ids[over], s[over]
                if len(ids):
                    for code in distinct(self.rule[ids]):
                        for false in (False, True):
                            sel = (self.rule[ids] == code) & (self.false[ids] == false)
                            if sel.any():
                                cids = ids[sel]
                                S.score_change(t, cids, self.value[cids].astype(np.int64) - s[sel],
                                               f"{P.behaviours[int(code)]}:cap", None, false)
                    S.metrics["held"][t] += S.count(ids)
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
            if c.days[b]:
                until = t + int(c.days[b])
                running = self.until[ids] > t
                # a new hold: this cap from today; during a running one the stricter cap and the later end
                self.value[ids] = np.where(running, np.minimum(self.value[ids], c.cap[b]), c.cap[b])
                self.until[ids] = np.maximum(self.until[ids], until)
                self.rule[ids] = b
                self.false[ids] = np.where(running, self.false[ids] & false, false)
