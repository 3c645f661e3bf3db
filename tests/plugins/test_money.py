"""Money (plugins/money.py): money collected per observed event, and declared prices checked against it."""

import pytest

from scorelab.config.loader import ConfigError

from scenario_builders import make, run


def test_money_collected_is_donations_times_amount(tmp_path):
    sc = make(behaviours=[{"name": "donation", "rate": {"urban": 0.01, "rural": 0.003}}],
              policy={"rules": [{"behaviour": "donation", "sensor": "court", "points": 5, "money": 250.0}]})
    m = run(sc, tmp_path).metrics
    for g in ("urban", "rural", "all"):
        rows = m[m.group == g]
        assert rows.observed_donation.sum() > 0
        assert rows.money_collected.sum() == pytest.approx(250.0 * rows.observed_donation.sum())


def test_a_declared_price_must_match_the_money_a_rule_collects():
    rule = {"behaviour": "donation", "sensor": "court", "points": 5, "money": 500.0}
    with pytest.raises(ConfigError, match=r"governance\.prices.*500"):
        make(behaviours=[{"name": "donation", "rate": 0.01}],
             policy={"rules": [rule], "governance": {"prices": {"donation": 100.0}}})
    sc = make(behaviours=[{"name": "donation", "rate": 0.01}],
              policy={"rules": [rule], "governance": {"prices": {"donation": 500.0}}})
    assert sc.policy.governance.prices["donation"] == 500.0
