"""Comparisons: common random numbers, paired t intervals, policy files, the offline report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import scorelab
from scorelab.cli import app
from scorelab.config.loader import ConfigError
from scorelab.experiments import compare, summary
from scorelab.experiments.stats import paired, t_quantile

ROOT = Path(__file__).resolve().parents[2]
HALVED = ROOT / "examples" / "policies" / "rr1-criticism-halved.toml"
runner = CliRunner()


@pytest.fixture(scope="module")
def halved(tmp_path_factory):
    """RR-1 against RR-1 with the criticism penalty halved: 2 replicates, 2,000 citizens, 20 days."""
    out = tmp_path_factory.mktemp("cmp") / "halved"
    return compare.run(["rr1", str(HALVED)], out, workers=2, replicates=2, population=2000, days=20, seed=7)


def test_common_random_numbers(halved):
    """Policies differing only in one behaviour's points see the same events wherever no response
    links that behaviour to the score: same seeds, same citizens, same candidates."""
    root = halved.root
    assert [a["kind"] for a in halved.plan["arms"]] == ["preset", "policy"]
    for r in range(2):
        a = pd.read_parquet(root / f"runs/policy=rr1/replicate={r}/metrics.parquet")
        b = pd.read_parquet(root / f"runs/policy=rr1-criticism-halved/replicate={r}/metrics.parquet")
        # volunteering has no behavioural response; traffic and court events respond only to their own
        # penalties (deterrence), which the change of criticism points does not touch; false matches are
        # drawn from their own stream
        for col in ("population", "true_volunteering", "true_traffic_violation", "true_loan_default",
                    "false_traffic_violation", "true_public_criticism", "observed_public_criticism"):
            assert a[col].tolist() == b[col].tolist(), col
        # ... while the policy did change scores: criticised citizens lose 10 points instead of 20
        assert b["points_deducted"].sum() < a["points_deducted"].sum()
        assert (b["mean_score"].iloc[-3:] > a["mean_score"].iloc[-3:]).all()
    # the seeds differ between replicates, so the replicates are not copies
    r0 = pd.read_parquet(root / "runs/policy=rr1/replicate=0/metrics.parquet")
    r1 = pd.read_parquet(root / "runs/policy=rr1/replicate=1/metrics.parquet")
    assert r0["true_volunteering"].tolist() != r1["true_volunteering"].tolist()


def test_paired_differences_match_the_runs(halved):
    res = halved.results["rr1-criticism-halved"]
    s = halved.summaries
    for key in ("final_mean_score.all", "points_deducted.rural", "penalties.urban"):
        metric, _, group = key.rpartition(".")
        vals = s[(s["metric"] == metric) & (s["group"] == group)].pivot(index="replicate", columns="policy", values="value")
        d = (vals["rr1-criticism-halved"] - vals["rr1"]).to_numpy()
        p = res[key]
        assert p.n == 2
        assert p.diff_mean == pytest.approx(d.mean())
        half = 12.706204736 * d.std(ddof=1) / math.sqrt(2)
        assert p.ci_low == pytest.approx(d.mean() - half) and p.ci_high == pytest.approx(d.mean() + half)
    assert res["penalties.all"].diff_mean == 0  # common random numbers: the same observed penalties
    assert res["final_mean_score.all"].diff_mean > 0
    data = json.loads((halved.root / "comparison.json").read_text())
    assert data["baseline"] == "rr1" and data["replicates"] == 2
    assert {r["metric"] for r in data["arms"]["rr1-criticism-halved"]} == set(res)


def test_every_audit_metric_is_compared(halved):
    """The audit's headline metrics (scorelab.audit.metrics.audit_summary) are compared like the others,
    as metric.group keys with paired intervals; the counterfactual is the same in both arms (same seeds,
    same population, same behaviour without a policy), so its paired difference is exactly 0."""
    from scorelab.audit.metrics import audit_summary

    res = halved.results["rr1-criticism-halved"]
    for r in range(2):
        runs = {p: halved.root / f"runs/policy={p}/replicate={r}" for p in ("rr1", "rr1-criticism-halved")}
        audit = {p: {summary._dotted(k): v for k, v in audit_summary(d).items()} for p, d in runs.items()}
        assert set(audit["rr1"]) <= set(res), set(audit["rr1"]) - set(res)
        assert len(audit["rr1"]) > 40
        for key in ("disparate_impact.rural", "false_positive_rate.all", "speech_fall.all", "gini.all",
                    "wrongful_sanctioned_share.all", "points_bought.all", "unique_share.all"):
            assert key in audit["rr1"], key
    for key in ("speech_fall.all", "gini.all", "ever_restricted_share.rural"):
        p = res[key]
        assert p.n == 2 and p.has_ci and p.ci_low <= p.diff_mean <= p.ci_high, key
    assert res["speech_counterfactual.all"].diff_mean == 0 and res["speech_counterfactual.all"].ci_high == 0
    assert res["speech_counterfactual.all"].baseline_mean > 0
    # the arms differ only in the criticism penalty: halving it can only lessen the chilling
    assert res["speech_fall.all"].arm_mean <= res["speech_fall.all"].baseline_mean
    s = halved.summaries
    assert {"disparate_impact", "speech_fall"} <= set(s["metric"]) and "rural" in set(s[s["metric"] == "disparate_impact"]["group"])
    html = (halved.root / "report.html").read_text()
    assert "speech_fall" in html and "disparate_impact" in html


def test_report_is_offline_and_complete(halved):
    from plotly.offline import get_plotlyjs

    html = (halved.root / "report.html").read_text()
    assert "<script src" not in html and "<link" not in html  # nothing fetched from elsewhere
    assert html.count(get_plotlyjs()[:300]) == 1  # the library, inlined once
    assert html.count("Plotly.newPlot") >= 2
    assert "rr1-criticism-halved − rr1" in html and "final_mean_score" in html
    assert (halved.root / "summaries.parquet").is_file()


def test_run_summary_agrees_with_the_tables(halved):
    run = scorelab.Run(halved.root / "runs/policy=rr1/replicate=0")
    s = summary.run_summary(run.path)
    m = run.metrics
    last = m[m["day"] == m["day"].max()].set_index("group")
    assert s["final_mean_score.rural"] == pytest.approx(last.loc["rural", "mean_score"])
    assert s["penalties.all"] == m[m["group"] == "all"]["penalties"].sum()
    c = run.citizens
    assert s["share_wrongfully_penalised.all"] == pytest.approx((c["wrongful_penalties"] > 0).mean())
    innocent = (c["restricted"] & (c["true_misconduct"] == 0))[c["group"] == "urban"].mean()
    assert s["share_restricted_without_misconduct.urban"] == pytest.approx(innocent)


def test_metric_providers_plug_in(halved, monkeypatch):
    monkeypatch.setattr(summary, "_PROVIDERS", list(summary._PROVIDERS))

    def ledger_rows(run_dir: Path) -> dict[str, float]:
        return {"ledger_rows.all": float(len(pd.read_parquet(run_dir / "events.parquet"))),
                "penalties.all": -1.0}  # a clash: the first provider keeps its value

    summary.register_provider(ledger_rows)
    s = summary.summarise(halved.root / "runs/policy=rr1/replicate=0")
    assert s["ledger_rows.all"] > 0 and s["penalties.all"] >= 0


def test_identical_arms_differ_by_exactly_zero(tmp_path):
    c = compare.run(["rr1", "rr1"], tmp_path / "same", workers=1, replicates=2, population=1000, days=10)
    assert c.labels == ["rr1", "rr1-2"]
    for key, p in c.results["rr1-2"].items():
        if math.isnan(p.baseline_mean) or p.n < 2:  # a metric defined in one replicate only has no interval
            continue
        assert p.diff_mean == 0 and p.ci_low == 0 and p.ci_high == 0, key


def test_t_quantiles_match_tables():
    # two-sided 95% and 99% points of Student's t (standard tables)
    for df, q95, q99 in ((1, 12.706, 63.657), (2, 4.303, 9.925), (4, 2.776, 4.604), (9, 2.262, 3.250),
                         (29, 2.045, 2.756), (120, 1.980, 2.617)):
        assert t_quantile(0.95, df) == pytest.approx(q95, abs=1e-3)
        assert t_quantile(0.99, df) == pytest.approx(q99, abs=1e-3)


def test_paired_with_known_numbers():
    p = paired(np.array([10.0, 20.0, 30.0]), np.array([11.0, 22.0, 33.0]))
    assert p.n == 3 and p.diff_mean == 2 and p.diff_sd == 1
    assert p.ci_low == pytest.approx(2 - 4.302653 / math.sqrt(3)) and not p.excludes_zero
    p = paired(np.array([10.0, 20.0, 30.0]), np.array([12.0, 22.1, 32.0]))
    assert p.excludes_zero and p.ci_low > 0
    one = paired(np.array([1.0]), np.array([3.0]))
    assert one.n == 1 and one.diff_mean == 2 and math.isnan(one.ci_low) and not one.has_ci


def test_cli_one_replicate_says_a_ci_needs_two(tmp_path):
    res = runner.invoke(app, ["compare", "rr1", str(HALVED), "-r", "1", "-n", "1000", "-t", "10", "--out",
                              str(tmp_path / "one"), "-w", "1", "-q"])
    assert res.exit_code == 0, res.output
    assert "a CI needs ≥ 2 replicates" in res.output and "final_mean_score" in res.output
    assert "replicates" in (tmp_path / "one" / "report.html").read_text()


def test_policy_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\nname = "x"\n[[policy.rules]]\nbehaviour = "traffic_violation"\nsensor = "camera"\n'
                   'points = -5\n[[policy.rules]]\nbehaviour = "jaywalking"\nsensor = "camera"\npoints = -5\n')
    res = runner.invoke(app, ["compare", "rr1", str(bad), "-n", "1000", "-t", "5", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "bad.toml" in res.output and "jaywalking" in res.output
    assert not (tmp_path / "o").exists()
    res = runner.invoke(app, ["compare", "rr1", "-n", "1000"])
    assert res.exit_code == 2 and "at least two" in res.output
    res = runner.invoke(app, ["compare", "rr1", "no_such_preset", "-n", "1000"])
    assert res.exit_code == 2 and "no_such_preset" in res.output


def test_arms_must_share_a_population(tmp_path):
    other = tmp_path / "small.toml"
    text = (Path(scorelab.__file__).parent / "config/presets/rr1.toml").read_text()
    other.write_text(text.replace("population = 670000", "population = 5000"))
    with pytest.raises(ConfigError, match="--population"):
        compare.plan(["rr1", str(other)])
    p = compare.plan(["rr1", str(other)], population=1000, days=5)  # one population for both: fine
    assert p["population"] == 1000 and [a["kind"] for a in p["arms"]] == ["preset", "scenario"]
    # citizens who behave differently are another population, not another policy
    louder = tmp_path / "louder.toml"
    louder.write_text(text.replace("rate = 0.010", "rate = 0.020", 1))
    with pytest.raises(ConfigError, match="behave differently"):
        compare.plan(["rr1", str(louder)], population=1000, days=5)


def test_report_escapes_user_text(tmp_path):
    weird = tmp_path / "pol<i>&.toml"
    weird.write_text(HALVED.read_text())
    c = compare.run(["rr1", str(weird)], tmp_path / "esc", workers=1, replicates=1, population=500, days=5)
    html = (c.root / "report.html").read_text()
    assert "pol&lt;i&gt;&amp;.toml" in html and "pol<i>" not in html


def test_a_mechanism_switched_off_counts_zero_and_its_effects_show(tmp_path):
    """surveillance against its policy without the partner lender: the lender's declared counts reach the
    comparison (0 in the arm without it, not missing), and its score feedback changes who is restricted."""
    no_lender = ROOT / "examples" / "policies" / "surveillance-no-lender.toml"
    c = compare.run(["surveillance", str(no_lender)], tmp_path / "sv", workers=2, replicates=2, base="surveillance",
                    population=20000, days=200, seed=3)
    r = c.results["surveillance-no-lender"]
    loans = r["loans_partner.all"]
    assert loans.baseline_mean > 100 and loans.arm_mean == 0 and loans.ci_high < 0
    assert r["loans_refused_records_partner.city_minority"].arm_mean == 0
    assert r["true_loan_application.all"].diff_mean == 0  # the same applicants apply either way
    # defaults (-150) push borrowers below grade B: slowed internet exists only with the lender
    assert r["ever_restricted_share.all"].baseline_mean > 0 and r["ever_restricted_share.all"].arm_mean == 0
    s = summary.summarise(c.root / "runs/policy=surveillance/replicate=0")
    assert s["final_privileged_partner_preferential_loan.all"] > 0  # stocks: the last day
