"""Caps (plugins/caps.py): a rule that caps the score, and caps held for a period."""

import pytest

from scorelab.config.loader import ConfigError

from scenario_builders import make, run, all_rows, ledger_holds


def test_cap_score_puts_a_drunk_driver_in_grade_c(tmp_path):
    sc = make(behaviours=[{"name": "drunk_driving", "rate": 0.01}, {"name": "volunteering", "rate": 0.02}],
              policy={"start_score": 1000, "rules": [
                  {"behaviour": "drunk_driving", "sensor": "court", "points": 0, "cap_score": 849},
                  {"behaviour": "volunteering", "sensor": "court", "points": 5}]})
    r = run(sc, tmp_path)
    led, c = r.ledger, r.citizens
    caps = led[led.behaviour == "drunk_driving:cap"]
    assert len(caps) > 50
    # on the day of the cap, the driver's score after the day is at most 849: grade C (or D)
    day_total = led.groupby(["citizen", "day"]).points.sum().groupby(level=0).cumsum() + 1000
    after = day_total.loc[list(zip(caps.citizen, caps.day))]
    # the cap is applied after the day's points, so the day ends at 849 or below
    assert (after.to_numpy() <= 849).all()
    last_drive = led[led.behaviour == "drunk_driving"].groupby("citizen").day.max()
    last_vol = led[led.behaviour == "volunteering"].groupby("citizen").day.max().reindex(last_drive.index, fill_value=-1)
    clean = last_drive.index[last_vol.to_numpy() < last_drive.to_numpy()]  # nothing after the last drive
    assert len(clean) > 20
    assert (c.set_index("citizen").loc[clean, "grade"].isin(["C"])).all()
    assert ledger_holds(r)
    assert all_rows(r.metrics).capped.sum() == len(caps)


def _held(tmp_path, cap_days, name):
    sc = make(scenario={"days": 60, "population": 3000},
              behaviours=[{"name": "drunk_driving", "rate": 0.004}, {"name": "donation", "rate": 0.2}],
              policy={"start_score": 1000, "rules": [
                  {"behaviour": "drunk_driving", "sensor": "court", "points": 0, "cap_score": 849, "cap_days": cap_days},
                  {"behaviour": "donation", "sensor": "court", "points": 30}]})
    return run(sc, tmp_path, name)


def test_a_held_cap_cannot_be_bought_back_until_it_ends(tmp_path):
    """cap_days: from the drive, the score stays at or below the cap for that many days, whatever is donated;
    the hold's take-backs are score events of the cap rule; after it ends, donations count again."""
    r = _held(tmp_path, 20, "held")
    led, c = r.ledger, r.citizens
    assert ledger_holds(r)
    first = led[led.behaviour == "drunk_driving"].groupby("citizen").day.min()
    # end-of-day score of every citizen-day with an event, from the log
    daily = led.groupby(["citizen", "day"]).points.sum().groupby(level=0).cumsum() + 1000
    daily = daily.reset_index(name="score")
    daily["drove"] = daily.citizen.map(first)
    held = daily[(daily.drove.notna()) & (daily.day >= daily.drove) & (daily.day < daily.drove + 20)]
    assert len(held) > 200 and (held.score <= 849).all()
    takebacks = led[(led.behaviour == "drunk_driving:cap") & (led.points < 0)]
    assert all_rows(r.metrics).held.sum() > 50
    after = daily[(daily.drove.notna()) & (daily.day >= daily.drove + 40)]
    assert (after.score > 849).any()  # once the hold ends (and with no drive since), donations lift the grade
    # without the hold, the same drivers are back above the cap within days (the same draws: common random numbers)
    free = _held(tmp_path, 0, "free")
    d0 = free.ledger.groupby(["citizen", "day"]).points.sum().groupby(level=0).cumsum() + 1000
    d0 = d0.reset_index(name="score")
    d0["drove"] = d0.citizen.map(free.ledger[free.ledger.behaviour == "drunk_driving"].groupby("citizen").day.min())
    early = d0[d0.drove.notna() & (d0.day > d0.drove) & (d0.day < d0.drove + 20)]
    assert (early.score > 849).mean() > 0.3
    assert "held" not in free.metrics and len(takebacks) > len(first)


def test_cap_days_needs_a_cap(tmp_path):
    with pytest.raises(ConfigError, match="cap_days"):
        make(behaviours=[{"name": "drunk_driving", "rate": 0.01}],
             policy={"rules": [{"behaviour": "drunk_driving", "sensor": "court", "points": -5, "cap_days": 30}]})
