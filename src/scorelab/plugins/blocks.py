"""Blocked attempts: a restriction refuses what the restricted citizen tries (a plane ticket, a train seat).

Config: ``policy.restrictions[].blocks`` (behaviours the restriction refuses; config/extensions.py). The
attempt is a true event (the citizen tried), the restriction refuses it, and a refused attempt is not
scored. Restricted means restricted at the start of the day: by grade, by an own listing, or through the
household when the restriction reaches it (plugins/graphs.py).

Events: ``blocked`` (rule = the behaviour attempted, target = the restriction). Metrics:
``blocked_<restriction>_<behaviour>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Mechanism, Metric


@dataclass(frozen=True)
class BlockTables:
    blocks: tuple[tuple[int, int], ...]  # (restriction, behaviour)


class Blocks(Mechanism):
    name = "blocks"
    config = "policy.restrictions[].blocks"

    @staticmethod
    def compile(sc, params) -> BlockTables | None:
        behaviours = list(params.behaviours)
        blocks = tuple((r, behaviours.index(name)) for r, res in enumerate(sc.policy.restrictions) for name in res.blocks)
        return BlockTables(blocks) if blocks else None

    @staticmethod
    def metrics(c: BlockTables, params) -> list[Metric]:
        return [Metric(f"blocked_{params.restriction_names[r]}_{params.behaviours[b]}", "count", "attempts",
                       f"attempts to {params.behaviours[b]} refused by the restriction {params.restriction_names[r]}")
                for r, b in c.blocks]

    @staticmethod
    def restricted_at_start(S, r: int, ids: np.ndarray, t: int) -> np.ndarray:
        P = S.P
        out = np.zeros(len(ids), dtype=bool)
        if P.restriction_grades[r].any():
            out |= P.restriction_grades[r][P.grade_of(S.score[ids])]
        graphs = S.plugins.get("graphs")
        reached = graphs.reached(r, ids) if graphs is not None else None
        if reached is not None:
            out |= reached
        else:
            for k in np.flatnonzero(P.restriction_lists[r]):
                out |= S.listed_at_start(k, ids, t)
        return out

    def observe(self, S, D) -> None:
        P, t = S.P, D.t
        for r, b in self.c.blocks:
            ids = D.true_ids[b]
            if len(ids) == 0:
                continue
            blocked = self.restricted_at_start(S, r, ids, t)
            S.metrics[f"blocked_{P.restriction_names[r]}_{P.behaviours[b]}"][t] += S.count(ids[blocked]).astype(np.int64)
            S.log.emit("blocked", t, ids[blocked], rule=b, target=r)
            if P.scored[b] and blocked.any():
                refused = ids[blocked]
                for j, (bb, oids, false) in enumerate(D.obs):
                    if bb == b and not false:
                        D.obs[j] = (bb, oids[~np.isin(oids, refused)], false)
