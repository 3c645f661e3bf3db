"""Blacklists beyond the kernel (plugins/lists.py): removal by repayment, extension by reoffending, initial stocks."""

import pytest

from scorelab.config.loader import ConfigError

from scenario_builders import make, run, all_rows


BLACKLIST = dict(
    behaviours=[{"name": "judgment_default", "rate": 0.002},
                {"name": "repay_debt", "rate": 0.05, "requires_listed": "court"},
                {"name": "hide_assets", "rate": 0.01}],
    policy={"rules": [{"behaviour": "judgment_default", "sensor": "court", "points": 0},
                      {"behaviour": "repay_debt", "sensor": "court", "points": 0},
                      {"behaviour": "hide_assets", "sensor": "court", "points": 0}],
            "blacklists": [{"name": "court", "trigger": "judgment_default", "duration_days": 730,
                            "removed_by": ["repay_debt"], "extended_by": ["hide_assets"], "extension_days": 365}]},
)


def test_only_listed_citizens_repay_and_repaying_ends_the_listing_that_day(tmp_path):
    sc = make(scenario={"population": 5000, "days": 60}, **BLACKLIST)
    r = run(sc, tmp_path)
    led = r.ledger
    first_listed = led[led.behaviour == "judgment_default"].groupby("citizen").day.min()
    repays = led[led.behaviour == "repay_debt"]
    assert len(repays) > 30
    # the gate: every repayment comes from a citizen listed on an earlier day
    listed_before = first_listed.reindex(repays.citizen).to_numpy()
    assert (listed_before < repays.day.to_numpy()).all()
    # leaves the list that day: for citizens whose last court event is a repayment on day d, listed_until == d
    last = led[led.behaviour.isin(["judgment_default", "repay_debt", "hide_assets"])].sort_values("day")
    last = last.groupby("citizen").tail(1)
    last = last[last.behaviour == "repay_debt"]
    until = r.citizens.set_index("citizen").loc[last.citizen, "blacklisted_until"].to_numpy()
    assert (until == last.day.to_numpy()).all()
    m = all_rows(r.metrics)
    assert m.removed_court.sum() == len(repays)
    # no listing expires within 60 days, so the listed count is first listings minus removals
    firsts = first_listed.groupby(first_listed).size().reindex(range(60), fill_value=0).cumsum().to_numpy()
    relisted = (led[led.behaviour == "judgment_default"].groupby("citizen").size() > 1).sum()
    assert m.listed_court.iloc[-1] <= firsts[-1] - m.removed_court.sum() + relisted


def test_reoffending_while_listed_extends_the_listing(tmp_path):
    sc = make(scenario={"population": 5000, "days": 60}, **BLACKLIST)
    r = run(sc, tmp_path)
    led = r.ledger
    events = led[led.behaviour.isin(["judgment_default", "repay_debt", "hide_assets"])].sort_values(["citizen", "day"])
    listed = events[events.behaviour == "judgment_default"].groupby("citizen").day.min()
    hid = events[events.behaviour == "hide_assets"]
    # re-offending from the day of the listing on extends it (the day's listing comes before the extension)
    ext = hid[hid.citizen.isin(listed.index) & (hid.day.to_numpy() >= listed.reindex(hid.citizen).to_numpy())]
    plain = set(ext.citizen) - set(events[events.behaviour == "repay_debt"].citizen)
    plain = [c for c in plain if (events[(events.citizen == c) & (events.behaviour == "judgment_default")].shape[0] == 1)]
    assert len(plain) > 3
    until = r.citizens.set_index("citizen").blacklisted_until
    for c in plain:
        n_ext = int(((ext.citizen == c)).sum())
        assert until[c] == listed[c] + 730 + 365 * n_ext
    assert all_rows(r.metrics).extended_court.sum() >= len(plain)


def test_initial_share_per_group_lists_each_group_at_its_own_share(tmp_path):
    """A per-group initial stock (the national list: business owners listed ten times as often); one number
    for every group draws exactly what it drew before (same stream, same comparison)."""
    def scenario(share):
        return make(scenario={"population": 40000, "days": 3},
                    behaviours=[{"name": "default", "rate": 0.0}],
                    policy={"rules": [{"behaviour": "default", "sensor": "court", "points": 0}],
                            "blacklists": [{"name": "list", "trigger": "default", "duration_days": 100,
                                            "initial_share": share}]})
    r = run(scenario({"urban": 0.01, "rural": 0.1}), tmp_path, "pg")
    m = r.metrics[r.metrics.day == 0].set_index("group")
    assert m.loc["urban", "listed_list"] / m.loc["urban", "population"] == pytest.approx(0.01, abs=0.003)
    assert m.loc["rural", "listed_list"] / m.loc["rural", "population"] == pytest.approx(0.1, abs=0.01)
    same = run(scenario({"urban": 0.05, "rural": 0.05}), tmp_path, "same")
    one = run(scenario(0.05), tmp_path, "one")
    assert same.manifest["sha256"]["events.parquet"] == one.manifest["sha256"]["events.parquet"]
    with pytest.raises(ConfigError, match=r"initial_share.*(unknown group|no value)"):
        scenario({"urban": 0.01})
    with pytest.raises(ConfigError, match="initial_share.rural.*probability"):
        scenario({"urban": 0.01, "rural": 1.5})
