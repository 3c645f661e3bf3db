"""Cross-check: an independent Mesa implementation of RR-1 (benchmarks/mesa_rr1.py) agrees with scorelab.

RR-1's text (shared/reference/rr1.md) is a contract: two implementations run with the same N and T must
agree statistically on every metric. Here both run at N = 1,500 citizens for T = 1,000 days — longer than
the 730-day blacklist, so listings also expire, and long enough for the behavioural response (deterrence,
gaming) to move the metrics well beyond noise.

Compared, per group (urban, rural, all): the totals over all days of penalties, wrongful_penalties and
criticism, and the last day's mean_score and restricted_share — one number per replicate each.

Tolerance: |mean_mesa - mean_scorelab| < Z * SE + floor, where SE = s_pooled * sqrt(1/n_mesa + 1/n_scorelab),
s_pooled the replicates' pooled standard deviation (both sides estimate the same distribution when they
agree), Z = 4, and floor = 1 event for the count metrics (0 for the others).
Seeds: Mesa 101, 102, 103; scorelab 1001 .. 1016.

A cross-check must also be able to fail: `test_crosscheck_detects_wrong_deterrence` runs Mesa with the
deterrence factor set to 1.0 (no chilling effect, seeds 201, 202) and asserts that the same comparison
flags criticism (measured gap about 10 standard errors in the urban group at this size).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mesa", reason="Mesa is not installed (pip install 'scorelab[test]'); the Mesa cross-check needs it")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import mesa_rr1  # noqa: E402

import scorelab  # noqa: E402

N, T = 1_500, 1_000
MESA_SEEDS = (101, 102, 103)
SCORELAB_SEEDS = tuple(range(1001, 1017))
WRONG_SEEDS = (201, 202)
Z = 4.0
COUNTS = ("penalties", "wrongful_penalties", "criticism")
LAST_DAY = ("mean_score", "restricted_share")
FLOOR = {"penalties": 1.0, "wrongful_penalties": 1.0, "criticism": 1.0, "mean_score": 0.0, "restricted_share": 0.0}
GROUPS = ("urban", "rural", "all")


def summarise(df) -> dict[tuple[str, str], float]:
    """(metric, group) -> one number per run: event totals over all days, last day's mean and share."""
    out: dict[tuple[str, str], float] = {}
    tot = df.groupby("group", observed=True)[list(COUNTS)].sum()
    last = df[df["day"] == df["day"].max()].set_index("group")
    for g in GROUPS:
        for m in COUNTS:
            out[(m, g)] = float(tot.loc[g, m])
        for m in LAST_DAY:
            out[(m, g)] = float(last.loc[g, m])
    return out


def compare(a: list[dict], b: list[dict]) -> dict[tuple[str, str], tuple[float, float, bool]]:
    """(metric, group) -> (difference of means, tolerance, agrees?) for replicate summaries a and b."""
    res = {}
    for key in a[0]:
        x = np.array([r[key] for r in a])
        y = np.array([r[key] for r in b])
        ss = ((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum()
        s = math.sqrt(ss / (len(x) + len(y) - 2))
        tol = Z * s * math.sqrt(1 / len(x) + 1 / len(y)) + FLOOR[key[0]]
        diff = float(x.mean() - y.mean())
        res[key] = (diff, tol, abs(diff) < tol)
    return res


def report(res) -> str:
    return "\n".join(f"{m:>20} {g:>6}: diff {d:+10.3f}  tolerance {t:8.3f}  {'ok' if ok else 'DISAGREE'}"
                     for (m, g), (d, t, ok) in sorted(res.items()))


@pytest.fixture(scope="module")
def scorelab_runs(tmp_path_factory) -> list[dict]:
    base = tmp_path_factory.mktemp("scorelab-rr1")
    runs = []
    for s in SCORELAB_SEEDS:
        run = scorelab.simulate("rr1", seed=s, out=base / f"s{s}", population=N, days=T, ledger="none", workers=1)
        assert run.manifest["population"] == N and run.manifest["days"] == T
        runs.append(summarise(run.metrics))
    return runs


@pytest.fixture(scope="module")
def mesa_runs() -> list[dict]:
    return [summarise(mesa_rr1.run_mesa_rr1(N, T, seed=s)) for s in MESA_SEEDS]


def test_mesa_frame_has_scorelab_shape(tmp_path):
    df = mesa_rr1.run_mesa_rr1(200, 5, seed=7)
    ref = scorelab.simulate("rr1", seed=7, out=tmp_path / "r", population=200, days=5, ledger="none", workers=1).metrics
    cols = ["day", "group", "population", *mesa_rr1.METRICS]
    assert set(cols) <= set(ref.columns)
    assert list(df.columns) == cols
    assert len(df) == len(ref) == 5 * 3
    assert list(df["group"].cat.categories) == list(ref["group"].cat.categories)
    for _, day in df.groupby("day"):
        g = day.set_index("group")
        assert g.loc["urban", "population"] + g.loc["rural", "population"] == g.loc["all", "population"] == 200
        for m in COUNTS:
            assert g.loc["urban", m] + g.loc["rural", m] == g.loc["all", m]
        assert g.loc["all", "population"] * g.loc["all", "mean_score"] == pytest.approx(
            g.loc["urban", "population"] * g.loc["urban", "mean_score"]
            + g.loc["rural", "population"] * g.loc["rural", "mean_score"])


def test_mesa_agrees_with_scorelab_on_every_rr1_metric(mesa_runs, scorelab_runs):
    res = compare(mesa_runs, scorelab_runs)
    assert len(res) == len(mesa_rr1.METRICS) * len(GROUPS)
    bad = [k for k, (_, _, ok) in res.items() if not ok]
    assert not bad, "Mesa and scorelab disagree on RR-1:\n" + report(res)


def test_crosscheck_detects_wrong_deterrence(scorelab_runs):
    wrong = [summarise(mesa_rr1.run_mesa_rr1(N, T, seed=s, deterrence=1.0)) for s in WRONG_SEEDS]
    res = compare(wrong, scorelab_runs)
    diff, tol, ok = res[("criticism", "urban")]
    assert not ok and diff > 0, "a Mesa model without deterrence was not told apart on criticism:\n" + report(res)
