"""Graphs (plugins/graphs.py, engine/graph.py): households, contact networks, restrictions that reach a household."""

import numpy as np
import pytest

import scorelab
from scorelab.engine import runner
from scorelab.engine.graph import build_households, build_network
from scorelab.engine.kernel import ShardSpec
from scorelab.engine.kernel import attach_plugins, new_state
from scorelab.engine.state import Day
from scorelab.engine.params import compile_params

from scenario_builders import make, run, all_rows


def _household_mech(population=400):
    sc = make(scenario={"population": population, "days": 5},
              graph={"households": {"mean_size": 3.0}},
              behaviours=[{"name": "judgment_default", "rate": 0.0}, {"name": "private_school_enrolment", "rate": 0.0}],
              policy={"rules": [{"behaviour": "judgment_default", "sensor": "court", "points": 0}],
                      "blacklists": [{"name": "court", "trigger": "judgment_default", "duration_days": 730}],
                      "restrictions": [{"name": "private_school_ban", "blacklists": ["court"], "reach": "household",
                                        "blocks": ["private_school_enrolment"]}]})
    P = compile_params(sc)
    S = new_state(P, ShardSpec(0, 0, population, 1, 1))
    attach_plugins(S)
    return P, S


def _list_change(S, t, who, until):
    """End day t after setting ``who``'s listing on the only blacklist to end on ``until``."""
    D = Day(t, touched=np.array([who]))
    D.old_listed = [S.listed[0][[who]].copy()]
    S.listed[0][who] = until
    D.new_listed = [S.listed[0][[who]]]
    S.plugins["graphs"].end_day(S, D)


def test_household_member_of_a_listed_parent_is_blocked_from_private_school_and_a_non_member_is_not():
    P, S = _household_mech()
    hh = S.plugins["graphs"].households
    h = int(np.flatnonzero(hh.size >= 3)[0])
    parent, child = int(hh.start[h]), int(hh.start[h] + 1)
    stranger = int(hh.start[h + 1])  # first member of the next household
    _list_change(S, 0, parent, 730)  # listed on day 0
    ids = np.array([parent, child, stranger])
    assert S.restricted_at_start(0, ids, 1).tolist() == [True, True, False]
    # members reached through the household (not themselves listed): the household's size minus one
    assert S.metrics["reached_private_school_ban"][0].sum() == hh.size[h] - 1
    # the listing ends: the child is free again
    _list_change(S, 1, parent, 1)
    assert not S.restricted_at_start(0, np.array([child]), 2)[0]
    assert S.metrics["reached_private_school_ban"][1].sum() == 0


def test_blocked_attempts_equal_the_households_reached_when_everyone_tries_every_day(tmp_path):
    sc = make(scenario={"population": 3000, "days": 20},
              graph={"households": {"mean_size": 3.0}},
              behaviours=[{"name": "judgment_default", "rate": 0.002}, {"name": "private_school_enrolment", "rate": 1.0}],
              policy={"rules": [{"behaviour": "judgment_default", "sensor": "court", "points": 0}],
                      "blacklists": [{"name": "court", "trigger": "judgment_default", "duration_days": 730}],
                      "restrictions": [{"name": "private_school_ban", "blacklists": ["court"], "reach": "household",
                                        "blocks": ["private_school_enrolment"]}]})
    m = all_rows(run(sc, tmp_path).metrics)
    blocked = m.blocked_private_school_ban_private_school_enrolment.to_numpy()
    under = (m.listed_court + m.reached_private_school_ban).to_numpy()  # end of each day
    assert blocked[0] == 0
    assert (blocked[1:] == under[:-1]).all()  # the attempts of day t meet the state at the end of day t-1
    assert under[-1] > m.listed_court.iloc[-1]  # family members are reached, not only the listed


def test_households_are_contiguous_inside_group_blocks():
    rng = np.random.default_rng(5)
    sizes = np.array([5000, 3000, 0, 17])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    hh = build_households(rng, starts, sizes, 2.8, 12)
    assert hh.start[0] == 0 and hh.start[-1] == sizes.sum()
    assert (np.diff(hh.household) >= 0).all() and (np.diff(hh.household) <= 1).all()
    bounds = np.cumsum(sizes)
    first_g = np.searchsorted(bounds, hh.start[:-1], side="right")
    last_g = np.searchsorted(bounds, hh.start[1:] - 1, side="right")
    assert (first_g == last_g).all() and (first_g == hh.group).all()
    assert hh.size.max() <= 12
    assert abs(hh.size[hh.group == 0].mean() - 2.8) < 0.15  # 1 + Poisson(1.8), ~1,800 households


def test_contact_network_stays_in_shard_has_no_self_loops_and_mostly_own_group():
    rng = np.random.default_rng(6)
    sizes = np.array([6000, 4000])
    starts = np.array([0, 6000])
    net = build_network(rng, starts, sizes, 8.0, 0.9, 0.5)
    owner = np.repeat(np.arange(10000), net.degree)
    assert net.indices.min() >= 0 and net.indices.max() < 10000
    assert not (net.indices == owner).any()
    assert abs(net.degree.mean() - 8.0) < 0.2
    same = (owner < 6000) == (net.indices < 6000)
    assert same.mean() > 0.9  # 0.9 by construction plus the chance of drawing one's own group at random
    vals = rng.random(10000)
    mean = net.mean_over_contacts(vals, empty=-1.0)
    i = int(np.flatnonzero(net.degree > 0)[0])
    assert mean[i] == pytest.approx(vals[net.indices[net.indptr[i]:net.indptr[i + 1]]].mean())


def test_graph_scenarios_give_the_same_numbers_for_any_number_of_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SHARD_SIZE", 1500)  # 4 shards of a 6000-citizen run
    sc = make(scenario={"population": 6000, "days": 15},
              graph={"households": {"mean_size": 3.0}},
              behaviours=[{"name": "judgment_default", "rate": 0.003}, {"name": "private_school_enrolment", "rate": 0.2}],
              policy={"rules": [{"behaviour": "judgment_default", "sensor": "court", "points": -50}],
                      "blacklists": [{"name": "court", "trigger": "judgment_default", "duration_days": 730}],
                      "restrictions": [{"name": "school", "blacklists": ["court"], "reach": "household",
                                        "blocks": ["private_school_enrolment"]}]})
    a = scorelab.simulate(sc, out=tmp_path / "a", workers=1)
    b = scorelab.simulate(sc, out=tmp_path / "b", workers=2)
    assert a.manifest["shards"] == 4
    assert a.metrics.equals(b.metrics)
    assert a.citizens.equals(b.citizens)
    assert a.metrics.blocked_school_private_school_enrolment.sum() > 0


def test_mean_over_contacts_handles_citizens_without_contacts():
    from scorelab.engine.graph import Network

    net = Network(np.array([0, 2, 2, 3, 3]), np.array([1, 2, 0], dtype=np.int32))
    assert net.mean_over_contacts(np.array([1.0, 2.0, 3.0, 4.0]), empty=-1.0).tolist() == [2.5, -1.0, 1.0, -1.0]


def test_union_of_friends_and_coworkers_keeps_every_contact():
    from scorelab.engine.graph import union_networks

    rng = np.random.default_rng(9)
    sizes, starts = np.array([700, 300]), np.array([0, 700])
    a = build_network(rng, starts, sizes, 4.0, 0.8, 0.5)
    b = build_network(rng, starts, sizes, 6.0, 0.5, 0.9)
    c = build_network(rng, starts, sizes, 0.5, 0.5, 0.5)  # many citizens without contacts here
    for nets in ([a, b], [a, b, c], [c, a]):
        u = union_networks(nets)
        assert (u.degree == sum(net.degree for net in nets)).all() and u.indices.dtype == a.indices.dtype
        for i in range(1000):  # every citizen: its contacts in each network, in network order
            got = u.indices[u.indptr[i]:u.indptr[i + 1]].tolist()
            assert got == sum((net.indices[net.indptr[i]:net.indptr[i + 1]].tolist() for net in nets), [])


def test_mean_over_contacts_against_a_loop():
    """Citizens without contacts get `empty` wherever they are: first, in the middle, last, or all of them."""
    from scorelab.engine.graph import Network

    values = np.array([3.0, -1.0, 7.5, 2.0, 10.0, 4.0])
    for degrees in ([0, 2, 0, 1, 3, 0], [2, 1, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1], [0] * 6, [0, 0, 0, 0, 0, 4]):
        indptr = np.concatenate([[0], np.cumsum(degrees)]).astype(np.int64)
        indices = (np.arange(indptr[-1]) * 5 + 1) % 6
        net = Network(indptr, indices.astype(np.int32))
        got = net.mean_over_contacts(values, empty=-9.0)
        want = [values[indices[a:b]].mean() if b > a else -9.0 for a, b in zip(indptr[:-1], indptr[1:])]
        np.testing.assert_array_equal(got, want, err_msg=str(degrees))


def test_mean_over_contacts_is_the_same_whatever_the_chunk():
    """Chunks of citizens gather and sum the same values in the same order: the same bits as one chunk."""
    rng = np.random.default_rng(3)
    for n, mean_degree in ((20000, 12.0), (5000, 0.7), (3, 0.5), (1, 1.0)):
        net = build_network(rng, np.array([0]), np.array([n]), mean_degree, 0.5, 0.5)
        for values in (rng.standard_normal(n) * 1e6, (rng.random(n) * 1000).astype(np.float32),
                       rng.integers(-500, 500, n).astype(np.int16)):
            whole = net.mean_over_contacts(values, -1.0, chunk=1 << 30)
            for chunk in (1, 7, 1 << 10):
                assert net.mean_over_contacts(values, -1.0, chunk=chunk).tobytes() == whole.tobytes()
            if values.dtype.kind == "i":  # whole numbers summed as integers: the float sums' bits
                assert net.mean_over_contacts(values.astype(np.float64), -1.0).tobytes() == whole.tobytes()
