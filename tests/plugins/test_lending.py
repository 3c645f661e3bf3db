"""The lender, a mechanism plugin: loans by group threshold (and pooled records), outcomes that feed back."""

import csv
from importlib import resources

import numpy as np
import pytest

import scorelab
from scorelab.audit.metrics import event_log_check, open_run
from scorelab.config.loader import ConfigError, scenario_from_dict
from tests.scenario_builders import make

LEND = dict(
    behaviours=[{"name": "apply", "rate": 0.2, "misconduct": False},
                {"name": "offence", "rate": 0.01}],
    policy={"score_min": 300, "score_max": 1100,
            "rules": [{"behaviour": "offence", "sensor": "court", "points": -100}],
            "blacklists": [{"name": "defaulters", "trigger": "offence", "duration_days": 10}],
            "restrictions": [{"name": "ban", "blacklists": ["defaulters"]}],
            "lender": {"name": "bank", "applies": "apply", "threshold": {"urban": 950, "rural": 1000},
                       "repaid_points": 20, "default_points": -60, "profit": 1.0, "loss": -4.0,
                       "deny_under": ["ban"],
                       "repay": [{"scores": [300, 1000, 1100], "p": [0.0, 0.8, 0.9]}]}},
)


def test_loans_follow_thresholds_records_and_repay_curve(tmp_path):
    """Each application is decided on the score at the start of the day and the pooled records; each loan
    repays or defaults (a score event of the lender's rule); metrics and the event log agree exactly."""
    run = scorelab.simulate(make(**LEND), seed=3, out=tmp_path / "r", workers=1)
    m = run.metrics
    a = m[m.group == "all"]
    assert a.loan_applications_bank.sum() == a.true_apply.sum()
    assert (a.loan_applications_bank == a.loans_bank + a.loans_refused_score_bank + a.loans_refused_records_bank).all()
    assert a.loans_refused_records_bank.sum() > 0 and a.loans_refused_score_bank.sum() > 0
    assert (a.loans_bank == a.loans_repaid_bank + a.loans_defaulted_bank).all()
    assert a.lender_utility_bank.sum() == pytest.approx(a.loans_repaid_bank.sum() - 4 * a.loans_defaulted_bank.sum())
    ev = run.events
    kind, rule = ev.kind.astype(str), ev.rule.astype(str)
    rep = ev[(kind == "score") & (rule == "lender:bank:repaid")]
    dft = ev[(kind == "score") & (rule == "lender:bank:default")]
    assert len(rep) == a.loans_repaid_bank.sum() and (rep.points == 20).all()
    assert len(dft) == a.loans_defaulted_bank.sum() and (dft.points == -60).all()
    # every borrower was at or above the group's threshold at the start of the day, and not listed
    score = {c: 1000 for c in range(2000)}
    listed_until = {}
    group = dict(zip(run.citizens.citizen, run.citizens.group.astype(str)))
    threshold = {"urban": 950, "rural": 1000}
    for day, evs in ev.sort_values(["day"], kind="stable").groupby("day"):
        for c, r, k in zip(evs.citizen, evs.rule.astype(str), evs.kind.astype(str)):
            if k == "score" and r.startswith("lender:"):
                assert score[c] >= threshold[group[c]], (day, c)
                assert listed_until.get(c, -1) < day, (day, c)  # listed at the start of day d: until >= d
        for c, k, p, until in zip(evs.citizen, evs.kind.astype(str), evs.points, evs["until"]):
            if k == "score":
                score[c] += int(p)
            if k in ("list_start", "list_extend"):
                listed_until[c] = int(until)
    # the repay curve: P(repay) at 1000 is 0.8; the observed share is near it (most loans are at 950-1040)
    share = len(rep) / (len(rep) + len(dft))
    assert 0.7 < share < 0.9
    f = event_log_check(open_run(run.path))
    assert f["checked"] and f["exact"] and f["final_score_agrees"] == 1.0 and f["final_restricted_agrees"] == 1.0


def test_one_groups_threshold_leaves_the_other_groups_events_alone():
    """Common random numbers per (behaviour, group): a new urban threshold changes no rural event."""
    a = scorelab.simulate(make(**LEND), seed=5, workers=1)
    changed = make(**LEND).with_changes({"policy.lender.threshold": {"urban": 900, "rural": 1000}})
    b = scorelab.simulate(changed, seed=5, workers=1)
    ma, mb = a.metrics, b.metrics
    rural = [c for c in ma.columns if c not in ("day", "group")]
    assert ma[ma.group == "rural"][rural].reset_index(drop=True).equals(mb[mb.group == "rural"][rural].reset_index(drop=True))
    assert not ma[ma.group == "urban"]["loans_bank"].reset_index(drop=True).equals(
        mb[mb.group == "urban"]["loans_bank"].reset_index(drop=True))


@pytest.mark.parametrize("change, field", [
    ({"applies": "fly"}, "policy.lender.applies"),
    ({"threshold": {"urban": 900}}, "policy.lender.threshold"),
    ({"threshold": {"urban": 900, "rural": 900, "suburb": 1}}, "policy.lender.threshold"),
    ({"repay": [{"group": "urban", "scores": [0, 1], "p": [0.1, 0.2]}]}, "policy.lender.repay"),
    ({"repay": [{"scores": [1, 0], "p": [0.1, 0.2]}]}, "scores"),
    ({"repay": [{"scores": [0, 1], "p": [0.1, 1.2]}]}, "p"),
    ({"deny_under": ["nothing"]}, "policy.lender.deny_under"),
    ({"records": [{"behaviour": "apply"}]}, "policy.lender.records[0].behaviour"),  # no rule: never recorded
    ({"records": [{"behaviour": "offence", "days": 0}]}, "days"),
    ({"recipient": "partner"}, "policy.lender.recipient"),
])
def test_bad_lender_config_names_the_field(change, field):
    spec = {**LEND, "policy": {**LEND["policy"], "lender": {**LEND["policy"]["lender"], **change}}}
    with pytest.raises(ConfigError) as e:
        make(**spec)
    assert field in str(e.value)


RECORDS = dict(
    behaviours=[{"name": "apply", "rate": 0.3, "misconduct": False},
                {"name": "visit", "rate": 0.02, "misconduct": False}],
    sensors=[{"name": "court", "coverage": 1.0}, {"name": "camera", "coverage": 0.5}],
    policy={"rules": [{"behaviour": "visit", "sensor": "camera", "points": -1}],
            "lender": {"name": "bank", "applies": "apply", "threshold": 300,
                       "records": [{"behaviour": "visit", "days": 20}], "default_points": -10,
                       "repay": [{"scores": [300, 1100], "p": [0.9, 0.9]}]}},
)


def test_pooled_records_refuse_for_their_window_and_only_what_was_recorded(tmp_path):
    """A recorded (observed) visit within the last `days` days refuses the loan; after the window the citizen
    can borrow again. Checked borrower by borrower against the event log."""
    run = scorelab.simulate(make(**RECORDS), seed=4, out=tmp_path / "r", workers=1, ledger="all")
    a = run.metrics[run.metrics.group == "all"]
    assert a.loans_refused_records_bank.sum() > 100 and a.loans_refused_score_bank.sum() == 0
    ev = run.events
    kind, rule = ev.kind.astype(str), ev.rule.astype(str)
    seen = ev[(kind == "score") & (rule == "visit")]
    loans = ev[(kind == "score") & rule.str.startswith("lender:bank:")]
    last_seen: dict[int, list[int]] = {}
    for c, d in zip(seen.citizen, seen.day):
        last_seen.setdefault(int(c), []).append(int(d))
    borrowed_after_window = 0
    for c, d in zip(loans.citizen, loans.day):
        before = [x for x in last_seen.get(int(c), []) if x < d]
        assert not before or before[-1] < d - 20, (c, d, before)
        borrowed_after_window += bool(before)
    assert borrowed_after_window > 0  # a record ages out of the window
    # without the records the same applicants meet the same luck: the refusals are exactly the loans they cost
    off = scorelab.simulate(make(**{**RECORDS, "policy": {**RECORDS["policy"], "lender": {
        **RECORDS["policy"]["lender"], "records": []}}}), seed=4, workers=1)
    b = off.metrics[off.metrics.group == "all"]
    assert b.loans_refused_records_bank.sum() == 0
    assert b.loan_applications_bank.sum() == a.loan_applications_bank.sum()  # same applicants, same luck
    assert b.loans_bank.sum() == a.loans_bank.sum() + a.loans_refused_records_bank.sum()


def test_discrete_start_draws_only_its_scores():
    sc = make(**LEND).model_dump(mode="json")
    sc["groups"][0]["start"] = {"kind": "discrete", "scores": [600, 700, 800], "weights": [1, 2, 1]}
    sc["scenario"]["days"] = 1
    run = scorelab.simulate(scenario_from_dict(sc), seed=2, workers=1, ledger="all")
    start = run.citizens[run.citizens.group.astype(str) == "urban"].start_score
    assert set(start.unique()) <= {600, 700, 800}
    assert abs((start == 700).mean() - 0.5) < 0.06


def test_lending_preset_tables_are_the_shipped_fico_tables():
    """The preset's CSVs (start weights, P(repay)) are the FICO tables on the FICO scale (validity/fico.py)."""
    from scorelab.validity.liu2018 import tables_for_preset

    want = tables_for_preset()
    base = resources.files("scorelab").joinpath("config", "presets", "lending")
    for g, cols in want.items():
        with base.joinpath(f"{g}_start.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [int(r["score"]) for r in rows] == list(cols["score"])
        assert np.allclose([float(r["weight"]) for r in rows], cols["weight"], rtol=1e-8, atol=1e-12)
        with base.joinpath(f"{g}_repay.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert np.allclose([float(r["p_repay"]) for r in rows], cols["p_repay"], rtol=1e-8, atol=1e-12)
    sc = scorelab.load("lending")
    from scorelab.validity.liu2018 import model

    _, _, choices = model(sc.policy.lender.loss)
    assert sc.policy.lender.threshold == choices["max_profit"].threshold  # the preset holds max profit's thresholds


def test_group_blocks_count_what_masks_count():
    """The lender's per-group slices (applications in group blocks) give the counts a mask per group gives,
    and applications not in blocks fall back to the masks."""
    from scorelab.plugins.lending import _blocks, _counts, _size

    rng = np.random.default_rng(4)
    for G in (1, 2, 5):
        for _ in range(50):
            grp = np.sort(rng.integers(0, G, rng.integers(0, 40))).astype(np.uint8)
            mask = rng.random(len(grp)) < 0.5
            blocks = _blocks(grp, G)
            assert blocks is not None and [_size(b) for b in blocks] == np.bincount(grp, minlength=G).tolist()
            assert _counts(mask, blocks).tolist() == np.bincount(grp[mask], minlength=G).tolist()
            for g, at in enumerate(blocks):
                assert (grp[at] == g).all()
    assert _blocks(np.array([1, 0], dtype=np.uint8), 2) is None
