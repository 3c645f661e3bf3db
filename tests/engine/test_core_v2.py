"""Core v2: declared ground truth, common random numbers per (behaviour, group), start distributions."""

import copy

import numpy as np
import pytest

import scorelab
from scorelab.audit.metrics import audit_run, open_run
from scorelab.config.loader import ConfigError, load_scenario, scenario_from_dict
from scorelab.config.start import CdfStart, HistogramStart, NormalStart, UniformStart, sample_start
from scorelab.engine.kernel import ShardSpec, simulate_shard
from scorelab.engine.params import compile_params


def rr1_dict():
    return load_scenario("rr1").model_dump(mode="json")


def _true_events(d, group_index):
    sc = scenario_from_dict(d)
    P = compile_params(sc)
    r = simulate_shard(P, ShardSpec(0, 0, 20_000, 11, 1))
    return {k: v[:, group_index].copy() for k, v in r.metrics.items() if k.startswith(("true_", "false_"))}, r


def test_changing_one_groups_rate_leaves_the_other_groups_events_identical():
    """Raising only the urban rate of loan_default (and the urban false-match rate) moves no rural event:
    every true and false event count of the rural group, and each rural citizen's record, stays identical."""
    base = rr1_dict()
    changed = copy.deepcopy(base)
    beh = next(b for b in changed["behaviours"] if b["name"] == "loan_default")
    beh["rate"] = {"urban": 0.003, "rural": beh["rate"]["rural"]}
    cam = next(s for s in changed["sensors"] if s["name"] == "camera")
    cam["false_attribution"]["rate"]["urban"] = 0.001
    a, ra = _true_events(base, 1)
    b, rb = _true_events(changed, 1)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    urban_a, _ = _true_events(base, 0)
    urban_b, _ = _true_events(changed, 0)
    assert urban_b["true_loan_default"].sum() > 3 * urban_a["true_loan_default"].sum()
    # the rural citizens' event logs are identical too
    rural0 = int(ra.group_sizes[0])
    la, lb = ra.ledger, rb.ledger
    key = lambda led: sorted(zip(*(led[c][led["citizen"] >= rural0].tolist() for c in ("day", "citizen", "kind", "rule"))))  # noqa: E731
    assert key(la) == key(lb)


def test_ground_truth_is_declared_not_inferred_from_points(tmp_path):
    """national-blacklist's rules give 0 points; its court defaulters are still guilty, because the preset
    declares judgment_default misconduct: few innocents among the restricted (the old inference said 100%)."""
    run = scorelab.simulate("national-blacklist", seed=3, population=20_000, days=120, out=tmp_path / "nb", workers=1)
    s = audit_run(open_run(run.path))["sanctions"]
    assert s.loc["all", "ever_restricted_share"] > 0.002  # the ~0.31% listed at the start of 2018, and more
    assert s.loc["all", "innocent_among_restricted"] < 0.05
    # flip the declaration: the same restrictions are now all of innocents
    d = load_scenario("national-blacklist").model_dump(mode="json")
    for b in d["behaviours"]:
        b["misconduct"] = False
    sc = scenario_from_dict(d)
    run2 = scorelab.simulate(sc, seed=3, population=20_000, days=120, out=tmp_path / "nb2", workers=1)
    s2 = audit_run(open_run(run2.path))["sanctions"]
    assert s2.loc["all", "innocent_among_restricted"] == 1.0
    assert s2.loc["all", "ever_restricted_share"] == s.loc["all", "ever_restricted_share"]


def test_every_preset_declares_misconduct_for_every_behaviour():
    from scorelab.config.loader import list_presets

    for p in list_presets():
        raw = __import__("tomllib").loads(p.path.read_text())
        for b in raw["behaviours"]:
            assert isinstance(b.get("misconduct"), bool), (p.name, b["name"])
        names = {b["name"]: b["misconduct"] for b in raw["behaviours"]}
        for speech in ("public_criticism", "criticise_government", "irregular_petitioning"):
            assert names.get(speech, False) is False, (p.name, speech)


def test_a_behaviour_without_misconduct_is_refused_with_the_field():
    d = rr1_dict()
    del d["behaviours"][0]["misconduct"]
    with pytest.raises(ConfigError, match=r"behaviours\[0\]\.misconduct"):
        scenario_from_dict(d, "x.toml")


@pytest.mark.parametrize("dist,lo,hi,mean", [
    (NormalStart(kind="normal", mean=700, sd=50, low=500, high=900), 500, 900, 700),
    (UniformStart(kind="uniform", low=300, high=400), 300, 400, 350),
    (HistogramStart(kind="histogram", edges=[300, 400, 600], weights=[1, 3]), 300, 599, 0.25 * 349.5 + 0.75 * 499.5),
    (CdfStart(kind="cdf", scores=[300, 500, 850], cdf=[0.0, 0.5, 1.0]), 300, 850, 0.5 * 400 + 0.5 * 675),
])
def test_start_distributions_sample_their_law(dist, lo, hi, mean):
    v = sample_start(dist, 200_000, np.random.default_rng(1))
    assert v.min() >= lo and v.max() <= hi
    assert abs(v.mean() - mean) < 2.0  # seed 1; a few standard errors at n = 200,000


def test_cdf_with_a_flat_stretch_puts_no_one_there():
    d = CdfStart(kind="cdf", scores=[300, 600, 700, 850], cdf=[0.0, 0.4, 0.4, 1.0])
    v = sample_start(d, 100_000, np.random.default_rng(2))
    assert not ((v > 601) & (v < 699)).any()
    assert abs((v <= 600).mean() - 0.4) < 0.01


def test_start_scores_per_group_from_a_csv_reach_the_run(tmp_path):
    """A group's start CDF read from a CSV next to the scenario; the citizens table records each start and the
    aggregates start from the drawn scores; the same seed draws the same scores."""
    (tmp_path / "low.csv").write_text("score,cdf\n300,0\n500,1\n")
    text = (scorelab.config.loader.resolve_source("rr1").read_text()
            .replace('name = "rural"\nshare = 0.4', 'name = "rural"\nshare = 0.4\nstart = { kind = "cdf", csv = "low.csv" }'))
    path = tmp_path / "sc.toml"
    path.write_text(text)
    sc = load_scenario(path, population=4000, days=5)
    assert sc.groups[1].start.scores == [300.0, 500.0]
    a = scorelab.simulate(sc, seed=4, out=tmp_path / "a", workers=1)
    b = scorelab.simulate(sc, seed=4, out=tmp_path / "b", workers=1)
    c = a.citizens
    rural = c[c["group"] == "rural"]
    assert rural["start_score"].between(300, 500).all() and (c[c["group"] == "urban"]["start_score"] == 1000).all()
    assert (a.citizens["start_score"] == b.citizens["start_score"]).all()
    m = a.metrics
    day0 = m[(m.day == 0) & (m.group == "rural")]
    assert day0["restricted_share"].iloc[0] > 0.99  # 300..500 is grade D: restricted from day 0
    led = a.ledger.groupby("citizen").points.sum().reindex(c.citizen, fill_value=0)
    np.testing.assert_array_equal(c.score.to_numpy(), c.start_score.to_numpy() + led.to_numpy())
    ev = a.events
    on0 = ev[(ev.kind.astype(str) == "restrict_on") & (ev.day == 0)]
    assert set(on0.citizen) >= set(rural.citizen)


def test_bad_start_csv_names_the_file_and_field(tmp_path):
    (tmp_path / "bad.csv").write_text("score,cdf\n300,0\n400,oops\n")
    text = (scorelab.config.loader.resolve_source("rr1").read_text()
            .replace('name = "rural"\nshare = 0.4', 'name = "rural"\nshare = 0.4\nstart = { kind = "cdf", csv = "bad.csv" }'))
    path = tmp_path / "sc.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_scenario(path)
    assert "groups[1].start.csv" in str(e.value) and "bad.csv line 3" in str(e.value)
    path.write_text(text.replace("bad.csv", "missing.csv"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(path)
