"""The notebook-friendly Python API: editing scenarios, in-memory runs, audit/compare/sweep as DataFrames."""

import glob
import tempfile
from pathlib import Path

import pandas as pd
import pytest

import scorelab
from scorelab.config.loader import load_scenario


def _tmp_entries() -> set[str]:
    return set(glob.glob(str(Path(tempfile.gettempdir()) / "scorelab-*")))


def test_with_changes_returns_a_new_validated_scenario():
    sc = scorelab.load("rr1")
    with pytest.raises(Exception, match="frozen"):
        sc.policy.rules[0].points = 0
    new = sc.with_changes({"policy.rules[public_criticism].points": -200,
                           "sensors[camera].false_attribution.rate.rural": 0.001,
                           "sensors[informant].coverage.rural": 0.9,  # one number split per group
                           "response.deterrence.factor": 0.9})
    rule = {r.behaviour: r for r in new.policy.rules}["public_criticism"]
    assert rule.points == -200 and new.response.deterrence.factor == 0.9
    assert new.sensors[0].false_attribution.rate == {"urban": 2e-05, "rural": 0.001}
    assert {s.name: s for s in new.sensors}["informant"].coverage == {"urban": 0.5, "rural": 0.9}
    assert {r.behaviour: r for r in sc.policy.rules}["public_criticism"].points == -20  # the original is unchanged
    fb = scorelab.load("fair-baseline")
    assert fb.with_changes({"policy.due_process": None}).policy.due_process is None


@pytest.mark.parametrize("changes, field, words", [
    ({"policy.rules[nope].points": 1}, "policy.rules[nope].points", "items are: traffic_violation"),
    ({"response.deterrence.factor": 2}, "response.deterrence.factor", "less than or equal to 1"),
    ({"policy.rules": 3}, "policy.rules", "address one value inside it"),
    ({"policy.rules[loan_default].pionts": 3}, "policy.rules[loan_default].pionts", "keys are:"),
])
def test_with_changes_errors_name_the_path(changes, field, words):
    with pytest.raises(scorelab.ConfigError) as e:
        scorelab.load("rr1").with_changes(changes)
    assert words in str(e.value)
    assert (e.value.field or "").startswith(field.split("[")[0])


@pytest.mark.parametrize("name", [p.name for p in scorelab.list_presets()])
def test_to_toml_loads_back_equal(name, tmp_path):
    sc = scorelab.load(name)
    f = tmp_path / "s.toml"
    f.write_text(sc.to_toml())
    assert load_scenario(f) == sc


def test_simulate_without_out_leaves_no_directory_and_keeps_tables_in_memory(tmp_path):
    before = _tmp_entries()
    run = scorelab.simulate("rr1", seed=7, population=3000, days=20)
    assert _tmp_entries() == before
    assert run.in_memory and run.path is None and "in memory" in repr(run)
    assert set(run.summary().index) == {"urban", "rural", "all"}
    saved = run.save(tmp_path / "saved")
    assert (saved.path / "run.json").is_file()
    again = scorelab.simulate("rr1", seed=7, population=3000, days=20, out=tmp_path / "disk")
    pd.testing.assert_frame_equal(saved.metrics, again.metrics)
    tables = scorelab.audit(run)  # an in-memory run is audited through a temporary directory, removed after
    assert _tmp_entries() == before
    assert {"sanctions", "wrongful", "chilling"} <= set(tables)
    assert tables["sanctions"].loc["all", "citizens"] == 3000
    on_disk = scorelab.audit(again.path)
    pd.testing.assert_frame_equal(on_disk["sanctions"], tables["sanctions"])


def test_compare_and_sweep_return_dataframes_and_clean_up(tmp_path):
    before = _tmp_entries()
    sc = scorelab.load("rr1")
    harsher = sc.with_changes({"policy.rules[public_criticism].points": -200})
    df = scorelab.compare({"rr1": "rr1", "harsher": harsher}, population=3000, days=20, replicates=2, workers=1)
    row = df[(df.metric == "final_mean_score") & (df.group == "all")].iloc[0]
    assert row.arm == "harsher" and row.difference < 0 and row.n == 2
    crit = df[(df.metric == "criticism") & (df.group == "all")].iloc[0]
    assert crit.difference == 0  # common random numbers: deterrence answers being penalised, not the points
    sw = scorelab.sweep({"base": "rr1", "population": 3000, "days": 20, "replicates": 1,
                         "parameters": {"sensors[camera].false_attribution.rate.rural":
                                        {"values": [8e-5, 8e-3], "name": "fm"}}}, workers=1)
    w = sw[(sw.metric == "wrongful_penalties") & (sw.group == "rural")].set_index("fm")["value"]
    assert w[8e-3] > w[8e-5]
    assert _tmp_entries() == before
