"""Each preset mechanism, tested for what it does (small populations, few days, named seeds)."""

import numpy as np
import pytest

import scorelab
from scorelab.config.loader import ConfigError
from scorelab.engine import runner
from scorelab.engine.graph import build_households, build_network
from scorelab.engine.kernel import ShardSpec
from scorelab.engine.kernel import attach_plugins, new_state
from scorelab.engine.state import Day
from scorelab.engine.params import compile_params

from scenario_builders import make


def run(sc, tmp_path, name="r", **kw):
    return scorelab.simulate(sc, out=tmp_path / name, workers=1, **kw)


def all_rows(m):
    return m[m.group == "all"].reset_index(drop=True)


def ledger_holds(r):
    c, led = r.citizens, r.ledger
    # each citizen's own start score (drawn from the group's start distribution, or the policy's start_score)
    start = c.start_score.to_numpy() if "start_score" in c else r.manifest["scenario"]["policy"]["start_score"]
    total = led.groupby("citizen").points.sum().reindex(c.citizen, fill_value=0).to_numpy()
    return bool((start + total == c.score.to_numpy()).all())


def test_cap_score_puts_a_drunk_driver_in_grade_c(tmp_path):
    sc = make(behaviours=[{"name": "drunk_driving", "rate": 0.01}, {"name": "volunteering", "rate": 0.02}],
              policy={"start_score": 1000, "rules": [
                  {"behaviour": "drunk_driving", "sensor": "court", "points": 0, "cap_score": 849},
                  {"behaviour": "volunteering", "sensor": "court", "points": 5}]})
    r = run(sc, tmp_path)
    led, c = r.ledger, r.citizens
    caps = led[led.behaviour == "drunk_driving:cap"]
    assert len(caps) > 50
    # on the day of the cap, the driver's score after the day is at most 849: grade C (or D)
    day_total = led.groupby(["citizen", "day"]).points.sum().groupby(level=0).cumsum() + 1000
    after = day_total.loc[list(zip(caps.citizen, caps.day))]
    # the cap is applied after the day's points, so the day ends at 849 or below
    assert (after.to_numpy() <= 849).all()
    last_drive = led[led.behaviour == "drunk_driving"].groupby("citizen").day.max()
    last_vol = led[led.behaviour == "volunteering"].groupby("citizen").day.max().reindex(last_drive.index, fill_value=-1)
    clean = last_drive.index[last_vol.to_numpy() < last_drive.to_numpy()]  # nothing after the last drive
    assert len(clean) > 20
    assert (c.set_index("citizen").loc[clean, "grade"].isin(["C"])).all()
    assert ledger_holds(r)
    assert all_rows(r.metrics).capped.sum() == len(caps)


def _held(tmp_path, cap_days, name):
    sc = make(scenario={"days": 60, "population": 3000},
              behaviours=[{"name": "drunk_driving", "rate": 0.004}, {"name": "donation", "rate": 0.2}],
              policy={"start_score": 1000, "rules": [
                  {"behaviour": "drunk_driving", "sensor": "court", "points": 0, "cap_score": 849, "cap_days": cap_days},
                  {"behaviour": "donation", "sensor": "court", "points": 30}]})
    return run(sc, tmp_path, name)


def test_a_held_cap_cannot_be_bought_back_until_it_ends(tmp_path):
    """cap_days: from the drive, the score stays at or below the cap for that many days, whatever is donated;
    the hold's take-backs are score events of the cap rule; after it ends, donations count again."""
    r = _held(tmp_path, 20, "held")
    led, c = r.ledger, r.citizens
    assert ledger_holds(r)
    first = led[led.behaviour == "drunk_driving"].groupby("citizen").day.min()
    # end-of-day score of every citizen-day with an event, from the log
    daily = led.groupby(["citizen", "day"]).points.sum().groupby(level=0).cumsum() + 1000
    daily = daily.reset_index(name="score")
    daily["drove"] = daily.citizen.map(first)
    held = daily[(daily.drove.notna()) & (daily.day >= daily.drove) & (daily.day < daily.drove + 20)]
    assert len(held) > 200 and (held.score <= 849).all()
    takebacks = led[(led.behaviour == "drunk_driving:cap") & (led.points < 0)]
    assert all_rows(r.metrics).held.sum() > 50
    after = daily[(daily.drove.notna()) & (daily.day >= daily.drove + 40)]
    assert (after.score > 849).any()  # once the hold ends (and with no drive since), donations lift the grade
    # without the hold, the same drivers are back above the cap within days (the same draws: common random numbers)
    free = _held(tmp_path, 0, "free")
    d0 = free.ledger.groupby(["citizen", "day"]).points.sum().groupby(level=0).cumsum() + 1000
    d0 = d0.reset_index(name="score")
    d0["drove"] = d0.citizen.map(free.ledger[free.ledger.behaviour == "drunk_driving"].groupby("citizen").day.min())
    early = d0[d0.drove.notna() & (d0.day > d0.drove) & (d0.day < d0.drove + 20)]
    assert (early.score > 849).mean() > 0.3
    assert "held" not in free.metrics and len(takebacks) > len(first)


def test_cap_days_needs_a_cap(tmp_path):
    with pytest.raises(ConfigError, match="cap_days"):
        make(behaviours=[{"name": "drunk_driving", "rate": 0.01}],
             policy={"rules": [{"behaviour": "drunk_driving", "sensor": "court", "points": -5, "cap_days": 30}]})


def test_money_collected_is_donations_times_amount(tmp_path):
    sc = make(behaviours=[{"name": "donation", "rate": {"urban": 0.01, "rural": 0.003}}],
              policy={"rules": [{"behaviour": "donation", "sensor": "court", "points": 5, "money": 250.0}]})
    m = run(sc, tmp_path).metrics
    for g in ("urban", "rural", "all"):
        rows = m[m.group == g]
        assert rows.observed_donation.sum() > 0
        assert rows.money_collected.sum() == pytest.approx(250.0 * rows.observed_donation.sum())


BLACKLIST = dict(
    behaviours=[{"name": "judgment_default", "rate": 0.002},
                {"name": "repay_debt", "rate": 0.05, "requires_listed": "court"},
                {"name": "hide_assets", "rate": 0.01}],
    policy={"rules": [{"behaviour": "judgment_default", "sensor": "court", "points": 0},
                      {"behaviour": "repay_debt", "sensor": "court", "points": 0},
                      {"behaviour": "hide_assets", "sensor": "court", "points": 0}],
            "blacklists": [{"name": "court", "trigger": "judgment_default", "duration_days": 730,
                            "removed_by": ["repay_debt"], "extended_by": ["hide_assets"], "extension_days": 365}]},
)


def test_only_listed_citizens_repay_and_repaying_ends_the_listing_that_day(tmp_path):
    sc = make(scenario={"population": 5000, "days": 60}, **BLACKLIST)
    r = run(sc, tmp_path)
    led = r.ledger
    first_listed = led[led.behaviour == "judgment_default"].groupby("citizen").day.min()
    repays = led[led.behaviour == "repay_debt"]
    assert len(repays) > 30
    # the gate: every repayment comes from a citizen listed on an earlier day
    listed_before = first_listed.reindex(repays.citizen).to_numpy()
    assert (listed_before < repays.day.to_numpy()).all()
    # leaves the list that day: for citizens whose last court event is a repayment on day d, listed_until == d
    last = led[led.behaviour.isin(["judgment_default", "repay_debt", "hide_assets"])].sort_values("day")
    last = last.groupby("citizen").tail(1)
    last = last[last.behaviour == "repay_debt"]
    until = r.citizens.set_index("citizen").loc[last.citizen, "blacklisted_until"].to_numpy()
    assert (until == last.day.to_numpy()).all()
    m = all_rows(r.metrics)
    assert m.removed_court.sum() == len(repays)
    # no listing expires within 60 days, so the listed count is first listings minus removals
    firsts = first_listed.groupby(first_listed).size().reindex(range(60), fill_value=0).cumsum().to_numpy()
    relisted = (led[led.behaviour == "judgment_default"].groupby("citizen").size() > 1).sum()
    assert m.listed_court.iloc[-1] <= firsts[-1] - m.removed_court.sum() + relisted


def test_reoffending_while_listed_extends_the_listing(tmp_path):
    sc = make(scenario={"population": 5000, "days": 60}, **BLACKLIST)
    r = run(sc, tmp_path)
    led = r.ledger
    events = led[led.behaviour.isin(["judgment_default", "repay_debt", "hide_assets"])].sort_values(["citizen", "day"])
    listed = events[events.behaviour == "judgment_default"].groupby("citizen").day.min()
    hid = events[events.behaviour == "hide_assets"]
    # re-offending from the day of the listing on extends it (the day's listing comes before the extension)
    ext = hid[hid.citizen.isin(listed.index) & (hid.day.to_numpy() >= listed.reindex(hid.citizen).to_numpy())]
    plain = set(ext.citizen) - set(events[events.behaviour == "repay_debt"].citizen)
    plain = [c for c in plain if (events[(events.citizen == c) & (events.behaviour == "judgment_default")].shape[0] == 1)]
    assert len(plain) > 3
    until = r.citizens.set_index("citizen").blacklisted_until
    for c in plain:
        n_ext = int(((ext.citizen == c)).sum())
        assert until[c] == listed[c] + 730 + 365 * n_ext
    assert all_rows(r.metrics).extended_court.sum() >= len(plain)


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


def test_travel_ban_blocks_purchases_of_listed_citizens_only(tmp_path):
    sc = make(scenario={"population": 3000, "days": 20},
              behaviours=[{"name": "judgment_default", "rate": 0.002}, {"name": "flight_purchase_attempt", "rate": 1.0}],
              policy={"rules": [{"behaviour": "judgment_default", "sensor": "court", "points": 0}],
                      "blacklists": [{"name": "court", "trigger": "judgment_default", "duration_days": 730,
                                      "initial_share": 0.01}],
                      "restrictions": [{"name": "travel_ban", "blacklists": ["court"],
                                        "blocks": ["flight_purchase_attempt"]}]})
    m = all_rows(run(sc, tmp_path).metrics)
    blocked = m.blocked_travel_ban_flight_purchase_attempt.to_numpy()
    assert (blocked[1:] == m.listed_court.to_numpy()[:-1]).all()
    assert m.listed_court.iloc[0] > 10  # the initial stock of listings
    assert (m.true_flight_purchase_attempt == 3000).all()  # the attempt happens; it is refused


def test_privileges_are_held_by_grade(tmp_path):
    sc = make(behaviours=[{"name": "volunteering", "rate": 0.05}, {"name": "littering", "rate": 0.05}],
              policy={"rules": [{"behaviour": "volunteering", "sensor": "court", "points": 20},
                                {"behaviour": "littering", "sensor": "court", "points": -60}],
                      "grades": [{"name": "A", "min": 1050}, {"name": "B", "min": 950, "max": 1049}, {"name": "C", "max": 949}],
                      "privileges": [{"name": "bike", "grades": ["A", "B"]}, {"name": "heating", "grades": ["A"]}]})
    m = run(sc, tmp_path).metrics
    assert (m.privileged_bike == m.grade_A + m.grade_B).all()
    assert (m.privileged_heating == m.grade_A).all()
    assert m.privileged_heating.max() > 0 and (m.privileged_bike < m.population).any()


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


def test_unknown_names_in_mechanisms_are_config_errors():
    with pytest.raises(ConfigError, match="requires_listed"):
        make(behaviours=[{"name": "repay", "rate": 0.1, "requires_listed": "nope"}])
    with pytest.raises(ConfigError, match="household"):
        make(behaviours=[{"name": "x", "rate": 0.1}],
             policy={"rules": [{"behaviour": "x", "sensor": "court", "points": 0}],
                     "blacklists": [{"name": "l", "trigger": "x", "duration_days": 10}],
                     "restrictions": [{"name": "r", "blacklists": ["l"], "reach": "household"}]})
    with pytest.raises(ConfigError, match="unknown key"):
        make(behaviours=[{"name": "x", "rate": 0.1}], policy={"due_process": {"notise_days": 3}})
    with pytest.raises(ConfigError, match="grade"):
        make(behaviours=[{"name": "x", "rate": 0.1}], policy={"privileges": [{"name": "p", "grades": ["Z"]}]})


def _due(tmp_path, due, name="r", days=40, population=4000, seed=11):
    sc = make(scenario={"population": population, "days": days, "seed": seed},
              behaviours=[{"name": "arrears", "rate": 0.002}],
              sensors=[{"name": "bank", "coverage": 1.0,
                        "false_attribution": {"behaviour": "arrears", "rate": 0.004}}],
              policy={"rules": [{"behaviour": "arrears", "sensor": "bank", "points": -10}], "due_process": due})
    return run(sc, tmp_path, name)


def test_human_review_removes_about_q_of_false_attributions(tmp_path):
    q = 0.7
    r = _due(tmp_path, {"review": q})
    m = all_rows(r.metrics)
    false, caught = m.false_arrears.sum(), m.review_caught.sum()
    assert false > 500  # 4000 x 40 x 0.004 = 640 expected
    # seed 11; binomial sd is sqrt(q(1-q)/640) = 0.018: tolerance 0.06 is over 3 sd
    assert abs(caught / false - q) < 0.06
    assert m.wrongful_penalties.sum() == false - caught  # what review misses scores
    assert (r.ledger.false_attribution.sum()) == false - caught
    assert ledger_holds(r)


def test_notice_delays_every_penalty_and_contests_drop_false_ones(tmp_path):
    r = _due(tmp_path, {"notice_days": 7, "contest": 1.0, "contest_success": 1.0})
    m = all_rows(r.metrics)
    assert (m.penalties[:7] == 0).all()
    notices = m.notices.to_numpy()
    # day t's penalties are the notices of day t-7 less the false ones, all contested and dropped
    assert (m.penalties.to_numpy()[7:] + m.contest_dropped.to_numpy()[7:] == notices[:-7]).all()
    assert m.wrongful_penalties.sum() == 0 and m.contest_dropped.sum() > 100
    assert ledger_holds(r)


def test_negative_records_expire_with_a_named_ledger_row(tmp_path):
    D = 12
    r = _due(tmp_path, {"expiry_days": D})
    led = r.ledger
    pen = led[(led.behaviour == "arrears") & (led.day < 40 - D)]
    exp = led[led.behaviour == "expiry"]
    assert len(exp) == len(pen) > 100
    a = pen[["citizen", "day"]].assign(day=pen.day + D).sort_values(["citizen", "day"]).to_numpy()
    b = exp[["citizen", "day"]].sort_values(["citizen", "day"]).to_numpy()
    assert (a == b).all() and (exp.points == 10).all()
    # a citizen with no penalty in the last D days is back at the start score
    recent = set(led[(led.behaviour == "arrears") & (led.day >= 40 - D)].citizen)
    c = r.citizens[~r.citizens.citizen.isin(recent)]
    assert (c.score == 1000).all()


def test_appeals_reverse_false_attributions_only(tmp_path):
    r = _due(tmp_path, {"appeal": 0.5, "appeal_days": 10})
    led = r.ledger
    app = led[led.behaviour == "appeal"]
    assert app.false_attribution.all() and (app.points == 10).all()
    eligible = led[(led.behaviour == "arrears") & led.false_attribution & (led.day < 30)]
    # seed 11; ~480 eligible, sd of the share 0.023: tolerance 0.08
    assert abs(len(app) / len(eligible) - 0.5) < 0.08
    m = all_rows(r.metrics)
    assert m.reversed_appeal.sum() == len(app)
    assert ledger_holds(r)


def test_a_grade_restriction_refuses_exactly_the_attempts_of_low_grades(tmp_path):
    sc = make(scenario={"population": 3000, "days": 20},
              behaviours=[{"name": "littering", "rate": 0.05}, {"name": "loan_application", "rate": 1.0}],
              policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": -60}],
                      "restrictions": [{"name": "loan_denied", "grades": ["B", "C", "D"],
                                        "blocks": ["loan_application"]}]})
    m = all_rows(run(sc, tmp_path).metrics)
    low = (m.grade_B + m.grade_C + m.grade_D).to_numpy()
    blocked = m.blocked_loan_denied_loan_application.to_numpy()
    assert blocked[0] == 0 and (blocked[1:] == low[:-1]).all() and blocked.sum() > 0


def _sesame(tmp_path, same_group, name, seed=3):
    sc = make(scenario={"population": 6000, "days": 61, "seed": seed},
              graph={"networks": [{"name": "friends", "mean_degree": 10, "same_group": same_group}]},
              behaviours=[{"name": "repay_on_time", "rate": 0.02}, {"name": "late_repayment", "rate": 0.002}],
              sensors=[{"name": "platform", "coverage": 1.0}],
              policy={"start_score": 600, "score_min": 350, "score_max": 950, "grades": [],
                      "composite": {"update_every": 30, "subscores": [
                          {"name": "credit", "weight": 0.6, "initial": {"urban": 80, "rural": 20}, "spread": 5},
                          {"name": "capacity", "weight": 0.2, "initial": 50, "spread": 5},
                          {"name": "connections", "weight": 0.2, "contacts": "friends"}]},
                      "rules": [{"behaviour": "repay_on_time", "sensor": "platform", "points": 1, "subscore": "credit"},
                                {"behaviour": "late_repayment", "sensor": "platform", "points": -10,
                                 "subscore": "credit"}]})
    return run(sc, tmp_path, name)


def test_composite_stays_in_range_and_moves_only_on_update_days(tmp_path):
    r = _sesame(tmp_path, 0.9, "a")
    c, led = r.citizens, r.ledger
    assert c.score.between(350, 950).all()
    upd = led[led.behaviour == "monthly_update"]
    assert set(upd.day) == {0, 30, 60}
    assert (led[led.points != 0].behaviour == "monthly_update").all()  # events move sub-scores, not the score
    assert ledger_holds(r)
    # the score is the weighted sum of the sub-scores at the last update (events after day 60: none in 61 days)
    comp = 350 + 6 * (0.6 * c.subscore_credit + 0.2 * c.subscore_capacity + 0.2 * c.subscore_connections)
    assert (np.abs(comp - c.score) <= 0.5 + 1e-3).all()


def test_connections_subscore_follows_the_contacts_scores(tmp_path):
    seg = _sesame(tmp_path, 1.0, "seg").citizens  # contacts only inside one's own group
    mix = _sesame(tmp_path, 0.0, "mix").citizens  # contacts drawn from everyone
    gap = lambda c: (c[c.group == "urban"].subscore_connections.mean() - c[c.group == "rural"].subscore_connections.mean())
    # urban scores are ~36 sub-score points above rural ones: segregated contacts carry the gap,
    # mixed contacts erase it (seed 3; means over 3,000 citizens with 10 contacts: tolerance 2 points)
    assert gap(seg) > 25
    assert abs(gap(mix)) < 2
    # and within a group, a citizen's connections sub-score tracks their own contacts, not their own record
    s = seg[seg.group == "urban"]
    assert abs(np.corrcoef(s.subscore_connections, s.subscore_credit)[0, 1]) < 0.2


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


def test_mean_over_contacts_handles_citizens_without_contacts():
    from scorelab.engine.graph import Network

    net = Network(np.array([0, 2, 2, 3, 3]), np.array([1, 2, 0], dtype=np.int32))
    assert net.mean_over_contacts(np.array([1.0, 2.0, 3.0, 4.0]), empty=-1.0).tolist() == [2.5, -1.0, 1.0, -1.0]


def test_bad_composite_and_peer_blocks_are_config_errors():
    comp = {"subscores": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.4}]}
    with pytest.raises(ConfigError, match="add up to 1"):
        make(behaviours=[{"name": "x", "rate": 0.1}], policy={"composite": comp})
    comp = {"subscores": [{"name": "a", "weight": 1.0}]}
    with pytest.raises(ConfigError, match="sub-score"):
        make(behaviours=[{"name": "x", "rate": 0.1}],
             policy={"composite": comp, "rules": [{"behaviour": "x", "sensor": "court", "points": 1, "subscore": "zz"}]})
    with pytest.raises(ConfigError, match="points directly"):
        make(behaviours=[{"name": "x", "rate": 0.1}],
             policy={"composite": comp, "rules": [{"behaviour": "x", "sensor": "court", "points": 1}]})
    peer = {"network": "acq", "interactions": 0.1, "start_rating": 4.0}
    with pytest.raises(ConfigError, match="network"):
        make(behaviours=[{"name": "x", "rate": 0.1}], peer=peer, policy={"start_score": 400})
    with pytest.raises(ConfigError, match="100 x peer.start_rating"):
        make(behaviours=[{"name": "x", "rate": 0.1}], peer=peer,
             graph={"networks": [{"name": "acq", "mean_degree": 5}]}, policy={"start_score": 1000})
    with pytest.raises(ConfigError, match="behaviour_mean"):
        make(behaviours=[{"name": "x", "rate": 0.1}], peer={**peer, "behaviour_mean": {"urban": 9, "rural": 3}},
             graph={"networks": [{"name": "acq", "mean_degree": 5}]}, policy={"start_score": 400})


def test_union_of_friends_and_coworkers_keeps_every_contact():
    from scorelab.engine.graph import union_networks

    rng = np.random.default_rng(9)
    sizes, starts = np.array([700, 300]), np.array([0, 700])
    a = build_network(rng, starts, sizes, 4.0, 0.8, 0.5)
    b = build_network(rng, starts, sizes, 6.0, 0.5, 0.9)
    u = union_networks([a, b])
    assert (u.degree == a.degree + b.degree).all()
    for i in (0, 17, 999):
        got = u.indices[u.indptr[i]:u.indptr[i + 1]].tolist()
        assert got == a.indices[a.indptr[i]:a.indptr[i + 1]].tolist() + b.indices[b.indptr[i]:b.indptr[i + 1]].tolist()


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


def test_contested_false_penalties_are_dropped_at_the_success_rate(tmp_path):
    r = _due(tmp_path, {"notice_days": 7, "contest": 1.0, "contest_success": 0.5})
    m = all_rows(r.metrics)
    false_due = m.false_arrears.to_numpy()[:33].sum()  # false notices of days 0-32 come due in the run
    assert false_due > 400  # 4000 x 33 x 0.004 = 528 expected
    # seed 11; binomial sd of the share sqrt(0.25 / 528) = 0.022: tolerance 0.08 is over 3 sd
    assert abs(m.contest_dropped.sum() / false_due - 0.5) < 0.08
    assert m.wrongful_penalties.sum() == false_due - m.contest_dropped.sum()
    assert ledger_holds(r)


@pytest.mark.parametrize("name", ["nosedive", "sesame", "rongcheng", "national-blacklist", "surveillance",
                                  "fair-baseline"])
def test_presets_give_the_same_bytes_for_any_worker_count(name, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SHARD_SIZE", 2000)  # 3 shards, each with its own graphs and mechanism streams
    kw = dict(population=6000, days=32, seed=7)
    a = scorelab.simulate(name, out=tmp_path / "a", workers=1, **kw)
    b = scorelab.simulate(name, out=tmp_path / "b", workers=2, **kw)
    c = scorelab.simulate(name, out=tmp_path / "c", workers=1, **kw)
    assert a.manifest["shards"] == 3
    assert a.metrics.equals(b.metrics) and a.citizens.equals(b.citizens) and a.ledger.equals(b.ledger)
    for f in ("metrics.parquet", "citizens.parquet", "events.parquet"):
        assert (a.path / f).read_bytes() == (c.path / f).read_bytes(), f


def test_events_move_their_sub_score(tmp_path):
    r = _sesame(tmp_path, 0.9, "ev")
    led, c = r.ledger, r.citizens.set_index("citizen")
    pts = {"repay_on_time": 1, "late_repayment": -10}
    ev = led[led.behaviour.isin(list(pts))]
    moved = ev.behaviour.map(pts).groupby(ev.citizen).sum().reindex(c.index, fill_value=0)
    # seed 3; starting credit sub-scores spread 5 points, events add about 3.6 points of spread: the
    # correlation is about 0.58 (0 if events did not move the sub-score); 3,000 citizens per group
    for g in ("urban", "rural"):
        sel = c.group == g
        assert np.corrcoef(moved[sel], c.subscore_credit[sel])[0, 1] > 0.4
    assert np.corrcoef(moved, c.subscore_capacity)[0, 1] < 0.1  # and no other sub-score


def test_a_refused_attempt_is_not_scored(tmp_path):
    sc = make(scenario={"population": 3000, "days": 20},
              behaviours=[{"name": "littering", "rate": 0.05}, {"name": "loan_application", "rate": 1.0}],
              policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": -60},
                                {"behaviour": "loan_application", "sensor": "court", "points": 1}],
                      "restrictions": [{"name": "loan_denied", "grades": ["B", "C", "D"],
                                        "blocks": ["loan_application"]}]})
    r = run(sc, tmp_path)
    m, led = all_rows(r.metrics), r.ledger
    blocked = m.blocked_loan_denied_loan_application.sum()
    assert blocked > 0
    assert (led.behaviour == "loan_application").sum() == m.true_loan_application.sum() - blocked
    assert ledger_holds(r)


def test_due_process_and_household_settings_that_could_never_act_are_config_errors():
    x = dict(behaviours=[{"name": "x", "rate": 0.1}])
    with pytest.raises(ConfigError, match=r"due_process\.contest.*notice_days"):
        make(**x, policy={"due_process": {"contest": 0.5, "contest_success": 0.5}})
    with pytest.raises(ConfigError, match=r"due_process\.appeal_days"):
        make(**x, policy={"due_process": {"appeal": 0.5, "appeal_days": 90, "expiry_days": 60}})
    with pytest.raises(ConfigError, match=r"graph\.households\.max_size"):
        make(**x, graph={"households": {"mean_size": 4.0, "max_size": 3}})


@pytest.mark.parametrize("preset,old,new,field", [
    ("nosedive", "interactions = 0.2", "interactions = 1.5", "peer.interactions"),
    ("sesame", 'contacts = "friends"', 'contacts = "enemies"', "policy.composite.subscores[4].contacts"),
    ("fair-baseline", "contest_success = 0.9", "contest_success = 1.9", "policy.due_process.contest_success"),
    ("rongcheng", 'cap_score = 849', 'cap_score = "C"', "policy.rules[1].cap_score"),
    ("national-blacklist", 'reach = "household"', 'reach = "village"', "policy.restrictions[3].reach"),
])
def test_bad_extension_values_in_a_file_exit_2_naming_file_and_field(preset, old, new, field, tmp_path):
    from typer.testing import CliRunner

    from scorelab import cli
    from scorelab.config.loader import resolve_source

    text = resolve_source(preset).read_text()
    assert text.count(old) == 1
    path = tmp_path / f"{preset}.toml"
    path.write_text(text.replace(old, new))
    res = CliRunner().invoke(cli.app, ["run", str(path), "-n", "100", "-t", "2", "-o", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert str(path) in res.output and field in res.output
    assert not (tmp_path / "out").exists()


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


def test_a_declared_price_must_match_the_money_a_rule_collects():
    rule = {"behaviour": "donation", "sensor": "court", "points": 5, "money": 500.0}
    with pytest.raises(ConfigError, match=r"governance\.prices.*500"):
        make(behaviours=[{"name": "donation", "rate": 0.01}],
             policy={"rules": [rule], "governance": {"prices": {"donation": 100.0}}})
    sc = make(behaviours=[{"name": "donation", "rate": 0.01}],
              policy={"rules": [rule], "governance": {"prices": {"donation": 500.0}}})
    assert sc.policy.governance.prices["donation"] == 500.0


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


def test_initial_share_per_group_lists_each_group_at_its_own_share(tmp_path):
    """A per-group initial stock (the national list: business owners listed ten times as often); one number
    for every group draws exactly what it drew before (same stream, same comparison)."""
    def scenario(share):
        return make(scenario={"population": 40000, "days": 3},
                    behaviours=[{"name": "default", "rate": 0.0}],
                    policy={"rules": [{"behaviour": "default", "sensor": "court", "points": 0}],
                            "blacklists": [{"name": "list", "trigger": "default", "duration_days": 100,
                                            "initial_share": share}]})
    r = run(scenario({"urban": 0.01, "rural": 0.1}), tmp_path, "pg")
    m = r.metrics[r.metrics.day == 0].set_index("group")
    assert m.loc["urban", "listed_list"] / m.loc["urban", "population"] == pytest.approx(0.01, abs=0.003)
    assert m.loc["rural", "listed_list"] / m.loc["rural", "population"] == pytest.approx(0.1, abs=0.01)
    same = run(scenario({"urban": 0.05, "rural": 0.05}), tmp_path, "same")
    one = run(scenario(0.05), tmp_path, "one")
    assert same.manifest["sha256"]["events.parquet"] == one.manifest["sha256"]["events.parquet"]
    with pytest.raises(ConfigError, match=r"initial_share.*(unknown group|no value)"):
        scenario({"urban": 0.01})
    with pytest.raises(ConfigError, match="initial_share.rural.*probability"):
        scenario({"urban": 0.01, "rural": 1.5})
