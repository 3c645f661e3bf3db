"""Peer rating (plugins/peer.py): stars weighted by the rater, status and politeness bias, incidents, association."""

import numpy as np
from hypothesis import given, settings, strategies as st

import scorelab
from scorelab.engine.kernel import ShardSpec
from scorelab.engine.kernel import attach_plugins, new_state
from scorelab.engine.params import compile_params
from scorelab.engine.runner import plan_detail, plan_shards
from scorelab.plugins import peer

from scenario_builders import make, run, all_rows, ledger_holds


def _peer(tmp_path, name, seed=8, days=40, **peer):
    cfg = {"network": "acq", "interactions": 0.3, "start_rating": 4.0, "behaviour_mean": 3.5,
           "behaviour_spread": 0.5, "noise": 0.6, "status": 0.0, "politeness": 0.0}
    cfg.update(peer)
    sc = make(scenario={"population": 4000, "days": days, "seed": seed},
              graph={"networks": [{"name": "acq", "mean_degree": 10}]},
              behaviours=[{"name": "public_incident", "rate": 0.002}], sensors=[],
              peer=cfg,
              policy={"start_score": round(100 * cfg["start_rating"]), "score_min": 100, "score_max": 500,
                      "grades": [{"name": "low", "max": 449}, {"name": "prime", "min": 450}]})
    return run(sc, tmp_path, name)


def all_fakeness(r):
    a = all_rows(r.metrics)
    return float((a.fakeness * a.interactions).sum() / a.interactions.sum())


def test_fakeness_is_zero_without_politeness_or_status_and_positive_with_politeness(tmp_path):
    honest = _peer(tmp_path, "honest")
    polite = _peer(tmp_path, "polite", politeness=0.5)
    assert all_fakeness(honest) == 0.0  # given stars are the honest ones, exactly
    f = all_fakeness(polite)
    # +0.5 star of politeness, minus what clipping at 5 and rounding take back (seed 8)
    assert 0.3 < f < 0.55
    assert all_rows(polite.metrics).mean_score.iloc[-1] > all_rows(honest.metrics).mean_score.iloc[-1]
    assert ledger_holds(polite) and ledger_holds(honest)


def test_rating_is_the_rater_weighted_mean_and_follows_true_behaviour(tmp_path):
    r = _peer(tmp_path, "r", days=60)
    c = r.citizens
    assert c.rating.between(1, 5).all()
    assert (c.score == np.rint(100 * c.rating)).all()
    # honest stars centre on true behaviour (3.5): ratings fall from the start (4.0) toward it
    assert c.rating.mean() < 3.85
    assert np.corrcoef(c.rating, c.true_behaviour)[0, 1] > 0.5


def test_status_bias_rewards_the_already_high_rated(tmp_path):
    flat = _peer(tmp_path, "flat").citizens
    status = _peer(tmp_path, "status", status=1.0).citizens
    # with status bias the same behaviour earns more when one's rating is high: the spread of ratings grows
    assert status.rating.std() > flat.rating.std()


def test_incidents_multiply_the_penalty(tmp_path):
    calm = _peer(tmp_path, "calm")
    harsh = _peer(tmp_path, "harsh", incident={"behaviour": "public_incident", "days": 3, "factor": 3.0,
                                               "opinion_drop": 2.0})
    a, b = all_rows(calm.metrics), all_rows(harsh.metrics)
    assert b.stars_honest.mean() < a.stars_honest.mean()
    assert b.mean_score.iloc[-1] < a.mean_score.iloc[-1]


def test_association_with_low_rated_people_costs(tmp_path):
    free = _peer(tmp_path, "free", behaviour_mean=2.8)
    costly = _peer(tmp_path, "costly", behaviour_mean=2.8, association={"below": 3.5, "star": 1.0, "weight": 1.0})
    assert all_rows(costly.metrics).mean_score.iloc[-1] < all_rows(free.metrics).mean_score.iloc[-1] - 5


class _PeerShim:
    """The peer plugin of a hand-set shard: traits to set, and one day's interactions at given scores."""

    def __init__(self, S):
        self.S, self.plugin = S, S.plugins["peer"]

    @property
    def trait(self):
        return self.plugin.trait

    def _interact(self, t, true_ids, score):
        self.S.score[:] = score
        return self.plugin._interact(self.S, t, true_ids)


def _peer_mech(**peer):
    """A 4-citizen peer-rating shard whose contacts, traits and scores a test sets by hand (no noise)."""
    from scorelab.engine.graph import Network

    cfg = {"network": "acq", "interactions": 1.0, "start_rating": 4.0, "prior_weight": 20.0, "memory_days": 1e5,
           "behaviour_mean": 3.0, "behaviour_spread": 0.0, "noise": 0.0, "status": 0.0, "politeness": 0.0}
    cfg.update(peer)
    sc = make(scenario={"population": 4, "days": 40}, graph={"networks": [{"name": "acq", "mean_degree": 1}]},
              behaviours=[{"name": "public_incident", "rate": 0.0}], sensors=[], peer=cfg,
              policy={"start_score": 400, "score_min": 100, "score_max": 500,
                      "grades": [{"name": "low", "max": 449}, {"name": "prime", "min": 450}]})
    P = compile_params(sc)
    S = new_state(P, ShardSpec(0, 0, 4, 1, 1))
    attach_plugins(S)
    mech = _PeerShim(S)

    def meet(rater: int, ratee: int) -> None:  # today the only interaction: `rater` starts one with `ratee`
        indptr = np.zeros(5, dtype=np.int64)
        indptr[rater + 1:] = 1
        mech.plugin.net = Network(indptr, np.array([ratee], dtype=np.int32))

    return mech, meet


def _rating_of(mech, uid_new, who):
    uid, new = uid_new
    return int(new[list(uid).index(who)])


def test_a_star_counts_by_the_raters_own_rating():
    """Citizen 2 gets 5 stars from a 5.0-rated citizen, then 1 star from a 1.0-rated one: the mean weighted
    by the raters' ratings is (20 x 4 + 5 x 5 + 1 x 1) / (20 + 5 + 1) = 4.08, not the plain 3.91."""
    none = [np.empty(0, dtype=np.int64)]
    mech, meet = _peer_mech()
    score = np.array([500, 100, 400, 400], dtype=np.int16)
    mech.trait[:] = [3.0, 3.0, 5.0, 3.0]
    meet(0, 2)
    assert _rating_of(mech, mech._interact(0, none, score), 2) == round(100 * (80 + 5 * 5) / 25)
    mech.trait[2] = 1.0
    meet(1, 2)
    assert _rating_of(mech, mech._interact(1, none, score), 2) == round(100 * (80 + 25 + 1) / 26)  # 408
    # the same two stars from swapped raters: the 1 star now carries the weight
    mech, meet = _peer_mech()
    mech.trait[:] = [3.0, 3.0, 5.0, 3.0]
    meet(1, 2)
    mech._interact(0, none, score)
    mech.trait[2] = 1.0
    meet(0, 2)
    assert _rating_of(mech, mech._interact(1, none, score), 2) == round(100 * (80 + 5 + 5) / 26)  # 346


def test_stars_received_during_an_incident_weigh_factor_times_more():
    """Only the incident's weight multiplier acts here (opinion_drop = 0): a 1 star from a 4.0-rated rater
    during the incident weighs 4 x 3 = 12, so the rating is (80 + 12) / 32 = 2.88 instead of 3.50."""
    mech, meet = _peer_mech(incident={"behaviour": "public_incident", "days": 2, "factor": 3.0, "opinion_drop": 0.0})
    score = np.array([400, 400, 400, 400], dtype=np.int16)
    mech.trait[:] = [3.0, 3.0, 1.0, 3.0]
    meet(0, 2)
    got = _rating_of(mech, mech._interact(0, [np.array([2])], score), 2)
    assert got == round(100 * (80 + 12) / 32)
    mech, meet = _peer_mech(incident={"behaviour": "public_incident", "days": 2, "factor": 3.0, "opinion_drop": 0.0})
    mech.trait[:] = [3.0, 3.0, 1.0, 3.0]
    meet(0, 2)
    assert _rating_of(mech, mech._interact(0, [np.empty(0, dtype=np.int64)], score), 2) == 350  # no incident


def test_received_stars_fade_with_memory_days():
    """A 5-star rating of day 0 weighs exp(-30/10) as much on day 30 as a fresh one."""
    none = [np.empty(0, dtype=np.int64)]
    mech, meet = _peer_mech(memory_days=10.0)
    score = np.array([500, 500, 400, 400], dtype=np.int16)
    mech.trait[:] = [3.0, 3.0, 5.0, 3.0]
    meet(0, 2)
    mech._interact(0, none, score)
    mech.trait[2] = 1.0
    meet(1, 2)
    f = np.exp(-3.0)
    expected = (80 + 25 * f + 5) / (20 + 5 * f + 5)  # 3.42; without fading it would be (80 + 30) / 30 = 3.67
    assert _rating_of(mech, mech._interact(30, none, score), 2) == round(100 * expected)


def _nosedive(**peer):
    sc = scorelab.load("nosedive", population=3000, days=120)
    return sc.with_changes({f"peer.{k}": v for k, v in peer.items()})


def _final_ratings(sc):
    r = scorelab.simulate(sc, seed=4, workers=1)
    return r.citizens.rating.to_numpy()


def test_rater_weighting_changes_outcomes_once_stars_depend_on_the_rater():
    """With deference (stars lean towards the gap between the ratee's rating and the rater's own), weighting
    each star by the rater's rating moves the final ratings against a constant weight."""
    w = _final_ratings(_nosedive(deference=1.0, rater_weighting=True))
    c = _final_ratings(_nosedive(deference=1.0, rater_weighting=False))
    assert np.abs(w - c).mean() > 0.01
    assert (w != c).mean() > 0.5


def test_avoiding_low_rated_contacts_leaves_them_lower():
    base = _final_ratings(_nosedive(deference=0.5))
    avoid = _final_ratings(_nosedive(deference=0.5, avoidance=0.8, avoid_below=3.8))
    low = base < np.quantile(base, 0.1)
    assert avoid.std() != base.std()
    assert avoid[low].mean() != base[low].mean()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_received_sums_are_those_of_every_rating_in_order(data):
    """Who was rated and their summed weights, the dense way (bincount over the shard) and the sparse way
    (np.unique), equal a plain reference bit for bit, with positive, zero or negative weights."""
    n = data.draw(st.integers(1, 40))
    m = data.draw(st.integers(0, 60))
    recv = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)), dtype=np.int64)
    w = np.array(data.draw(st.lists(st.sampled_from([1.0, 1.37, 4.5, 0.0, -2.25, 2.0]), min_size=m, max_size=m)))
    ws = w * np.array(data.draw(st.lists(st.integers(1, 5), min_size=m, max_size=m)), dtype=np.float64)
    uid, add_w, add_ws = peer.received(recv, w, ws, n)
    want = sorted(set(recv.tolist()))
    assert uid.tolist() == want
    for i, c in enumerate(want):
        sw = sww = 0.0
        for j in np.flatnonzero(recv == c):  # in the order of the ratings
            sw += w[j]
            sww += ws[j]
        assert add_w[i] == sw and add_ws[i] == sww


def test_fading_is_looked_up_with_the_values_computed_per_citizen():
    params = compile_params(scorelab.load("nosedive", population=2000, days=30))
    S = new_state(params, plan_shards(2000, 0, plan_detail(2000, None))[0])
    attach_plugins(S)
    p = S.plugins["peer"]
    for t in (0, 5, 365, 366, 900):
        gaps = np.arange(t + 1, dtype=np.int16)
        assert np.array_equal(p._fade(t)[t - gaps], np.exp(-(t - gaps.astype(np.float64)) / p.c.memory_days))
