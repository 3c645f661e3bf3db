"""`scorelab calibrate`: targets read exactly from the runs, the objective as documented, a known parameter
recovered, resumable, the best scenario written back, bad targets refused before anything is written."""

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
from scorelab.config.loader import scenario_from_dict
from scorelab.experiments import calibrate as cal

runner = CliRunner()
BASE = {"urban": 0.00000485, "rural": 0.00000257, "business_owner": 0.0000514}  # national-blacklist's listing rates


def targets_file(tmp_path: Path, body: str, head: str = "", name: str = "t.toml") -> Path:
    f = tmp_path / name
    f.write_text(f"""population = 20000
days = 60
replicates = 2
seed = 3
scale_to = 2000000
{head}
[search]
trials = 6
seed = 0

[parameters]
"behaviours[judgment_default].rate" = {{ low = 0.5, high = 8.0, log = true, scale = true, name = "listing_x" }}
{body}""")
    return f


LISTINGS = """
[[targets]]
name = "listings"
metric = "listings_dishonest_defaulters"
window = [0, 59]
offset = 1000
value = {value}
uncertainty = {u}

[[targets]]
name = "listed_end"
metric = "listed_dishonest_defaulters"
group = "business_owner"
day = 59
value = 20000
uncertainty = 5000
fit = false
"""


OK = LISTINGS.format(value=50000, u=5000)


def truth(tmp_path: Path, factor: float) -> float:
    """The fitted target at a known factor, from runs with the calibration's own seeds (common random numbers)."""
    sc = scorelab.load("national-blacklist", population=20000, days=60)
    data = sc.model_dump(mode="json")
    for b in data["behaviours"]:
        if b["name"] == "judgment_default":
            b["rate"] = {g: v * factor for g, v in BASE.items()}
    sc = scenario_from_dict(data)
    vals = []
    for r in range(2):
        run = scorelab.simulate(sc, seed=cal.replicate_seed(3, r), out=tmp_path / f"truth{r}", ledger="none", workers=1)
        a = run.metrics[run.metrics.group == "all"]
        vals.append(a["listings_dishonest_defaulters"].sum() * 100 + 1000)  # scale_to / population = 100
    return float(np.mean(vals))


def test_calibrate_recovers_a_known_factor_and_reads_targets_exactly(tmp_path):
    value = truth(tmp_path, 2.0)
    f = targets_file(tmp_path, LISTINGS.format(value=value, u=value * 0.02))
    out = tmp_path / "cal"
    res = runner.invoke(app, ["calibrate", "national-blacklist", str(f), "--out", str(out), "-w", "1", "-q"])
    assert res.exit_code == 0, res.output
    trials = pd.read_csv(out / "trials.csv")
    assert (trials.state == "COMPLETE").sum() == 6
    # every trial's targets, read again from its runs by hand, and the objective as documented
    for row in trials.itertuples():
        sums, ends = [], []
        for r in range(2):
            m = pd.read_parquet(out / f"runs/trial={row.trial}/replicate={r}/metrics.parquet")
            sums.append(m[m.group == "all"].listings_dishonest_defaulters.sum() * 100 + 1000)
            bo = m[(m.group == "business_owner") & (m.day == 59)]
            ends.append(float(bo.listed_dishonest_defaulters.iloc[0]) * 100)
        assert row.listings == pytest.approx(np.mean(sums))
        assert row.listed_end == pytest.approx(np.mean(ends))
        assert row.objective == pytest.approx(((np.mean(sums) - value) / (value * 0.02)) ** 2)  # hold-out not fitted
    best = trials.loc[trials.objective.idxmin()]
    assert abs(best.listing_x - 2.0) / 2.0 < 0.25, best
    # the best scenario as TOML: the base rates times the factor, their ratios kept
    sc = scorelab.load(str(out / "best.toml"))
    rate = next(b for b in sc.behaviours if b.name == "judgment_default").rate
    for g, v in BASE.items():
        assert rate[g] == pytest.approx(v * best.listing_x, rel=1e-9)
    fit = pd.read_csv(out / "fit.csv")
    assert list(fit.role) == ["fitted", "hold-out"]
    assert fit.simulated[0] == pytest.approx(best.listings)
    assert (fit.ci_low <= fit.simulated).all() and (fit.simulated <= fit.ci_high).all()
    page = (out / "fit.html").read_text()
    assert "Calibration fit" in page and "hold-out" in page and "plotly" in page.lower()
    assert "listed_end" in (out / "fit.md").read_text()
    assert "best trial" in res.output and "listings" in res.output


def test_resume_finishes_a_cut_off_trial_and_goes_on(tmp_path):
    f = targets_file(tmp_path, LISTINGS.format(value=50000, u=5000), name="t.toml")
    f.write_text(f.read_text().replace("trials = 6", "trials = 2"))
    out = tmp_path / "cal"
    plan, _ = cal.start("national-blacklist", f, out, workers=1)
    first = (out / "runs/trial=0/replicate=0/run.json").stat().st_mtime_ns
    # a trial asked for and cut off before it was told: one of its runs finished, the other not
    study = cal._study(out, plan)
    trial = study.ask(cal._distributions(plan))
    tasks = cal.trial_tasks(plan, trial.number, dict(trial.params))
    cal.execute(out, tasks[:1], workers=1)
    done_before = (out / tasks[0].rel / "run.json").stat().st_mtime_ns
    res = runner.invoke(app, ["calibrate", "--resume", str(out), "--trials", "4", "-w", "1", "-q"])
    assert res.exit_code == 0, res.output
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials.trial) == [0, 1, 2, 3] and (trials.state == "COMPLETE").all()
    assert (out / "runs/trial=0/replicate=0/run.json").stat().st_mtime_ns == first  # finished runs are kept
    assert (out / tasks[0].rel / "run.json").stat().st_mtime_ns == done_before
    assert json.loads((out / "calibration.json").read_text())["spec"]["search"]["trials"] == 4


@pytest.mark.parametrize("body,head,field,words", [
    (OK.replace("listings_dishonest_defaulters", "listings_nope", 1), "", "targets[0].metric", "not a metric"),
    (OK.replace('group = "business_owner"', 'group = "pirates"'), "", "targets[1].group", "not a group"),
    (OK.replace("day = 59", "day = 60"), "", "targets[1]", "past the run's last day"),
    (OK.replace("window = [0, 59]", "window = [9, 2]"), "", "window", "first, last"),
    (OK.replace("fit = false", "fit = false\nwindow = [0, 3]"), "", "targets[1]", "either `day`"),
    (OK.replace("uncertainty = 5000", "uncertainty = 0"), "", "uncertainty", "greater than 0"),
    (OK.replace("[[targets]]\nname = \"listings\"", "[[targets]]\nname = \"listed_end\""), "", "targets", "twice"),
    (OK + '\n[parameters."behaviours[nope].rate"]\nlow = 1\nhigh = 2\n', "", "parameters.behaviours[nope].rate",
     "no item"),
    (OK + '\n[parameters."behaviours[repay_debt].rate"]\nlow = 0.5\nhigh = 2000\nscale = true\n', "", "parameters",
     "invalid scenario"),
    (OK, '[fixed]\n"policy.blacklists[dishonest_defaulters].initial_share.urban" = 3.0\n', "fixed", "invalid scenario"),
    (OK, '[fixed]\n"policy.blacklists[dishonest_defaulters].initial_share" = 0.1\n', "fixed", "is a table"),
    (OK, "colour = 1\n", "colour", "unknown key"),
])
def test_bad_targets_are_refused_before_anything_is_written(tmp_path, body, head, field, words):
    f = targets_file(tmp_path, body, head)
    out = tmp_path / "cal"
    res = runner.invoke(app, ["calibrate", "national-blacklist", str(f), "--out", str(out), "-q"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error:") and "Traceback" not in res.output
    assert field in res.output and words in res.output, res.output
    assert not out.exists()


def test_bad_command_lines_are_refused(tmp_path):
    f = targets_file(tmp_path, LISTINGS.format(value=1, u=1))
    for args, words in [
        (["calibrate", "national-blacklist", str(f)], "--out"),
        (["calibrate", "--resume", str(tmp_path)], "not a calibration directory"),
        (["calibrate", "national-blacklist", str(f), "--out", str(tmp_path / "o"), "--trials", "3"], "--resume"),
        (["calibrate", "nope-preset", str(f), "--out", str(tmp_path / "o")], "nope-preset"),
        (["calibrate", "national-blacklist", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")], "cannot read"),
    ]:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert words in res.output and "Traceback" not in res.output, (args, res.output)
    assert not (tmp_path / "o").exists()


def test_scaling_a_parameter_multiplies_every_group_and_keeps_whole_numbers_whole():
    from scorelab.experiments import paths

    base = scorelab.load("national-blacklist").model_dump(mode="json")
    out = paths.scale(base, "behaviours[judgment_default].rate", 3.0)
    rate = next(b for b in out["behaviours"] if b["name"] == "judgment_default")["rate"]
    assert rate == pytest.approx({g: 3 * v for g, v in BASE.items()})
    assert paths.scale(base, "policy.blacklists[dishonest_defaulters].duration_days", 1.5)["policy"]["blacklists"][0][
        "duration_days"] == 1095
    assert base["behaviours"][0]["rate"] == BASE  # the base is not changed
    assert math.isclose(paths.value(base, "behaviours[repay_debt].rate"), 0.0012)


def test_cmaes_recovers_two_factors_at_once(tmp_path):
    """CMA-ES over two multipliers, each pinned by its own target (true flight attempts, new listings)."""
    sc = scorelab.load("national-blacklist", population=20000, days=60)
    data = sc.model_dump(mode="json")
    for b in data["behaviours"]:
        if b["name"] in ("judgment_default", "flight_purchase_attempt"):
            b["rate"] = {g: v * (2.0 if b["name"] == "judgment_default" else 0.5) for g, v in b["rate"].items()}
    sc = scenario_from_dict(data)
    listings, flights = [], []
    for r in range(2):
        m = scorelab.simulate(sc, seed=cal.replicate_seed(3, r), out=tmp_path / f"truth{r}", ledger="none",
                              workers=1).metrics
        a = m[m.group == "all"]
        listings.append(a.listings_dishonest_defaulters.sum() * 100)
        flights.append(a.true_flight_purchase_attempt.sum() * 100)
    body = f"""
"behaviours[flight_purchase_attempt].rate" = {{ low = 0.1, high = 4.0, log = true, scale = true, name = "flight_x" }}

[[targets]]
name = "listings"
metric = "listings_dishonest_defaulters"
window = [0, 59]
value = {np.mean(listings)}
uncertainty = {np.mean(listings) * 0.02}

[[targets]]
name = "flights"
metric = "true_flight_purchase_attempt"
window = [0, 59]
value = {np.mean(flights)}
uncertainty = {np.mean(flights) * 0.01}
"""
    f = targets_file(tmp_path, body)
    f.write_text(f.read_text().replace('trials = 6\nseed = 0', 'trials = 24\nseed = 0\nsampler = "cmaes"'))
    out = tmp_path / "cal"
    res = runner.invoke(app, ["calibrate", "national-blacklist", str(f), "--out", str(out), "-w", "1", "-q"])
    assert res.exit_code == 0, res.output
    trials = pd.read_csv(out / "trials.csv")
    assert (trials.state == "COMPLETE").sum() == 24
    best = trials.loc[trials.objective.idxmin()]
    assert abs(best.listing_x - 2.0) / 2.0 < 0.25 and abs(best.flight_x - 0.5) / 0.5 < 0.1, best
    assert best.objective < trials.objective.iloc[:4].min()  # it searched, not only sampled


def test_a_missing_optimiser_is_named_with_its_install_command(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else real(name, *a))
    f = targets_file(tmp_path, OK)
    f.write_text(f.read_text().replace('trials = 6\nseed = 0', 'trials = 6\nseed = 0\nsampler = "cmaes"'))
    out = tmp_path / "cal"
    res = runner.invoke(app, ["calibrate", "national-blacklist", str(f), "--out", str(out), "-q"])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "search.sampler" in res.output and "cmaes" in res.output and "scorelab[calibrate]" in res.output
    assert not out.exists()
