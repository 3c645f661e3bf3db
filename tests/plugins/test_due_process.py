"""Due process (plugins/due_process.py): notice, human review, contests, appeals, expiry."""





from scenario_builders import make, run, all_rows, ledger_holds


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


def test_contested_false_penalties_are_dropped_at_the_success_rate(tmp_path):
    r = _due(tmp_path, {"notice_days": 7, "contest": 1.0, "contest_success": 0.5})
    m = all_rows(r.metrics)
    false_due = m.false_arrears.to_numpy()[:33].sum()  # false notices of days 0-32 come due in the run
    assert false_due > 400  # 4000 x 33 x 0.004 = 528 expected
    # seed 11; binomial sd of the share sqrt(0.25 / 528) = 0.022: tolerance 0.08 is over 3 sd
    assert abs(m.contest_dropped.sum() / false_due - 0.5) < 0.08
    assert m.wrongful_penalties.sum() == false_due - m.contest_dropped.sum()
    assert ledger_holds(r)
