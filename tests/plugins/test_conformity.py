"""Conformity through the social graph (plugins/conformity.py): imitation of contacts, deterrence by their
punishment, and the array helpers it rests on."""

import numpy as np
import pytest

import scorelab
from scorelab.config.loader import ConfigError
from scorelab.engine.graph import build_households
from scorelab.plugins.conformity import contact_share, household_csr
from tests.scenario_builders import make

GRAPH = {"networks": [{"name": "friends", "mean_degree": 8, "same_group": 0.8, "local": 0.7}],
         "households": {"mean_size": 3.0, "max_size": 8}}
BEHAVIOURS = [{"name": "post", "rate": 0.01, "misconduct": False, "speech": True},
              {"name": "shop", "rate": 0.02, "misconduct": False}]


def scenario(conformity=None, rules=None, days=60):
    sc = make(behaviours=BEHAVIOURS, graph=GRAPH, scenario={"population": 20000, "days": days},
              policy={"rules": rules or []})
    return sc if conformity is None else sc.with_changes({"response.conformity": conformity})


def totals(run, name):
    a = run.metrics[run.metrics.group == "all"]
    return int(a[name].sum())


def test_contact_share_is_the_share_over_each_citizens_contacts():
    rng = np.random.default_rng(0)
    deg = rng.poisson(3, 200)
    indptr = np.concatenate([[0], np.cumsum(deg)])
    indices = rng.integers(0, 200, int(deg.sum())).astype(np.int32)
    flag = (rng.random(200) < 0.3).astype(float)
    ids = rng.choice(200, 50, replace=False)
    got = contact_share(indptr, indices, ids, flag)
    want = [flag[indices[indptr[i]:indptr[i + 1]]].mean() if deg[i] else 0.0 for i in ids]
    assert np.allclose(got, want)


def test_household_contacts_are_the_other_members():
    hh = build_households(np.random.default_rng(1), np.array([0, 500]), np.array([500, 300]), 3.0, 8)
    indptr, members = household_csr(hh.start, hh.household)
    for i in (0, 1, 2, 499, 500, 799):
        h = hh.household[i]
        want = [j for j in range(hh.start[h], hh.start[h + 1]) if j != i]
        assert sorted(members[indptr[i]:indptr[i + 1]].tolist()) == want


def test_imitation_spreads_a_behaviour_through_contacts_and_leaves_others_alone():
    base = scorelab.simulate(scenario(), seed=2, workers=1)
    on = scorelab.simulate(scenario([{"behaviour": "post", "network": "friends", "days": 30, "imitation": 3.0}]),
                           seed=2, workers=1)
    p0, p1 = totals(base, "true_post"), totals(on, "true_post")
    # with 8 contacts each posting ~0.3 times a month, a quarter of a citizen's contacts have posted in any
    # 30-day window: the multiplier is near 1 + 3 x 0.25, and it compounds as posting rises
    assert p1 > 1.4 * p0
    assert 0 < totals(on, "conformity_imitating_post") <= p1
    # no randomness of its own: every other behaviour's events are the same, citizen for citizen
    assert totals(on, "true_shop") == totals(base, "true_shop")
    assert base.metrics.true_shop.tolist() == on.metrics.true_shop.tolist()


def test_seeing_contacts_punished_deters_and_grows_with_the_example():
    rules = [{"behaviour": "post", "sensor": "court", "points": -1}]
    base = scorelab.simulate(scenario(rules=rules), seed=3, workers=1)
    weak = scorelab.simulate(scenario([{"behaviour": "post", "network": "friends", "deterrence": 2.0}], rules),
                             seed=3, workers=1)
    strong = scorelab.simulate(scenario([{"behaviour": "post", "network": "friends", "deterrence": 20.0}], rules),
                               seed=3, workers=1)
    p0, p1, p2 = (totals(r, "true_post") for r in (base, weak, strong))
    assert p2 < p1 < p0 and p2 < 0.8 * p0
    assert totals(weak, "conformity_warned_post") > totals(strong, "conformity_warned_post") > 0
    # nobody was penalised on day 0, so nobody had seen an example: day 0 is the same in every arm
    day0 = lambda r: int(r.metrics[(r.metrics.group == "all") & (r.metrics.day == 0)].true_post.iloc[0])
    assert day0(base) == day0(weak) == day0(strong)


def test_households_carry_conformity_too():
    base = scorelab.simulate(scenario(), seed=4, workers=1)
    on = scorelab.simulate(scenario([{"behaviour": "post", "network": "household", "days": 60, "imitation": 5.0}]),
                           seed=4, workers=1)
    assert totals(on, "true_post") > 1.2 * totals(base, "true_post")


@pytest.mark.parametrize("block, field", [
    ({"behaviour": "fly", "network": "friends", "imitation": 1.0}, "response.conformity[0].behaviour"),
    ({"behaviour": "post", "network": "coworkers", "imitation": 1.0}, "response.conformity[0].network"),
    ({"behaviour": "post", "network": "friends"}, "response.conformity[0]"),
    ({"behaviour": "post", "network": "friends", "imitation": -1.0}, "imitation"),
    ({"behaviour": "post", "network": "friends", "imitation": 1.0, "days": 0}, "days"),
])
def test_bad_conformity_names_the_field(block, field):
    with pytest.raises(ConfigError) as e:
        scenario([block])
    assert field in str(e.value)
