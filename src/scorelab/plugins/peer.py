"""Peer rating (Black Mirror's "Nosedive"): citizens meet contacts, rate each other 1-5 stars, and the score
is the weighted, fading mean of the stars received (x 100), weighted by the rater's own rating. Stars depend
on the rater too (``deference``: more stars to those rated above oneself, fewer to those below), and people
avoid low-rated contacts (``avoidance``), so a low rating can feed on itself.

Config: ``[peer]`` (config/extensions.py): the network met (plugins/graphs.py), interaction rate, honest
behaviour per group, noise, status deference, politeness, an incident that lowers a citizen's stars for a
while, and the cost of being seen with a low-rated person (association). Traits start from the legacy
``init`` stream; interactions draw from the legacy ``peer`` stream.

Events: score changes of rule ``peer_rating``. Metrics: interactions, and the means fakeness (stars given
minus honest stars), stars_given, stars_honest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config.extensions import per_group_level
from ..engine.graph import union_networks
from ..engine.sampling import bernoulli_positions, keep
from .base import Mechanism, Metric


STARS = np.arange(1, 6, dtype=np.int64)  # the stars a rating can give


@dataclass(frozen=True)
class PeerTables:
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
    deference: float = 0.0
    avoidance: float = 0.0
    avoid_below: float = 3.0
    rater_weighting: bool = True


def received(recv: np.ndarray, w: np.ndarray, ws: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The citizens rated today (sorted ids in [0, n)) and, per citizen, the sums of the weights ``w`` and of
    the weighted stars ``ws`` of their ratings ``recv``, each summed in the order of the ratings."""
    if 8 * len(recv) > n:  # dense day: one pass over the shard beats hashing
        all_w = np.bincount(recv, weights=w, minlength=n)
        # who was rated: where the summed weights are positive, when every weight is (a rater's rating is at
        # least 1, unless other rules took the score below 100); else counted
        hit = all_w > 0 if len(w) and w.min() > 0 else np.bincount(recv, minlength=n) > 0
        uid = np.flatnonzero(hit)  # (a mask: 7x faster than nonzero over the counts)
        return uid, all_w[uid], np.bincount(recv, weights=ws, minlength=n)[uid]
    uid, inv = np.unique(recv, return_inverse=True)
    return uid, np.bincount(inv, weights=w, minlength=len(uid)), np.bincount(inv, weights=ws, minlength=len(uid))


class Peer(Mechanism):
    name = "peer"
    config = "peer"

    @staticmethod
    def compile(sc, params) -> PeerTables | None:
        pr = sc.peer
        if not pr:
            return None
        inc, assoc = pr.incident, pr.association
        return PeerTables(
            (pr.network,) if isinstance(pr.network, str) else tuple(pr.network), pr.interactions, pr.start_rating,
            pr.prior_weight, pr.memory_days, np.array(per_group_level(sc, pr.behaviour_mean)), pr.behaviour_spread,
            pr.noise, pr.status, pr.politeness,
            list(params.behaviours).index(inc.behaviour) if inc else -1, inc.days if inc else 0,
            inc.factor if inc else 1.0, inc.opinion_drop if inc else 0.0,
            assoc.below if assoc else 0.0, assoc.star if assoc else 1.0, assoc.weight if assoc else 0.0,
            pr.deference, pr.avoidance, pr.avoid_below, pr.rater_weighting)

    @staticmethod
    def rules(c: PeerTables) -> list[str]:
        return ["peer_rating"]

    @staticmethod
    def metrics(c: PeerTables, params) -> list[Metric]:
        return [Metric("interactions", "count", "interactions", "interactions started (each gives two ratings)"),
                Metric("fakeness", "mean", "stars", "stars given minus the honest stars, per rating", weight="interactions"),
                Metric("stars_given", "mean", "stars", "stars given per rating", weight="interactions"),
                Metric("stars_honest", "mean", "stars", "stars an honest rater would have given", weight="interactions")]

    @staticmethod
    def max_daily_points(c: PeerTables) -> int:
        return 400  # ratings set the score within [100, 500]

    @staticmethod
    def citizen_bytes(c: PeerTables) -> float:
        return 16

    @staticmethod
    def extra_rows(c: PeerTables, penalty_rows: float) -> float:
        return 2.0 * c.interactions

    def __init__(self, c: PeerTables, S):
        super().__init__(c, S)
        self.rng = S.legacy_stream("peer")
        gid = np.repeat(np.arange(S.G), S.sizes)
        init = S.legacy_stream("init")
        self.trait = np.clip(c.behaviour_mean[gid] + c.behaviour_spread * init.standard_normal(S.n), 1.0, 5.0).astype(np.float32)
        self.num = np.zeros(S.n, dtype=np.float32)  # decayed sum of weight x stars received
        self.den = np.zeros(S.n, dtype=np.float32)  # decayed sum of weights
        self.last = np.zeros(S.n, dtype=np.int16)
        self.incident_until = np.zeros(S.n, dtype=np.int16)
        self.net = union_networks([S.plugins["graphs"].networks[name] for name in c.network])
        self.pending = None
        self.fade = None  # exp(-d / memory_days) by day gap d (_fade)

    def pre_score(self, S, D) -> None:
        self.pending = self._interact(S, D.t, D.true_ids)
        D.extra.append(self.pending[0])

    def apply(self, S, D) -> None:
        ids, new = self.pending
        delta = new - S.score[ids].astype(np.int64)
        ch = delta != 0
        S.score_change(D.t, ids[ch], delta[ch], "peer_rating")
        self.pending = None

    def _interact(self, S, t: int, true_ids: list[np.ndarray]):
        c, rng, net, n = self.c, self.rng, self.net, S.n
        if c.incident_behaviour >= 0:
            self.incident_until[true_ids[c.incident_behaviour]] = t + c.incident_days
        init = bernoulli_positions(rng, n, c.interactions)
        deg = net.degree[init]
        init = init[deg > 0]
        deg = deg[deg > 0]
        partner = net.indices[net.indptr[init] + (rng.random(len(init)) * deg).astype(np.int64)].astype(np.int64)
        r_partner = S.score[partner].astype(np.float64) / 100.0  # ratings as of the start of the day
        if c.avoidance > 0:  # people drop low-rated contacts: some encounters with them do not happen
            low = r_partner < c.avoid_below
            skip = np.zeros(len(init), dtype=bool)
            skip[low] = rng.random(int(low.sum())) < c.avoidance
            init, partner, r_partner = keep(~skip, init, partner, r_partner)
        r_init = S.score[init].astype(np.float64) / 100.0
        # each encounter gives two ratings: the initiator's of the partner, then the partner's of the initiator
        rater = np.concatenate([init, partner])
        ratee = np.concatenate([partner, init])
        m = len(rater)
        r_rater = np.concatenate([r_init, r_partner])
        r_ratee = np.concatenate([r_partner, r_init])
        incident = self.incident_until[ratee] > t
        opinion = self.trait[ratee].astype(np.float64)
        if incident.any():  # (x - drop where an incident is remembered, else x: the values of x - drop * incident)
            opinion[incident] -= c.incident_drop
        impression = rng.standard_normal(m)
        impression *= c.noise
        impression += opinion  # opinion + noise x a normal draw
        honest = np.clip(np.rint(impression), 1, 5)
        lean = c.status * (r_ratee - 3.0) + c.politeness + c.deference * (r_ratee - r_rater)
        given = np.clip(np.rint(impression + lean), 1, 5)
        weight = (r_rater if c.rater_weighting else 1.0) * np.where(incident, c.incident_factor, 1.0)
        g = S.group_of(rater)
        # stars are whole numbers 1..5: one count of (group, stars given, honest stars) gives each group's
        # ratings (every mean's weight) and both sums of stars, exactly the float sums (and fakeness, given
        # minus honest, is the difference of two whole sums)
        key = g * 25 + given.astype(np.intp) * 5 + honest.astype(np.intp) - 6
        counts = np.bincount(key, minlength=25 * S.G).reshape(S.G, 5, 5)
        ratings = counts.sum(axis=(1, 2))
        S.metrics["interactions"][t] += ratings
        sum_given, sum_honest = counts.sum(axis=2) @ STARS, counts.sum(axis=1) @ STARS
        for name, v in (("fakeness", sum_given - sum_honest), ("stars_given", sum_given), ("stars_honest", sum_honest)):
            S.metrics[f"{name}.num"][t] += v
            S.metrics[f"{name}.den"][t] += ratings
        recv, stars, w = [ratee], [given], [weight]
        if c.assoc_weight > 0:
            low = r_ratee < c.assoc_below  # onlookers mark down whoever is seen with a low-rated person
            recv.append(rater[low])
            stars.append(np.full(int(low.sum()), c.assoc_star))
            w.append(np.full(int(low.sum()), c.assoc_weight))
        recv, w = np.concatenate(recv), np.concatenate(w)
        ws = w * np.concatenate(stars)
        uid, add_w, add_ws = received(recv, w, ws, n)
        fade = self._fade(t)[t - self.last[uid]]  # exp(-(days since last rated) / memory_days)
        num = self.num[uid] * fade + add_ws
        den = self.den[uid] * fade + add_w
        self.num[uid], self.den[uid] = num, den
        self.last[uid] = t
        rating = (c.prior_weight * c.start_rating + num) / (c.prior_weight + den)
        new = np.clip(np.rint(100.0 * rating), 100, 500).astype(np.int64)
        return uid, new

    def _fade(self, t: int) -> np.ndarray:
        """exp(-d / memory_days) for d = 0..t (the same values as computed per citizen: one exp per day gap,
        looked up, instead of one per citizen rated)."""
        if self.fade is None or len(self.fade) <= t:
            days = np.arange(max(t + 1, 2 * len(self.fade) if self.fade is not None else 366), dtype=np.float64)
            self.fade = np.exp(-days / self.c.memory_days)
        return self.fade

    def citizens(self, ids: np.ndarray, S) -> dict[str, np.ndarray]:
        return {"x_rating": S.score[ids].astype(np.float32) / 100.0, "x_true_behaviour": self.trait[ids]}
