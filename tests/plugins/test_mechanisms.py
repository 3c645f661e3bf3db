"""Mechanisms together: names checked across mechanisms, settings that could never act, bad values in files,
the same bytes for any worker count (each mechanism has its own test_<mechanism>.py)."""

import pytest

import scorelab
from scorelab.config.loader import ConfigError
from scorelab.engine import runner

from scenario_builders import make


def test_unknown_names_in_mechanisms_are_config_errors():
    with pytest.raises(ConfigError, match="requires_listed"):
        make(behaviours=[{"name": "repay", "rate": 0.1, "requires_listed": "nope"}])
    with pytest.raises(ConfigError, match="household"):
        make(behaviours=[{"name": "x", "rate": 0.1}],
             policy={"rules": [{"behaviour": "x", "sensor": "court", "points": 0}],
                     "blacklists": [{"name": "l", "trigger": "x", "duration_days": 10}],
                     "restrictions": [{"name": "r", "blacklists": ["l"], "reach": "household"}]})
    with pytest.raises(ConfigError, match="unknown key"):
        make(behaviours=[{"name": "x", "rate": 0.1}], policy={"due_process": {"notise_days": 3}})
    with pytest.raises(ConfigError, match="grade"):
        make(behaviours=[{"name": "x", "rate": 0.1}], policy={"privileges": [{"name": "p", "grades": ["Z"]}]})


def test_bad_composite_and_peer_blocks_are_config_errors():
    comp = {"subscores": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.4}]}
    with pytest.raises(ConfigError, match="add up to 1"):
        make(behaviours=[{"name": "x", "rate": 0.1}], policy={"composite": comp})
    comp = {"subscores": [{"name": "a", "weight": 1.0}]}
    with pytest.raises(ConfigError, match="sub-score"):
        make(behaviours=[{"name": "x", "rate": 0.1}],
             policy={"composite": comp, "rules": [{"behaviour": "x", "sensor": "court", "points": 1, "subscore": "zz"}]})
    with pytest.raises(ConfigError, match="points directly"):
        make(behaviours=[{"name": "x", "rate": 0.1}],
             policy={"composite": comp, "rules": [{"behaviour": "x", "sensor": "court", "points": 1}]})
    peer = {"network": "acq", "interactions": 0.1, "start_rating": 4.0}
    with pytest.raises(ConfigError, match="network"):
        make(behaviours=[{"name": "x", "rate": 0.1}], peer=peer, policy={"start_score": 400})
    with pytest.raises(ConfigError, match="100 x peer.start_rating"):
        make(behaviours=[{"name": "x", "rate": 0.1}], peer=peer,
             graph={"networks": [{"name": "acq", "mean_degree": 5}]}, policy={"start_score": 1000})
    with pytest.raises(ConfigError, match="behaviour_mean"):
        make(behaviours=[{"name": "x", "rate": 0.1}], peer={**peer, "behaviour_mean": {"urban": 9, "rural": 3}},
             graph={"networks": [{"name": "acq", "mean_degree": 5}]}, policy={"start_score": 400})


@pytest.mark.parametrize("name", ["nosedive", "sesame", "rongcheng", "national-blacklist", "surveillance",
                                  "fair-baseline"])
def test_presets_give_the_same_bytes_for_any_worker_count(name, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SHARD_SIZE", 2000)  # 3 shards, each with its own graphs and mechanism streams
    kw = dict(population=6000, days=32, seed=7)
    a = scorelab.simulate(name, out=tmp_path / "a", workers=1, **kw)
    b = scorelab.simulate(name, out=tmp_path / "b", workers=2, **kw)
    c = scorelab.simulate(name, out=tmp_path / "c", workers=1, **kw)
    assert a.manifest["shards"] == 3
    assert a.metrics.equals(b.metrics) and a.citizens.equals(b.citizens) and a.ledger.equals(b.ledger)
    for f in ("metrics.parquet", "citizens.parquet", "events.parquet"):
        assert (a.path / f).read_bytes() == (c.path / f).read_bytes(), f


def test_due_process_and_household_settings_that_could_never_act_are_config_errors():
    x = dict(behaviours=[{"name": "x", "rate": 0.1}])
    with pytest.raises(ConfigError, match=r"due_process\.contest.*notice_days"):
        make(**x, policy={"due_process": {"contest": 0.5, "contest_success": 0.5}})
    with pytest.raises(ConfigError, match=r"due_process\.appeal_days"):
        make(**x, policy={"due_process": {"appeal": 0.5, "appeal_days": 90, "expiry_days": 60}})
    with pytest.raises(ConfigError, match=r"graph\.households\.max_size"):
        make(**x, graph={"households": {"mean_size": 4.0, "max_size": 3}})


@pytest.mark.parametrize("preset,old,new,field", [
    ("nosedive", "interactions = 0.2", "interactions = 1.5", "peer.interactions"),
    ("sesame", 'contacts = "friends"', 'contacts = "enemies"', "policy.composite.subscores[4].contacts"),
    ("fair-baseline", "contest_success = 0.9", "contest_success = 1.9", "policy.due_process.contest_success"),
    ("rongcheng", 'cap_score = 849', 'cap_score = "C"', "policy.rules[1].cap_score"),
    ("national-blacklist", 'reach = "household"', 'reach = "village"', "policy.restrictions[3].reach"),
])
def test_bad_extension_values_in_a_file_exit_2_naming_file_and_field(preset, old, new, field, tmp_path):
    from typer.testing import CliRunner

    from scorelab import cli
    from scorelab.config.loader import resolve_source

    text = resolve_source(preset).read_text()
    assert text.count(old) == 1
    path = tmp_path / f"{preset}.toml"
    path.write_text(text.replace(old, new))
    res = CliRunner().invoke(cli.app, ["run", str(path), "-n", "100", "-t", "2", "-o", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert str(path) in res.output and field in res.output
    assert not (tmp_path / "out").exists()
