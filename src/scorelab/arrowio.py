"""NumPy <-> Arrow for the run path, by buffers, so that pandas is never imported on it.

`pyarrow.array(ndarray)` and `Array.to_numpy()` import pandas the first time they run (pyarrow asks
whether the object is a pandas Series or a categorical); on `scorelab run` that import alone took about
0.3 s, more than a small simulation. NumPy arrays of numbers and booleans map onto Arrow's buffers
directly: wrapping them is free and gives the same arrays (and the same Parquet bytes) as `pyarrow.array`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_TYPES = {np.dtype(np.int8): pa.int8(), np.dtype(np.int16): pa.int16(), np.dtype(np.int32): pa.int32(),
          np.dtype(np.int64): pa.int64(), np.dtype(np.uint8): pa.uint8(), np.dtype(np.uint16): pa.uint16(),
          np.dtype(np.uint32): pa.uint32(), np.dtype(np.uint64): pa.uint64(), np.dtype(np.float32): pa.float32(),
          np.dtype(np.float64): pa.float64()}
_DTYPES = {t: d for d, t in _TYPES.items()}


def array(x: np.ndarray) -> pa.Array:
    """A 1-D NumPy array of numbers or booleans as an Arrow array without nulls (NaN stays a value)."""
    x = np.ascontiguousarray(x).reshape(-1)
    if x.dtype == np.bool_:
        bits = np.packbits(x, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(x), [None, pa.py_buffer(bits)])
    x = x.astype(x.dtype.newbyteorder("="), copy=False)  # native order, as Arrow's buffers are
    typ = _TYPES.get(x.dtype)
    if typ is None:
        raise TypeError(f"no Arrow type for NumPy dtype {x.dtype}")
    return pa.Array.from_buffers(typ, len(x), [None, pa.py_buffer(x)])


def strings(names: list[str]) -> pa.Array:
    """Arrow strings from Python strings, built from their UTF-8 bytes and offsets."""
    data = [s.encode("utf-8") for s in names]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def dictionary(codes: np.ndarray, names: list[str]) -> pa.DictionaryArray:
    """A category column: int32 codes into ``names``."""
    return pa.DictionaryArray.from_arrays(array(np.asarray(codes).astype(np.int32, copy=False)), strings(list(names)))


def to_numpy(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as NumPy (copied when it has several chunks or an offset); categories as their strings."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks() if a.num_chunks != 1 else a.chunk(0)
    if isinstance(a, pa.DictionaryArray):
        names = np.array(a.dictionary.to_pylist(), dtype=object)
        return names[to_numpy(a.indices)]
    if a.null_count:
        raise ValueError(f"column of {a.type} has {a.null_count} nulls; read it with pandas instead")
    if a.type == pa.bool_():
        buf = np.frombuffer(a.buffers()[1], dtype=np.uint8)
        return np.unpackbits(buf, bitorder="little")[a.offset:a.offset + len(a)].astype(bool)
    dtype = _DTYPES.get(a.type)
    if dtype is None:
        raise TypeError(f"no NumPy dtype for Arrow type {a.type}")
    return np.frombuffer(a.buffers()[1], dtype=dtype)[a.offset:a.offset + len(a)]


def table(columns: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns whose few distinct values a dictionary encodes well: categories, flags, small integers (kind,
    rule, sensor, target, grade). Ids, days, points and continuous values are written plain: a dictionary
    there costs time (a hash per value) for little or no gain (measured: events 0.85 -> 0.61 s, 6.8 -> 6.0 MB)."""
    out = []
    for f in schema:
        t = f.type
        if pa.types.is_dictionary(t) or pa.types.is_boolean(t) or (pa.types.is_integer(t) and t.bit_width <= 16):
            out.append(f.name)
    return out


ROW_GROUP = 1 << 20  # rows per row group (pyarrow's default since 15, said here so it cannot move)
DELTA_COLUMNS = ("day", "citizen")  # sorted or nearly (events by day, then citizens in blocks): small deltas
# the event log's categories, long runs of one code (a block of events shares its kind, rule, sensor and
# target), written as run-length codes that zstd makes larger, not smaller (a 1 M-row group of nosedive's
# events: kind 2,209 -> 2,593 bytes), at the cost of a compressor per page: left uncompressed, a dense
# ledger encodes ~5% faster (nosedive, lending, sesame, measured). A citizen's group and grade vary from
# one citizen to the next, and zstd halves them (RR-1, 200,000 citizens: grade 12.3 -> 5.3 kB): compressed.
RAW_COLUMNS = ("kind", "rule", "sensor", "target")


def writer_options(schema: pa.Schema) -> dict:
    """The Parquet options of every table of a run. zstd, except for the event log's categories
    (RAW_COLUMNS); dictionaries for categories and flags; the day and citizen ids delta-encoded
    (events.parquet 3.6x smaller, written in 0.6 of the time: measured on a 13 M-event ledger, 14.4 -> 4.0
    MB, 0.94 -> 0.59 s); statistics (row-group min/max, what DuckDB and pyarrow filters skip row groups by)
    for the numeric columns, not for categories, where they cost a lookup per value and rule nothing out."""
    dictionary = dictionary_columns(schema)
    delta = {f.name: "DELTA_BINARY_PACKED" for f in schema
             if f.name in DELTA_COLUMNS and pa.types.is_integer(f.type) and f.name not in dictionary}
    stats = [f.name for f in schema if not pa.types.is_dictionary(f.type) and not pa.types.is_boolean(f.type)]
    compression = {f.name: "none" if f.name in RAW_COLUMNS and pa.types.is_dictionary(f.type) else "zstd"
                   for f in schema}
    return {"compression": compression, "use_dictionary": dictionary, "write_statistics": stats,
            "column_encoding": delta}


def write_parquet(table: pa.Table, where) -> None:
    """A table as Parquet (a path or a writable file), with the options of every table of a run."""
    import pyarrow.parquet as pq

    pq.write_table(table, where, row_group_size=ROW_GROUP, **writer_options(table.schema))


def parquet_bytes(table: pa.Table) -> np.ndarray:
    """A table encoded as a whole Parquet file in memory (`write_parquet`'s options), as uint8."""
    sink = pa.BufferOutputStream()
    write_parquet(table, sink)
    return np.frombuffer(sink.getvalue(), dtype=np.uint8)
