"""What a simulating process sets for itself: malloc keeps freed arrays for reuse (pool workers and the
CLI only), the collector is paused while a command imports, and `distinct` is np.unique without numpy.ma."""

import gc
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from scorelab.cli_common import start_up
from scorelab.engine.sampling import distinct


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2**40, 2**40), max_size=60), st.sampled_from([np.int16, np.int32, np.int64, np.uint8]))
def test_distinct_is_np_unique(values, dtype):
    info = np.iinfo(dtype)
    x = np.clip(np.array(values, dtype=np.int64), info.min, info.max).astype(dtype)
    got, want = distinct(x), np.unique(x)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_start_up_pauses_the_collector_and_restores_it():
    assert gc.isenabled()
    with start_up():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with start_up():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_reuse_freed_memory_in_a_fresh_process():
    # a child process: the setting is process-wide and meant for processes that simulate and exit
    code = ("import sys; from scorelab.engine import workers; a = workers.reuse_freed_memory(); "
            "b = workers.reuse_freed_memory(); print(a, b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if sys.platform.startswith("linux") and out[0] == "True":
        assert out == ["True", "True"]  # once per process; the second call says it is already set
    else:  # not glibc: nothing is set and nothing fails
        assert out == ["False", "False"]


def test_a_simulating_process_loads_numba_without_scipy_and_keeps_scipy_importable():
    pytest.importorskip("numba")
    if importlib.util.find_spec("scipy") is None:
        pytest.skip("scipy is not installed: there is nothing to hide")
    # numba's array maths imports scipy.linalg only to ask whether BLAS is there; a process that simulates and
    # exits skips that; a process that was not marked (a notebook) imports numba as it comes
    code = ("import sys; from scorelab.engine import workers, compiled; {mark}; numba = compiled.import_numba(); "
            "import numba.np.arraymath; had = 'scipy' in sys.modules; import scipy.linalg; print(had)")
    out = [subprocess.run([sys.executable, "-c", code.format(mark=mark)], capture_output=True, text=True,
                          check=True).stdout.strip() for mark in ("workers.simulating_process()", "pass")]
    assert out == ["False", "True"]


def test_the_cli_leaves_the_collector_on_after_importing():
    code = "import gc, scorelab.cli; print(gc.isenabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=6), st.data())
def test_sums_sorted_equal_a_weighted_bincount(sizes, data):
    from types import SimpleNamespace

    from scorelab.engine.state import ShardState

    sizes = np.array(sizes, dtype=np.int64)
    n = int(sizes.sum())
    S = SimpleNamespace(bounds=np.cumsum(sizes), sizes=sizes)
    S.G = len(sizes)
    ids = np.array(sorted(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n))) if n else [], dtype=np.int64)
    x = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=len(ids), max_size=len(ids))), dtype=np.int8)
    g = np.searchsorted(S.bounds, ids, side="right")
    want = np.bincount(g, weights=x.astype(np.int64), minlength=S.G).astype(np.int64)
    got = ShardState.sums_sorted(S, ids, x)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    two = np.stack([x, -2 * x.astype(np.int64)])
    assert np.array_equal(ShardState.sums_sorted(S, ids, two), np.stack([want, -2 * want]))
