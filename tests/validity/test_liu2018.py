"""Liu et al. (2018) through the engine: the policies' thresholds, the exact one-step expectation, the engine
against it, the files `scorelab replicate liu2018` writes."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from scorelab.validity import fico
from scorelab.validity.liu2018 import check_agreement, model, one_step
from scorelab.validity.policies import curve


def test_fico_mapping_follows_the_national_bands():
    """TransRisk percentiles onto 300-850: the band edges land on the cumulative national shares."""
    cum = np.cumsum(fico.NATIONAL_BANDS)
    assert fico.transrisk_to_fico([0, 2.1, cum[5], 100]).tolist() == pytest.approx([300, 350, 600, 850])
    assert fico.transrisk_to_fico([1.05]).item() == pytest.approx(325)  # linear inside a band
    t = fico.load()
    assert t["white"].share == pytest.approx(133165 / (133165 + 18274))
    for g in t.values():
        assert g.pmf.sum() == pytest.approx(1) and (g.pmf >= 0).all()
        assert len(set(g.scores)) == len(g.scores)  # whole scores stay distinct
        assert ((g.repay >= 0) & (g.repay <= 1)).all()
    with pytest.raises(ValueError, match="unknown group"):
        fico.load(("white", "martian"))


@pytest.mark.parametrize("loss", [-4.0, -10.0])
def test_policies_meet_their_definitions(loss):
    tables, curves, choices = model(loss)
    shares = {g: tables[g].share for g in tables}

    def total(ch):
        return sum(shares[g] * curves[g].utility[i] for g, i in ch.index.items())

    mp = choices["max_profit"]
    for g, i in mp.index.items():  # each group's own best threshold: lends where P(repay) beats the loss
        assert curves[g].utility[i] == pytest.approx(curves[g].utility.max())
    dp, eo = choices["demographic_parity"], choices["equal_opportunity"]
    sel = {g: curves[g].selection[i] for g, i in dp.index.items()}
    tpr = {g: curves[g].tpr[i] for g, i in eo.index.items()}
    assert abs(sel["white"] - sel["black"]) == pytest.approx(dp.rate_gap) and dp.rate_gap < 0.01
    assert abs(tpr["white"] - tpr["black"]) == pytest.approx(eo.rate_gap) and eo.rate_gap < 0.01
    assert total(mp) >= total(dp) and total(mp) >= total(eo)  # constraints cost the bank
    # the constrained policies lend more to the black group than max profit (lower threshold)
    assert dp.threshold["black"] < mp.threshold["black"] and eo.threshold["black"] < mp.threshold["black"]


def test_outcome_curve_is_exact_on_a_tiny_table():
    """Two scores, hand-computed: selection, utility and mean change, with the clip to 850."""
    t = fico.GroupTable("g", 1.0, np.array([600.0, 800.0]), np.array([600, 800]), np.array([0.25, 0.75]),
                        np.array([0.5, 0.9]))
    c = curve(t, loss=-4.0)
    assert c.threshold.tolist() == [600, 800, 851]
    assert c.selection.tolist() == pytest.approx([1.0, 0.75, 0.0])
    # at 800 a repaid loan gains only 50 (clip at 850): 0.9*50 + 0.1*(-150) = 30; at 600: 0.5*75 - 0.5*150 = -37.5
    assert c.delta_mu.tolist() == pytest.approx([0.25 * -37.5 + 0.75 * 30, 0.75 * 30, 0.0])
    assert c.utility.tolist() == pytest.approx([0.25 * (0.5 - 2.0) + 0.75 * (0.9 - 0.4), 0.75 * 0.5, 0.0])
    assert c.tpr.tolist() == pytest.approx([1.0, 0.675 / 0.8, 0.0])


def test_engine_agrees_with_the_expectation():
    """Each policy's engine run (200,000 citizens) gives the exact expectation within Monte-Carlo error, and
    the paper's headline holds: at loss -4, demographic parity lowers the black group's mean score (active
    harm) where max profit raises it."""
    outcomes, _, _ = one_step(-4.0, population=200_000, seed=1, workers=1)
    assert check_agreement(outcomes, z=4.5) == []
    black = {o.policy: o for o in outcomes if o.group == "black"}
    assert black["max_profit"].delta_mu > 0 > black["demographic_parity"].delta_mu
    assert black["demographic_parity"].delta_mu + 1.96 * black["demographic_parity"].delta_mu_se < 0


def test_replicate_command_writes_its_files(tmp_path):
    out = tmp_path / "liu"
    r = subprocess.run([sys.executable, "-m", "scorelab", "replicate", "liu2018", "--out", str(out), "-n", "20000",
                        "--steps", "3", "--loss", "-10", "-w", "1", "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(out / "outcomes.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["policy", "group", "threshold", "selection_rate", "delta_mu"]
    assert {(x["policy"], x["group"]) for x in rows} == {(p, g) for p in ("max_profit", "demographic_parity",
                                                                            "equal_opportunity") for g in ("white", "black")}
    with open(out / "dynamics.csv") as f:
        dyn = list(csv.DictReader(f))
    assert {int(x["step"]) for x in dyn} == {0, 1, 2, 3}
    for name in ("outcome_curve.csv", "credit_gap.csv", "figures.html", "summary.md"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "replication.json").read_text())["loss"] == -10
    # again without --force: refused, nothing touched; with --force: replaced
    r2 = subprocess.run([sys.executable, "-m", "scorelab", "replicate", "liu2018", "--out", str(out), "-n", "20000"],
                        capture_output=True, text=True)
    assert r2.returncode == 2 and "exists" in r2.stderr and "Traceback" not in r2.stderr


@pytest.mark.parametrize("args, words", [
    (["replicate", "liu2019", "--out", "X"], "not known"),
    (["replicate", "liu2018", "--out", "X", "--loss", "4"], "--loss"),
    (["replicate", "liu2018", "--out", "X", "-n", "10"], "--population"),
    (["replicate", "liu2018", "--out", "X", "--steps", "-1"], "--steps"),
])
def test_replicate_bad_options(tmp_path, args, words):
    args = [str(tmp_path / a) if a == "X" else a for a in args]
    r = subprocess.run([sys.executable, "-m", "scorelab", *args], capture_output=True, text=True)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "X").exists()
