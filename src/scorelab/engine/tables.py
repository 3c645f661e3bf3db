"""A shard's rows of the events and citizens tables, built and encoded where the shard ran.

While a shard runs, its event log (engine/events.py: blocks of small codes in the kernel's namespaces)
is turned into events.parquet's columns a row group at a time (`LedgerWriter`: dictionary codes, final
dtypes), counted for the citizens table and encoded into the shard's Parquet part in memory; at the end
its kept citizens' records become citizens.parquet's columns and part. The main process only joins the
parts (store.py, parquetcat.py), so the tables are built on every core at once, and no shard's events are
ever held whole, copied or converted there.

`prepare` does the same for a result that comes back raw (the JAX backend's, a checkpoint written by an
earlier version, a direct call of `simulate_shard`), in the main process; it is a no-op once done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import arrowio as aio
from .events import KIND, KINDS
from .params import Params

if TYPE_CHECKING:  # kernel.py imports this module (LedgerWriter) while a shard runs
    from .kernel import ShardResult

EVENT_COLUMNS = ("day", "citizen", "kind", "rule", "points", "sensor", "false_attribution", "target", "until")

_TARGET_KIND = {"list_start": "list", "list_extend": "list", "list_remove": "list", "list_expire": "list",
                "restrict_on": "restriction", "restrict_off": "restriction", "reach_on": "restriction",
                "reach_off": "restriction", "blocked": "restriction", "privilege_on": "plugin",
                "privilege_off": "plugin", "enter": "plugin", "renew": "plugin", "leave": "plugin"}


def rule_names(params: Params) -> list[str]:
    """Names of the event log's rule codes: behaviours, the score range, the mechanisms' and plugins' rules,
    then initial_listing and none (raw codes -2 and -1)."""
    return params.rule_names + ["initial_listing", "none"]


def target_names(params: Params) -> tuple[list[str], dict[str, int]]:
    """Distinct names of what an event acts on (blacklists, restrictions, the mechanisms' targets such as
    privileges and red lists), and the offset of each kind's codes in the raw ``target`` column's namespace."""
    L, R = len(params.bl_names), len(params.restriction_names)
    names = list(params.bl_names) + list(params.restriction_names) + params.plugin_targets
    return list(dict.fromkeys(names + ["none"])), {"list": 0, "restriction": L, "plugin": L + R}


def event_names(params: Params) -> dict[str, list[str]]:
    """The dictionaries of events.parquet's category columns, in code order."""
    from .params import NO_SENSOR

    return {"kind": list(KINDS), "rule": rule_names(params), "sensor": list(params.sensors) + [NO_SENSOR],
            "target": target_names(params)[0]}


class _Codes:
    """The raw namespaces of a scenario's event log (engine/events.py) -> the codes of `event_names`."""

    def __init__(self, params: Params):
        self.n_rules = len(rule_names(params))
        tnames, offset = target_names(params)
        flat = list(params.bl_names) + list(params.restriction_names) + params.plugin_targets
        # raw target namespace -> code in tnames; the last entry is "none"
        self.to_name = np.array([tnames.index(x) for x in flat] + [tnames.index("none")], dtype=np.int32)
        self.none = len(flat)
        self.base = np.zeros(len(KINDS), dtype=np.int32)
        self.has_target = np.zeros(len(KINDS), dtype=bool)
        for name, what in _TARGET_KIND.items():
            self.base[KIND[name]] = offset[what]
            self.has_target[KIND[name]] = True

    def rule(self, rule):
        """-1 none, -2 initial_listing: the last two names."""
        if np.ndim(rule) == 0:
            return int(rule) + self.n_rules if rule < 0 else int(rule)
        out = np.asarray(rule).astype(np.int32)
        out[out < 0] += self.n_rules
        return out

    def target(self, kind, tgt):
        if np.ndim(kind) == 0 and np.ndim(tgt) == 0:
            ok = self.has_target[kind] and tgt >= 0
            return int(self.to_name[self.base[kind] + tgt if ok else self.none])
        kind, tgt = np.asarray(kind), np.asarray(tgt).astype(np.int32)
        flat_at = self.base[kind] + tgt
        flat_at[~(self.has_target[kind] & (tgt >= 0))] = self.none
        return self.to_name[flat_at]


def _wide(points) -> bool:
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    return bool(np.size(points)) and (np.max(points) > hi or np.min(points) < lo)


def event_columns(params: Params, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A raw event log (engine/events.py columns) as events.parquet's columns: int32 codes into
    `event_names`, ``points`` int32 (int64 only when a value does not fit)."""
    codes = _Codes(params)
    return {
        "day": raw["day"].astype(np.int32, copy=False),
        "citizen": raw["citizen"].astype(np.int64, copy=False),
        "kind": raw["kind"].astype(np.int32),
        "rule": codes.rule(raw["rule"]),
        "points": raw["points"].astype(np.int64 if _wide(raw["points"]) else np.int32, copy=False),
        "sensor": raw["sensor"].astype(np.int32),
        "false_attribution": raw["false"].astype(bool, copy=False),
        "target": codes.target(raw["kind"], raw["target"]),
        "until": raw["until"].astype(np.int32, copy=False),
    }


def log_columns(params: Params, log) -> dict[str, np.ndarray]:
    """An `EventLog`'s blocks written straight into events.parquet's columns (the same values as
    `event_columns(params, log.arrays())`, without the raw copy: a block's kind, rule and target are
    mostly one value each, translated once)."""
    codes = _Codes(params)
    blocks = log.blocks
    total = sum(b[0] for b in blocks)
    dtypes = {"day": np.int32, "citizen": np.int64, "kind": np.int32, "rule": np.int32,
              "points": np.int64, "sensor": np.int32, "false_attribution": bool,
              "target": np.int32, "until": np.int32}  # points narrowed below, once, where they fit
    out = {c: np.empty(total, dtype=dtypes[c]) for c in EVENT_COLUMNS}
    day, cit, kind, rule, pts, sen, false, tgt, until = (out[c] for c in EVENT_COLUMNS)
    at = 0
    for n, t, c, k, r, p, s, f, g, u in blocks:
        sl = slice(at, at + n)
        day[sl] = t
        cit[sl] = c
        kind[sl] = k
        rule[sl] = codes.rule(r)
        pts[sl] = p
        sen[sl] = s
        false[sl] = f
        tgt[sl] = codes.target(k, g)
        until[sl] = u
        at += n
    if not _wide(pts):
        out["points"] = pts.astype(np.int32)
    return out


def positions(ids: np.ndarray, citizen: np.ndarray) -> np.ndarray:
    """Row of each event's citizen among the kept (sorted) ``ids``. The kept ids are every stride-th global
    id, so the row is (citizen - first) // stride when the ids are evenly spaced; otherwise a binary search."""
    if len(ids) > 1:
        stride = int(ids[1] - ids[0])
        if stride == 1 and ids[-1] - ids[0] == len(ids) - 1:  # every citizen kept (ids are sorted)
            pos = citizen - ids[0]
            if len(pos) == 0 or (pos.min() >= 0 and pos.max() < len(ids)):
                return pos
        elif stride > 0 and (np.diff(ids) == stride).all():
            off = citizen - ids[0]
            pos = off // stride
            if len(pos) == 0 or (pos.min() >= 0 and pos.max() < len(ids) and not (off % stride).any()):
                return pos
    return np.searchsorted(ids, citizen)


def citizen_dictionaries(params: Params) -> dict[str, list[str]]:
    """The dictionaries of citizens.parquet's category columns."""
    return {"group": list(params.groups), "grade": list(params.grade_names) or ["-"]}


def event_counts(params: Params, ids: np.ndarray, events: dict[str, np.ndarray], dense: bool = True) -> np.ndarray:
    """[len(ids), W] int64: per kept citizen, how many score events of each scored behaviour were true
    attributions (one column per scored behaviour, in order) and, last, how many false attributions took
    points (wrongful penalties). One bincount of (citizen row, column); ``events``: `event_columns` of
    (part of) these citizens' log, so counts of several parts add up. ``dense=False``: the flat (row x W +
    column) key of each counted event instead, for counting several parts at once."""
    scored = [b for b in range(len(params.behaviours)) if params.scored[b]]
    W = count_columns(params)
    # column of a score event by (rule, false attribution, points < 0); -1 counts nowhere
    lut = np.full((len(rule_names(params)), 2, 2), -1, dtype=np.int32)
    lut[scored, 0, :] = np.arange(len(scored))[:, None]
    lut[:, 1, 1] = W - 1
    col = lut.reshape(-1)[events["rule"] * 4 + events["false_attribution"] * 2 + (events["points"] < 0)]
    ok = (col >= 0) & (events["kind"] == KIND["score"])
    key = positions(ids, events["citizen"][ok]) * W + col[ok]
    return np.bincount(key, minlength=len(ids) * W).reshape(len(ids), W) if dense else key


def count_columns(params: Params) -> int:
    """W of `event_counts`: one column per scored behaviour and the wrongful penalties."""
    return sum(1 for b in range(len(params.behaviours)) if params.scored[b]) + 1


def citizen_columns(params: Params, c: dict[str, np.ndarray], events: dict[str, np.ndarray] | None = None,
                    counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The kept citizens' records (kernel.citizens) as citizens.parquet's columns, in the table's order,
    with their event counts: ``counts`` (`event_counts`), or read from ``events`` (`event_columns` of the
    same citizens' whole log)."""
    ids = c["citizen"].astype(np.int64, copy=False)
    keys = list(c)
    cols: dict[str, np.ndarray] = {
        "citizen": ids,
        "group": c["group"].astype(np.int32),
        "start_score": c["start_score"],
        "score": c["score"],
        "grade": c["grade"].astype(np.int32),
        "restricted": c["restricted"],
    }
    for k in keys:
        if k.startswith(("restricted_", "listed_until_")) or k == "blacklisted_until":
            cols[k] = c[k]
    if counts is None:
        counts = event_counts(params, ids, events)
    counts = counts.astype(np.int32)
    scored = [b for b in range(len(params.behaviours)) if params.scored[b]]
    for j, b in enumerate(scored):
        cols[f"observed_{params.behaviours[b]}"] = np.ascontiguousarray(counts[:, j])
    cols["wrongful_penalties"] = np.ascontiguousarray(counts[:, -1])
    cols["true_misconduct"] = c["true_misconduct"].astype(np.int32)
    if "misconduct_severity" in c:
        cols["misconduct_severity"] = c["misconduct_severity"].astype(np.float32)
    for k in keys:
        if k.startswith("propensity_"):
            cols[k] = c[k]
        elif k.startswith("x_"):  # mechanism state (household, sub-scores, rating, ...)
            cols[k[2:]] = c[k]
    return cols


ROW_GROUP = aio.ROW_GROUP  # rows per row group of events.parquet, as every table is written


FOLD_MIN_KEYS = 1 << 20  # counted events' keys held before they are folded into the counts, at least


class LedgerWriter:
    """A shard's event log encoded as it grows: once the log holds a row group's worth of events, they are
    turned into events.parquet's columns (`log_columns`), counted for the citizens table and written as
    whole row groups of ROW_GROUP rows into an in-memory Parquet file; the log is emptied. A dense shard
    (a lender's loan every other day for every citizen) then holds one row group of columns and its
    compressed Parquet, not every event. The row groups are cut by row count alone, as one write of the
    whole log would cut them: the same bytes whenever the flushes happen."""

    def __init__(self, params: Params, ids: np.ndarray):
        self.params, self.ids = params, ids
        self.W = count_columns(params)
        self.counts = None  # [len(ids), W] once keys were folded in
        # the counted events' keys, folded into counts by one bincount when they would fill half of it (or at
        # the end): a bincount per row group allocated and added a fresh len(ids) x W array each time, which
        # in a new worker process is memory faulted in page by page (~0.15 s of a 335,000-citizen shard)
        self.keys, self.n_keys = [], 0
        self.fold_at = max(len(ids) * self.W // 2, FOLD_MIN_KEYS)
        self.sink = pa.BufferOutputStream()
        self.writer = None
        self.wide = False
        self.rows = 0
        self.pending = None  # Arrow table: rows encoded into columns, not yet a whole row group

    def maybe_flush(self, log) -> None:
        if log.rows >= ROW_GROUP:
            self.flush(log)

    def flush(self, log, final: bool = False) -> None:
        if log.rows:
            cols = log_columns(self.params, log)
            log.blocks, log.rows = [], 0
            key = event_counts(self.params, self.ids, cols, dense=False)
            self.keys.append(key)
            self.n_keys += len(key)
            if self.n_keys >= self.fold_at:
                self._fold()
            if cols["points"].dtype == np.int64 and not self.wide:
                self._widen()
            if self.wide:
                cols["points"] = cols["points"].astype(np.int64, copy=False)
            table = events_arrow(self.params, cols)
            # the remainder and the new rows as chunks of one table (no copy; the same bytes when written)
            self.pending = table if self.pending is None else pa.concat_tables([self.pending, table])
        if self.pending is None:
            return
        n = self.pending.num_rows
        cut = n if final else n - n % ROW_GROUP
        if cut:
            self._write(self.pending.slice(0, cut))
            self.pending = self.pending.slice(cut) if cut < n else None

    def _write(self, table) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.sink, table.schema, **aio.writer_options(table.schema))
        self.writer.write_table(table, row_group_size=ROW_GROUP)
        self.rows += table.num_rows

    def _widen(self) -> None:
        """A value of points beyond int32: what was written is read back and written again with int64
        points, and the rows not yet written are widened too."""
        self.wide = True
        if self.pending is not None:
            self.pending = _wide_points(self.pending)
        if self.writer is None:
            return
        self.writer.close()
        old = pq.ParquetFile(pa.BufferReader(self.sink.getvalue())).read().replace_schema_metadata(None)
        self.writer, self.sink, self.rows = None, pa.BufferOutputStream(), 0
        self._write(_wide_points(old))

    def _fold(self) -> None:
        n = len(self.ids) * self.W
        if not self.keys:
            if self.counts is None:
                self.counts = np.zeros((len(self.ids), self.W), dtype=np.int64)
            return
        keys = self.keys[0] if len(self.keys) == 1 else np.concatenate(self.keys)
        counts = np.bincount(keys, minlength=n).reshape(len(self.ids), self.W)
        if self.counts is None:
            self.counts = counts
        else:
            self.counts += counts
        self.keys, self.n_keys = [], 0

    def finish(self, log) -> tuple[np.ndarray, int, np.ndarray]:
        """The whole shard's events.parquet part (uint8), its rows, and the citizens' event counts."""
        self.flush(log, final=True)
        self._fold()
        if self.writer is None:  # no event at all: the empty table, as one write of an empty log gives
            return aio.parquet_bytes(events_arrow(self.params, event_columns(self.params, empty_raw()))), 0, self.counts
        self.writer.close()
        return np.frombuffer(self.sink.getvalue(), dtype=np.uint8), self.rows, self.counts


def _wide_points(table):
    i = table.schema.get_field_index("points")
    return table.set_column(i, "points", table.column("points").cast(pa.int64()))


def events_arrow(params: Params, cols: dict[str, np.ndarray]):
    """events.parquet's rows of one shard (`event_columns`) as an Arrow table."""
    names = event_names(params)
    return aio.table({k: aio.dictionary(cols[k], names[k]) if k in names else aio.array(cols[k]) for k in EVENT_COLUMNS})


def citizens_arrow(params: Params, cols: dict[str, np.ndarray]):
    """citizens.parquet's rows of one shard (`citizen_columns`) as an Arrow table."""
    names = citizen_dictionaries(params)
    return aio.table({k: aio.dictionary(v, names[k]) if k in names else aio.array(v) for k, v in cols.items()})


def prepare(params: Params, r: ShardResult) -> ShardResult:
    """Turn ``r``'s raw ledger and citizens into the tables' columns, then encode them as this shard's
    Parquet parts (``r.encoded``; the columns are let go). In place; returns ``r``; a no-op once done, and
    for a shard without per-citizen detail."""
    if r.encoded or not r.citizens:
        return r
    events = event_columns(params, r.ledger) if r.ledger else event_columns(params, empty_raw())
    cit = citizen_columns(params, r.citizens, events)
    r.rows = {"events": len(events["day"]), "citizens": len(cit["citizen"])}
    r.encoded = {"events": aio.parquet_bytes(events_arrow(params, events)),
                 "citizens": aio.parquet_bytes(citizens_arrow(params, cit))}
    r.ledger, r.citizens = {}, {}
    return r


def empty_raw() -> dict[str, Any]:
    from .events import COLUMNS, DTYPES

    return {k: np.empty(0, dtype=DTYPES[k]) for k in COLUMNS}
