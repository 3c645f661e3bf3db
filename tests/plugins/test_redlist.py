"""The red list, a mechanism plugin: listed for good deeds, with points on entry, renewed, expiring."""

import numpy as np
import pytest

import scorelab
from scorelab.audit.metrics import event_log_check, open_run
from scorelab.config.loader import ConfigError
from tests.scenario_builders import make

RED = dict(
    behaviours=[{"name": "heroic_act", "rate": 0.02}, {"name": "littering", "rate": 0.01}],
    policy={"rules": [{"behaviour": "heroic_act", "sensor": "court", "points": 0},
                      {"behaviour": "littering", "sensor": "court", "points": -20}],
            "red_lists": [{"name": "honour_roll", "trigger": "heroic_act", "duration_days": 10, "reward_points": 30,
                           "perks": ["priority_permits"]}]},
)


def test_red_list_lists_rewards_renews_and_expires(tmp_path):
    """Every observed heroic act lists the citizen for 10 days (renewed from a new act), +30 points on entry
    only; the stock, entries and points agree with the event log; the ledger explains every score
    (seed 1, 2,000 x 30)."""
    run = scorelab.simulate(make(**RED), seed=1, out=tmp_path / "r", workers=1)
    m = run.metrics
    a = m[m.group == "all"]
    ev = run.events
    kind = ev.kind.astype(str)
    enter, renew, leave = ev[kind == "enter"], ev[kind == "renew"], ev[kind == "leave"]
    assert len(enter) == a.red_list_entries_honour_roll.sum() > 100
    assert len(renew) == a.red_list_renewals_honour_roll.sum() > 0
    assert (leave.day.to_numpy() < 30).all() and len(leave) > 0
    assert a.red_list_points_honour_roll.sum() == 30 * len(enter)
    # one score event of rule red_list:honour_roll per entry, none per renewal
    sc = ev[(kind == "score") & (ev.rule.astype(str) == "red_list:honour_roll")]
    assert len(sc) == len(enter) and (sc.points == 30).all()
    # each expiry is 10 days after the citizen's last entry or renewal before it
    on = ev[kind.isin(["enter", "renew"])]
    for cid, day in zip(leave.citizen, leave.day):
        assert on[(on.citizen == cid) & (on.day < day)].day.max() == day - 10
    # stock = entries - leaves so far
    stock = (np.cumsum(a.red_list_entries_honour_roll.to_numpy())
             - np.bincount(leave.day, minlength=30)[:30].cumsum())
    np.testing.assert_array_equal(a.red_listed_honour_roll.to_numpy(), stock)
    f = event_log_check(open_run(run.path))
    assert f["exact"] and f["red_listed_honour_roll_days_engine"] == f["red_listed_honour_roll_days_events"]
    c = run.citizens
    pts = run.ledger.groupby("citizen").points.sum().reindex(c.citizen, fill_value=0)
    np.testing.assert_array_equal(c.score.to_numpy(), c.start_score.to_numpy() + pts.to_numpy())
    assert "red_listed_until_honour_roll" in c.columns


def test_min_score_keeps_low_scorers_off(tmp_path):
    red = {**RED, "policy": {**RED["policy"], "red_lists": [{**RED["policy"]["red_lists"][0], "min_score": 1000}]}}
    run = scorelab.simulate(make(**red), seed=1, out=tmp_path / "r", workers=1)
    ev = run.events
    enter = ev[ev.kind.astype(str) == "enter"]
    # the score at entry is the end-of-day score before the reward: at least 1000
    sc = ev[ev.kind.astype(str) == "score"].sort_values(["citizen", "day"], kind="stable")
    for _, e in enter.head(50).iterrows():
        before = 1000 + sc[(sc.citizen == e.citizen) & (sc.day <= e.day) & (sc.rule.astype(str) != "red_list:honour_roll")].points.sum()
        assert before >= 1000


def test_red_list_config_errors_name_the_field():
    bad = {**RED, "policy": {**RED["policy"], "red_lists": [{**RED["policy"]["red_lists"][0], "trigger": "nope"}]}}
    with pytest.raises(ConfigError, match=r"policy\.red_lists\[0\]\.trigger: unknown behaviour 'nope'"):
        make(**bad)
    bad = {**RED, "policy": {**RED["policy"], "red_lists": [{**RED["policy"]["red_lists"][0], "colour": "red"}]}}
    with pytest.raises(ConfigError, match="colour"):
        make(**bad)


def test_jax_refuses_the_plugin_by_name(tmp_path):
    pytest.importorskip("jax")
    with pytest.raises(ConfigError, match="red_lists"):
        scorelab.simulate(make(**RED), seed=1, out=tmp_path / "j", backend="jax")
