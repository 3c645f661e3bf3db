"""Compliance checks: each verdict must follow from a named rule or setting, and change when it changes."""

from __future__ import annotations

import copy

import pytest
from typer.testing import CliRunner

import scorelab
from _auditlib import rr1_dict, simulate_dict
from scorelab.audit.compliance import Context, compliance, evaluate, principles
from scorelab.cli import app
from scorelab.config.loader import scenario_from_dict
from scorelab.config.models import Policy


def _verdicts(sc) -> dict:
    df = evaluate(Context(sc.policy, sc))
    return {r["id"]: r for _, r in df.iterrows()}


def _without(data: dict, behaviour: str) -> dict:
    d = copy.deepcopy(data)
    d["policy"]["rules"] = [r for r in d["policy"]["rules"] if r["behaviour"] != behaviour]
    d["policy"]["governance"]["contexts"].pop(behaviour, None)
    d["policy"]["governance"]["prices"].pop(behaviour, None)
    d["sensors"] = [s for s in d["sensors"] if not (s.get("false_attribution") and s["false_attribution"]["behaviour"] == behaviour)]
    return d


def test_principles_are_data_with_texts():
    ps = principles()
    ids = [p.id for p in ps]
    assert len(ids) == len(set(ids)) == 21
    assert {"UN-1", "UN-10", "GDPR-5-1-a", "GDPR-9", "GDPR-22", "AIA-5-1-c-i", "AIA-5-1-c-ii"} <= set(ids)
    assert all(len(p.text) > 40 for p in ps)
    assert "political opinions" in next(p for p in ps if p.id == "GDPR-9").text
    by = {p.id: p for p in ps}
    # quotations are verbatim: Art. 22(3)'s safeguards apply to the cases of Art. 22(2)(a) and (c) only, and
    # the parts of 5(1)(b) and (e) left out (archiving, research, statistics) are marked as left out
    assert "In the cases referred to in points (a) and (c) of paragraph 2" in by["GDPR-22"].text
    assert by["GDPR-5-1-b"].text.endswith("[...]") and by["GDPR-5-1-e"].text.endswith("[...]")
    assert "either or both of the following" not in by["AIA-5-1-c-i"].text or "..." in by["AIA-5-1-c-i"].text
    assert all(p.quoted for p in ps if p.framework.startswith(("GDPR", "EU AI Act")))
    assert not any(p.quoted for p in ps if p.id in ("UN-1", "UN-7", "UN-8", "UN-9", "UN-10"))  # paraphrases, said so


def test_rr1_verdicts_name_their_causes():
    v = _verdicts(scorelab.load("rr1"))
    assert v["GDPR-9"]["verdict"] == "fail"
    assert "public_criticism" in v["GDPR-9"]["cause"] and "traffic_violation" in v["GDPR-9"]["cause"]
    assert v["GDPR-22"]["verdict"] == "fail" and "reviews no decision" in v["GDPR-22"]["cause"]
    assert v["AIA-5-1-c-i"]["verdict"] == "fail" and "travel_ban" in v["AIA-5-1-c-i"]["cause"]
    assert v["AIA-5-1-c-ii"]["verdict"] == "fail" and "political expression" in v["AIA-5-1-c-ii"]["cause"]
    assert v["UN-4"]["verdict"] == "fail" and "retention_days" in v["UN-4"]["cause"]
    assert v["UN-9"]["verdict"] == "fail" and "partner_bank" in v["UN-9"]["cause"]
    assert v["GDPR-9"]["text"].startswith("Processing of personal data revealing")


def test_without_political_rule_art9_does_not_fail_on_that_account():
    data = rr1_dict(1000, 10)
    v = _verdicts(scenario_from_dict(_without(data, "public_criticism")))
    assert "political" not in v["GDPR-9"]["cause"] and "public_criticism" not in v["GDPR-9"]["cause"]
    assert v["GDPR-9"]["verdict"] == "fail" and "biometrics" in v["GDPR-9"]["cause"]  # the camera still does
    assert "political expression" not in v["AIA-5-1-c-ii"]["cause"]
    # and with no sensitive rule at all, Art. 9 passes
    d = _without(_without(data, "public_criticism"), "traffic_violation")
    v = _verdicts(scenario_from_dict(d))
    assert v["GDPR-9"]["verdict"] == "pass"


def test_untagged_speech_rule_still_fails_art9():
    data = rr1_dict(1000, 10)
    data["policy"]["rules"][4]["sensitive"] = []
    v = _verdicts(scenario_from_dict(data))
    assert v["GDPR-9"]["verdict"] == "fail" and "speech = true" in v["GDPR-9"]["cause"]


def test_safeguards_the_simulation_runs_and_declares_turn_failures_into_passes():
    data = rr1_dict(1000, 10)
    data["policy"]["due_process"] = {"review": 0.9, "appeal": 0.7, "expiry_days": 800}  # what the system does
    gov = data["policy"]["governance"]
    gov.update(human_review=True, appeal=True, notice=True, access=True, published_rules=True, retention_days=800,
               controller="office", impact_assessment=True, audit_log=True,
               security=["encryption", "access_control", "audit_log"])
    gov["recipients"] = []
    v = _verdicts(scenario_from_dict(data))
    for pid in ("GDPR-22", "UN-8", "UN-9", "UN-4", "UN-7", "UN-10"):
        assert v[pid]["verdict"] == "pass", (pid, v[pid]["cause"])
    # no restriction at all: no decision with significant effects, no detriment in another context
    data["policy"]["restrictions"] = []
    gov["contexts"].pop("travel_ban")
    v = _verdicts(scenario_from_dict(data))
    assert v["AIA-5-1-c-i"]["verdict"] == "pass" and v["GDPR-22"]["verdict"] == "pass"


def test_same_context_restriction_is_not_unrelated():
    data = rr1_dict(1000, 10)
    data["policy"]["restrictions"] = [{"name": "credit_stop", "blacklists": ["court_defaulters"]}]
    data["policy"]["governance"]["contexts"] = {"loan_default": "finance", "credit_stop": "finance"}
    v = _verdicts(scenario_from_dict(data))
    assert v["AIA-5-1-c-i"]["verdict"] == "pass", v["AIA-5-1-c-i"]["cause"]


def test_bare_policy_file_says_what_needs_a_run(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        'name = "tiny"\nstart_score = 100\n'
        '[[rules]]\nbehaviour = "protest"\nsensor = "web"\npoints = -10\nsensitive = ["political_opinion"]\n'
        '[[grades]]\nname = "ok"\nmin = 50\n[[grades]]\nname = "low"\nmax = 49\n'
        '[[restrictions]]\nname = "no_loans"\ngrades = ["low"]\n')
    df = compliance(path)
    v = {r["id"]: r for _, r in df.iterrows()}
    assert v["GDPR-9"]["verdict"] == "fail" and "protest" in v["GDPR-9"]["cause"]
    assert v["GDPR-9"]["needs_run"]  # which behaviours are speech needs a scenario
    assert v["UN-3"]["needs_run"] and "restricted without misconduct" in v["UN-3"]["needs_run"]
    assert v["GDPR-22"]["verdict"] == "fail"  # no_loans follows automatically from a grade


def test_run_outcomes_enter_the_evidence(tmp_path):
    run = simulate_dict(rr1_dict(5000, 30), tmp_path / "run")
    df = compliance(run.path)
    v = {r["id"]: r for _, r in df.iterrows()}
    assert "speech fell by" in v["UN-1"]["evidence"]
    assert "unique on the shared fields" in v["UN-6"]["evidence"]
    assert not df["needs_run"].any()


def test_cli_compliance(tmp_path):
    r = CliRunner().invoke(app, ["compliance", "rr1", "--json", str(tmp_path / "c.json")])
    assert r.exit_code == 1, r.output  # rr1 fails checks: exit 1, so that a CI can gate on it
    assert "fail" in r.output and (tmp_path / "c.json").is_file()
    r = CliRunner().invoke(app, ["compliance", "rr1", "--json", str(tmp_path / "no" / "c.json")])
    assert r.exit_code == 2 and "does not exist" in r.output and not (tmp_path / "no").exists()
    r = CliRunner().invoke(app, ["compliance", str(tmp_path / "nope.toml")])
    assert r.exit_code == 2 and "no such scenario file" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[governance]\nprices = { nothing = 3.0 }\n')
    r = CliRunner().invoke(app, ["compliance", str(bad)])
    assert r.exit_code == 2 and "governance.prices" in r.output


def test_governance_typos_are_config_errors():
    with pytest.raises(Exception, match="recipients\\[0\\].fields"):
        Policy.model_validate({"governance": {"recipients": [{"name": "x", "fields": ["passport"]}]}})


def _fails(sc):
    from scorelab.audit.compliance import Context, evaluate

    df = evaluate(Context(sc.policy, sc))
    return df.set_index("id")


def test_verdicts_follow_the_simulated_due_process_not_the_declarations():
    fb = scorelab.load("fair-baseline")
    a, b = _fails(fb), _fails(fb.with_changes({"policy.due_process": None}))
    assert (a.verdict == "fail").sum() == 0 and (b.verdict == "fail").sum() >= 3
    assert b.loc["GDPR-22", "verdict"] == "fail" and "contradicted" in b.loc["GDPR-22", "cause"]
    # declaring safeguards the simulation does not run changes nothing but adds contradictions
    rc = scorelab.load("rongcheng")
    decl = rc.with_changes({"policy.governance.human_review": True, "policy.governance.appeal": True,
                            "policy.governance.verification": True, "policy.governance.retention_days": 730})
    assert (_fails(decl).verdict == "fail").sum() >= (_fails(rc).verdict == "fail").sum()
    assert "contradicted" in _fails(decl).loc["GDPR-22", "cause"]


def test_peer_scores_that_gate_restrictions_count_as_social_scoring():
    v = _fails(scorelab.load("nosedive"))
    ai = v[v.index.str.startswith("AIA-5-1-c")]
    assert (ai.verdict == "fail").all(), ai[["verdict", "cause"]]
    assert "peer ratings" in " ".join(ai.cause)


def test_transfers_read_the_flows_the_simulated_lender_performs():
    """The surveillance lender reads the score and three observed records: declared, it is the evidence of the
    transfer; a declaration that omits a field the lender reads is contradicted; a declared recipient nothing
    in the simulation reads is said to be unmeasured."""
    sv = scorelab.load("surveillance")
    v = _fails(sv)
    assert v.loc["UN-9", "verdict"] == "fail" and "partner_lender" in v.loc["UN-9", "cause"]
    assert "observed_visit_flagged_location" in v.loc["UN-9", "evidence"]
    fields = [f for f in sv.policy.governance.recipients[0].fields if f != "observed_visit_flagged_location"]
    fewer = sv.with_changes({"policy.governance.recipients[partner_lender].fields": fields})
    w = _fails(fewer)
    assert "contradicted" in w.loc["UN-9", "cause"] and "observed_visit_flagged_location" in w.loc["UN-9", "cause"]
    gone = _fails(sv.with_changes({"policy.lender": None}))
    assert "declared only" in gone.loc["UN-9", "evidence"]
