"""Blocked attempts: a restriction refuses what the restricted citizen tries (a plane ticket, a train seat).

Config: ``policy.restrictions[].blocks`` (behaviours the restriction refuses; config/extensions.py). The
attempt is a true event (the citizen tried), the restriction refuses it, and a refused attempt is not
scored. Restricted means restricted at the start of the day: by grade, by an own listing, or through the
household when the restriction reaches it (plugins/graphs.py).

Learning (``[[response.learning]]``): a refused citizen tries less for a while — each refusal multiplies the
citizen's propensity for that behaviour by ``factor`` for the next ``days`` days (a stated assumption: people
do not keep buying tickets they cannot use; the share who still try is the scenario's parameter). Drawn from
the plugin's own stream.

Events: ``blocked`` (rule = the behaviour attempted, target = the restriction). Metrics:
``blocked_<restriction>_<behaviour>``, and ``deterred_<behaviour>`` (attempts not made because of a refusal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Mechanism, Metric


@dataclass(frozen=True)
class BlockTables:
    blocks: tuple[tuple[int, int], ...]  # (restriction, behaviour)
    learning: tuple[tuple[int, int, float], ...] = ()  # (behaviour, days, factor)


class Blocks(Mechanism):
    name = "blocks"
    config = "policy.restrictions[].blocks"

    @staticmethod
    def compile(sc, params) -> BlockTables | None:
        behaviours = list(params.behaviours)
        blocks = tuple((r, behaviours.index(name)) for r, res in enumerate(sc.policy.restrictions) for name in res.blocks)
        learning = tuple((behaviours.index(ln.behaviour), ln.days, ln.factor) for ln in sc.response.learning)
        return BlockTables(blocks, learning) if blocks else None

    @staticmethod
    def metrics(c: BlockTables, params) -> list[Metric]:
        return [Metric(f"blocked_{params.restriction_names[r]}_{params.behaviours[b]}", "count", "attempts",
                       f"attempts to {params.behaviours[b]} refused by the restriction {params.restriction_names[r]}")
                for r, b in c.blocks] + \
            [Metric(f"deterred_{params.behaviours[b]}", "count", "attempts",
                    f"attempts to {params.behaviours[b]} not made because an earlier attempt was refused")
             for b, _, _ in c.learning]

    @staticmethod
    def citizen_bytes(c: BlockTables) -> float:
        return 4.0 * len(c.learning)

    def __init__(self, c: BlockTables, S):
        super().__init__(c, S)
        self.learn = {b: (days, factor) for b, days, factor in c.learning}
        self.until = {b: np.zeros(S.n, dtype=np.int32) for b in self.learn}  # tries less while day < until
        self.rng = S.rng(0xB10C) if self.learn else None

    def gated_behaviours(self) -> list[int]:
        return list(self.learn)

    def gate(self, b, ids, grp, u_obs, S, t):
        if len(ids) == 0:
            return ids, grp, u_obs
        learned = self.until[b][ids] > t
        if not learned.any():
            return ids, grp, u_obs
        days, factor = self.learn[b]
        ok = ~learned
        ok[learned] = self.rng.random(int(learned.sum())) < factor
        S.metrics[f"deterred_{S.P.behaviours[b]}"][t] += S.count(ids[~ok]).astype(np.int64)
        return ids[ok], grp[ok], u_obs[ok]

    def observe(self, S, D) -> None:
        P, t = S.P, D.t
        for r, b in self.c.blocks:
            ids = D.true_ids[b]
            if len(ids) == 0:
                continue
            blocked = S.restricted_at_start(r, ids, t)
            S.metrics[f"blocked_{P.restriction_names[r]}_{P.behaviours[b]}"][t] += S.count(ids[blocked]).astype(np.int64)
            S.log.emit("blocked", t, ids[blocked], rule=b, target=r)
            if b in self.until and blocked.any():
                self.until[b][ids[blocked]] = t + self.learn[b][0] + 1
            if P.scored[b] and blocked.any():
                refused = ids[blocked]
                for j, (bb, oids, false) in enumerate(D.obs):
                    if bb == b and not false:
                        D.obs[j] = (bb, oids[~np.isin(oids, refused)], false)
