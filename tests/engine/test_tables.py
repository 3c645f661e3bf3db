"""Each shard's rows of events.parquet and citizens.parquet are built and encoded where the shard ran
(engine/tables.py); the main process joins the Parquet parts (parquetcat.py). A shard that comes back raw
(the JAX backend, a checkpoint of an earlier version, a direct `simulate_shard`) is built in the main
process with the same functions."""

import hashlib
import io

import numpy as np
import pyarrow.parquet as pq

from scorelab.api import load
from scorelab.engine import tables
from scorelab.engine.checkpoint import load_shard, save_shard
from scorelab.engine.events import KINDS
from scorelab.engine.kernel import simulate_shard
from scorelab.engine.params import compile_params
from scorelab.engine.runner import plan_detail, plan_shards, run_shard, run_shards
from scorelab.store import read_detail


def events_table(params, results):
    return read_detail(params, results, "events")


def citizens_table(params, results):
    return read_detail(params, results, "citizens")


def _shards(preset="rongcheng", n=6000, days=40, seed=3, sample=None):
    """A preset's compiled parameters and a cut into three shards."""
    params = compile_params(load(preset, population=n, days=days))
    return params, plan_shards(n, seed, plan_detail(n, sample), shard_size=n // 3)


def _bytes(table) -> str:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return hashlib.sha256(buf.getvalue()).hexdigest()


def test_raw_and_prepared_shards_give_the_same_tables():
    params, specs = _shards()
    prepared = [run_shard(params, s) for s in specs]
    assert all(r.encoded and not r.ledger for r in prepared)
    raw = [simulate_shard(params, s) for s in specs]
    assert not any(r.prepared for r in raw)
    mixed = [raw[0], prepared[1], raw[2]]  # e.g. a resumed run: checkpoints of an earlier version beside new shards
    for build in (events_table, citizens_table):
        want = _bytes(build(params, prepared))
        assert _bytes(build(params, mixed)) == want
        assert _bytes(build(params, [simulate_shard(params, s) for s in specs])) == want
    ev = events_table(params, prepared)
    assert ev.num_rows == sum(r.rows["events"] for r in prepared)
    one = tables.event_columns(params, simulate_shard(params, specs[1]).ledger)
    part = ev.slice(prepared[0].rows["events"], prepared[1].rows["events"])
    np.testing.assert_array_equal(part.column("citizen").to_numpy(), one["citizen"])
    np.testing.assert_array_equal(part.column("kind").combine_chunks().indices.to_numpy(), one["kind"])


def test_the_columns_say_what_the_raw_log_says():
    params, specs = _shards()
    raw = simulate_shard(params, specs[1])
    cols = tables.event_columns(params, raw.ledger)
    names = tables.event_names(params)
    kinds = np.array(names["kind"])[cols["kind"]]
    np.testing.assert_array_equal(kinds, np.array(KINDS)[raw.ledger["kind"]])
    rules = np.array(names["rule"])[cols["rule"]]
    r = raw.ledger["rule"]
    assert (rules[r == -1] == "none").all() and (rules[r == -2] == "initial_listing").all()
    np.testing.assert_array_equal(rules[r >= 0], np.array(params.rule_names)[r[r >= 0]])
    targets = np.array(names["target"])[cols["target"]]
    on = np.isin(kinds, ["restrict_on", "restrict_off"])
    assert on.any()
    np.testing.assert_array_equal(targets[on], np.array(params.restriction_names)[raw.ledger["target"][on]])
    assert (targets[kinds == "score"] == "none").all()
    assert cols["points"].dtype == np.int32
    np.testing.assert_array_equal(cols["points"], raw.ledger["points"])
    # per-citizen counts: wrongful penalties are the false attributions that took points
    cit = tables.citizen_columns(params, raw.citizens, cols)
    pos = np.searchsorted(cit["citizen"], cols["citizen"])
    wrong = (kinds == "score") & cols["false_attribution"] & (cols["points"] < 0)
    np.testing.assert_array_equal(cit["wrongful_penalties"], np.bincount(pos[wrong], minlength=len(cit["citizen"])))


def test_points_too_wide_for_int32_widen_every_shard():
    params, specs = _shards()
    rs = [run_shard(params, s) for s in specs]
    raw = simulate_shard(params, specs[0])
    raw.ledger["points"] = raw.ledger["points"].copy()
    raw.ledger["points"][0] = 2**40
    rs[0] = tables.prepare(params, raw)
    col = events_table(params, rs).column("points")
    assert str(col.type) == "int64" and col[0].as_py() == 2**40
    rest = [tables.event_columns(params, simulate_shard(params, s).ledger)["points"] for s in specs[1:]]
    assert col.to_numpy()[rs[0].rows["events"]:].tolist() == np.concatenate(rest).tolist()


def test_checkpoints_keep_whether_a_shard_is_prepared(tmp_path):
    params, specs = _shards(n=3000, days=20)
    (tmp_path / "shards").mkdir()
    for r in (run_shard(params, specs[0]), simulate_shard(params, specs[1])):
        save_shard(tmp_path, r)
        back = load_shard(tmp_path / "shards" / f"{r.index:06d}.npz")
        assert back.prepared == r.prepared and back.rows == r.rows
        assert set(back.ledger) == set(r.ledger) and set(back.encoded) == set(r.encoded)
        for k, v in r.encoded.items():
            assert back.encoded[k].tobytes() == v.tobytes()
    # a checkpoint written before shards were prepared in their workers has no flag: raw records
    path = tmp_path / "shards" / "000001.npz"
    with np.load(path) as z:
        data = {k: z[k] for k in z.files if k != "prepared"}
    np.savez(path, **data)
    assert load_shard(path).prepared is False


def test_a_sampled_ledger_and_no_ledger():
    params, specs = _shards(sample="1000")
    rs = run_shards(params, specs)
    ev, cit = events_table(params, rs), citizens_table(params, rs)
    ids = cit.column("citizen").to_numpy()
    assert len(ids) == 1000 and set(ev.column("citizen").to_numpy()) <= set(ids)
    params, specs = _shards(sample="none")
    rs = run_shards(params, specs)
    assert events_table(params, rs).num_rows == 0 and citizens_table(params, rs).num_rows == 0


def test_columns_straight_from_the_log_equal_those_from_its_raw_copy():
    """log_columns (a worker's path) gives what event_columns gives from the raw arrays, whatever the blocks
    hold: one value per block (stages.py) or one per event (the compiled kernels' `extend`); and the shard's
    Parquet part, encoded as the log grows, holds those rows."""
    import pytest

    from scorelab.engine.events import EventLog

    for preset, kernels in (("rongcheng", ("numpy",)), ("rr1", ("numpy", "numba", "walk"))):
        params, specs = _shards(preset)
        for kernel in kernels:
            if kernel != "numpy":
                pytest.importorskip("numba")
            raw = simulate_shard(params, specs[1], None, kernel)
            want = tables.event_columns(params, raw.ledger)
            log = EventLog(1, 0, 0)  # one block, every column an array (as the compiled kernels extend it)
            cols = {k: raw.ledger[k] for k in raw.ledger}
            log.extend(0, cols["citizen"], cols["kind"], cols["rule"], cols["points"], cols["sensor"], cols["false"],
                       cols["target"], cols["until"])
            log.blocks[0] = (log.blocks[0][0], cols["day"]) + log.blocks[0][2:]
            direct = tables.log_columns(params, log)
            for k, v in want.items():
                assert direct[k].dtype == v.dtype, (preset, kernel, k)
                np.testing.assert_array_equal(direct[k], v, err_msg=f"{preset} {kernel} {k}")
            enc = simulate_shard(params, specs[1], None, kernel, tables=True)
            assert enc.rows["events"] == len(want["day"])
            got = pq.read_table(io.BytesIO(enc.encoded["events"].tobytes()))
            names = tables.event_names(params)
            for k, v in want.items():
                col = got.column(k).combine_chunks()
                arr = col.indices.to_numpy() if k in names else col.to_numpy(zero_copy_only=False)
                np.testing.assert_array_equal(arr, v, err_msg=f"{preset} {kernel} {k}")
            cit = pq.read_table(io.BytesIO(enc.encoded["citizens"].tobytes()))
            ref = tables.citizen_columns(params, raw.citizens, want)
            assert cit.column_names == list(ref)
            for k, v in ref.items():
                col = cit.column(k).combine_chunks()
                arr = col.indices.to_numpy() if hasattr(col, "indices") else col.to_numpy(zero_copy_only=False)
                np.testing.assert_array_equal(arr, v, err_msg=f"{preset} {kernel} {k}")


def test_the_log_encoded_as_it_grows_is_the_log_encoded_at_once(monkeypatch):
    """Row groups are cut by row count alone: flushing after every day gives the bytes of one write."""
    from scorelab import arrowio as aio

    monkeypatch.setattr(tables, "ROW_GROUP", 1000)  # many flushes, a remainder carried between them
    params, specs = _shards("rongcheng", n=6000, days=40)
    raw = simulate_shard(params, specs[0])
    enc = simulate_shard(params, specs[0], None, "numpy", tables=True)
    cols = tables.event_columns(params, raw.ledger)
    buf = io.BytesIO()
    table = tables.events_arrow(params, cols)
    pq.write_table(table, buf, row_group_size=1000, **aio.writer_options(table.schema))
    assert len(cols["day"]) > 2000
    assert enc.encoded["events"].tobytes() == buf.getvalue()
    assert pq.ParquetFile(io.BytesIO(buf.getvalue())).metadata.num_row_groups == -(-len(cols["day"]) // 1000)


def test_counts_folded_as_the_log_grows_are_the_counts_of_the_whole_log(monkeypatch):
    """The citizens' event counts are the same whether the keys are folded at every row group or at the end."""
    monkeypatch.setattr(tables, "ROW_GROUP", 500)
    params, specs = _shards("rongcheng", n=6000, days=40)
    once = simulate_shard(params, specs[0], None, "numpy", tables=True)  # folded once, at the end
    init, fold, folds = tables.LedgerWriter.__init__, tables.LedgerWriter._fold, []

    def eager(self, *a):
        init(self, *a)
        self.fold_at = 1  # a fold at every flush

    def counted(self):
        folds.append(self.n_keys)
        fold(self)

    monkeypatch.setattr(tables.LedgerWriter, "__init__", eager)
    monkeypatch.setattr(tables.LedgerWriter, "_fold", counted)
    again = simulate_shard(params, specs[0], None, "numpy", tables=True)
    assert sum(1 for k in folds if k) > 2  # folded many times
    assert once.encoded["citizens"].tobytes() == again.encoded["citizens"].tobytes()
    cit = pq.read_table(io.BytesIO(again.encoded["citizens"].tobytes()))
    assert sum(cit.column(c).to_numpy().sum() for c in cit.column_names if c.startswith("observed_")) > 0


def test_a_checkpoint_is_read_back_mapped_and_equal(tmp_path):
    from scorelab.engine.checkpoint import _mapped

    params, specs = _shards(n=3000, days=20)
    (tmp_path / "shards").mkdir()
    path = save_shard(tmp_path, run_shard(params, specs[2]))
    with np.load(path) as z:
        want = {k: z[k] for k in z.files}
    got = _mapped(path)
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v, err_msg=k)
        assert not got[k].flags.writeable  # views of the mapped file, never written through
    a, b = load_shard(path, mapped=True), load_shard(path)
    assert a.encoded and b.encoded
    assert _bytes(events_table(params, [a])) == _bytes(events_table(params, [b]))
    # an .npz this version did not write (compressed members) is read the ordinary way
    np.savez_compressed(path, **want)
    assert _mapped(path) is None
    assert _bytes(citizens_table(params, [load_shard(path, mapped=True)])) == _bytes(citizens_table(params, [b]))


def test_pool_workers_checkpoint_their_own_shards(tmp_path):
    """With a checkpoint directory, each pool worker writes its shard's checkpoint and the main process maps
    it: the same tables as shards run in this process."""
    params, specs = _shards(n=6000, days=30)
    (tmp_path / "shards").mkdir()
    pooled = run_shards(params, specs, workers=2, checkpoint=tmp_path)
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.npz")) == ["000000.npz", "000001.npz", "000002.npz"]
    local = run_shards(params, specs, workers=1)
    assert [r.index for r in pooled] == [0, 1, 2]
    assert _bytes(events_table(params, pooled)) == _bytes(events_table(params, local))
    assert _bytes(citizens_table(params, pooled)) == _bytes(citizens_table(params, local))


def test_points_beyond_int32_after_row_groups_were_written(monkeypatch):
    from scorelab.engine.events import KIND, EventLog

    monkeypatch.setattr(tables, "ROW_GROUP", 100)
    params, _ = _shards(n=3000, days=20)
    ids = np.arange(50, dtype=np.int64)
    w = tables.LedgerWriter(params, ids)
    log = EventLog(1, 0, 0)
    pts = []
    for day in range(6):
        p = np.full(50, -5 if day < 4 else 2**40 * (day - 3), dtype=np.int64)
        log.emit("score", day, ids, rule=0, points=p)
        pts.append(p)
        w.maybe_flush(log)
    data, rows, counts = w.finish(log)
    got = pq.read_table(io.BytesIO(data.tobytes()))
    assert rows == 300 and got.num_rows == 300 and str(got.schema.field("points").type) == "int64"
    np.testing.assert_array_equal(got.column("points").to_numpy(), np.concatenate(pts))
    np.testing.assert_array_equal(got.column("day").to_numpy(), np.repeat(np.arange(6), 50))
    assert (got.column("kind").to_pylist() == ["score"] * 300) and KIND["score"] == 0
    assert counts.sum() == (300 if params.scored[0] else 0)


def test_many_small_parts_are_written_as_one_table(monkeypatch, tmp_path):
    """A sample spread thin over many shards is decoded and written once (full row groups), with the rows
    the join would have given."""
    import scorelab.store as store

    params, specs = _shards(n=6000, days=30)
    rs = run_shards(params, specs)
    monkeypatch.setattr(store, "SMALL_PART", 0)  # always joined
    joined = events_table(params, rs)
    assert pq.ParquetFile(io.BytesIO(rs[0].encoded["events"].tobytes())).metadata.num_row_groups == 1
    monkeypatch.setattr(store, "SMALL_PART", 10**9)  # always decoded and written once
    store.write_detail(params, rs, "events", tmp_path / "e.parquet")
    once = pq.ParquetFile(tmp_path / "e.parquet")
    assert once.metadata.num_row_groups == 1 and joined.num_rows == once.metadata.num_rows
    assert once.read().equals(joined)


def test_the_memory_estimate_counts_the_ledger_as_it_is_kept():
    """The log is encoded as it grows, so a dense ledger costs its compressed bytes, not its events in
    memory: lending at 2 M x 120 with every citizen kept (260 M events) is planned at a few GiB, where the
    event arrays alone would be 8 GiB; a ledger of ten billion citizens is still refused up front."""
    from scorelab import api

    def need(preset, n, days, ledger):
        p = compile_params(load(preset, population=n, days=days))
        return api.estimate_memory(p, plan_detail(n, ledger), 2)

    assert need("lending", 2_000_000, 120, "all") < 4 * 2**30
    assert need("rr1", 9_000_000_000, 365, "all") > 1000 * 2**30


def test_the_event_logs_categories_are_written_uncompressed_and_everything_else_with_zstd(tmp_path):
    """The run-length codes of the ledger's categories are left as they are (zstd made them larger); every
    other column of events.parquet and citizens.parquet (a citizen's group and grade too) is zstd. A reader
    sees the same values either way."""
    from scorelab.api import simulate

    run = simulate(load("rongcheng", population=3000, days=20), seed=1, out=tmp_path / "run")
    for name, raw in (("events", {"kind", "rule", "sensor", "target"}), ("citizens", set())):
        f = pq.ParquetFile(run.path / f"{name}.parquet")
        rg = f.metadata.row_group(0)
        seen = {rg.column(i).path_in_schema: rg.column(i).compression for i in range(rg.num_columns)}
        assert {c for c, comp in seen.items() if comp == "UNCOMPRESSED"} == raw
        assert all(comp == "ZSTD" for c, comp in seen.items() if c not in raw)
        categories = {fld.name for fld in f.schema_arrow if str(fld.type).startswith("dictionary")}
        assert categories >= (raw or {"group", "grade"})
        table = f.read()
        assert table.num_rows == f.metadata.num_rows and table.column("citizen").null_count == 0
