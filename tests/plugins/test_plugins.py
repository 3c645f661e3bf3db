"""The mechanism plugin interface: one registry, declared outputs, stages joined only where overridden."""

import pytest

import scorelab
from scorelab.engine.outputs import declared
from scorelab.engine.params import compile_params
from scorelab.plugins import REGISTRY
from scorelab.plugins.base import Mechanism

PRESETS = ["rongcheng", "national-blacklist", "sesame", "nosedive", "surveillance", "fair-baseline", "rr1"]


def test_every_registered_mechanism_has_a_name_a_config_and_a_docstring():
    names = [p.name for p in REGISTRY]
    assert len(set(names)) == len(names)
    for p in REGISTRY:
        assert issubclass(p, Mechanism) and p.config and p.__module__.startswith("scorelab.plugins.")
        assert (__import__(p.__module__, fromlist=["x"]).__doc__ or "").strip(), p.name


def test_a_mechanism_joins_only_the_stages_it_overrides():
    from scorelab.plugins.money import Money
    from scorelab.plugins.peer import Peer

    assert Money.joins("pre_score") and not Money.joins("apply") and not Money.joins("end_day")
    assert Peer.joins("pre_score") and Peer.joins("apply") and not Peer.joins("observe")


@pytest.mark.parametrize("preset", PRESETS)
def test_every_column_of_metrics_is_declared_with_a_kind_unit_and_meaning(preset):
    run = scorelab.simulate(preset, seed=2, population=2000, days=20, workers=1)
    cols = [c for c in run.metrics.columns if c not in ("day", "group", "population")]
    decls = declared(run.params)
    assert cols == [d.name for d in decls]
    assert [o["name"] for o in run.manifest["outputs"]] == cols
    for d in decls:
        assert d.kind in ("count", "stock", "sum", "mean", "share", "average") and d.unit and len(d.meaning) > 10, d


def test_each_preset_names_the_mechanisms_it_runs():
    P = compile_params(scorelab.load("rongcheng"))
    assert P.plugin_names == ["graphs", "lists", "privileges", "blocks", "due_process", "caps", "money"]
    assert compile_params(scorelab.load("rr1")).plugin_names == []
    run = scorelab.simulate("sesame", seed=1, population=1000, days=5, workers=1)
    assert "composite" in run.manifest["mechanisms"]


def test_the_run_summary_lists_the_mechanisms_metrics_from_their_declarations():
    from scorelab.mechsummary import mechanism_rows

    run = scorelab.simulate("nosedive", seed=1, population=1500, days=10, workers=1)
    labels = [label for label, _ in mechanism_rows(run)]
    assert "interactions (total)" in labels and "fakeness (mean over interactions)" in labels
    run = scorelab.simulate("sesame", seed=1, population=1500, days=40, workers=1)
    labels = [label for label, _ in mechanism_rows(run)]
    assert any(x.startswith("subscore_") for x in labels)  # sub-score means reach the summary now
