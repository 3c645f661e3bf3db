"""Privileges held by grade (fast lanes, deposit waivers, loans), and behaviours only their holders can do.

Config: ``[[policy.privileges]]`` (name, grades) and ``behaviours[].requires_privilege``
(config/extensions.py). Events: ``privilege_on`` / ``privilege_off`` (target = the privilege) when a kept
citizen's grade grants or revokes it, day 0 included. Metrics: ``privileged_<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Mechanism, Metric


@dataclass(frozen=True)
class PrivilegeTables:
    names: tuple[str, ...]
    grades: np.ndarray  # [Q, K] bool: the grades that hold each privilege
    gate: np.ndarray  # [B] privilege a behaviour requires, -1 none


class Privileges(Mechanism):
    name = "privileges"
    config = "policy.privileges, behaviours[].requires_privilege"

    @staticmethod
    def compile(sc, params) -> PrivilegeTables | None:
        pol = sc.policy
        if not pol.privileges:
            return None
        grade_names = list(params.grade_names)
        pg = np.zeros((len(pol.privileges), len(grade_names)), dtype=bool)
        for q, priv in enumerate(pol.privileges):
            for g in priv.grades:
                pg[q, grade_names.index(g)] = True
        names = [p.name for p in pol.privileges]
        gate = np.array([names.index(b.requires_privilege) if b.requires_privilege else -1 for b in sc.behaviours],
                        dtype=np.int64)
        return PrivilegeTables(tuple(names), pg, gate)

    @staticmethod
    def targets(c: PrivilegeTables) -> list[str]:
        return list(c.names)

    @staticmethod
    def metrics(c: PrivilegeTables, params) -> list[Metric]:
        return [Metric(f"privileged_{name}", "stock", "citizens", f"citizens whose grade holds the privilege {name}",
                       target=name) for name in c.names]

    def __init__(self, c: PrivilegeTables, S):
        super().__init__(c, S)
        self.code = [S.target_code[name] for name in c.names]
        if S.keep:  # day 0: the privileges the start grades give the kept citizens
            kept0 = np.arange(S.n, dtype=np.int64)
            kept0 = kept0[S.log.kept(kept0)]
            if len(kept0):
                g0 = S.P.grade_of(S.score[kept0])
                none0 = np.zeros(len(kept0), dtype=bool)
                for q in range(len(c.names)):
                    S.log.transitions(0, kept0, none0, c.grades[q][g0], "privilege_on", "privilege_off", self.code[q])

    def gated_behaviours(self) -> list[int]:
        return [int(b) for b in np.flatnonzero(self.c.gate >= 0)]

    def gate(self, b, ids, grp, u_obs, S, t):
        if len(ids) == 0:
            return ids, grp, u_obs
        ok = self.c.grades[int(self.c.gate[b])][S.P.grade_of(S.score[ids])]  # holders at the start of the day
        return ids[ok], grp[ok], u_obs[ok]

    def end_day(self, S, D) -> None:
        c, t = self.c, D.t
        if S.keep and D.g_old is not None and len(D.touched):
            changed = D.g_old != D.g_new
            if changed.any():
                for q in range(len(c.names)):
                    S.log.transitions(t, D.touched, c.grades[q][D.g_old], c.grades[q][D.g_new], "privilege_on",
                                      "privilege_off", self.code[q])
        for q, name in enumerate(c.names):
            S.metrics[f"privileged_{name}"][t] = (c.grades[q][:, None] * S.grade_n).sum(axis=0)
