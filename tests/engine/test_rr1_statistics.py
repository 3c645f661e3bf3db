"""Statistical tests of the kernel against the RR-1 text (shared/reference/rr1.md).

Every test runs twice: through the reference kernel (``auto``: stages.py or its compiled day, the same
bytes) and through the per-citizen walk (engine/walk.py), which implements the same text on other random
streams. Each test names its seed and its tolerance. Tolerances are in standard deviations of the count under
the stated model (binomial/Poisson), so a correct kernel fails a test with probability well under 1e-4.
"""

import math
import os

import numpy as np
import pytest

import scorelab
from conftest import variant

SIGMAS = 5.0


@pytest.fixture(scope="module", params=["auto", "walk"], autouse=True)
def kernel(request):
    """SCORELAB_KERNEL for every run of the module's tests (module-scoped: the shared run is redone per kernel)."""
    if request.param == "walk":
        pytest.importorskip("numba")
    before = os.environ.get("SCORELAB_KERNEL")
    os.environ["SCORELAB_KERNEL"] = request.param
    yield request.param
    if before is None:
        os.environ.pop("SCORELAB_KERNEL", None)
    else:
        os.environ["SCORELAB_KERNEL"] = before


def within(observed: float, expected: float, var: float, sigmas: float = SIGMAS) -> bool:
    return abs(observed - expected) <= sigmas * math.sqrt(max(var, 1.0))


@pytest.fixture(scope="module")
def static_run(rr1_dict, tmp_path_factory, kernel):
    """RR-1 with the behavioural response switched off: every rate is exactly p and p x detection."""
    sc = variant(rr1_dict, population=200_000, days=20, response={"deterrence": {"factor": 1.0}, "gaming": []})
    run = scorelab.simulate(sc, seed=11, out=tmp_path_factory.mktemp("s") / "run")
    assert run.manifest["kernel"]["name"] == ("walk" if kernel == "walk" else "numpy")
    return run


RATES = {  # behaviour: ({group: p}, {group: detection})
    "traffic_violation": ({"urban": 0.004, "rural": 0.002}, {"urban": 0.8, "rural": 0.3}),
    "volunteering": ({"urban": 0.010, "rural": 0.010}, {"urban": 0.5, "rural": 0.5}),
    "donation": ({"urban": 0.002, "rural": 0.001}, {"urban": 1.0, "rural": 1.0}),
    "loan_default": ({"urban": 0.0003, "rural": 0.0005}, {"urban": 1.0, "rural": 1.0}),
    "public_criticism": ({"urban": 0.002, "rural": 0.001}, {"urban": 0.6, "rural": 0.2}),
}


@pytest.mark.parametrize("behaviour", list(RATES))
def test_true_and_observed_rates_per_group(static_run, behaviour):
    """seed 11, 200k x 20 days, tolerance 5 sigma: true ~ Bin(n T, p), observed ~ Bin(n T, p d)."""
    m = static_run.metrics
    sizes = static_run.manifest["group_sizes"]
    T = static_run.manifest["days"]
    p, d = RATES[behaviour]
    for group in ("urban", "rural"):
        rows = m[m.group == group]
        trials = sizes[group] * T
        true = rows[f"true_{behaviour}"].sum()
        obs = rows[f"observed_{behaviour}"].sum()
        assert within(true, trials * p[group], trials * p[group] * (1 - p[group])), (group, true, trials * p[group])
        q = p[group] * d[group]
        assert within(obs, trials * q, trials * q * (1 - q)), (group, obs, trials * q)
        # observation is a thinning of the true events
        assert obs <= true


def test_false_attribution_rate_per_group(rr1_dict, tmp_path):
    """seed 5, 400k x 30 days, tolerance 5 sigma: false matches ~ Bin(n T, r_group), scored -5 each."""
    sc = variant(rr1_dict, population=400_000, days=30)
    run = scorelab.simulate(sc, seed=5, out=tmp_path / "run")
    m, sizes = run.metrics, run.manifest["group_sizes"]
    for group, r in (("urban", 0.00002), ("rural", 0.00008)):
        n = sizes[group] * 30
        got = m[m.group == group]["wrongful_penalties"].sum()
        assert within(got, n * r, n * r), (group, got, n * r)
    led = run.ledger
    false = led[led.false_attribution]
    assert set(false.behaviour.astype(str)) == {"traffic_violation"}
    assert (false.points == -5).all() and set(false.sensor.astype(str)) == {"camera"}
    assert len(false) == m[m.group == "all"]["wrongful_penalties"].sum()


def test_blacklist_lasts_exactly_730_days(rr1_dict, tmp_path):
    """seed 2, 3000 citizens x 800 days: each listing ends exactly 730 days after the last default."""
    sc = variant(rr1_dict, population=3000, days=800)
    run = scorelab.simulate(sc, seed=2, out=tmp_path / "run")
    led, cit, m = run.ledger, run.citizens, run.metrics
    defaults = led[led.behaviour == "loan_default"]
    last = defaults.groupby("citizen").day.max()
    listed = cit.set_index("citizen").blacklisted_until
    assert (listed[last.index] == last + 730).all()
    assert (listed.drop(last.index) == -1).all()
    # the listed count on every day equals a replay of all listings: listed on day t iff d <= t < d + 730
    all_days = defaults[["citizen", "day"]].sort_values("day")
    expected = np.zeros(800, dtype=np.int64)
    for cid, days in all_days.groupby("citizen").day:
        covered = np.zeros(800 + 730, dtype=bool)
        for d in days:
            covered[d:d + 730] = True
        expected += covered[:800]
    got = m[m.group == "all"].sort_values("day")["listed_court_defaulters"].to_numpy()
    assert (got == expected).all()
    # someone listed early in the run is free again before the end
    early = last[last < 800 - 731]
    assert len(early) > 0
    assert (listed[early.index] < 799).all()


def test_restricted_share_matches_final_state(rr1_dict, tmp_path):
    """Restricted at the end = listed (t < until) or grade C/D, recomputed from citizens.parquet."""
    sc = variant(rr1_dict, population=20_000, days=400)
    run = scorelab.simulate(sc, seed=4, out=tmp_path / "run")
    cit, m = run.citizens, run.metrics
    T = 400
    expect = (cit.blacklisted_until > T - 1) | cit.grade.astype(str).isin(["C", "D"])
    assert (cit.restricted == expect).all()
    last = m[m.day == T - 1].set_index("group")
    for g in ("urban", "rural"):
        assert last.loc[g, "restricted_share"] == pytest.approx(cit[cit.group == g].restricted.mean(), abs=1e-12)
        assert last.loc[g, "mean_score"] == pytest.approx(cit[cit.group == g].score.mean(), abs=1e-9)


def test_ledger_explains_every_score(rr1_dict, tmp_path):
    run = scorelab.simulate(variant(rr1_dict, population=30_000, days=120), seed=9, out=tmp_path / "run")
    cit, led = run.citizens, run.ledger
    total = led.groupby("citizen").points.sum()
    final = 1000 + total.reindex(cit.citizen, fill_value=0).to_numpy()
    assert (final == cit.score.to_numpy()).all()
    m = run.metrics
    assert m[m.group == "all"].penalties.sum() == (led.points < 0).sum()


def test_deterrence_lowers_the_penalised_rate_by_its_factor(rr1_dict, tmp_path):
    """seed 8: after one observed penalty a citizen's rate is 0.7 p; tolerance 5 sigma (Poisson).

    One behaviour (criticism, observed always, high rate), no gaming. For each citizen, the exposure after
    their first event until the second (or the end) and the count of second events give an MLE rate.
    """
    d = {**rr1_dict}
    sc = variant(d, population=60_000, days=60,
                 behaviours__4__rate=0.02, sensors__4__coverage=1.0,
                 response={"deterrence": {"factor": 0.7, "behaviours": ["public_criticism"]}, "gaming": []})
    run = scorelab.simulate(sc, seed=8, out=tmp_path / "run")
    led = run.ledger
    crit = led[led.behaviour == "public_criticism"].sort_values(["citizen", "day"])
    crit = crit.assign(k=crit.groupby("citizen").cumcount())
    first = crit[crit.k == 0].set_index("citizen").day
    second = crit[crit.k == 1].set_index("citizen").day
    end = second.reindex(first.index).fillna(60).to_numpy()
    exposure = (end - first.to_numpy() - 1).sum()  # days after the first event, up to and incl. the second
    exposure += second.reindex(first.index).notna().sum()
    events = len(second)
    p = 0.02 * 0.7
    assert within(events, exposure * p, exposure * p), (events, exposure * p)
    # and clearly not the undeterred rate
    assert events < exposure * 0.02 - SIGMAS * math.sqrt(exposure * 0.02)


def test_gaming_triples_donations_below_1000(rr1_dict, tmp_path):
    """seed 21: start at 999 (below 1000) with donations worth 0 points, so everyone stays below: the
    donation rate is 3 p; starting at 1000 it is p. Tolerance 5 sigma (binomial)."""
    out = {}
    for start in (999, 1000):
        sc = variant(rr1_dict, population=100_000, days=20, policy__start_score=start, policy__rules__2__points=0,
                     policy__restrictions=[], policy__blacklists=[], policy__governance={},
                     response={"deterrence": {"factor": 1.0}, "gaming": [{"behaviour": "donation", "below_score": 1000, "factor": 3.0}]})
        run = scorelab.simulate(sc, seed=21, out=tmp_path / f"s{start}")
        out[start] = run
    for start, mult in ((999, 3.0), (1000, 1.0)):
        m, sizes = out[start].metrics, out[start].manifest["group_sizes"]
        for group, p in (("urban", 0.002), ("rural", 0.001)):
            n = sizes[group] * 20
            got = m[m.group == group].true_donation.sum()
            q = p * mult
            assert within(got, n * q, n * q * (1 - q)), (start, group, got, n * q)
