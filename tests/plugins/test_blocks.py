"""Blocked attempts (plugins/blocks.py): a restriction refuses what the restricted try, and a refusal is not scored."""





from scenario_builders import make, run, all_rows, ledger_holds


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
