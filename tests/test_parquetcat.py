"""Parquet files joined without decoding a page (parquetcat.py): the joined file reads back as the tables
laid end to end, with pyarrow and with DuckDB, row-group statistics included."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorelab import arrowio as aio
from scorelab import parquetcat as pc


def _table(n: int, seed: int, wide: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    pts = rng.integers(-50, 50, n)
    return aio.table({
        "day": aio.array(np.sort(rng.integers(0, 365, n)).astype(np.int32)),
        "citizen": aio.array(rng.integers(0, 10**7, n)),
        "kind": aio.dictionary(rng.integers(0, 4, n), ["score", "list_start", "blocked", "appeal"]),
        "points": aio.array(pts.astype(np.int64) * 2**33 if wide else pts.astype(np.int32)),
        "false_attribution": aio.array(rng.random(n) < 0.1),
        "share": aio.array(rng.random(n)),
    })


def _bytes(t: pa.Table, **kw) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd", write_statistics=True, use_dictionary=["kind", "false_attribution"], **kw)
    return buf.getvalue()


def test_a_footer_decodes_and_encodes_to_the_same_bytes():
    for data in (_bytes(_table(1000, 1)), _bytes(_table(0, 2)), _bytes(_table(50_000, 3), row_group_size=1000)):
        meta, start = pc.footer(data)
        assert pc.encode(meta) == data[start:-8]


@pytest.mark.parametrize("sizes", [[1], [3000, 1, 0, 2500], [0, 0], [40_000, 25_000], [7] * 20])
def test_joined_files_read_as_the_tables_end_to_end(tmp_path, sizes):
    tables = [_table(n, i) for i, n in enumerate(sizes)]
    parts = [_bytes(t, row_group_size=4096) for t in tables]  # many row groups: the long list form too
    path = tmp_path / "joined.parquet"
    with open(path, "wb") as f:
        assert pc.join(parts, f) == sum(sizes)
    got = pq.read_table(path)
    want = pa.concat_tables(tables)
    assert got.schema == want.schema
    assert got.equals(want.combine_chunks()) or got.to_pylist() == want.to_pylist()
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == sum(sizes)
    assert meta.num_row_groups == sum(pq.ParquetFile(io.BytesIO(p)).metadata.num_row_groups for p in parts)
    # every row group's statistics and pages found where the footer says
    at = 0
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        chunk = pq.ParquetFile(path).read_row_group(i)
        assert chunk.equals(want.slice(at, rg.num_rows).combine_chunks()) or \
            chunk.to_pylist() == want.slice(at, rg.num_rows).to_pylist()
        if rg.num_rows:
            st = rg.column(0).statistics
            assert st.min == min(chunk.column("day").to_pylist())
        at += rg.num_rows


def test_duckdb_reads_a_joined_file(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    tables = [_table(20_000, 5), _table(15_000, 6)]
    path = tmp_path / "j.parquet"
    with open(path, "wb") as f:
        pc.join([_bytes(t, row_group_size=5000) for t in tables], f)
    want = pa.concat_tables(tables)
    q = "select count(*), sum(points), count(distinct citizen) from '{}' where day >= 100 and kind = 'blocked'"
    (tmp_path / "w.parquet").write_bytes(_bytes(want))
    assert duckdb.sql(q.format(path)).fetchall() == duckdb.sql(q.format(tmp_path / "w.parquet")).fetchall()


def test_files_of_different_schemas_are_refused():
    with pytest.raises(pc.SchemaMismatch):
        pc.join([_bytes(_table(10, 1)), _bytes(_table(10, 2, wide=True))], io.BytesIO())
    with pytest.raises(ValueError, match="not a Parquet file"):
        pc.join([b"PAR1 this is not parquet"], io.BytesIO())
