"""Blacklist mechanisms beyond trigger and duration: listings from before the run, removal (a debt repaid),
extension (re-offending while listed), and behaviours only a listed citizen can do.

Config: ``policy.blacklists[].initial_share``, ``removed_by``, ``extended_by``, ``extension_days`` and
``behaviours[].requires_listed`` (config/extensions.py, docs/mechanisms.md). The listing itself (trigger,
duration, expiry) is the kernel's sanction stage.

Events: ``list_start`` of rule initial_listing (day 0), ``list_remove``, ``list_extend``. A listing from
before the run stands for one past true event of its trigger (ground truth). Metrics: ``removed_<list>``,
``extended_<list>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.events import RULE_INITIAL
from ..engine.sampling import distinct
from .base import Mechanism, Metric

NO_LIST = -1


@dataclass(frozen=True)
class ListTables:
    names: tuple[str, ...]
    removed_by: np.ndarray  # [L, B] bool
    extended_by: np.ndarray  # [L, B] bool
    extension_days: np.ndarray  # [L]
    initial_share: np.ndarray  # [L, G]
    gate: np.ndarray  # [B] blacklist a behaviour requires, -1 none


class Lists(Mechanism):
    name = "lists"
    config = "policy.blacklists[].initial_share/removed_by/extended_by/extension_days, behaviours[].requires_listed"

    @staticmethod
    def compile(sc, params) -> ListTables | None:
        pol, behaviours = sc.policy, list(params.behaviours)
        names = tuple(bl.name for bl in pol.blacklists)
        L, B = len(names), len(behaviours)
        removed_by = np.zeros((L, B), dtype=bool)
        extended_by = np.zeros((L, B), dtype=bool)
        for k, bl in enumerate(pol.blacklists):
            for name in bl.removed_by:
                removed_by[k, behaviours.index(name)] = True
            for name in bl.extended_by:
                extended_by[k, behaviours.index(name)] = True
        init = np.array([sc.per_group(bl.initial_share) for bl in pol.blacklists], dtype=np.float64).reshape(L, len(sc.groups))
        gate = np.array([names.index(b.requires_listed) if b.requires_listed else NO_LIST for b in sc.behaviours],
                        dtype=np.int64)
        if not (removed_by.any() or extended_by.any() or init.any() or (gate >= 0).any()):
            return None
        return ListTables(names, removed_by, extended_by,
                          np.array([bl.extension_days for bl in pol.blacklists], dtype=np.int64), init, gate)

    @staticmethod
    def metrics(c: ListTables, params) -> list[Metric]:
        out = []
        for k, name in enumerate(c.names):
            if c.removed_by[k].any():
                out.append(Metric(f"removed_{name}", "count", "citizens", f"citizens taken off {name} (e.g. a debt repaid)"))
            if c.extended_by[k].any():
                out.append(Metric(f"extended_{name}", "count", "citizens", f"listings on {name} lengthened by re-offending"))
        return out

    def __init__(self, c: ListTables, S):
        super().__init__(c, S)
        self._initial: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.initial_listed: list[tuple[int, np.ndarray]] = []  # listed before the run (a past trigger event)

    def gated_behaviours(self) -> list[int]:
        return [int(b) for b in np.flatnonzero(self.c.gate >= 0)]

    def gate(self, b, ids, grp, u_obs, S, t):
        if len(ids) == 0:
            return ids, grp, u_obs
        ok = S.listed_at_start(int(self.c.gate[b]), ids, t)
        return ids[ok], grp[ok], u_obs[ok]

    def pre_score(self, S, D) -> None:
        """Day 0: the stock of listings from before the run, each with a remaining duration."""
        c = self.c
        if D.t != 0 or not c.initial_share.any():
            return
        rng = S.legacy_stream("init")
        for k in np.flatnonzero(c.initial_share.any(axis=1)):
            share = c.initial_share[k]  # [G]
            u = rng.random(S.n)
            ids = np.flatnonzero(u < share[0] if (share == share[0]).all() else u < np.repeat(share, S.sizes))
            until = rng.integers(1, int(S.P.bl_duration[k]) + 1, len(ids))
            self._initial.append((int(k), ids, until))
            self.initial_listed.append((int(k), ids))
            S.log.emit("list_start", 0, ids, rule=RULE_INITIAL, target=int(k), until=until)
            D.extra.append(ids)

    def apply(self, S, D) -> None:
        c, P, t = self.c, S.P, D.t
        for k, ids, until in self._initial:
            S.listed[k][ids] = until.astype(S.listed[k].dtype)
            for d in distinct(until):
                S.calendar.setdefault(int(d), []).append(ids[until == d])
        self._initial = []
        for b, ids, false in D.obs:
            if len(ids) == 0:
                continue
            for k in np.flatnonzero(c.removed_by[:, b]):
                on = S.listed[k][ids] > t
                if on.any():
                    S.listed[k][ids[on]] = t  # leaves the list today
                    S.metrics[f"removed_{P.bl_names[k]}"][t] += S.count(ids[on])
                    S.log.emit("list_remove", t, ids[on], rule=b, sensor=int(P.sensor_of[b]), false=false, target=int(k))
                    prev = D.removed.get(int(k))
                    D.removed[int(k)] = ids[on] if prev is None else np.concatenate([prev, ids[on]])
            for k in np.flatnonzero(c.extended_by[:, b]):
                on = S.listed[k][ids] > t
                if on.any():
                    eids = ids[on]
                    new = S.listed[k][eids].astype(np.int64) + int(c.extension_days[k])
                    S.listed[k][eids] = new.astype(S.listed[k].dtype)
                    for d in distinct(new):
                        S.calendar.setdefault(int(d), []).append(eids[new == d])
                    S.metrics[f"extended_{P.bl_names[k]}"][t] += S.count(eids)
                    S.log.emit("list_extend", t, eids, rule=b, sensor=int(P.sensor_of[b]), false=false, target=int(k),
                               until=new)

    def finish(self, S) -> None:
        from ..engine.stages import count_misconduct

        for k, ids in self.initial_listed:  # a listing from before the run stands for one true event of its trigger
            count_misconduct(S, int(S.P.bl_trigger[k]), ids)
