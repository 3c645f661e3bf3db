"""NumPy <-> Arrow by buffers (arrowio.py): the same arrays as pyarrow.array, and no pandas on the run path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from scorelab import arrowio as aio

DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float32, np.float64,
          np.bool_]


@settings(deadline=None)
@given(st.sampled_from(DTYPES).flatmap(lambda d: hnp.arrays(d, st.integers(0, 40))), st.integers(0, 3))
def test_arrays_equal_pyarrows_own_and_come_back(x, step):
    x = x[::step + 1]  # strided views too
    a = aio.array(x)
    ref = pa.array(np.ascontiguousarray(x))
    assert a.type == ref.type and len(a) == len(ref)
    assert a.to_pylist() == ref.to_pylist() or x.dtype.kind == "f"  # NaN != NaN in lists
    back = aio.to_numpy(a)
    assert back.dtype == x.dtype and np.array_equal(back, x, equal_nan=x.dtype.kind == "f")


def test_slices_chunks_categories_and_byte_order():
    assert aio.to_numpy(pa.array([True, False, True, True]).slice(1)).tolist() == [False, True, True]
    assert aio.to_numpy(pa.array(np.arange(6)).slice(2, 3)).tolist() == [2, 3, 4]
    assert aio.to_numpy(pa.chunked_array([pa.array([1, 2]), pa.array([3])])).tolist() == [1, 2, 3]
    d = aio.dictionary(np.array([0, 2, 1, 2]), ["a", "bé", "c"])
    assert d.to_pylist() == ["a", "c", "bé", "c"] and aio.to_numpy(d).tolist() == ["a", "c", "bé", "c"]
    assert aio.array(np.arange(3).astype(">i8")).to_pylist() == [0, 1, 2]
    with pytest.raises(ValueError, match="nulls"):
        aio.to_numpy(pa.array([1, None]))
    with pytest.raises(TypeError):
        aio.array(np.array(["x"]))


def test_the_run_path_imports_neither_pandas_nor_arrows_dataset(tmp_path):
    code = f"""
import sys
sys.argv = ["scorelab", "run", "rongcheng", "-n", "2000", "--days", "5", "--no-report", "-q", "-w", "1",
            "--out", {str(tmp_path / 'r')!r}]
from scorelab.cli import main
try:
    main()
except SystemExit as e:
    assert e.code in (0, None), e.code
print(sorted(m for m in ("pandas", "pyarrow.dataset", "plotly", "duckdb") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
