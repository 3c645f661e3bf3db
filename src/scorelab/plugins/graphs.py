"""Social graphs: households and contact networks, and restrictions that reach a listed citizen's household.

Config: ``[graph]`` (``households``, ``[[graph.networks]]``) and ``policy.restrictions[].reach =
"household"`` (config/extensions.py). Graphs are built once per shard from the legacy ``graph`` stream;
other mechanisms read them (``state.plugins["graphs"]``): peer ratings meet contacts, composite sub-scores
average contacts' scores, blocked attempts see household reach.

Events: ``reach_on`` / ``reach_off`` (target = the restriction) for members of households whose listed
count changed. Metrics: ``reached_<restriction>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.graph import Households, Network, build_households, build_network
from ..engine.sampling import distinct
from .base import Mechanism, Metric


@dataclass(frozen=True)
class GraphTables:
    households: tuple[float, int] | None  # (mean size, max size)
    networks: tuple[tuple[str, float, float, float], ...]  # (name, mean degree, same group, local)
    reach_household: np.ndarray  # [R] bool
    restriction_names: tuple[str, ...]


class Graphs(Mechanism):
    name = "graphs"
    config = "graph, policy.restrictions[].reach"

    @staticmethod
    def compile(sc, params) -> GraphTables | None:
        g = sc.graph
        households = (g.households.mean_size, g.households.max_size) if g and g.households else None
        networks = tuple((n.name, n.mean_degree, n.same_group, n.local) for n in g.networks) if g else ()
        if households is None and not networks:
            return None
        reach = np.array([r.reach == "household" for r in sc.policy.restrictions], dtype=bool)
        return GraphTables(households, networks, reach, tuple(r.name for r in sc.policy.restrictions))

    @staticmethod
    def _reach(c: GraphTables) -> list[int]:
        return [int(r) for r in np.flatnonzero(c.reach_household)] if c.households is not None else []

    @staticmethod
    def metrics(c: GraphTables, params) -> list[Metric]:
        return [Metric(f"reached_{c.restriction_names[r]}", "stock", "citizens",
                       f"family members restricted by {c.restriction_names[r]} because someone in their household is listed",
                       target=c.restriction_names[r]) for r in Graphs._reach(c)]

    @staticmethod
    def citizen_bytes(c: GraphTables) -> float:
        b = 0.0
        if c.households is not None:
            b += 4 + 10 / c.households[0] + 2 * len(Graphs._reach(c))
        for _, deg, _, _ in c.networks:
            b += 8 + 4 * deg + 8 * deg  # CSR arrays, plus the owner index built by mean_over_contacts
        return b

    def __init__(self, c: GraphTables, S):
        super().__init__(c, S)
        rng = S.legacy_stream("graph")
        self.households: Households | None = None
        if c.households is not None:
            self.households = build_households(rng, S.starts, S.sizes, *c.households)
        self.networks: dict[str, Network] = {
            name: build_network(rng, S.starts, S.sizes, deg, same, local) for name, deg, same, local in c.networks}
        # listed members per household, per restriction that reaches the household
        self.hh_count = {r: np.zeros(self.households.count, dtype=np.int16) for r in self._reach(c)}

    def reached(self, r: int, ids: np.ndarray) -> np.ndarray | None:
        """Whether each citizen's household has a member listed on a list of restriction r (None: r does not
        reach households)."""
        cnt = self.hh_count.get(r)
        return None if cnt is None else cnt[self.households.household[ids]] > 0

    def end_day(self, S, D) -> None:
        touched = D.touched
        if not len(touched) or not self.hh_count:
            return
        P, t, hh = S.P, D.t, self.households
        for r, cnt in self.hh_count.items():
            ks = np.flatnonzero(P.restriction_lists[r])
            was = np.zeros(len(touched), dtype=bool)
            now = np.zeros(len(touched), dtype=bool)
            for k in ks:
                was |= t - 1 < D.old_listed[k]
                now |= t < D.new_listed[k]
            d = now.astype(np.int16) - was
            if not d.any():
                continue
            h = hh.household[touched[d != 0]]
            uh = distinct(h)
            c0 = cnt[uh].astype(np.int64)
            np.add.at(cnt, h, d[d != 0])
            c1 = cnt[uh].astype(np.int64)
            if S.keep:
                self._reach_events(S, t, r, ks, uh, c0, c1, touched, was, now)
            size = hh.size[uh]
            f0 = np.where(c0 > 0, size - c0, 0)
            f1 = np.where(c1 > 0, size - c1, 0)
            change = np.bincount(hh.group[uh], weights=(f1 - f0).astype(np.float64), minlength=S.G)
            S.metrics[f"reached_{P.restriction_names[r]}"][t:] += change.astype(np.int64)  # a stock: carried forward

    def _reach_events(self, S, t, r, ks, uh, c0, c1, touched, was, now) -> None:
        """reach_on/off for members of the households whose listed count changed today: a member is reached
        while some member is listed and they are not listed themselves (as the metric reached_<r> counts)."""
        hh = self.households
        size = hh.size[uh]
        members = np.repeat(hh.start[uh], size) + (np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size))
        m_c0, m_c1 = np.repeat(c0, size), np.repeat(c1, size)
        self_now = np.zeros(len(members), dtype=bool)
        for k in ks:
            self_now |= t < S.listed[k][members]
        self_was = self_now.copy()
        pos = np.searchsorted(touched, members)
        pos = np.minimum(pos, max(len(touched) - 1, 0))
        hit = (touched[pos] == members) if len(touched) else np.zeros(len(members), dtype=bool)
        self_was[hit] = was[pos[hit]]
        self_now[hit] = now[pos[hit]]
        before = (m_c0 > 0) & ~self_was
        after = (m_c1 > 0) & ~self_now
        S.log.transitions(t, members, before, after, "reach_on", "reach_off", r)

    def citizens(self, ids: np.ndarray, S) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.households is not None:
            hh = self.households
            # a household is named by the global id of its first member: unique across shards
            out["x_household"] = hh.start[hh.household[ids]] + S.offset
            out["x_household_size"] = hh.size[hh.household[ids]].astype(np.int16)
        for name, net in self.networks.items():
            out[f"x_contacts_{name}"] = net.degree[ids].astype(np.int32)
        return out
