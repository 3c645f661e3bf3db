"""Every shipped preset loads, runs small, keeps the ledger invariant and shows its mechanism."""

import numpy as np
import pytest

import scorelab
from scorelab import cli
from scorelab.config.loader import list_presets

PRESETS = [p.name for p in list_presets()]


def small(name, tmp_path, population=3000, days=30, seed=2, **kw):
    return scorelab.simulate(name, seed=seed, population=population, days=days, out=tmp_path / name, workers=1, **kw)


def ledger_holds(r):
    c, led = r.citizens, r.ledger
    # each citizen's own start score (drawn from the group's start distribution, or the policy's start_score)
    start = c.start_score.to_numpy() if "start_score" in c else r.manifest["scenario"]["policy"]["start_score"]
    total = led.groupby("citizen").points.sum().reindex(c.citizen, fill_value=0).to_numpy()
    return bool((start + total == c.score.to_numpy()).all())


def test_the_article_presets_ship():
    for name in ("rr1", "rongcheng", "fair-baseline"):
        assert name in PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_runs_small_and_keeps_its_ledger(name, tmp_path):
    r = small(name, tmp_path)
    m = r.metrics
    assert len(m) == 30 * (len(r.manifest["group_sizes"]) + 1)
    assert np.isfinite(m.mean_score).all()
    assert ledger_holds(r)
    a = m[m.group == "all"]
    assert (a.points_awarded - a.points_deducted).sum() == r.citizens.score.sum() - r.citizens.start_score.sum()


def test_default_run_is_rongcheng_at_real_size_and_rr1_stays_by_name():
    assert cli.DEFAULT_SCENARIO == "rongcheng"
    sc = scorelab.load(cli.DEFAULT_SCENARIO)
    assert sc.scenario.population == 670_000 and sc.scenario.days == 365
    assert sc.policy.blacklists and sc.graph.households and any(r.money for r in sc.policy.rules)
    assert scorelab.load("rr1").scenario.name == "rr1"


def test_rongcheng_mechanisms_show_in_a_small_run(tmp_path):
    r = small("rongcheng", tmp_path, population=30000, days=60)
    a = r.metrics[r.metrics.group == "all"]
    led = r.ledger
    assert a.money_collected.sum() == 500.0 * a.observed_donation.sum() > 0
    caps = led[led.behaviour == "drunk_driving:cap"]
    assert len(caps) > 0 and (caps.points < 0).all()
    assert a.blocked_travel_ban_train_purchase_attempt.sum() > 0
    assert a.reached_private_school_ban.iloc[-1] > 0
    assert a.removed_court_defaulters.sum() > 0
    assert (a.privileged_deposit_free_bike_rental == a.grade_AAA + a.grade_AA + a.grade_A).all()
    # informants: more of their false reports land in villages, per citizen
    g = r.metrics.groupby("group", observed=True).false_uncivil_behaviour.sum()
    sizes = r.manifest["group_sizes"]
    assert g["rural"] / sizes["rural"] > g["urban"] / sizes["urban"]


def test_sensitive_categories_are_tagged():
    rc = {r.behaviour: {s.value for s in r.sensitive} for r in scorelab.load("rongcheng").policy.rules}
    assert "political_opinion" in rc["irregular_petitioning"]
    assert "biometrics" in rc["traffic_violation"]
    assert "health" in rc["blood_donation"]
    fair = scorelab.load("fair-baseline").policy.rules
    assert all(not r.sensitive for r in fair)


def test_fair_baseline_is_the_same_society_scored_on_finances_only(tmp_path):
    rc, fb = scorelab.load("rongcheng"), scorelab.load("fair-baseline")
    assert [b.model_dump() for b in rc.behaviours] == [b.model_dump() for b in fb.behaviours]
    assert [g.model_dump() for g in rc.groups] == [g.model_dump() for g in fb.groups]
    assert {r.sensor for r in fb.policy.rules} <= {"court", "bank", "utility"}
    a = small("rongcheng", tmp_path, population=20000, days=40)
    b = small("fair-baseline", tmp_path, population=20000, days=40)
    ma, mb = a.metrics, b.metrics
    # common random numbers: the same true events before anyone is deterred
    assert (ma.true_volunteering == mb.true_volunteering).all()
    # the baseline's safeguards: review catches most false matches, notice delays penalties
    fa = mb[mb.group == "all"]
    assert fa.review_caught.sum() > 0.7 * fa.false_bank_arrears.sum()
    assert (fa.penalties[:30] == 0).all()
    assert fa.wrongful_penalties.sum() < ma[ma.group == "all"].wrongful_penalties.sum()


def test_national_blacklist_counts_blocked_purchases_at_the_listed_rate(tmp_path):
    sc = scorelab.load("national-blacklist")
    rate = {g.name: sc.behaviours[[b.name for b in sc.behaviours].index("flight_purchase_attempt")].rate[g.name]
            for g in sc.groups}
    r = small("national-blacklist", tmp_path, population=60000, days=60, seed=4)
    m = r.metrics
    expected = 0.0
    for g, p in rate.items():
        listed = m[m.group == g].listed_dishonest_defaulters.to_numpy()
        expected += p * listed[:-1].sum()  # day t's attempts meet day t-1's list
    got = m[(m.group == "all") & (m.day > 0)].blocked_flight_ban_flight_purchase_attempt.sum()
    # seed 4; Poisson count of ~190: 4 sd is about 55
    assert abs(got - expected) < 4 * np.sqrt(expected) + 1
    a = m[m.group == "all"]
    assert a.listed_dishonest_defaulters.iloc[0] > 0.0025 * 60000  # the stock of listings at the start of 2018 (~0.31%)
    assert a.extended_dishonest_defaulters.sum() > 0 and a.removed_dishonest_defaulters.sum() > 0
    assert a.reached_private_school_ban.iloc[-1] > a.listed_dishonest_defaulters.iloc[-1]  # families reached
    assert a.blocked_private_school_ban_private_school_enrolment.sum() > 0


def test_surveillance_errs_more_for_the_groups_face_recognition_fails(tmp_path):
    sc = scorelab.load("surveillance")
    cam = next(s for s in sc.sensors if s.name == "cctv_face")
    fa = cam.false_attribution.rate
    # NIST IR 8280 (Grother, Ngan, Hanaoka 2019): false-match rates 10 to 100 times higher for some groups in
    # many algorithms; the issue asks for 2-100x
    assert 2 <= fa["city_minority"] / fa["city_majority"] <= 100
    assert 2 <= fa["country_minority"] / fa["country_majority"] <= 100
    cov = cam.coverage  # camera density x (1 - false non-match rate): the minority is also missed more often
    assert cov["city_minority"] < cov["city_majority"] and cov["country_minority"] < cov["country_majority"]
    assert min(cov["city_majority"], cov["city_minority"]) > 2 * max(cov["country_majority"], cov["country_minority"])
    r = small("surveillance", tmp_path, population=100000, days=150, seed=5)
    m = r.metrics.groupby("group", observed=True).sum(numeric_only=True)
    size = r.manifest["group_sizes"]
    per = {g: m.loc[g, "false_public_order_offence"] / size[g] for g in size}
    ratio = per["city_minority"] / per["city_majority"]
    # seed 5; ~120 false matches expected among city minority, ~78 among city majority: the ratio's sd is
    # about 1.45, so 10 +- 4 is about 2.7 sd
    assert 6 < ratio < 14
    # coverage: the same offence is seen far more often in the city
    seen = m.observed_public_order_offence / m.true_public_order_offence
    assert seen["city_majority"] > 2.5 * seen["country_majority"]
    # the partner lender refuses on the pooled records (flagged visits, criticism, offences, false face matches
    # included) and that falls on the minorities, per application
    refused = m.loans_refused_records_partner / m.loan_applications_partner
    assert refused["all"] > 0.1
    assert refused["city_minority"] > 1.2 * refused["city_majority"]
    assert refused["country_minority"] > 1.2 * refused["country_majority"]
    assert m.loans_defaulted_partner["all"] > 0 and m.loans_repaid_partner["all"] > m.loans_defaulted_partner["all"]
    a = r.metrics[r.metrics.group == "all"]
    assert a.criticism.sum() > 0 and "political_opinion" in {s.value for rule in sc.policy.rules for s in rule.sensitive}


def test_sesame_preset_stays_in_range_and_unlocks_perks_at_thresholds(tmp_path):
    r = small("sesame", tmp_path, population=20000, days=31)
    c, m = r.citizens, r.metrics
    assert c.score.between(350, 950).all() and c.score.std() > 10
    a = m[m.group == "all"]
    assert (a.privileged_pay_later_credit == a.grade_good + a.grade_very_good + a.grade_excellent + a.grade_elite).all()
    assert a.privileged_visa_help.iloc[-1] > 0
    # the countryside starts lower on three sub-scores and ends lower on the score
    last = m[m.day == 30].set_index("group")
    assert last.loc["rural", "mean_score"] < last.loc["urban", "mean_score"]


def test_nosedive_preset_measures_fakeness_and_gates_privileges(tmp_path):
    r = small("nosedive", tmp_path, population=20000, days=40)
    a = r.metrics[r.metrics.group == "all"]
    assert (a.fakeness > 0).all()
    assert (a.stars_given > a.stars_honest).all()
    assert (a.privileged_housing_discount == a.grade_prime).all()
    assert a.blocked_no_boarding_flight_boarding_attempt.sum() > 0


def test_cli_default_run_shows_what_the_mechanisms_did(tmp_path):
    from typer.testing import CliRunner

    res = CliRunner().invoke(cli.app, ["run", "-n", "5000", "-t", "20", "-q", "-w", "1", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "rongcheng: 5,000 citizens, 20 days" in res.output
    assert "money_collected" in res.output and "blocked_travel_ban" in res.output
    bad = CliRunner().invoke(cli.app, ["run", "no-such-preset", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()


def test_sesame_credit_events_happen_only_to_users_granted_credit(tmp_path):
    r = small("sesame", tmp_path, population=20000, days=30)
    led = r.ledger
    first = led[(led.behaviour == "monthly_update") & (led.day == 0)].set_index("citizen").points
    score0 = 600 + first.reindex(r.citizens.citizen, fill_value=0)  # the score from day 0's update to day 30's
    credit = led[led.behaviour.isin(["repay_on_time", "late_repayment"]) & (led.day >= 1)]
    assert len(credit) > 100
    assert (score0.loc[credit.citizen] >= 600).all()  # the closed loop: below 600, no credit, no credit history
    below = (score0 < 600).sum()
    assert below > 1000 and not credit.citizen.isin(score0.index[score0 < 600]).any()


@pytest.mark.slow
def test_the_default_run_at_real_size(tmp_path):
    """The newcomer's first run: rongcheng, 670,000 citizens, a year (a few seconds on one core)."""
    r = scorelab.simulate(cli.DEFAULT_SCENARIO, out=tmp_path / "default", workers=1)
    assert r.manifest["population"] == 670_000 and r.manifest["days"] == 365
    a = r.metrics[r.metrics.group == "all"]
    last = a.iloc[-1]
    grades = {g: int(last[f"grade_{g}"]) for g in ("AAA", "AA", "A", "B", "C", "D")}
    assert sum(grades.values()) == 670_000
    assert grades["A"] > 0.8 * 670_000 and grades["AAA"] > 0 and grades["C"] > 0
    assert last.listed_court_defaulters > 0.003 * 670_000
    assert a.blocked_travel_ban_flight_purchase_attempt.sum() > 0
    assert a.capped.sum() > 1000 and a.money_collected.sum() > 0
    assert ledger_holds(r)


@pytest.mark.parametrize("name", PRESETS)
def test_scored_speech_and_face_matching_are_tagged_in_every_preset(name):
    sc = scorelab.load(name)
    speech = {b.name for b in sc.behaviours if b.speech}
    for rule in sc.policy.rules:
        tags = {s.value for s in rule.sensitive}
        if rule.behaviour in speech and rule.points:
            assert "political_opinion" in tags, (name, rule.behaviour)
        if any(k in rule.sensor for k in ("camera", "face", "cctv")):
            assert "biometrics" in tags, (name, rule.behaviour)


def test_presets_declare_their_data_practices_so_the_audit_can_compare_them():
    from scorelab.audit.compliance import compliance

    verdicts = {name: compliance(name).verdict.value_counts() for name in ("fair-baseline", "rongcheng", "surveillance")}
    # the rights-respecting baseline declares its safeguards and fails no principle; the others fail many
    assert verdicts["fair-baseline"].get("fail", 0) == 0
    assert verdicts["rongcheng"].get("fail", 0) > 5 and verdicts["surveillance"].get("fail", 0) > 5
    gov = scorelab.load("surveillance").policy.governance
    partner = [r for r in gov.recipients if r.kind == "company"]
    assert partner and "score" in partner[0].fields  # the pooled database goes to the partner lender
    assert scorelab.load("rongcheng").policy.governance.prices == {"donation": 500.0}  # money for points


def _lowest_score(sc, grades):
    return min(g.min if g.min is not None else -10**9 for g in sc.policy.grades if g.name in grades)


def test_presets_carry_the_published_numbers_of_issue_3():
    """The figures a reader checks against the sources: point values, bands, weights, thresholds."""
    rc = scorelab.load("rongcheng")
    pts = {r.behaviour: r.points for r in rc.policy.rules}
    assert {b: pts[b] for b in ("traffic_violation", "contract_not_performed", "bank_arrears", "late_utility_fees",
                                "illegal_fundraising", "destroying_public_equipment", "heroic_act")} == {
        "traffic_violation": -5, "contract_not_performed": -20, "bank_arrears": -10, "late_utility_fees": -20,
        "illegal_fundraising": -40, "destroying_public_equipment": -100, "heroic_act": 30}
    assert rc.policy.start_score == 1000
    bands = {g.name: (g.min, g.max) for g in rc.policy.grades}
    assert bands == {"AAA": (1050, None), "AA": (1030, 1049), "A": (960, 1029), "B": (850, 959), "C": (600, 849),
                     "D": (None, 599)}
    cap = next(r.cap_score for r in rc.policy.rules if r.behaviour == "drunk_driving")
    assert bands["C"][0] <= cap <= bands["C"][1] == cap  # straight to C: the top of band C
    nb = scorelab.load("national-blacklist").policy.blacklists[0]
    assert nb.duration_days == 730 and nb.extended_by and nb.removed_by
    se = scorelab.load("sesame")
    comp = se.policy.composite
    assert (comp.low, comp.high) == (350, 950) and (se.policy.score_min, se.policy.score_max) == (350, 950)
    assert [s.weight for s in comp.subscores] == [0.35, 0.25, 0.20, 0.15, 0.05]
    assert comp.subscores[-1].contacts is not None
    perks = {p.name: _lowest_score(se, p.grades) for p in se.policy.privileges}
    assert perks == {"deposit_free_rentals": 600, "pay_later_credit": 600, "deposit_free_car_rental": 650,
                     "visa_help": 700, "priority_services": 750}
    nd = scorelab.load("nosedive")
    assert {p.name: _lowest_score(nd, p.grades) for p in nd.policy.privileges} == {"housing_discount": 450}
    refused = {r.name: set(r.grades) for r in nd.policy.restrictions}
    top_refused = lambda name: max(g.max for g in nd.policy.grades if g.name in refused[name])
    assert top_refused("no_housing_discount") == 449 and top_refused("no_boarding") == 419  # 4.5 and 4.2


def test_every_preset_page_says_what_is_sourced_and_what_is_assumed():
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "presets"
    for name in (p.name for p in list_presets()):
        if name == "rr1":
            continue
        text = (docs / f"{name}.md").read_text()
        assert "## What is assumed" in text, name
        assert re.search(r"^## (What the (real|\"real\") system|Sources|What it stands for \(sources\))", text, re.M), name
