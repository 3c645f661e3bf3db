"""Composite scores (plugins/composite.py): weighted sub-scores, one of which follows contacts."""

import numpy as np



from scenario_builders import make, run, ledger_holds


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
