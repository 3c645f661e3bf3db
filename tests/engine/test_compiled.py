"""The compiled day (engine/compiled.py) against the reference stages (stages.py): the same bytes.

Both paths draw the same candidates from the same streams and apply the same rules in the same order, so
every output must be equal, not close: the metrics, the histograms, the event log row for row, the citizens
table, and the run directory's tables."""

import numpy as np
import pytest

import scorelab
from scorelab.config.loader import ConfigError, load_scenario
from scorelab.engine import compiled, runner
from scorelab.engine.kernel import ShardSpec, simulate_shard
from scorelab.engine.params import compile_params

from scenario_builders import rich_core as _rich

pytest.importorskip("numba")


def _assert_same(a, b):
    assert a.metrics.keys() == b.metrics.keys()
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name], err_msg=name)
    np.testing.assert_array_equal(a.hist, b.hist)
    assert a.ledger.keys() == b.ledger.keys() and a.citizens.keys() == b.citizens.keys()
    for part in ("ledger", "citizens"):
        for col, x in getattr(a, part).items():
            y = getattr(b, part)[col]
            assert x.dtype == y.dtype, (part, col)
            np.testing.assert_array_equal(x, y, err_msg=f"{part}.{col}")


@pytest.mark.parametrize("keep", [1, 3, 0])
def test_every_covered_feature_gives_the_reference_bytes(keep):
    P = compile_params(_rich())
    assert compiled.unsupported(P) is None
    for spec in (ShardSpec(0, 0, 12000, 7, keep), ShardSpec(1, 12000, 8000, 7, keep)):
        ref = simulate_shard(P, spec, kernel="numpy")
        fast = simulate_shard(P, spec, kernel="numba")
        _assert_same(ref, fast)
    if keep:  # the scenario exercises what it claims: every kind of event the compiled day writes
        kinds = set(ref.ledger["kind"].tolist())
        assert {0, 1, 2, 4, 5, 6} <= kinds, kinds
        clip_rule = P.n_behaviours
        assert (ref.ledger["rule"] == clip_rule).any() and ref.ledger["false"].any()


def test_rr1_run_directories_are_identical_through_both_kernels(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SHARD_SIZE", 7000)  # three shards
    sc = load_scenario("rr1", population=20000, days=90)
    tables = ("metrics.parquet", "events.parquet", "citizens.parquet", "distribution.parquet")
    runs = {}
    for kernel in ("numpy", "numba"):
        monkeypatch.setenv("SCORELAB_KERNEL", kernel)
        runs[kernel] = scorelab.simulate(sc, seed=3, out=tmp_path / kernel, workers=1)
        assert runs[kernel].manifest["kernel"]["name"] == kernel
    for t in tables:
        assert (tmp_path / "numpy" / t).read_bytes() == (tmp_path / "numba" / t).read_bytes(), t


def test_the_choice_of_kernel_says_why(monkeypatch):
    rr1 = compile_params(load_scenario("rr1"))
    monkeypatch.setenv("SCORELAB_KERNEL", "auto")
    assert compiled.choose(rr1, 1e9) == ("numba", "the compiled day (engine/compiled.py)")
    name, why = compiled.choose(rr1, 1e6)
    assert name == "numpy" and "agent-days per process" in why
    fair = compile_params(load_scenario("fair-baseline"))
    name, why = compiled.choose(fair, 1e9)
    assert name == "numpy" and "mechanism plugins" in why and "graphs" in why
    monkeypatch.setenv("SCORELAB_KERNEL", "numba")
    assert compiled.choose(rr1, 1.0)[0] == "numba"
    monkeypatch.setenv("SCORELAB_KERNEL", "numpy")
    assert compiled.choose(rr1, 1e12) == ("numpy", "SCORELAB_KERNEL=numpy")
    monkeypatch.setenv("SCORELAB_KERNEL", "fast")
    with pytest.raises(ConfigError) as e:
        compiled.choose(rr1, 1e9)
    assert "SCORELAB_KERNEL" in str(e.value) and "auto, numpy, numba" in str(e.value)


def test_a_process_without_numba_runs_the_reference_with_the_same_bytes(monkeypatch):
    P = compile_params(load_scenario("rr1", population=3000, days=20))
    spec = ShardSpec(0, 0, 3000, 2, 1)
    ref = simulate_shard(P, spec, kernel="numpy")

    def missing():
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(compiled, "_jit", missing)  # a Dask worker installed without numba
    _assert_same(ref, simulate_shard(P, spec, kernel="numba"))


def test_a_bad_kernel_name_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SHARD_SIZE", 1000)  # several shards: a run that would write checkpoints
    monkeypatch.setenv("SCORELAB_KERNEL", "fast")
    with pytest.raises(ConfigError) as e:
        scorelab.simulate(load_scenario("rr1", population=3000, days=5), out=tmp_path / "run", workers=1)
    assert "SCORELAB_KERNEL" in str(e.value)
    assert list(tmp_path.iterdir()) == []
