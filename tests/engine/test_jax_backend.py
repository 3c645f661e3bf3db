"""The JAX backend (engine/jax_backend.py) against the numpy kernel, on JAX's CPU device.

Its generator differs from the numpy backend's, so agreement is statistical: every RR-1 metric, per group,
within Z standard deviations. Deterministic scenarios (rates and coverages of 0 or 1) must agree exactly,
metric by metric, ledger row by ledger row. The same seed gives the same bytes.
"""

import hashlib
import math
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import scorelab
from scorelab.engine.events import KIND
from scorelab.cli import app
from scorelab.config.loader import ConfigError, scenario_from_dict
from scorelab.config.models import Scenario
from scorelab.engine.kernel import ShardSpec, simulate_shard
from scorelab.engine.params import compile_params

Z = 5.0  # tolerance in standard deviations for every statistical comparison below
SLACK = 5  # plus this many events, for metrics whose expected count is tiny

TABLES = ["metrics.parquet", "citizens.parquet", "events.parquet", "distribution.parquet"]
EVENT_PREFIXES = ("true_", "observed_", "false_", "listings_")  # counts of events (new listings too)
EVENTS = ("penalties", "wrongful_penalties", "wrongful_rewards", "criticism")
STATES_PREFIXES = ("grade_", "listed_", "restricted")


def _jax():
    try:
        from scorelab.engine import jax_backend
    except ImportError:
        pytest.skip("jax is not installed (pip install 'scorelab[gpu]' or jax's CPU wheel)")
    return jax_backend


def _params(sc: Scenario):
    return compile_params(sc)


def _sum_runs(params, seeds, fn, size):
    """Metrics summed over seeds; group sizes summed too (each backend draws the same sizes per seed)."""
    tot, sizes = None, None
    for s in seeds:
        r = fn(params, ShardSpec(0, 0, size, s, 0))
        tot = {k: v.copy() for k, v in r.metrics.items()} if tot is None else {k: tot[k] + v for k, v in r.metrics.items()}
        sizes = r.group_sizes.copy() if sizes is None else sizes + r.group_sizes
    return tot, sizes


def _compare(params, a, b, sizes, check_points=True):
    """Every metric of both backends, per group: event totals over all days (Poisson), states on chosen days
    (binomial), points (sum of per-behaviour Poisson variances). Returns the list of failures."""
    bad = []
    assert list(a) == list(b)
    T = params.days
    for m in a:
        for g, gname in enumerate(params.groups):
            if m.startswith(EVENT_PREFIXES) or m in EVENTS:
                x, y = a[m][:, g].sum(), b[m][:, g].sum()
                tol = Z * math.sqrt(x + y) + SLACK
            elif m.startswith(STATES_PREFIXES):
                for t in (T // 2, T - 1):
                    x, y = a[m][t, g], b[m][t, g]
                    n = sizes[g]
                    var = x * (1 - x / n) + y * (1 - y / n)
                    if abs(x - y) > Z * math.sqrt(var) + SLACK:
                        bad.append(f"{m}[{gname}] day {t}: numpy {x} jax {y}")
                continue
            elif m in ("points_awarded", "points_deducted"):
                if not check_points:
                    continue
                sign = 1 if m == "points_awarded" else -1
                var = 0.0
                for b_, name in enumerate(params.behaviours):
                    pts = int(params.points[b_])
                    if pts * sign > 0:
                        var += pts * pts * (a[f"observed_{name}"][:, g].sum() + b[f"observed_{name}"][:, g].sum())
                for f in params.false_sources:
                    pts = int(params.points[f.behaviour])
                    name = params.behaviours[f.behaviour]
                    if pts * sign > 0:
                        var += pts * pts * (a[f"false_{name}"][:, g].sum() + b[f"false_{name}"][:, g].sum())
                x, y = a[m][:, g].sum(), b[m][:, g].sum()
                tol = Z * math.sqrt(var) + SLACK * 50
            elif m == "score_sum":
                continue  # follows from the points (checked exactly below) and the group sizes
            else:
                bad.append(f"{m}: no comparison defined")
                continue
            if abs(x - y) > tol:
                bad.append(f"{m}[{gname}]: numpy {x} jax {y} (tolerance {tol:.0f})")
    return bad


def _score_identity(params, metrics, sizes_per_seed_sum):
    """Without clipping, score_sum on each day = start x size + cumulative (awarded - deducted): exact."""
    net = np.cumsum(metrics["points_awarded"] - metrics["points_deducted"], axis=0)
    expect = sizes_per_seed_sum[None, :] * params.start_score + net
    np.testing.assert_array_equal(metrics["score_sum"], expect)


def test_rr1_statistics_agree_with_numpy():
    """RR-1, 50,000 citizens x 60 days, seeds 11-13 summed: every metric per group within Z sd."""
    jb = _jax()
    P = _params(scorelab.load("rr1", population=50_000, days=60))
    seeds = (11, 12, 13)
    a, sizes = _sum_runs(P, seeds, simulate_shard, 50_000)
    b, sizes_j = _sum_runs(P, seeds, jb.simulate_shard_jax, 50_000)
    np.testing.assert_array_equal(sizes, sizes_j)  # group sizes come from the same stream in both backends
    assert _compare(P, a, b, sizes) == []
    _score_identity(P, b, sizes)
    # the comparison has power: the deterrence and observation effects are visible in these totals
    assert b["observed_volunteering"].sum() < 0.6 * b["true_volunteering"].sum()
    assert b["wrongful_penalties"][:, 1].sum() > b["wrongful_penalties"][:, 0].sum()


def test_stressed_response_agrees_with_numpy(rr1_dict):
    """RR-1 with 5x the behaviour rates, strong deterrence (0.2), gaming x10, a score curve and clipping to
    [960, 1030]: the state-dependent propensities and clipping, 20,000 x 60, seeds 21-22, every metric within
    Z sd. (At RR-1's own rates deterrence moves these totals by less than the tolerance.)"""
    jb = _jax()
    d = {**rr1_dict}
    d["scenario"] = {**d["scenario"], "population": 20_000, "days": 60}
    d["behaviours"] = [{**b, "rate": ({k: 5 * v for k, v in b["rate"].items()} if isinstance(b["rate"], dict)
                                      else 5 * b["rate"])} for b in d["behaviours"]]
    d["policy"] = {**d["policy"], "score_min": 960, "score_max": 1030}
    d["response"] = {
        "deterrence": {"factor": 0.2, "behaviours": None},
        "gaming": [{"behaviour": "donation", "below_score": 1000, "factor": 10.0}],
        "score_curves": [{"behaviour": "volunteering", "points": [[960.0, 3.0], [1000.0, 1.0], [1030.0, 0.2]]}],
    }
    P = _params(Scenario.model_validate(d))
    seeds = (21, 22)
    a, sizes = _sum_runs(P, seeds, simulate_shard, 20_000)
    b, _ = _sum_runs(P, seeds, jb.simulate_shard_jax, 20_000)
    assert _compare(P, a, b, sizes) == []
    # clipping happened and was booked as points, in both backends
    for m in (a, b):
        assert (m["score_sum"][-1] <= sizes * 1030).all() and (m["score_sum"][-1] >= sizes * 960).all()


EDGES = {
    "scenario": {"name": "edges", "population": 300, "days": 12, "seed": 7},
    "groups": [{"name": "urban", "share": 0.5}, {"name": "rural", "share": 0.5}],
    "behaviours": [{"name": "default", "rate": {"urban": 1.0, "rural": 0.0}, "misconduct": True},
                   {"name": "volunteer", "rate": {"urban": 0.0, "rural": 1.0}, "misconduct": False}],
    "sensors": [{"name": "court", "coverage": 1.0,
                 "false_attribution": {"behaviour": "default", "rate": {"urban": 0.0, "rural": 1.0}}},
                {"name": "informant", "coverage": 1.0}],
    "policy": {
        "start_score": 1000, "score_min": 900, "score_max": 1012,
        "rules": [{"behaviour": "default", "sensor": "court", "points": -30},
                  {"behaviour": "volunteer", "sensor": "informant", "points": 5}],
        "grades": [{"name": "AA", "min": 1010}, {"name": "A", "min": 960, "max": 1009}, {"name": "B", "max": 959}],
        "blacklists": [{"name": "defaulters", "trigger": "default", "duration_days": 3}],
        "restrictions": [{"name": "ban", "grades": ["B"]}, {"name": "no_loans", "blacklists": ["defaulters"]}],
    },
    # defaults stop once the score reaches 900: the listing then expires 3 days after the last one
    "response": {"score_curves": [{"behaviour": "default", "points": [[899, 0.0], [900, 0.0], [901, 1.0], [5000, 1.0]]}]},
}


def _rows(events):
    """Every event (scores, listings started, extended and expired, restrictions on and off) as sorted tuples."""
    cols = [events[k].astype(np.int64) for k in ("day", "citizen", "kind", "rule", "points", "sensor", "false",
                                                 "target", "until")]
    return sorted(zip(*cols))


def test_deterministic_edges_match_numpy_exactly(monkeypatch):
    """Clipping at both ends (net per group, booked as points and ledger rows), blacklist expiry, grade
    changes, two restrictions, false attributions: a scenario with no randomness, equal metric by metric."""
    jb = _jax()
    P = _params(scenario_from_dict(EDGES, "edges"))
    spec = ShardSpec(0, 0, 300, 7, 1, 5)
    a, b = simulate_shard(P, spec), jb.simulate_shard_jax(P, spec)
    assert list(a.metrics) == list(b.metrics)
    for m in a.metrics:
        np.testing.assert_array_equal(a.metrics[m], b.metrics[m], err_msg=m)
    np.testing.assert_array_equal(a.hist_days, b.hist_days)
    np.testing.assert_array_equal(a.hist, b.hist)
    assert _rows(a.ledger) == _rows(b.ledger)
    kinds = set(b.ledger["kind"].tolist())
    assert {KIND["list_start"], KIND["list_expire"], KIND["restrict_on"], KIND["restrict_off"]} <= kinds
    assert list(a.citizens) == list(b.citizens)
    for k in a.citizens:
        np.testing.assert_array_equal(a.citizens[k], b.citizens[k], err_msg=k)
    # and the edges are what the scenario says (urban = group 0, rural = group 1)
    m, urban = b.metrics, int(b.group_sizes[0])
    assert m["listed_defaulters"][:, 0].tolist() == [urban] * 6 + [0] * 6  # defaults on days 0-3, listed to day 6
    assert m["restricted_no_loans"][6:, 0].sum() == 0 and (m["restricted_ban"][1:, 0] == urban).all()
    assert m["score_sum"][-1, 0] == 900 * urban  # 1000 -> 970 -> 940 -> 910 -> 900 (clipped from 880)
    assert m["points_awarded"][3, 0] == 20 * urban  # the clip's +20 is booked as awarded points
    assert (m["wrongful_penalties"][:, 1] == b.group_sizes[1]).all()
    assert (b.ledger["rule"] == P.n_behaviours).any()  # clipping rows (rule score_range)
    # the GPU's privatised histogram (several copies, summed) gives the same counts
    monkeypatch.setattr(jb, "HIST_COPIES", 7)
    np.testing.assert_array_equal(jb.simulate_shard_jax(P, spec).hist, a.hist)


def test_event_log_is_complete_for_the_audit(tmp_path):
    """A JAX run's event log holds every state change, so the audit's per-citizen figures are exact: per-citizen
    restricted days summed over citizens equal the daily restricted counts summed over days."""
    _jax()
    from scorelab.audit.metrics import event_log_check, open_run

    run = scorelab.simulate("rr1", seed=4, population=3000, days=60, backend="jax", ledger="all", workers=1,
                            out=tmp_path / "r")
    kinds = set(run.events.kind.astype(str))
    assert {"score", "list_start", "restrict_on"} <= kinds
    f = event_log_check(open_run(run.path))
    assert f["checked"] and f["exact"] and f["final_score_agrees"] == 1.0 and f["final_restricted_agrees"] == 1.0
    # ground truth is declared, not read from the points: criticism (-20 points, not misconduct) adds nothing
    ref = scorelab.simulate("rr1", seed=4, population=3000, days=60, ledger="all", workers=1)
    a, b = run.citizens.true_misconduct.mean(), ref.citizens.true_misconduct.mean()
    assert abs(a - b) < 0.1 * b


def test_same_seed_same_bytes_and_backend_recorded(tmp_path):
    _jax()
    kw = dict(population=3000, days=30, backend="jax")
    a = scorelab.simulate("rr1", seed=5, out=tmp_path / "a", **kw)
    b = scorelab.simulate("rr1", seed=5, out=tmp_path / "b", **kw)
    c = scorelab.simulate("rr1", seed=6, out=tmp_path / "c", **kw)
    digest = lambda r: {t: hashlib.sha256((r.path / t).read_bytes()).hexdigest() for t in TABLES}  # noqa: E731
    assert digest(a) == digest(b)
    assert digest(a)["metrics.parquet"] != digest(c)["metrics.parquet"]
    assert a.manifest["backend"] == "jax" and a.manifest["device"].startswith("cpu")
    assert "jax" in a.manifest["versions"]
    # the event log is kept as on the numpy backend (auto: everyone at this size), the same bytes for a seed
    assert a.manifest["detail"]["mode"] == "all" and len(a.citizens) == 3000
    assert digest(a)["events.parquet"] == digest(b)["events.parquet"]


def test_cli_backend_option(tmp_path):
    _jax()
    cli = CliRunner()
    out = tmp_path / "run"
    r = cli.invoke(app, ["run", "rr1", "-n", "2000", "-t", "10", "--backend", "jax", "-o", str(out), "-q", "--no-report"])
    assert r.exit_code == 0, r.output
    assert scorelab.Run(out).manifest["backend"] == "jax"
    r = cli.invoke(app, ["run", "rongcheng", "-n", "2000", "-t", "5", "--backend", "jax", "-o", str(tmp_path / "m"), "-q"])
    assert r.exit_code == 2 and "mechanism" in r.output and "caps" in r.output and "--backend numpy" in r.output
    assert not (tmp_path / "m").exists()


def test_unknown_or_missing_backend_is_a_config_error(tmp_path, monkeypatch):
    """Runs without jax too: a missing jax says how to install it; an unknown name lists the backends."""
    with pytest.raises(ConfigError, match="numpy, jax"):
        scorelab.simulate("rr1", population=100, days=2, backend="cupy", out=tmp_path / "a")
    import scorelab.engine as engine

    monkeypatch.setitem(sys.modules, "scorelab.engine.jax_backend", None)  # import fails as if jax were absent
    monkeypatch.delattr(engine, "jax_backend", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'scorelab\[gpu\]'"):
        scorelab.simulate("rr1", population=100, days=2, backend="jax", out=tmp_path / "b")
    r = CliRunner().invoke(app, ["run", "rr1", "-n", "100", "-t", "2", "--backend", "jax", "-o", str(tmp_path / "c"), "-q"])
    assert r.exit_code == 2 and "scorelab[gpu]" in r.output
    assert not (tmp_path / "c").exists()


def test_shards_like_numpy(tmp_path, monkeypatch):
    """Several shards (offsets): the same shard cut and group sizes as the numpy backend."""
    _jax()
    from scorelab.engine import runner

    monkeypatch.setattr(runner, "SHARD_SIZE", 1500)
    kw = dict(seed=9, population=5000, days=30, ledger="none", workers=1)  # no fork once JAX runs threads
    a = scorelab.simulate("rr1", out=tmp_path / "np", **kw)
    b = scorelab.simulate("rr1", out=tmp_path / "jax", backend="jax", **kw)
    assert a.manifest["shards"] == b.manifest["shards"] == 4
    assert a.manifest["group_sizes"] == b.manifest["group_sizes"]


def test_rbg_prng_is_deterministic_and_its_own_stream():
    jb = _jax()
    P = _params(scorelab.load("rr1", population=4000, days=30))
    spec = ShardSpec(0, 0, 4000, 3, 0)
    x = jb.simulate_shard_jax(P, spec, prng_impl="rbg")
    y = jb.simulate_shard_jax(P, spec, prng_impl="rbg")
    z = jb.simulate_shard_jax(P, spec)
    assert all((x.metrics[m] == y.metrics[m]).all() for m in x.metrics)
    assert any((x.metrics[m] != z.metrics[m]).any() for m in x.metrics)
