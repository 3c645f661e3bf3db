"""The audit: golden values on hand-built runs, mechanism checks on small RR-1 runs, storage and CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from _auditlib import golden_dict, rr1_dict, simulate_dict
from scorelab.audit.counterfactual import counterfactual_events
from scorelab.audit.metrics import audit_run, audit_summary, gini, k_anonymity, open_run, write_audit
from scorelab.cli import app


@pytest.fixture(scope="module")
def rr1_run(tmp_path_factory):
    return simulate_dict(rr1_dict(20_000, 60), tmp_path_factory.mktemp("rr1") / "run", seed=1)


@pytest.fixture(scope="module")
def rr1_tables(rr1_run):
    return audit_run(rr1_run.path)


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory):
    return simulate_dict(golden_dict(), tmp_path_factory.mktemp("golden") / "run")


def test_golden_run_hand_computed(golden_run):
    t = audit_run(golden_run.path)
    s, w = t["sanctions"].loc["all"], t["wrongful"].loc["all"]
    # every citizen restricted on days 2, 3, 4 by false attributions alone, with no true misconduct
    assert s["ever_restricted_share"] == 1.0
    assert s["restricted_days_mean"] == 3.0
    assert s["restricted_final_share"] == 1.0
    assert s["restricted_mean_share"] == pytest.approx(3 / 5)
    assert s["false_positive_rate"] == 1.0
    assert s["innocent_among_restricted"] == 1.0
    assert np.isnan(s["false_negative_rate"])  # nobody had true misconduct
    assert w["citizens_falsely_attributed"] == 10 and w["false_points"] == -5000
    assert w["wrongly_restricted"] == 10 and w["wrongful_restriction_days"] == 30
    assert w["grade_changed"] == 10 and w["listing_changed"] == 0
    ch = t["grade_changes"]
    assert ch.loc["OK", "LOW"] == 10 and ch.to_numpy().sum() == 10
    assert t["transitions"].loc["OK", "LOW"] == 10
    assert t["chilling"].loc["all", "speech_fall"] == 0  # speech has rate 0 and 0 points


def test_disparate_impact_when_the_reference_group_is_never_restricted(tmp_path):
    """The camera names only group `b`: `a` is never restricted, so b's disparate impact is the largest
    possible (infinite) and flagged, not a missing value that slips past the 0.8-1.25 check."""
    d = golden_dict()
    d["scenario"]["population"] = 40
    d["groups"] = [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]
    d["sensors"][0]["false_attribution"]["rate"] = {"a": 0.0, "b": 1.0}
    run = simulate_dict(d, tmp_path / "run")
    s = audit_run(run.path)["sanctions"]
    assert s.loc["a", "ever_restricted_share"] == 0 and s.loc["b", "ever_restricted_share"] == 1
    assert s.loc["b", "disparate_impact"] == np.inf and bool(s.loc["b", "disparate_impact_flag"])
    assert s.loc["a", "disparate_impact"] == 1 and not bool(s.loc["a", "disparate_impact_flag"])
    assert audit_summary(run.path)["disparate_impact_flag[b]"] == 1.0
    r = CliRunner().invoke(app, ["audit", str(run.path)])
    assert r.exit_code == 0 and "∞" in r.output


def test_replay_matches_the_kernels_aggregates(tmp_path):
    """Short listings (they expire inside the run) and grade restrictions: the per-citizen replay must
    reproduce metrics.parquet's restricted citizen-days and citizens.parquet's final state exactly."""
    d = rr1_dict(5_000, 40)
    d["behaviours"][3]["rate"] = 0.01  # loan_default
    d["policy"]["blacklists"][0]["duration_days"] = 7
    d["policy"]["restrictions"][0]["grades"] = ["B", "C", "D"]
    run = simulate_dict(d, tmp_path / "run", seed=4)
    r = open_run(run.path)
    rp = r.replay
    m = run.metrics
    allm = m[m["group"] == "all"]
    assert rp.restricted_days.sum() == round((allm["restricted_share"] * allm["population"]).sum())
    assert rp.listed_days.sum() == allm["listed_court_defaulters"].sum()
    for k, g in enumerate(r.params.grade_names):
        assert rp.grade_days[:, k].sum() == allm[f"grade_{g}"].sum()
    np.testing.assert_array_equal(rp.final_restricted, r.citizens["restricted"].to_numpy())
    np.testing.assert_array_equal(rp.final_score, r.citizens["score"].to_numpy())
    assert 0 < rp.restricted_days.sum() < 5_000 * 40


PRESETS = ["rr1", "rongcheng", "fair-baseline", "national-blacklist", "surveillance", "sesame", "nosedive"]


@pytest.mark.parametrize("preset", PRESETS)
def test_event_log_is_exact_for_every_preset(preset, tmp_path):
    """With every citizen kept, per-citizen restricted, listed and household-reached days read from the event
    log, summed over citizens, equal the engine's daily counts summed over days; final states agree; audit.json
    reports both numbers (seed 3, 3,000 x 90; nosedive 1,500 x 40)."""
    import scorelab
    from scorelab.audit.metrics import event_log_check

    n, t = (1500, 40) if preset == "nosedive" else (3000, 90)
    run = scorelab.simulate(preset, seed=3, out=tmp_path / "r", population=n, days=t, workers=1)
    f = event_log_check(open_run(run.path))
    assert f["checked"] and f["exact"], f
    assert f["restricted_days_events"] == f["restricted_days_engine"]
    for k in f:
        if "_engine[" in k:
            assert f[k] == f[k.replace("_engine[", "_events[")], k
    res = write_audit(run.path)
    doc = json.loads((run.path / "audit.json").read_text())
    assert doc["event_log_check"]["restricted_days_events"] == doc["event_log_check"]["restricted_days_engine"]
    assert "APPROXIMATE" not in json.dumps(res["notes"]) and "MISMATCH" not in res["notes"]["history"]


def test_rongcheng_records_every_state_change(tmp_path):
    """Rongcheng's initial listings, removals by repayment and household reach are events; spill-over is
    measured (seed 3, 20,000 x 120)."""
    import scorelab

    run = scorelab.simulate("rongcheng", seed=3, out=tmp_path / "rc", population=20_000, days=120, workers=1)
    ev = run.events
    kinds = set(ev["kind"].astype(str))
    assert {"score", "list_start", "list_remove", "restrict_on", "restrict_off", "reach_on", "blocked"} <= kinds
    initial = ev[(ev["kind"].astype(str) == "list_start") & (ev["rule"].astype(str) == "initial_listing")]
    assert len(initial) > 0 and (initial["day"] == 0).all() and (initial["until"] > 0).all()
    res = write_audit(run.path)
    # spill-over through households (Rongcheng's private-school ban reaches a listed defaulter's children):
    # free citizens living with a restricted one, recomputed here from citizens.parquet with pandas
    c = run.citizens
    per_hh = c.groupby("household")["restricted"].transform("sum")
    free = ~c["restricted"]
    expected = ((per_hh - c["restricted"].astype(int)) > 0)[free].mean()
    inequality = res["tables"]["inequality"]
    assert inequality.loc["all", "contacts_of_restricted_share"] == pytest.approx(expected) and expected > 0
    assert "through households" in res["notes"]["spillover"]


def test_wrongful_replay_recomputes_score_caps(tmp_path):
    """Without its false attributions a capped citizen's history is capped again from the new score: every
    golden citizen drives drunk daily (cap 850) and is falsely penalised daily (-100). Appealed, each stays
    at 850 (recorded cap points kept fixed would give 950). Grades: OK >= 800, so the 4 LOW days are all
    wrongful."""
    d = golden_dict()
    d["behaviours"].append({"name": "drunk", "rate": 1.0, "misconduct": True})
    d["policy"]["rules"].append({"behaviour": "drunk", "sensor": "web", "points": 0, "cap_score": 850})
    run = simulate_dict(d, tmp_path / "run")
    r = open_run(run.path)
    assert (r.replay.final_score == 450).all()
    assert (r.replay_without_false.final_score == 850).all()
    w = audit_run(r)["wrongful"].loc["all"]
    assert w["wrongly_restricted"] == 10 and w["wrongful_restriction_days"] == 40


def test_zero_false_attribution_means_zero_wrongful_sanctions(tmp_path):
    d = rr1_dict(5_000, 40)
    d["sensors"][0]["false_attribution"]["rate"] = 0.0
    run = simulate_dict(d, tmp_path / "run")
    w = audit_run(run.path)["wrongful"]
    assert (w[["citizens_falsely_attributed", "wrongly_restricted", "wrongful_restriction_days", "grade_changed"]] == 0).all().all()


def test_chilling_positive_for_rr1_and_zero_without_points(rr1_tables, tmp_path):
    ch = rr1_tables["chilling"]
    assert ch.loc["all", "speech_fall"] > 0  # seed 1, 20,000 x 60 days: deterrence removes some speech
    assert (ch.loc[["urban", "rural"], "speech_fall"] >= 0).all()
    curve = rr1_tables["chilling_curve"]
    assert (curve["counterfactual"] >= curve["run"]).all()  # common random numbers: a superset, day by day
    d = rr1_dict(20_000, 60)
    d["policy"]["rules"][4]["points"] = 0  # public_criticism no longer penalised
    run = simulate_dict(d, tmp_path / "run", seed=1)
    ch0 = audit_run(run.path)["chilling"]
    assert (ch0["speech_fall"] == 0).all()


def test_fast_counterfactual_equals_full_resimulation():
    import scorelab

    sc = scorelab.load("rr1", population=8_000, days=30)
    fast = counterfactual_events(sc, 5, ["public_criticism"], mode="fast")["table"]
    full = counterfactual_events(sc, 5, ["public_criticism"], mode="full")["table"]
    assert fast["events"].sum() > 0
    np.testing.assert_array_equal(fast["events"].to_numpy(), full["events"].to_numpy())


@pytest.mark.parametrize("preset", ["rongcheng", "surveillance"])
def test_full_counterfactual_of_presets_with_mechanisms(preset):
    """The neutral scenario of a preset whose behaviours require a blacklist (Rongcheng's debt repayment)
    must validate (it raised a pydantic error), and its speech must equal the fast counterfactual's."""
    import scorelab
    from scorelab.engine.params import compile_params

    sc = scorelab.load(preset, population=4_000, days=20)
    if sc.response.conformity:  # imitation makes speech depend on contacts: `fast` hands over to `full`
        cf = counterfactual_events(sc, 5, ["criticise_government"], mode="fast")
        assert cf["method"].startswith("full, since the fast path cannot reproduce imitation of contacts") and cf["common_random_numbers"]
        sc = sc.with_changes({"response.conformity": []})
    P = compile_params(sc)
    speech = [b for b, s in zip(P.behaviours, P.speech) if s]
    fast = counterfactual_events(sc, 5, speech, mode="fast")["table"]
    full = counterfactual_events(sc, 5, speech, mode="full")["table"]
    assert fast["events"].sum() > 0
    np.testing.assert_array_equal(fast["events"].to_numpy(), full["events"].to_numpy())


def test_sanctions_disparity_and_intervals(rr1_tables):
    s = rr1_tables["sanctions"]
    ref = s["reference_group"].iloc[0]
    assert s.loc[ref, "disparate_impact"] == 1.0
    assert s.loc["rural", "ever_restricted_share"] > s.loc["urban", "ever_restricted_share"]  # rural defaults more
    assert bool(s.loc["rural", "disparate_impact_flag"])
    for col, lo, hi in [("ever_restricted_share", "ever_restricted_ci_low", "ever_restricted_ci_high"),
                        ("false_negative_rate", "false_negative_ci_low", "false_negative_ci_high")]:
        assert (s[lo] <= s[col]).all() and (s[col] <= s[hi]).all()
        assert (s[hi] - s[lo] < 0.1).all()
    # in RR-1 only a loan default (true misconduct) can restrict within 60 days: no false positives
    assert s.loc["all", "false_positive_rate"] == 0.0


def test_error_rates_follow_their_definitions_and_intervals_their_width(rr1_run, rr1_tables):
    """Recomputed from the per-citizen replay and ground truth: FPR = restricted among the innocent, FNR =
    never restricted among the guilty, and innocent-among-restricted (a different denominator). Each
    bootstrap interval must be about as wide as the binomial normal interval 2 x 1.96 sqrt(p(1-p)/n)
    (tolerance 30%: 1,000 resamples, seed = the run's); an interval that did not resample would be 0 wide."""
    r = open_run(rr1_run.path)
    ever = r.replay.restricted_days > 0
    guilty = r.citizens["true_misconduct"].to_numpy() > 0
    s = rr1_tables["sanctions"]
    for name in ("urban", "rural", "all"):
        m = np.ones(len(ever), bool) if name == "all" else (r.citizens["group"].astype(str) == name).to_numpy()
        innocent, bad = m & ~guilty, m & guilty
        assert s.loc[name, "false_positive_rate"] == pytest.approx(ever[innocent].mean())
        assert s.loc[name, "false_negative_rate"] == pytest.approx((~ever[bad]).mean())
        assert s.loc[name, "ever_restricted_share"] == pytest.approx(ever[m].mean())
        for col, lo, hi, n in (("ever_restricted_share", "ever_restricted_ci_low", "ever_restricted_ci_high", m.sum()),
                               ("false_negative_rate", "false_negative_ci_low", "false_negative_ci_high", bad.sum())):
            p = s.loc[name, col]
            width = 2 * 1.96 * np.sqrt(p * (1 - p) / n)
            assert s.loc[name, hi] - s.loc[name, lo] == pytest.approx(width, rel=0.3), (name, col)
    # the share of innocents among the restricted is another quantity (here 0: only defaulters are restricted)
    assert s.loc["all", "innocent_among_restricted"] == pytest.approx((~guilty[ever]).mean())


def test_gaming_and_privacy(rr1_tables):
    g = rr1_tables["gaming"].loc["all"]
    assert g["bought_behaviours"] == "donation"
    assert g["points_bought"] > 0 and g["money_collected"] == g["points_bought"] / 10 * 100  # 100 per donation
    assert g["events_induced_by_gaming"] > 0  # below 1000, donations triple
    p = rr1_tables["privacy"]["value"]
    assert p["recipients"] == 2 and np.isnan(p["retention_days"])
    assert 0 < p["unique_share[all_recipients]"] < 0.1
    assert p["unique_share[public_list]"] <= p["unique_share[all_recipients]"]


def test_money_from_a_rule_counts_as_bought_points(tmp_path):
    """A rule's `money` (Rongcheng's 500-yuan donation) buys points just as a governance price does: the
    gaming table must count it, and agree with the engine's own money_collected metric."""
    d = rr1_dict(4_000, 30)
    d["policy"]["governance"]["prices"] = {}
    d["response"]["gaming"] = []
    rule = next(r for r in d["policy"]["rules"] if r["behaviour"] == "donation")
    rule["money"] = 500.0
    run = simulate_dict(d, tmp_path / "run", seed=2)
    g = audit_run(run.path)["gaming"]
    m = run.metrics
    assert g.loc["all", "bought_behaviours"] == "donation"
    assert g.loc["all", "points_bought"] > 0
    for grp in ("urban", "rural", "all"):
        assert g.loc[grp, "money_collected"] == m[m["group"] == grp]["money_collected"].sum() > 0


def test_helpers_golden():
    assert gini(np.array([1, 1, 1, 1])) == 0.0
    assert gini(np.array([0, 0, 0, 1])) == pytest.approx(0.75)
    df = pd.DataFrame({"a": [1, 1, 2, 3, 3, 3], "b": ["x", "x", "y", "z", "z", "w"]})
    r = k_anonymity(df, ["a", "b", "nope"])
    assert r["missing"] == ["nope"] and r["min_k"] == 1 and r["classes"] == 4
    assert r["unique_share"] == pytest.approx(2 / 6)
    none = k_anonymity(df, [])  # nothing shared: not measurable, and never reported as "0% unique"
    assert np.isnan(none["unique_share"]) and np.isnan(none["min_k"])


def test_summary_and_stored_files(rr1_run):
    res = write_audit(rr1_run.path)
    s = res["summary"]
    for key in ("restricted_share[rural]", "disparate_impact[rural]", "wrongful_sanctioned_share[all]", "gini[all]",
                "speech_fall_share[all]", "points_bought[all]", "false_positive_rate[urban]"):
        assert key in s and np.isfinite(s[key])
    assert s == audit_summary(rr1_run.path)  # seeded bootstrap: the same every time
    long = pd.read_parquet(rr1_run.path / "audit.parquet")
    assert set(long["table"]) >= {"sanctions", "wrongful", "chilling", "gaming", "inequality", "privacy", "transitions"}
    doc = json.loads((rr1_run.path / "audit.json").read_text())
    assert doc["summary"]["gini[all]"] == pytest.approx(s["gini[all]"])
    assert "bootstrap" in doc["notes"]["intervals"]
    curve = pd.read_parquet(rr1_run.path / "chilling.parquet")
    assert len(curve) == 60 * 3


def test_cli_audit(rr1_run, tmp_path):
    r = CliRunner().invoke(app, ["audit", str(rr1_run.path)])
    assert r.exit_code == 0, r.output
    assert "Sanctions by group" in r.output and "Chilling effect" in r.output
    r = CliRunner().invoke(app, ["audit", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such run directory" in r.output
    r = CliRunner().invoke(app, ["audit", str(rr1_run.path), "--counterfactual", "maybe"])
    assert r.exit_code == 2 and "fast or full" in r.output
    # a damaged manifest: a clear error naming file and field, exit 2, nothing written
    bad = tmp_path / "damaged"
    bad.mkdir()
    for t in ("metrics", "citizens", "events", "distribution"):
        (bad / f"{t}.parquet").write_bytes((rr1_run.path / f"{t}.parquet").read_bytes())
    m = json.loads((rr1_run.path / "run.json").read_text())
    m["scenario"]["policy"]["rules"][0]["points"] = "lots"
    (bad / "run.json").write_text(json.dumps(m))
    for cmd in (["audit", str(bad)], ["report", str(bad)], ["explain", str(bad), "--citizen", "1"]):
        r = CliRunner().invoke(app, cmd)
        assert r.exit_code == 2 and "run.json" in r.output and "scenario.policy.rules.0.points" in r.output, r.output
        assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)
    (bad / "run.json").write_text("{}")
    r = CliRunner().invoke(app, ["audit", str(bad)])
    assert r.exit_code == 2 and "not a scorelab run manifest" in r.output
    assert sorted(p.name for p in bad.iterdir()) == ["citizens.parquet", "distribution.parquet", "events.parquet",
                                                     "metrics.parquet", "run.json"]


def test_runs_without_detail_get_the_aggregate_audit(tmp_path):
    from scorelab.audit.compliance import compliance
    from scorelab.audit.report import build_report

    run = simulate_dict(rr1_dict(4_000, 30), tmp_path / "run", ledger="none")
    t = audit_run(run.path)
    assert set(t) == {"sanctions", "wrongful", "chilling", "chilling_curve", "gaming"}
    assert t["sanctions"].loc["rural", "disparate_impact"] > 1  # from mean restricted shares
    assert t["chilling"].loc["all", "speech_counterfactual"] >= t["chilling"].loc["all", "speech_run"] > 0
    r = CliRunner().invoke(app, ["audit", str(run.path)])
    assert r.exit_code == 0, r.output
    assert "no per-citizen detail" in r.output and "--ledger all" in r.output
    df = compliance(run.path)
    assert (df["verdict"] == "fail").any()
    text = build_report(run.path).read_text(encoding="utf-8")
    assert "no per-citizen detail" in text and text.count("Plotly.newPlot(") == 5


def test_sampled_run_and_smaller_counterfactual(tmp_path):
    run = simulate_dict(rr1_dict(6_000, 30), tmp_path / "run", seed=3, ledger="600")  # every 10th id
    t = audit_run(run.path, counterfactual_population=3_000)
    s = t["sanctions"]
    assert s.loc["all", "kept"] == 600 and s.loc["all", "citizens"] == 6_000
    ch = t["chilling"].loc["all"]
    assert "no common random numbers" in ch["method"]
    # counts scaled to the run's population: same order of magnitude as the run's own speech
    assert 0.7 < ch["speech_counterfactual"] / ch["speech_run"] < 1.4
    r = CliRunner().invoke(app, ["audit", str(run.path), "--counterfactual-population", "0"])
    assert r.exit_code == 2 and "--counterfactual-population" in r.output


def test_new_listings_metric_counts_the_list_start_events(tmp_path):
    """listings_<list> (new listings per day, renewals and listings from before the run left out) equals the
    event log's list_start events of trigger rules, day by day (national-blacklist, every citizen kept)."""
    import scorelab

    run = scorelab.simulate("national-blacklist", seed=4, out=tmp_path / "nb", population=100_000, days=200, workers=1,
                            ledger="all")
    ev = run.events
    starts = ev[(ev["kind"].astype(str) == "list_start") & (ev["rule"].astype(str) != "initial_listing")]
    per_day = starts.groupby("day").size().reindex(range(200), fill_value=0).to_numpy()
    m = run.metrics
    metric = m[m.group == "all"].sort_values("day")["listings_dishonest_defaulters"].to_numpy()
    assert metric.sum() > 50
    assert (metric == per_day).all()
