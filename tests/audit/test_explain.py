"""A citizen's own view: every change with its day, rule, sensor and truth; history; sanctions; appeal."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from _auditlib import golden_dict, rr1_dict, simulate_dict
from scorelab.audit.explain import explain_citizen
from scorelab.cli import app
from scorelab.config.loader import ConfigError


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory):
    return simulate_dict(golden_dict(), tmp_path_factory.mktemp("golden") / "run")


def test_golden_citizen(golden_run):
    x = explain_citizen(golden_run.path, 3)
    ev = x["events"]
    assert list(ev["day"]) == [0, 1, 2, 3, 4]
    assert (ev["rule"] == "offence").all() and (ev["sensor"] == "cam").all() and ev["false_attribution"].all()
    assert list(ev["score_after"]) == [900, 800, 700, 600, 500]
    assert list(ev["grade_after"]) == ["OK", "OK", "LOW", "LOW", "LOW"]
    gh = x["grade_history"]
    assert gh.to_dict("records") == [{"day": 2, "from": "OK", "to": "LOW"}]
    s = x["sanctions"]
    assert s.to_dict("records") == [{"restriction": "ban", "from_day": 2, "to_day": 4, "days": 3, "reason": "grade LOW"}]
    a = x["appeal"]
    assert a["false_attributions"] == 5 and a["false_points"] == -500
    assert (a["final_score"], a["final_score_if_appealed"]) == (500, 1000)
    assert (a["restricted_days"], a["restricted_days_if_appealed"]) == (3, 0)
    assert (a["final_grade"], a["final_grade_if_appealed"]) == ("LOW", "OK")
    assert "restricted days 3 -> 0" in a["summary"]
    assert x["profile"]["true_misconduct_events"] == 0


def test_rr1_citizen_matches_the_tables(tmp_path):
    run = simulate_dict(rr1_dict(5_000, 60), tmp_path / "run", seed=3)
    led, cit = run.ledger, run.citizens
    listed = cit[cit["blacklisted_until"] >= 0]["citizen"].iloc[0]
    x = explain_citizen(run.path, int(listed))
    row = cit[cit["citizen"] == listed].iloc[0]
    assert x["profile"]["final_score"] == row["score"]
    assert x["events"]["score_after"].iloc[-1] == row["score"]
    assert len(x["events"]) == (led["citizen"] == listed).sum()
    lst = x["listings"].iloc[0]
    assert lst["listed_until"] == row["blacklisted_until"] and lst["beyond_run"]
    assert x["sanctions"]["reason"].str.contains("court_defaulters").any()
    assert x["appeal"]["summary"]


def test_errors_name_the_allowed_ids(tmp_path):
    run = simulate_dict(rr1_dict(1_000, 10), tmp_path / "run", ledger="100")  # every 10th id kept
    with pytest.raises(ConfigError, match="ids run from 0 to 999"):
        explain_citizen(run.path, 1000)
    with pytest.raises(ConfigError, match="not in the kept sample.*nearest kept ids: 10, 20"):
        explain_citizen(run.path, 13)
    r = CliRunner().invoke(app, ["explain", str(run.path), "--citizen", "13"])
    assert r.exit_code == 2 and "nearest kept ids" in r.output
    r = CliRunner().invoke(app, ["explain", str(run.path), "--citizen", "20"])
    assert r.exit_code == 0 and "citizen 20" in r.output and "appealed" in r.output
    r = CliRunner().invoke(app, ["explain", str(tmp_path / "nope"), "--citizen", "1"])
    assert r.exit_code == 2 and "no such run directory" in r.output


def test_appeal_what_if_recomputes_a_score_cap(tmp_path):
    """A rule's cap ("drunk driving drops you to C") sets the score to at most the cap: its ledger row's
    points depend on the score at the time. Without the false attributions the cap takes the citizen from
    1000 (not 900) to 850, so the appealed score is 850, not the recorded -50 added to 1000 (950)."""
    from _auditlib import golden_dict, simulate_dict

    d = golden_dict()
    d["behaviours"].append({"name": "drunk", "rate": 1.0, "misconduct": True})
    d["policy"]["rules"].append({"behaviour": "drunk", "sensor": "web", "points": 0, "cap_score": 850})
    run = simulate_dict(d, tmp_path / "run")
    a = explain_citizen(run.path, 0)["appeal"]
    assert a["final_score"] == 450 and a["final_score_if_appealed"] == 850
    assert a["restricted_days"] == 4 and a["restricted_days_if_appealed"] == 0


def test_listing_history_follows_removals(tmp_path):
    """Rongcheng's court blacklist is left by repaying the debt (removed_by): the explained history must
    end in the state the engine recorded for citizens who were listed and repaid (seed 3, 20,000 x 200)."""
    import scorelab

    run = scorelab.simulate("rongcheng", seed=3, out=tmp_path / "run", population=20_000, days=200, workers=1)
    led, c = run.ledger, run.citizens.set_index("citizen")
    beh = led["behaviour"].astype(str)
    both = set(led.loc[beh == "judgment_default", "citizen"]) & set(led.loc[beh == "repay_debt", "citizen"])
    removed = 0
    for cid in sorted(both)[:40]:
        x = explain_citizen(run.path, int(cid))
        assert x["profile"]["final_score"] == c.loc[cid, "score"]
        listed_at_end = bool(len(x["listings"])) and x["listings"]["to_day"].max() == 199
        assert listed_at_end == bool(c.loc[cid, "blacklisted_until"] > 199), cid
        removed += int(not listed_at_end)
    assert removed > 0 and len(both) > 0
    # listed from before the run: an initial-listing event of day 0, so the history is complete
    initial = [cid for cid in c.index[c["blacklisted_until"] > 199]
               if cid not in set(led.loc[beh == "judgment_default", "citizen"])][:3]
    assert initial
    for cid in initial:
        x = explain_citizen(run.path, int(cid))
        assert x["caveats"] == [] and x["listings"]["from_day"].min() == 0, cid
        rec = x["record"]
        assert ((rec["kind"] == "list_start") & (rec["rule"] == "initial_listing") & (rec["day"] == 0)).any()
        assert x["sanctions"]["days"].sum() > 0
    assert explain_citizen(run.path, int(sorted(both)[0]))["caveats"] == []
