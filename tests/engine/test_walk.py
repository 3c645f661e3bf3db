"""The per-citizen walk (engine/walk.py) against the reference kernel: the same model, other random numbers.

The walk draws from its own streams, so it cannot give the reference's bytes. What it must give:
- the reference's figures, statistically, on a scenario with every feature it covers (this file) and on
  every RR-1 test of the text's own rates (tests/engine/test_rr1_statistics.py runs each one through both);
- exact bookkeeping: its event log explains every final score, its stocks and histograms match the
  final citizens, listings and restrictions switch on and off in the log as in the metrics;
- the same bytes for the same seed, whatever the number of workers.
Tolerances are fixed-seed and wide (standard deviations of Poisson or binomial counts), so a test does
not flake: each seed gives the same numbers on every run.
"""

import json
import math
import os

import numpy as np
import pytest

import scorelab
from scorelab import api
from scorelab.config.loader import load_scenario
from scorelab.engine import compiled, runner
from scorelab.engine.kernel import ShardSpec, simulate_shard
from scorelab.engine.params import compile_params
from scorelab.engine.stages import histogram

from scenario_builders import ledger_holds, rich_core

pytest.importorskip("numba")

SIGMAS = 6.0
STOCKS = ("score_sum", "restricted", "restricted_travel", "restricted_service", "grade_A", "grade_B", "grade_C",
          "grade_D", "listed_court_list", "listed_litter_list")


@pytest.fixture(scope="module")
def pair():
    """The rich scenario, 120 k citizens x 120 days, one shard through each kernel (seed 5)."""
    P = compile_params(rich_core(population=120_000, days=120))
    spec = ShardSpec(0, 0, 120_000, 5, 1)
    return P, simulate_shard(P, spec, kernel="numpy"), simulate_shard(P, spec, kernel="walk")


def test_every_count_agrees_with_the_reference(pair):
    """Each count summed over the run, per group: within 6 sigma (Poisson, both runs' variance)."""
    P, ref, walk = pair
    assert ref.metrics.keys() == walk.metrics.keys()
    checked = 0
    for name, a in ref.metrics.items():
        if name in STOCKS:
            continue
        for g in range(P.n_groups):
            x, y = int(a[:, g].sum()), int(walk.metrics[name][:, g].sum())
            if name.startswith("points_"):  # a sum of points: Poisson in events, scaled by the points' size
                scale = 40
                assert abs(x - y) <= SIGMAS * scale * math.sqrt((x + y) / scale + 1), (name, g, x, y)
            else:
                assert abs(x - y) <= SIGMAS * math.sqrt(x + y + 1), (name, g, x, y)
            checked += x > 100
    assert checked >= 20  # the scenario is busy enough for the comparison to mean something


def test_every_stock_agrees_with_the_reference_on_every_day(pair):
    """Shares of each group in a state, every 10th day: within 6 sigma (binomial); the mean score within
    6 standard errors of the scores' spread."""
    P, ref, walk = pair
    sizes = ref.group_sizes
    np.testing.assert_array_equal(sizes, walk.group_sizes)  # the same population
    for name in STOCKS:
        for g in range(P.n_groups):
            n = sizes[g]
            for t in range(0, P.days, 10):
                x, y = ref.metrics[name][t, g] / n, walk.metrics[name][t, g] / n
                if name == "score_sum":
                    sd = 60.0  # generous: the scores' spread in this scenario is about 40 points
                    assert abs(x - y) <= SIGMAS * sd * math.sqrt(2 / n), (name, g, t, x, y)
                else:
                    q = (x + y) / 2
                    assert abs(x - y) <= SIGMAS * math.sqrt(q * (1 - q) * 2 / n) + 1e-9, (name, g, t, x, y)


def test_score_distribution_agrees(pair):
    P, ref, walk = pair
    a, b = ref.hist[-1].sum(axis=0), walk.hist[-1].sum(axis=0)
    assert a.sum() == b.sum() == P.population
    # the same spread, bin by bin (at most 6 sigma apart) and in the total variation distance
    assert (np.abs(a - b) <= SIGMAS * np.sqrt(a + b + 1)).all()
    assert 0.5 * np.abs(a - b).sum() / a.sum() < 0.02


def test_the_walk_keeps_exact_books(pair):
    """Every figure of the walk is consistent with its own records: the stocks with the final citizens,
    the histograms with the scores, each listing and restriction with its events in the log."""
    P, _, walk = pair
    T, cit, led = P.days, walk.citizens, walk.ledger
    G = P.n_groups
    grp = cit["group"]
    # the event log explains every score
    start = cit["start_score"].astype(np.int64)
    pts = np.bincount(led["citizen"], weights=led["points"], minlength=len(start)).astype(np.int64)
    np.testing.assert_array_equal(start + pts, cit["score"])
    for g in range(G):
        mine = grp == g
        assert walk.metrics["score_sum"][-1, g] == cit["score"][mine].sum()
        assert walk.metrics["restricted"][-1, g] == cit["restricted"][mine].sum()
        for k, name in enumerate(P.grade_names):
            assert walk.metrics[f"grade_{name}"][-1, g] == (cit["grade"][mine] == k).sum()
        for name in P.bl_names:
            assert walk.metrics[f"listed_{name}"][-1, g] == (cit[f"listed_until_{name}"][mine] > T - 1).sum()
        np.testing.assert_array_equal(walk.hist[-1, g], histogram(cit["score"][mine], walk_lo(P)))
    # each stock, every day, from the log: restrictions and listings switch on and off as the metrics say
    days = led["day"]
    for r, name in enumerate(P.restriction_names):
        sel = led["target"] == r
        on = np.bincount(days[sel & (led["kind"] == 5)], minlength=T)
        off = np.bincount(days[sel & (led["kind"] == 6)], minlength=T)
        np.testing.assert_array_equal(np.cumsum(on - off), walk.metrics[f"restricted_{name}"].sum(axis=1))
    for k, name in enumerate(P.bl_names):
        sel = led["target"] == k
        up = np.bincount(days[sel & (led["kind"] == 1)], minlength=T)
        down = np.bincount(days[sel & (led["kind"] == 4)], minlength=T)
        np.testing.assert_array_equal(np.cumsum(up - down), walk.metrics[f"listed_{name}"].sum(axis=1))
        np.testing.assert_array_equal(up, walk.metrics[f"listings_{name}"].sum(axis=1))
    assert {0, 1, 2, 4, 5, 6} <= set(led["kind"].tolist())  # scores, listings, renewals, expiries, restrictions
    assert (led["rule"] == P.n_behaviours).any() and led["false"].any()  # the clip, false attributions
    assert (np.diff(days) >= 0).all()  # the log reads day by day


def walk_lo(P):
    from scorelab.engine.kernel import hist_lo

    return hist_lo(P)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SHARD_SIZE", 7000)  # three shards
    monkeypatch.setenv("SCORELAB_KERNEL", "walk")
    sc = load_scenario("rr1", population=20000, days=90)
    runs = {}
    for name, workers in (("a", 1), ("b", 2), ("c", 1)):
        runs[name] = scorelab.simulate(sc, seed=3, out=tmp_path / name, workers=workers)
        assert runs[name].manifest["kernel"]["name"] == "walk"
    for t in ("metrics.parquet", "events.parquet", "citizens.parquet", "distribution.parquet"):
        a, b, c = ((tmp_path / name / t).read_bytes() for name in "abc")
        assert a == b == c, t
    assert ledger_holds(runs["a"])
    scorelab.simulate(sc, seed=4, out=tmp_path / "d", workers=1)
    assert (tmp_path / "d" / "metrics.parquet").read_bytes() != (tmp_path / "a" / "metrics.parquet").read_bytes()


def test_the_walk_is_chosen_only_on_request(monkeypatch):
    rr1 = compile_params(load_scenario("rr1"))
    monkeypatch.setenv("SCORELAB_KERNEL", "auto")
    assert compiled.choose(rr1, 1e12)[0] == "numba"  # auto keeps the reference's bytes
    monkeypatch.setenv("SCORELAB_KERNEL", "walk")
    name, why = compiled.choose(rr1, 1.0)
    assert name == "walk" and "own random streams" in why
    fair = compile_params(load_scenario("fair-baseline"))
    name, why = compiled.choose(fair, 1e12)
    assert name == "numpy" and "does not cover" in why and "mechanism plugins" in why


def test_sources_that_always_or_never_have_a_candidate(monkeypatch):
    """A behaviour done every day, one never done, and a rare one between them: exact counts where the
    rate is 0 or 1, the rare one within 6 sigma (its candidates come from the same stream of days)."""
    from scenario_builders import make

    sc = make(scenario={"population": 3000, "days": 50},
              behaviours=[{"name": "always", "rate": 1.0, "misconduct": False},
                          {"name": "never", "rate": 0.0, "misconduct": False},
                          {"name": "rare", "rate": 0.01, "misconduct": False}],
              policy={"rules": [{"behaviour": "always", "sensor": "court", "points": 1},
                                {"behaviour": "rare", "sensor": "court", "points": -1}]})
    P = compile_params(sc)
    r = simulate_shard(P, ShardSpec(0, 0, 3000, 9, 1), kernel="walk")
    n = 3000 * 50
    assert r.metrics["true_always"].sum() == n and r.metrics["observed_always"].sum() == n
    assert r.metrics["true_never"].sum() == 0
    rare = r.metrics["true_rare"].sum()
    assert abs(rare - n * 0.01) <= SIGMAS * math.sqrt(n * 0.01)
    np.testing.assert_array_equal(r.citizens["score"], 1000 + 50 - np.bincount(
        r.ledger["citizen"][r.ledger["rule"] == 2], minlength=3000))


@pytest.mark.parametrize("started, resumed_with", [("walk", "auto"), ("auto", "walk")])
def test_a_resumed_run_keeps_the_streams_it_started_with(tmp_path, monkeypatch, started, resumed_with):
    """Shards drawn from the walk's streams and from the reference's never mix in one run: a resumed run
    goes on with the kernel family its checkpoints came from, whatever SCORELAB_KERNEL says now."""
    monkeypatch.setattr(runner, "SHARD_SIZE", 5000)  # four shards
    sc = load_scenario("rr1", population=20000, days=60)
    monkeypatch.setenv("SCORELAB_KERNEL", started)
    scorelab.simulate(sc, seed=2, out=tmp_path / "whole", workers=1)
    real = runner.simulate_shard

    def killed_at_shard_2(params, spec, progress=None, kernel="numpy", **kw):
        if spec.index == 2:
            raise KeyboardInterrupt
        return real(params, spec, progress, kernel, **kw)

    monkeypatch.setattr(runner, "simulate_shard", killed_at_shard_2)
    with pytest.raises(KeyboardInterrupt):
        scorelab.simulate(sc, seed=2, out=tmp_path / "cut", workers=1)
    monkeypatch.setattr(runner, "simulate_shard", real)
    monkeypatch.setenv("SCORELAB_KERNEL", resumed_with)
    done = api.resume(tmp_path / "cut", workers=1)
    assert done.manifest["resumed_shards"] == 2
    assert (done.manifest["kernel"]["name"] == "walk") == (started == "walk")
    for t in ("metrics.parquet", "events.parquet", "citizens.parquet"):
        assert (tmp_path / "cut" / t).read_bytes() == (tmp_path / "whole" / t).read_bytes(), t


def test_the_kernel_option_of_scorelab_run(tmp_path, monkeypatch):
    """`scorelab run --kernel walk` runs the walk and leaves the environment as it found it; a bad name is
    refused with exit status 2 before anything is written."""
    from typer.testing import CliRunner

    from scorelab.cli import app

    monkeypatch.delenv("SCORELAB_KERNEL", raising=False)
    r = CliRunner().invoke(app, ["run", "rr1", "-n", "3000", "-t", "10", "--kernel", "walk", "--quiet", "--no-report",
                                 "--out", str(tmp_path / "w")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "w" / "run.json").read_text())["kernel"]["name"] == "walk"
    assert "SCORELAB_KERNEL" not in os.environ
    r = CliRunner().invoke(app, ["run", "rr1", "-n", "3000", "--kernel", "fast", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--kernel" in r.output and "auto, numpy, numba, walk" in r.output
    assert not (tmp_path / "x").exists()
