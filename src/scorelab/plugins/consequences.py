"""Consequences that act: a restriction or a privilege changes what its holders do while it holds.

Config: ``policy.restrictions[].effects`` and ``policy.privileges[].effects``, each a list of
``{behaviour, factor}`` (config/extensions.py Effect). While a citizen is under the restriction (by grade,
own listing, or household reach) or holds the privilege (by grade) at the start of a day, their propensity
for the behaviour is multiplied by ``factor``: slowed internet lowers online activity and speech, a travel
ban's holders stop planning trips, a preferential-loan privilege raises borrowing. Factors above 1 raise the
candidate rate (rate x the largest factor), thinned back for everyone else, so comparisons keep common
random numbers.

No events or metrics of its own: the restriction or privilege has its on/off events, and what the effect
does shows in the behaviour's ``true_<behaviour>`` counts (compare a scenario with and without it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Mechanism


@dataclass(frozen=True)
class EffectTables:
    by_restriction: tuple[tuple[int, int, float], ...]  # (restriction, behaviour, factor)
    by_privilege: tuple[tuple[np.ndarray, str, int, float], ...]  # (grades holding it [K], name, behaviour, factor)
    restriction_names: tuple[str, ...]


class Consequences(Mechanism):
    name = "consequences"
    config = "policy.restrictions[].effects, policy.privileges[].effects"

    @staticmethod
    def compile(sc, params) -> EffectTables | None:
        pol, behaviours, grades = sc.policy, list(params.behaviours), list(params.grade_names)
        by_r = tuple((r, behaviours.index(e.behaviour), float(e.factor))
                     for r, res in enumerate(pol.restrictions) for e in res.effects)
        by_p = []
        for priv in pol.privileges:
            held = np.zeros(len(grades), dtype=bool)
            for g in priv.grades:
                held[grades.index(g)] = True
            by_p += [(held, priv.name, behaviours.index(e.behaviour), float(e.factor)) for e in priv.effects]
        if not by_r and not by_p:
            return None
        return EffectTables(by_r, tuple(by_p), tuple(params.restriction_names))

    @staticmethod
    def max_multiplier(c: EffectTables, b: int) -> float:
        m = 1.0
        for _, bb, f in c.by_restriction:
            m *= max(1.0, f) if bb == b else 1.0
        for _, _, bb, f in c.by_privilege:
            m *= max(1.0, f) if bb == b else 1.0
        return m

    def propensity_behaviours(self) -> list[int]:
        return sorted({b for _, b, _ in self.c.by_restriction} | {b for _, _, b, _ in self.c.by_privilege})

    def propensity(self, b, ids, S, t) -> np.ndarray:
        c = self.c
        m = np.ones(len(ids))
        for r, bb, f in c.by_restriction:
            if bb == b:
                m[S.restricted_at_start(r, ids, t)] *= f
        for held, _, bb, f in c.by_privilege:
            if bb == b:
                m[held[S.P.grade_of(S.score[ids])]] *= f
        return m
