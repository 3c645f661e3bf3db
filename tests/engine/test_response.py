"""The behavioural response: general deterrence (chilling), sanction-scaled specific deterrence, learning
from refusals, per-citizen heterogeneity — each tested for its mechanism."""

import numpy as np
import pytest

import scorelab
from scorelab.config.loader import ConfigError
from scorelab.engine.kernel import ShardSpec, simulate_shard
from scorelab.engine.params import compile_params

from scenario_builders import make

SPEAK = [{"name": "criticism_online", "rate": 0.02, "speech": True, "misconduct": False}]


def _speech(points, chilling=True, coverage=0.5, days=60, population=20000):
    return make(scenario={"population": population, "days": days},
                behaviours=SPEAK, sensors=[{"name": "court", "coverage": coverage}],
                policy={"rules": [{"behaviour": "criticism_online", "sensor": "court", "points": points}]},
                response={"chilling": [{"behaviour": "criticism_online", "elasticity": 1.0, "points_unit": 100}]
                          if chilling else []})


def _criticism(sc, seed=4):
    r = simulate_shard(compile_params(sc), ShardSpec(0, 0, sc.scenario.population, seed, 0))
    return int(r.metrics["criticism"].sum())


def test_chilling_grows_with_the_sanction_and_the_monitoring_for_people_never_penalised():
    base = _criticism(_speech(-20, chilling=False))
    mild, harsh = _criticism(_speech(-20)), _criticism(_speech(-200))
    # 1 / (1 + 1.0 x 0.5 x 20/100) = 0.909 and 1 / (1 + 0.5 x 200/100) = 0.5 of the unchilled rate
    assert harsh < mild < base
    assert abs(mild / base - 1 / 1.1) < 0.03 and abs(harsh / base - 0.5) < 0.03
    # no one watched, no one chilled: coverage 0 leaves the rate as it is
    assert _criticism(_speech(-200, coverage=0.0)) == _criticism(_speech(-200, chilling=False, coverage=0.0))


def test_chilling_keeps_common_random_numbers_the_harsher_policy_speaks_a_subset():
    a = simulate_shard(compile_params(_speech(-20, days=10, population=3000)), ShardSpec(0, 0, 3000, 2, 1))
    b = simulate_shard(compile_params(_speech(-200, days=10, population=3000)), ShardSpec(0, 0, 3000, 2, 1))
    key = lambda r: set(zip(r.ledger["day"].tolist(), r.ledger["citizen"].tolist()))  # noqa: E731
    assert key(b) < key(a)


def test_chilling_needs_a_rule_and_names_the_field():
    with pytest.raises(ConfigError) as e:
        make(behaviours=SPEAK, response={"chilling": [{"behaviour": "criticism_online", "elasticity": 1.0}]})
    assert "response.chilling[0].behaviour" in str(e.value)


def _deterred(points, unit):
    sc = make(scenario={"population": 20000, "days": 200},
              behaviours=[{"name": "littering", "rate": 0.02}],
              policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": points}]},
              response={"deterrence": {"factor": 0.8, "points_unit": unit}})
    return int(simulate_shard(compile_params(sc), ShardSpec(0, 0, 20000, 3, 0)).metrics["true_littering"].sum())


def test_specific_deterrence_grows_with_the_penalty_when_points_unit_is_set():
    assert _deterred(-100, 10) < _deterred(-10, 10) < _deterred(-10, 1000) + 1
    # without points_unit, one step per penalty whatever its size (as before)
    sc = lambda p: make(scenario={"population": 5000, "days": 60}, behaviours=[{"name": "littering", "rate": 0.02}],  # noqa: E731
                        policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": p}]},
                        response={"deterrence": {"factor": 0.8}})
    a = simulate_shard(compile_params(sc(-10)), ShardSpec(0, 0, 5000, 3, 0)).metrics["true_littering"]
    b = simulate_shard(compile_params(sc(-100)), ShardSpec(0, 0, 5000, 3, 0)).metrics["true_littering"]
    np.testing.assert_array_equal(a, b)


def _travel(learning):
    return make(scenario={"population": 4000, "days": 120},
                behaviours=[{"name": "judgment_default", "rate": 0.0},
                            {"name": "buy_plane_ticket", "rate": 0.05, "misconduct": False}],
                policy={"rules": [{"behaviour": "judgment_default", "sensor": "court", "points": 0}],
                        "blacklists": [{"name": "court", "trigger": "judgment_default", "duration_days": 730,
                                        "initial_share": 0.1}],
                        "restrictions": [{"name": "travel_ban", "blacklists": ["court"], "blocks": ["buy_plane_ticket"]}]},
                response={"learning": [{"behaviour": "buy_plane_ticket", "days": 60, "factor": 0.1}] if learning else []})


def test_a_refused_traveller_tries_less_and_the_unlisted_are_untouched(tmp_path):
    plain = scorelab.simulate(_travel(False), seed=5, out=tmp_path / "a", workers=1)
    learn = scorelab.simulate(_travel(True), seed=5, out=tmp_path / "b", workers=1)
    blocked = lambda r: int(r.metrics[r.metrics.group == "all"].blocked_travel_ban_buy_plane_ticket.sum())  # noqa: E731
    assert blocked(learn) < 0.5 * blocked(plain)
    m = learn.metrics[learn.metrics.group == "all"]
    assert m.deterred_buy_plane_ticket.sum() > 0
    # citizens never listed buy exactly the same tickets (their draws and gates are untouched)
    listed = set(learn.events[learn.events.kind == "list_start"].citizen)
    def tickets(r):
        e = r.events[(r.events.kind == "score") & (r.events.rule == "buy_plane_ticket")] if "rule" in r.events else r.events
        return sorted(zip(e.day, e.citizen))
    ta = [x for x in tickets(plain) if x[1] not in listed]
    tb = [x for x in tickets(learn) if x[1] not in listed]
    assert ta == tb


def test_learning_needs_a_blocked_behaviour():
    with pytest.raises(ConfigError) as e:
        make(behaviours=[{"name": "buy_plane_ticket", "rate": 0.05, "misconduct": False}],
             response={"learning": [{"behaviour": "buy_plane_ticket", "days": 60, "factor": 0.1}]})
    assert "response.learning[0].behaviour" in str(e.value) and "not blocked" in str(e.value)


def test_heterogeneity_concentrates_events_on_some_citizens_with_the_same_mean():
    def run(sigma):
        sc = make(scenario={"population": 20000, "days": 100},
                  behaviours=[{"name": "littering", "rate": 0.005, "heterogeneity": sigma, "heterogeneity_cap": 20.0}],
                  policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": -1}]})
        r = simulate_shard(compile_params(sc), ShardSpec(0, 0, 20000, 9, 1))
        c = np.asarray(r.citizens["true_misconduct"]).astype(np.int64)
        return c.mean(), c.var()
    m0, v0 = run(0.0)
    m1, v1 = run(1.0)
    assert abs(m1 / m0 - 1) < 0.06  # mean 1 multiplier (the cap trims a little)
    assert v1 > 1.5 * v0  # over-dispersed: the same people offend again


def test_jax_refuses_the_response_it_does_not_implement():
    pytest.importorskip("jax")
    from scorelab.engine.jax_backend import unsupported

    assert "response.chilling" in unsupported(compile_params(_speech(-20)))


def test_the_rr1_chilling_example_chills_more_under_a_harsher_penalty():
    from pathlib import Path

    ex = Path(__file__).resolve().parents[2] / "examples" / "rr1-chilling.toml"
    sc = scorelab.load(str(ex), population=20000, days=60)
    harsh = sc.with_changes({"policy.rules[public_criticism].points": -200})
    a = scorelab.simulate(sc, seed=3, workers=1)
    b = scorelab.simulate(harsh, seed=3, workers=1)
    crit = lambda r: int(r.metrics[r.metrics.group == "all"].criticism.sum())  # noqa: E731
    assert crit(b) < 0.75 * crit(a)


def _throttled(effect, targeting=None, population=20000, days=90):
    return make(scenario={"population": population, "days": days},
                behaviours=[{"name": "littering", "rate": 0.01},
                            {"name": "criticism_online", "rate": 0.02, "speech": True, "misconduct": False}],
                sensors=[{"name": "court", "coverage": 0.5, **({"targeting": targeting} if targeting else {})}],
                policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": -200},
                                  {"behaviour": "criticism_online", "sensor": "court", "points": 0}],
                        "restrictions": [{"name": "slowed_internet", "grades": ["C", "D"],
                                          **({"effects": effect} if effect else {})}]})


def _run(sc, seed=6):
    r = simulate_shard(compile_params(sc), ShardSpec(0, 0, sc.scenario.population, seed, 1))
    return r


def test_a_restriction_with_effects_lowers_its_holders_speech_and_no_one_elses():
    plain = _run(_throttled(None))
    slowed = _run(_throttled([{"behaviour": "criticism_online", "factor": 0.2}]))
    assert slowed.metrics["criticism"].sum() < 0.9 * plain.metrics["criticism"].sum()
    # the never-restricted speak exactly as before: the same candidates, the same uniforms
    from scorelab.engine.events import KIND

    def speech(r):
        L = r.ledger
        restricted = set(L["citizen"][L["kind"] == KIND["restrict_on"]].tolist())
        sel = (L["kind"] == KIND["score"]) & (L["rule"] == 1)
        return sorted((d, c) for d, c in zip(L["day"][sel].tolist(), L["citizen"][sel].tolist()) if c not in restricted), restricted
    a, ra = speech(plain)
    b, rb = speech(slowed)
    assert ra == rb and len(ra) > 100 and len(a) > 1000 and a == b


def test_a_privilege_effect_above_one_raises_use_by_its_holders():
    def sc(factor):
        return make(scenario={"population": 20000, "days": 60},
                    behaviours=[{"name": "borrow", "rate": 0.01, "misconduct": False}],
                    policy={"privileges": [{"name": "easy_credit", "grades": ["A"],
                                            "effects": [{"behaviour": "borrow", "factor": factor}]}]})
    one, three = _run(sc(1.0)), _run(sc(3.0))
    assert abs(three.metrics["true_borrow"].sum() / one.metrics["true_borrow"].sum() - 3.0) < 0.15


def test_targeted_surveillance_sees_more_of_the_restricted():
    base = _run(_throttled(None))
    targeted = _run(_throttled(None, targeting=[{"restriction": "slowed_internet", "factor": 2.0}]))
    assert targeted.metrics["observed_littering"].sum() > base.metrics["observed_littering"].sum()
    assert targeted.metrics["true_littering"].sum() <= base.metrics["true_littering"].sum()


def test_effects_and_targeting_name_unknown_behaviours_and_restrictions():
    with pytest.raises(ConfigError) as e:
        _throttled([{"behaviour": "nope", "factor": 0.5}])
    assert "policy.restrictions[0].effects[0].behaviour" in str(e.value)
    with pytest.raises(ConfigError) as e:
        _throttled(None, targeting=[{"restriction": "nope", "factor": 2.0}])
    assert "sensors[0].targeting[0].restriction" in str(e.value)
