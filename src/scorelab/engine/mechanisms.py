"""Preset mechanisms beyond points: the hook object the day kernel calls at a few marked points.

The kernel (kernel.py) runs behave -> observe -> score -> grade for rules that add fixed points. A preset
that needs more switches mechanisms on as data (config/extensions.py); this module turns them into arrays
once (`compile_mechanisms`) and keeps their per-shard state (`ShardMechanisms`). The kernel calls:

1. ``gate``       inside behave, after thinning: drop events a citizen's state does not allow
                  (only a listed citizen can repay a court debt).
2. ``pre_score``  after observe, before scores change: blocked attempts (a restriction refuses a flight
                  purchase, the attempt is counted), human review of automated evidence, notice before
                  penalty, scheduling of expiry and appeal reversals, money collected, sub-score events,
                  peer ratings, initial listings. Returns the extra citizens whose state it will change.
3. ``apply``      after the rules' points: score caps (drunk driving -> grade C), listings ended by
                  repayment or extended by re-offending, reversals, composite and peer-rating updates.
                  Every score change is a ledger row, so start + sum(ledger points) == final score holds.
4. ``end_day``    after the grade/restriction aggregates: family members reached through the household
                  graph, privileges held per grade.

Streams: the mechanisms draw from their own generators (SeedSequence(seed, spawn_key=(shard, 0x5EED, k))),
so switching one on never changes the behaviour streams (common random numbers across policies), and a
scenario that uses none of them runs the kernel exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config.extensions import per_group_level
from ..config.models import Scenario
from .graph import Households, Network, build_households, build_network, union_networks
from .events import RULE_INITIAL, EventLog
from .sampling import bernoulli_positions

MECH_KEY = 0x5EED
NO_LIST = -1


@dataclass(frozen=True)
class PeerParams:
    network: tuple[str, ...]
    interactions: float
    start_rating: float
    prior_weight: float
    memory_days: float
    behaviour_mean: np.ndarray  # [G]
    behaviour_spread: float
    noise: float
    status: float
    politeness: float
    incident_behaviour: int  # -1 none
    incident_days: int
    incident_factor: float
    incident_drop: float
    assoc_below: float  # 0 = no association cost
    assoc_star: float
    assoc_weight: float


@dataclass(frozen=True)
class CompositeParams:
    low: int
    high: int
    every: int
    names: tuple[str, ...]
    weights: np.ndarray  # [S]
    initial: np.ndarray  # [S, G]
    spread: np.ndarray  # [S]
    contacts: tuple[str | None, ...]  # [S] network name for connection sub-scores


@dataclass(frozen=True)
class MechParams:
    active: bool
    extra_rules: tuple[str, ...]  # ledger rule names after the kernel's (behaviours, then score_range)
    first_code: int  # ledger code of extra_rules[0]
    cap: np.ndarray  # [B] int64, cap value where has_cap
    has_cap: np.ndarray  # [B] bool
    money: np.ndarray  # [B] float64
    gate: np.ndarray  # [B] int64 blacklist index a behaviour requires, -1 none
    gate_privilege: np.ndarray  # [B] int64 privilege index a behaviour requires, -1 none
    gated: np.ndarray  # [B] bool: either gate
    removed_by: np.ndarray  # [L, B] bool
    extended_by: np.ndarray  # [L, B] bool
    extension_days: np.ndarray  # [L]
    initial_share: np.ndarray  # [L]
    blocks: tuple[tuple[int, int], ...]  # (restriction, behaviour)
    reach_household: np.ndarray  # [R] bool
    privilege_names: tuple[str, ...]
    privilege_grades: np.ndarray  # [P, K] bool
    households: tuple[float, int] | None  # (mean size, max size)
    networks: tuple[tuple[str, float, float, float], ...]  # (name, mean degree, same group, local)
    notice_days: int
    contest: float
    contest_success: float
    review: float
    appeal: float
    appeal_days: int
    expiry_days: int  # 0 = never
    subscore_of: np.ndarray  # [B] int64 sub-score index, -1 none
    composite: CompositeParams | None
    peer: PeerParams | None

    def code(self, rule: str) -> int:
        return self.first_code + self.extra_rules.index(rule)

    def extra_rows_per_citizen_day(self, penalty_rows: float) -> float:
        """Ledger rows the mechanisms add per citizen and day (for memory estimates)."""
        rows = 0.0
        if self.composite is not None:
            rows += 1.0 / self.composite.every
        if self.peer is not None:
            rows += 2.0 * self.peer.interactions
        if self.expiry_days or self.appeal:
            rows += penalty_rows
        return rows

    def bytes_per_citizen(self) -> int:
        """Resident bytes per citizen of the mechanisms' state (graphs, sub-scores, peer sums)."""
        b = 0.0
        if self.households is not None:
            b += 4 + 10 / self.households[0] + 2 * len(np.flatnonzero(self.reach_household))
        for _, deg, _, _ in self.networks:
            b += 8 + 4 * deg + 8 * deg  # CSR arrays, plus the owner index built by mean_over_contacts
        if self.composite is not None:
            b += 4 * len(self.composite.names) + 16
        if self.peer is not None:
            b += 16
        return int(np.ceil(b))


def compile_mechanisms(sc: Scenario, behaviours: tuple[str, ...], bl_names: tuple[str, ...],
                       restriction_names: tuple[str, ...], grade_names: tuple[str, ...]) -> MechParams:
    pol = sc.policy
    B, L = len(behaviours), len(bl_names)
    bidx = {b: i for i, b in enumerate(behaviours)}
    cap = np.zeros(B, dtype=np.int64)
    has_cap = np.zeros(B, dtype=bool)
    money = np.zeros(B)
    subscore_of = np.full(B, -1, dtype=np.int64)
    sub_names = [s.name for s in pol.composite.subscores] if pol.composite else []
    extra: list[str] = []
    for r in pol.rules:
        b = bidx[r.behaviour]
        if r.cap_score is not None:
            cap[b], has_cap[b] = r.cap_score, True
            extra.append(f"{r.behaviour}:cap")
        money[b] = r.money
        if r.subscore is not None:
            subscore_of[b] = sub_names.index(r.subscore)
    gate = np.array([bl_names.index(b.requires_listed) if b.requires_listed else NO_LIST for b in sc.behaviours],
                    dtype=np.int64)
    priv_names = [p.name for p in pol.privileges]
    gate_privilege = np.array([priv_names.index(b.requires_privilege) if b.requires_privilege else -1
                               for b in sc.behaviours], dtype=np.int64)
    removed_by = np.zeros((L, B), dtype=bool)
    extended_by = np.zeros((L, B), dtype=bool)
    for k, bl in enumerate(pol.blacklists):
        for name in bl.removed_by:
            removed_by[k, bidx[name]] = True
        for name in bl.extended_by:
            extended_by[k, bidx[name]] = True
    blocks = tuple((r, bidx[name]) for r, res in enumerate(pol.restrictions) for name in res.blocks)
    reach = np.array([res.reach == "household" for res in pol.restrictions], dtype=bool)
    pg = np.zeros((len(pol.privileges), len(grade_names)), dtype=bool)
    for p, priv in enumerate(pol.privileges):
        for g in priv.grades:
            pg[p, grade_names.index(g)] = True
    dp = pol.due_process
    if dp is not None and dp.active:
        if dp.expiry_days:
            extra.append("expiry")
        if dp.appeal:
            extra.append("appeal")
    comp = None
    if pol.composite:
        c = pol.composite
        comp = CompositeParams(
            c.low, c.high, c.update_every, tuple(sub_names),
            np.array([s.weight for s in c.subscores]),
            np.array([per_group_level(sc, s.initial) for s in c.subscores]),
            np.array([s.spread for s in c.subscores]),
            tuple(s.contacts for s in c.subscores))
        extra.append("monthly_update")
    peer = None
    if sc.peer:
        pr = sc.peer
        peer = PeerParams(
            (pr.network,) if isinstance(pr.network, str) else tuple(pr.network), pr.interactions, pr.start_rating, pr.prior_weight, pr.memory_days,
            np.array(per_group_level(sc, pr.behaviour_mean)), pr.behaviour_spread, pr.noise, pr.status,
            pr.politeness,
            bidx[pr.incident.behaviour] if pr.incident else -1,
            pr.incident.days if pr.incident else 0,
            pr.incident.factor if pr.incident else 1.0,
            pr.incident.opinion_drop if pr.incident else 0.0,
            pr.association.below if pr.association else 0.0,
            pr.association.star if pr.association else 1.0,
            pr.association.weight if pr.association else 0.0)
        extra.append("peer_rating")
    graph = sc.graph
    households = (graph.households.mean_size, graph.households.max_size) if graph and graph.households else None
    networks = tuple((n.name, n.mean_degree, n.same_group, n.local) for n in graph.networks) if graph else ()
    init = np.array([bl.initial_share for bl in pol.blacklists])
    active = bool(has_cap.any() or money.any() or (gate >= 0).any() or (gate_privilege >= 0).any() or removed_by.any() or extended_by.any()
                  or init.any() or blocks or reach.any() or len(pol.privileges) or (dp is not None and dp.active)
                  or comp is not None or peer is not None or households is not None or networks)
    return MechParams(
        active=active, extra_rules=tuple(extra), first_code=B + 1, cap=cap, has_cap=has_cap, money=money,
        gate=gate, gate_privilege=gate_privilege, gated=(gate >= 0) | (gate_privilege >= 0), removed_by=removed_by, extended_by=extended_by,
        extension_days=np.array([bl.extension_days for bl in pol.blacklists], dtype=np.int64),
        initial_share=init, blocks=blocks, reach_household=reach,
        privilege_names=tuple(p.name for p in pol.privileges), privilege_grades=pg,
        households=households, networks=networks,
        notice_days=dp.notice_days if dp else 0, contest=dp.contest if dp else 0.0,
        contest_success=dp.contest_success if dp else 0.0, review=dp.review if dp else 0.0,
        appeal=dp.appeal if dp else 0.0, appeal_days=dp.appeal_days if dp else 1,
        expiry_days=(dp.expiry_days or 0) if dp else 0,
        subscore_of=subscore_of, composite=comp, peer=peer)


def mech_streams(seed: int, index: int, k: int) -> list[np.random.Generator]:
    root = np.random.SeedSequence(seed, spawn_key=(index, MECH_KEY))
    return [np.random.Generator(np.random.PCG64(s)) for s in root.spawn(k)]


class ShardMechanisms:
    """Per-shard state of the mechanisms and the four hooks the kernel calls."""

    def __init__(self, P, spec, sizes: np.ndarray, starts: np.ndarray, bounds: np.ndarray,
                 metrics: dict[str, np.ndarray], log: EventLog, keep: int):
        M: MechParams = P.mech
        self.P, self.M, self.spec = P, M, spec
        self.sizes, self.starts, self.bounds = sizes, starts, bounds
        self.n = int(sizes.sum())
        self.G = len(sizes)
        self.metrics, self.log, self.keep = metrics, log, keep
        self.removed_today: dict[int, np.ndarray] = {}  # blacklist -> ids taken off today (not expiries)
        self.none_s = len(P.sensors)
        (self.rng_graph, self.rng_due, self.rng_peer, self.rng_init) = mech_streams(spec.seed, spec.index, 4)
        T, G = P.days, self.G

        def metric(name: str, dtype=np.int64) -> np.ndarray:
            key = f"x:{name}"
            if key not in metrics:
                metrics[key] = np.zeros((T, G), dtype=dtype)
            return metrics[key]

        def mean_metric(name: str) -> tuple[np.ndarray, np.ndarray]:
            return (metrics.setdefault(f"xmean:{name}:num", np.zeros((T, G))),
                    metrics.setdefault(f"xmean:{name}:den", np.zeros((T, G))))

        self.metric, self.mean_metric = metric, mean_metric
        if M.money.any():
            metric("money_collected", np.float64)
        for r, b in M.blocks:
            metric(f"blocked_{P.restriction_names[r]}_{P.behaviours[b]}")
        for k, name in enumerate(P.bl_names):
            if M.removed_by[k].any():
                metric(f"removed_{name}")
            if M.extended_by[k].any():
                metric(f"extended_{name}")
        if M.has_cap.any():
            metric("capped")
        for name in M.privilege_names:
            metric(f"privileged_{name}")
        self.due = M.review > 0 or M.notice_days > 0 or M.appeal > 0 or M.expiry_days > 0
        self._expiry_code = M.code("expiry") if M.expiry_days else -1
        if self.due:
            for name in ("review_caught", "contest_dropped", "reversed_appeal", "reversed_expiry", "notices"):
                metric(name)

        # ---- graphs ----
        self.households: Households | None = None
        if M.households is not None:
            self.households = build_households(self.rng_graph, starts, sizes, *M.households)
        self.networks: dict[str, Network] = {
            name: build_network(self.rng_graph, starts, sizes, deg, same, local)
            for name, deg, same, local in M.networks}
        self.hh_count: dict[int, np.ndarray] = {}
        if self.households is not None:
            for r in np.flatnonzero(M.reach_household):
                self.hh_count[int(r)] = np.zeros(self.households.count, dtype=np.int16)
                metric(f"reached_{P.restriction_names[r]}")

        # ---- queues (day -> list) ----
        self.notice_q: dict[int, list[tuple[int, np.ndarray, bool]]] = {}
        self.reversal_q: dict[int, list[tuple[np.ndarray, np.ndarray, int, bool]]] = {}
        self._today_rev: list[tuple[np.ndarray, np.ndarray, int, bool]] = []
        self._initial: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.initial_listed: list[tuple[int, np.ndarray]] = []  # listed before the run (a past trigger event)
        self._sub_events: list[tuple[int, np.ndarray, bool]] = []
        self._obs: list = []

        # ---- composite sub-scores ----
        self.subs = None
        if M.composite is not None:
            C = M.composite
            S = len(C.names)
            self.subs = np.empty((S, self.n), dtype=np.float32)
            gid = np.repeat(np.arange(G), sizes)
            for s in range(S):
                v = C.initial[s][gid] + C.spread[s] * self.rng_init.standard_normal(self.n)
                self.subs[s] = np.clip(v, 0.0, 100.0)
            for s in range(S):
                mean_metric(f"subscore_{C.names[s]}")
            self._update_ids = None

        # ---- peer rating ----
        if M.peer is not None:
            pr = M.peer
            gid = np.repeat(np.arange(G), sizes)
            self.trait = np.clip(pr.behaviour_mean[gid] + pr.behaviour_spread * self.rng_init.standard_normal(self.n),
                                 1.0, 5.0).astype(np.float32)
            self.num = np.zeros(self.n, dtype=np.float32)  # decayed sum of weight x stars received
            self.den = np.zeros(self.n, dtype=np.float32)  # decayed sum of weights
            self.last = np.zeros(self.n, dtype=np.int16)
            self.incident_until = np.zeros(self.n, dtype=np.int16)
            self.net = union_networks([self.networks[name] for name in pr.network])
            metric("interactions")
            for name in ("fakeness", "stars_given", "stars_honest"):
                mean_metric(name)
            self._peer = None

    # ------------------------------------------------------------------ helpers
    def group_of(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.bounds, ids, side="right")

    def count(self, ids: np.ndarray, weights=None) -> np.ndarray:
        return np.bincount(self.group_of(ids), weights=weights, minlength=self.G)

    def ledger(self, t: int, ids: np.ndarray, code: int, pts: np.ndarray, sensor: int | None = None,
               false: np.ndarray | bool = False) -> None:
        """A score event of rule ``code`` (the event log's kind ``score``)."""
        self.log.emit("score", t, ids, rule=code, points=pts, sensor=sensor, false=false)

    def points_metrics(self, t: int, ids: np.ndarray, delta: np.ndarray) -> None:
        d = self.count(ids, weights=delta.astype(np.float64))
        pos = self.count(ids, weights=np.maximum(delta, 0).astype(np.float64))
        self.metrics["points_awarded"][t] += pos.astype(np.int64)
        self.metrics["points_deducted"][t] += (pos - d).astype(np.int64)

    def _listed_at_start(self, k: int, ids: np.ndarray, listed, t: int) -> np.ndarray:
        return listed[k][ids] >= t  # listed at the end of day t-1: t-1 < until

    def restricted_at_start(self, r: int, ids: np.ndarray, score: np.ndarray, listed, t: int) -> np.ndarray:
        P = self.P
        out = np.zeros(len(ids), dtype=bool)
        if P.restriction_grades[r].any():
            out |= P.restriction_grades[r][P.grade_of(score[ids])]
        if r in self.hh_count:
            out |= self.hh_count[r][self.households.household[ids]] > 0
        else:
            for k in np.flatnonzero(P.restriction_lists[r]):
                out |= self._listed_at_start(k, ids, listed, t)
        return out

    # ------------------------------------------------------------------ hook 1: behave
    def gate(self, b: int, ids, grp, u_obs, score, listed, t: int):
        if len(ids) == 0:
            return ids, grp, u_obs
        ok = np.ones(len(ids), dtype=bool)
        k = int(self.M.gate[b])
        if k >= 0:
            ok &= self._listed_at_start(k, ids, listed, t)
        p = int(self.M.gate_privilege[b])
        if p >= 0:  # only holders of the privilege at the start of the day (only borrowers can default)
            ok &= self.M.privilege_grades[p][self.P.grade_of(score[ids])]
        return ids[ok], grp[ok], u_obs[ok]

    # ------------------------------------------------------------------ hook 2: before scores change
    def pre_score(self, t: int, obs: list, true_ids: list[np.ndarray], score: np.ndarray, listed) -> list[np.ndarray]:
        P, M = self.P, self.M
        extra: list[np.ndarray] = []
        # initial stock of listings (day 0)
        if t == 0 and M.initial_share.any():
            for k in np.flatnonzero(M.initial_share):
                ids = np.flatnonzero(self.rng_init.random(self.n) < M.initial_share[k])
                until = self.rng_init.integers(1, int(P.bl_duration[k]) + 1, len(ids))
                self._initial.append((int(k), ids, until))
                self.initial_listed.append((int(k), ids))
                self.log.emit("list_start", 0, ids, rule=RULE_INITIAL, target=int(k), until=until)
                extra.append(ids)
        # blocked attempts: the attempt happens (true event), the restriction refuses it
        for r, b in M.blocks:
            ids = true_ids[b]
            if len(ids) == 0:
                continue
            blocked = self.restricted_at_start(r, ids, score, listed, t)
            self.metric(f"blocked_{P.restriction_names[r]}_{P.behaviours[b]}")[t] += self.count(ids[blocked]).astype(np.int64)
            self.log.emit("blocked", t, ids[blocked], rule=b, target=r)
            if P.scored[b] and blocked.any():
                refused = ids[blocked]
                for j, (bb, oids, false) in enumerate(obs):
                    if bb == b and not false:
                        obs[j] = (bb, oids[~np.isin(oids, refused)], false)
        # sub-score rules do not touch the score directly
        if self.subs is not None:
            keep_obs = []
            for entry in obs:
                (keep_obs if M.subscore_of[entry[0]] < 0 else self._sub_events).append(entry)
            obs[:] = keep_obs
        if self.due:
            self._due_process(t, obs)
            extra += [x[0] for x in self._today_rev]
        if M.money.any():
            for b, ids, false in obs:
                if M.money[b] and len(ids):
                    self.metrics["x:money_collected"][t] += self.count(ids) * M.money[b]
        if self.subs is not None and t % M.composite.every == 0:
            extra.append(np.arange(self.n))
        if M.peer is not None:
            self._peer = self._interact(t, true_ids, score)
            extra.append(self._peer[0])
        self._obs = obs
        return extra

    def _due_process(self, t: int, obs: list) -> None:
        P, M, rng = self.P, self.M, self.rng_due
        kept = []
        for b, ids, false in obs:
            if P.penalised[b] and false and M.review and len(ids):
                caught = rng.random(len(ids)) < M.review
                self.metrics["x:review_caught"][t] += self.count(ids[caught])
                self.log.emit("review_drop", t, ids[caught], rule=b, sensor=int(P.sensor_of[b]), false=True)
                ids = ids[~caught]
            if P.penalised[b] and M.notice_days and len(ids):
                self.notice_q.setdefault(t + M.notice_days, []).append((b, ids, false))
                self.metrics["x:notices"][t] += self.count(ids)
                self.log.emit("notice", t, ids, rule=b, sensor=int(P.sensor_of[b]), false=false, until=t + M.notice_days)
                continue
            kept.append((b, ids, false))
        for b, ids, false in self.notice_q.pop(t, []):
            if false and M.contest:
                dropped = rng.random(len(ids)) < M.contest * M.contest_success
                self.metrics["x:contest_dropped"][t] += self.count(ids[dropped])
                self.log.emit("contest_drop", t, ids[dropped], rule=b, sensor=int(P.sensor_of[b]), false=True)
                ids = ids[~dropped]
            kept.append((b, ids, false))
        obs[:] = kept
        # what will score today: schedule its reversal (appeal for some false attributions, else expiry)
        for b, ids, false in obs:
            if not P.penalised[b] or len(ids) == 0:
                continue
            pts = np.full(len(ids), -int(P.points[b]), dtype=np.int64)
            appealed = np.zeros(len(ids), dtype=bool)
            if false and M.appeal:
                appealed = rng.random(len(ids)) < M.appeal
                if M.expiry_days and M.appeal_days >= M.expiry_days:
                    appealed[:] = False  # expiry comes first
                if appealed.any():
                    self.reversal_q.setdefault(t + M.appeal_days, []).append(
                        (ids[appealed], pts[appealed], M.code("appeal"), True))
                    self.log.emit("appeal", t, ids[appealed], rule=b, sensor=int(P.sensor_of[b]), false=True,
                                  until=t + M.appeal_days)
            if M.expiry_days:
                rest = ~appealed
                self.reversal_q.setdefault(t + M.expiry_days, []).append(
                    (ids[rest], pts[rest], M.code("expiry"), bool(false)))
        self._today_rev = [x for x in self.reversal_q.pop(t, []) if len(x[0])]

    # ------------------------------------------------------------------ hook 3: after the rules' points
    def apply(self, t: int, score: np.ndarray, listed, calendar: dict) -> None:
        P, M = self.P, self.M
        self.removed_today = {}
        for k, ids, until in self._initial:
            listed[k][ids] = until.astype(listed[k].dtype)
            for d in np.unique(until):
                calendar.setdefault(int(d), []).append(ids[until == d])
        self._initial = []
        for b, ids, false in self._obs:
            if len(ids) == 0:
                continue
            if M.has_cap[b]:
                s = score[ids].astype(np.int64)
                delta = np.minimum(s, M.cap[b]) - s
                hit = delta != 0
                if hit.any():
                    cids = ids[hit]
                    score[cids] = (s[hit] + delta[hit]).astype(score.dtype)
                    self.ledger(t, cids, M.code(f"{P.behaviours[b]}:cap"), delta[hit], int(P.sensor_of[b]), false)
                    self.points_metrics(t, cids, delta[hit])
                    self.metrics["x:capped"][t] += self.count(cids)
            for k in np.flatnonzero(M.removed_by[:, b]):
                on = listed[k][ids] > t
                if on.any():
                    listed[k][ids[on]] = t  # leaves the list today
                    self.metrics[f"x:removed_{P.bl_names[k]}"][t] += self.count(ids[on])
                    self.log.emit("list_remove", t, ids[on], rule=b, sensor=int(P.sensor_of[b]), false=false, target=int(k))
                    prev = self.removed_today.get(int(k))
                    self.removed_today[int(k)] = ids[on] if prev is None else np.concatenate([prev, ids[on]])
            for k in np.flatnonzero(M.extended_by[:, b]):
                on = listed[k][ids] > t
                if on.any():
                    eids = ids[on]
                    new = listed[k][eids].astype(np.int64) + int(M.extension_days[k])
                    listed[k][eids] = new.astype(listed[k].dtype)
                    for d in np.unique(new):
                        calendar.setdefault(int(d), []).append(eids[new == d])
                    self.metrics[f"x:extended_{P.bl_names[k]}"][t] += self.count(eids)
                    self.log.emit("list_extend", t, eids, rule=b, sensor=int(P.sensor_of[b]), false=false, target=int(k),
                                  until=new)
        for ids, pts, code, false in self._today_rev:
            score[ids] = (score[ids].astype(np.int64) + pts).astype(score.dtype)
            self.ledger(t, ids, code, pts, None, false)
            self.points_metrics(t, ids, pts)
            name = "x:reversed_expiry" if code == self._expiry_code else "x:reversed_appeal"
            self.metrics[name][t] += self.count(ids)
        self._today_rev = []
        if self.subs is not None:
            self._apply_subscores(t, score)
        if self._peer_pending():
            ids, new = self._peer
            old = score[ids].astype(np.int64)
            delta = new - old
            ch = delta != 0
            score[ids[ch]] = new[ch].astype(score.dtype)
            self.ledger(t, ids[ch], M.code("peer_rating"), delta[ch])
            self.points_metrics(t, ids[ch], delta[ch])
            self._peer = None

    def _peer_pending(self) -> bool:
        return self.M.peer is not None and self._peer is not None

    # ------------------------------------------------------------------ hook 4: after aggregates
    def end_day(self, t: int, touched: np.ndarray, old_listed, new_listed, grade_n: np.ndarray, listed) -> None:
        P, M = self.P, self.M
        if len(touched) and self.hh_count:
            hh = self.households
            for r, cnt in self.hh_count.items():
                ks = np.flatnonzero(P.restriction_lists[r])
                was = np.zeros(len(touched), dtype=bool)
                now = np.zeros(len(touched), dtype=bool)
                for k in ks:
                    was |= t - 1 < old_listed[k]
                    now |= t < new_listed[k]
                d = now.astype(np.int16) - was
                if not d.any():
                    continue
                h = hh.household[touched[d != 0]]
                uh, inv = np.unique(h, return_inverse=True)
                c0 = cnt[uh].astype(np.int64)
                np.add.at(cnt, h, d[d != 0])
                c1 = cnt[uh].astype(np.int64)
                if self.keep:
                    self._reach_events(t, int(r), ks, uh, c0, c1, touched, was, now, listed)
                size = hh.size[uh]
                f0 = np.where(c0 > 0, size - c0, 0)
                f1 = np.where(c1 > 0, size - c1, 0)
                change = np.bincount(hh.group[uh], weights=(f1 - f0).astype(np.float64), minlength=self.G)
                row = self.metrics[f"x:reached_{P.restriction_names[r]}"]
                row[t:] += change.astype(np.int64)  # a stock: carried forward
        for p, name in enumerate(M.privilege_names):
            self.metrics[f"x:privileged_{name}"][t] = (M.privilege_grades[p][:, None] * grade_n).sum(axis=0)
        if self.subs is not None:
            C = M.composite
            gid = np.repeat(np.arange(self.G), self.sizes) if t % C.every == 0 else None
            for s, name in enumerate(C.names):  # sub-score means as of the last monthly update
                num, den = self.metrics[f"xmean:subscore_{name}:num"], self.metrics[f"xmean:subscore_{name}:den"]
                if gid is not None:
                    num[t] = np.bincount(gid, weights=self.subs[s].astype(np.float64), minlength=self.G)
                else:
                    num[t] = num[t - 1]
                den[t] = self.sizes

    def _reach_events(self, t: int, r: int, ks, uh, c0, c1, touched, was, now, listed) -> None:
        """reach_on/off for members of the households whose listed count changed today: a member is reached
        while some member is listed and they are not listed themselves (as the metric reached_<r> counts)."""
        hh = self.households
        size = hh.size[uh]
        members = np.repeat(hh.start[uh], size) + (np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size))
        m_c0, m_c1 = np.repeat(c0, size), np.repeat(c1, size)
        self_now = np.zeros(len(members), dtype=bool)
        for k in ks:
            self_now |= t < listed[k][members]
        self_was = self_now.copy()
        pos = np.searchsorted(touched, members)
        pos = np.minimum(pos, max(len(touched) - 1, 0))
        hit = (touched[pos] == members) if len(touched) else np.zeros(len(members), dtype=bool)
        self_was[hit] = was[pos[hit]]
        self_now[hit] = now[pos[hit]]
        before = (m_c0 > 0) & ~self_was
        after = (m_c1 > 0) & ~self_now
        self.log.transitions(t, members, before, after, "reach_on", "reach_off", r)

    # ------------------------------------------------------------------ composite (Sesame)
    def _apply_subscores(self, t: int, score: np.ndarray) -> None:
        P, M, C = self.P, self.M, self.M.composite
        for b, ids, false in self._sub_events:
            if len(ids) == 0:
                continue
            s = int(M.subscore_of[b])
            self.subs[s, ids] = np.clip(self.subs[s, ids] + P.points[b], 0.0, 100.0)
            self.ledger(t, ids, b, 0, int(P.sensor_of[b]), false)  # the event, for the record; the score moves monthly
            cnt = self.count(ids).astype(np.int64)
            if P.points[b] < 0:
                self.metrics["penalties"][t] += cnt
                if false:
                    self.metrics["wrongful_penalties"][t] += cnt
            elif false:
                self.metrics["wrongful_rewards"][t] += cnt
        self._sub_events = []
        if t % C.every != 0:
            return
        span = C.high - C.low
        conn = [s for s, c in enumerate(C.contacts) if c is not None]
        fixed = [s for s, c in enumerate(C.contacts) if c is None]
        base = np.zeros(self.n)
        for s in fixed:
            base += C.weights[s] * self.subs[s]
        if conn:
            w_fixed = C.weights[fixed].sum()
            # contacts' scores as of the start of the day; on day 0 everyone still holds the start score,
            # so the contacts' own-record estimate stands in for it
            ref = (C.low + span * (base / max(w_fixed, 1e-12)) / 100.0) if t == 0 else score.astype(np.float64)
            for s in conn:
                net = self.networks[C.contacts[s]]
                mean = net.mean_over_contacts(ref, empty=C.low)
                self.subs[s] = np.clip((mean - C.low) / span * 100.0, 0.0, 100.0)
                base += C.weights[s] * self.subs[s]
        new = np.clip(np.rint(C.low + span * base / 100.0), C.low, C.high).astype(np.int64)
        old = score.astype(np.int64)
        delta = new - old
        ch = np.flatnonzero(delta)
        score[ch] = new[ch].astype(score.dtype)
        self.ledger(t, ch, M.code("monthly_update"), delta[ch])
        self.points_metrics(t, ch, delta[ch])

    # ------------------------------------------------------------------ peer rating (Nosedive)
    def _interact(self, t: int, true_ids: list[np.ndarray], score: np.ndarray):
        pr, rng, net = self.M.peer, self.rng_peer, self.net
        if pr.incident_behaviour >= 0:
            ids = true_ids[pr.incident_behaviour]
            self.incident_until[ids] = t + pr.incident_days
        init = bernoulli_positions(rng, self.n, pr.interactions)
        deg = net.degree[init]
        init = init[deg > 0]
        deg = deg[deg > 0]
        partner = net.indices[net.indptr[init] + (rng.random(len(init)) * deg).astype(np.int64)].astype(np.int64)
        rater = np.concatenate([init, partner])
        ratee = np.concatenate([partner, init])
        m = len(rater)
        r_rater = score[rater].astype(np.float64) / 100.0
        r_ratee = score[ratee].astype(np.float64) / 100.0
        incident = self.incident_until[ratee] > t
        opinion = self.trait[ratee] - pr.incident_drop * incident
        impression = opinion + pr.noise * rng.standard_normal(m)
        honest = np.clip(np.rint(impression), 1, 5)
        given = np.clip(np.rint(impression + pr.status * (r_ratee - 3.0) + pr.politeness), 1, 5)
        weight = r_rater * np.where(incident, pr.incident_factor, 1.0)
        g = self.group_of(rater)
        self.metrics["x:interactions"][t] += np.bincount(g, minlength=self.G)
        for name, v in (("fakeness", given - honest), ("stars_given", given), ("stars_honest", honest)):
            self.metrics[f"xmean:{name}:num"][t] += np.bincount(g, weights=v, minlength=self.G)
            self.metrics[f"xmean:{name}:den"][t] += np.bincount(g, minlength=self.G)
        recv, stars, w = [ratee], [given], [weight]
        if pr.assoc_weight > 0:
            low = r_ratee < pr.assoc_below  # onlookers mark down whoever is seen with a low-rated person
            recv.append(rater[low])
            stars.append(np.full(int(low.sum()), pr.assoc_star))
            w.append(np.full(int(low.sum()), pr.assoc_weight))
        recv, w = np.concatenate(recv), np.concatenate(w)
        ws = w * np.concatenate(stars)
        if 8 * len(recv) > self.n:  # dense day: one pass over the shard beats hashing
            hits = np.bincount(recv, minlength=self.n)
            uid = np.flatnonzero(hits)
            add_w = np.bincount(recv, weights=w, minlength=self.n)[uid]
            add_ws = np.bincount(recv, weights=ws, minlength=self.n)[uid]
        else:
            uid, inv = np.unique(recv, return_inverse=True)
            add_w = np.bincount(inv, weights=w, minlength=len(uid))
            add_ws = np.bincount(inv, weights=ws, minlength=len(uid))
        fade = np.exp(-(t - self.last[uid].astype(np.float64)) / pr.memory_days)
        num = self.num[uid] * fade + add_ws
        den = self.den[uid] * fade + add_w
        self.num[uid], self.den[uid] = num, den
        self.last[uid] = t
        rating = (pr.prior_weight * pr.start_rating + num) / (pr.prior_weight + den)
        new = np.clip(np.rint(100.0 * rating), 100, 500).astype(np.int64)
        return uid, new

    # ------------------------------------------------------------------ per-citizen output
    def citizens(self, ids: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.households is not None:
            hh = self.households
            # a household is named by the global id of its first member: unique across shards
            out["x_household"] = hh.start[hh.household[ids]] + self.spec.offset
            out["x_household_size"] = self.households.size[self.households.household[ids]].astype(np.int16)
        for name, net in self.networks.items():
            out[f"x_contacts_{name}"] = net.degree[ids].astype(np.int32)
        if self.subs is not None:
            for s, name in enumerate(self.M.composite.names):
                out[f"x_subscore_{name}"] = self.subs[s, ids].astype(np.float32)
        if self.M.peer is not None:
            out["x_rating"] = (score[ids].astype(np.float32) / 100.0)
            out["x_true_behaviour"] = self.trait[ids]
        return out
