"""Run directories: one run = one directory of Parquet tables and a `run.json` manifest.

A run is written under a temporary sibling name and renamed into place when complete, so a directory
with the final name is always whole. Tables are plain Parquet, readable by pandas, DuckDB, Arrow.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import arrowio as aio
from . import parquetcat
from .engine import tables
from .engine.kernel import HIST_WIDTH, ShardResult, hist_lo

from .engine.outputs import declared
from .engine.params import Params

TABLES = ("metrics", "citizens", "events", "distribution")
HEADLINE = ["mean_score", "restricted_share", "penalties", "wrongful_penalties", "criticism"]


_dict_col = aio.dictionary


write_parquet = aio.write_parquet  # the one set of writer options (arrowio.py)


def metrics_table(params: Params, sizes: np.ndarray, m: dict[str, np.ndarray]) -> pa.Table:
    """One row per day and group (each group, then `all`); RR-1's columns first."""
    T, G = params.days, params.n_groups
    labels = list(params.groups) + ["all"]
    size = np.append(sizes, sizes.sum()).astype(np.float64)

    def with_all(a: np.ndarray) -> np.ndarray:  # [T, G] -> [T, G+1]
        return np.concatenate([a, a.sum(axis=1, keepdims=True)], axis=1)

    cols: dict[str, np.ndarray] = {}
    safe = np.where(size > 0, size, 1.0)
    for decl in declared(params):  # every column is declared (engine/outputs.py, plugins/base.py)
        if decl.kind == "mean":
            num, den = with_all(m[f"{decl.name}.num"]), with_all(m[f"{decl.name}.den"])
            cols[decl.name] = np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)
        elif decl.kind in ("share", "average"):
            cols[decl.name] = with_all(m[decl.array]) / safe
        else:
            cols[decl.name] = with_all(m[decl.array])
    day = np.repeat(np.arange(T, dtype=np.int32), G + 1)
    group = np.tile(np.arange(G + 1), T)
    arrays = {"day": aio.array(day), "group": _dict_col(group, labels),
              "population": aio.array(np.tile(size.astype(np.int64), T))}
    for k, v in cols.items():
        arrays[k] = aio.array(v.reshape(-1))
    return aio.table(arrays)


def distribution_table(params: Params, results: list[ShardResult]) -> pa.Table:
    hist = np.sum([r.hist for r in results], axis=0)  # [S, G, H]
    days = results[0].hist_days
    S, G, H = hist.shape
    hist = np.concatenate([hist, hist.sum(axis=1, keepdims=True)], axis=1)
    lo = hist_lo(params) + np.arange(H) * HIST_WIDTH
    keep = hist > 0
    s, g, h = np.nonzero(keep)
    lo_col = lo[h].astype(np.int64)
    return aio.table({
        "day": aio.array(days[s].astype(np.int32)),
        "group": _dict_col(g, list(params.groups) + ["all"]),
        "score_lo": aio.array(np.where(h == 0, np.iinfo(np.int32).min, lo_col).astype(np.int32)),
        "score_hi": aio.array(np.where(h == H - 1, np.iinfo(np.int32).max, lo_col + HIST_WIDTH - 1).astype(np.int32)),
        "citizens": aio.array(hist[s, g, h].astype(np.int64)),
    })


def prepare_detail(params: Params, results: list[ShardResult]) -> list[ShardResult]:
    """The shards with per-citizen detail, each encoded as its Parquet parts of events.parquet and
    citizens.parquet (in the worker that ran it, engine/tables.py; here for a result that was not: the JAX
    backend's, a checkpoint of an earlier version)."""
    return [tables.prepare(params, r) for r in results if r.citizens or r.encoded]


def _empty(params: Params, name: str) -> pa.Table:
    if name == "citizens":
        return aio.table({"citizen": aio.array(np.empty(0, dtype=np.int64))})
    return tables.events_arrow(params, tables.event_columns(params, tables.empty_raw()))


SMALL_PART = 1 << 16  # parts of fewer rows than this on average are decoded and written as one table


def write_detail(params: Params, results: list[ShardResult], name: str, path: Path) -> int:
    """events.parquet or citizens.parquet: the shards' Parquet parts joined into one file, in shard order,
    without decoding a page (parquetcat.py). Returns the number of rows. Parts whose schemas differ (one
    shard's points too wide for int32) are decoded, widened and written anew; so are many small parts (a
    sample of a national run: a thousand shards of a few hundred kept citizens), which would otherwise
    leave a row group per shard."""
    done = [r for r in prepare_detail(params, results) if r.rows.get(name)]
    parts = [r.encoded[name] for r in done]
    if not parts:
        write_parquet(_empty(params, name), path)
        return 0
    small = len(parts) > 1 and sum(r.rows[name] for r in done) < SMALL_PART * len(parts)
    if not small:  # (many small parts, a national run's sample, would leave a row group per shard)
        try:
            with open(path, "wb") as f:
                return parquetcat.join(parts, f)
        except parquetcat.SchemaMismatch:
            pass
    read = [pq.ParquetFile(pa.BufferReader(p)).read() for p in parts]  # (read_table would import pyarrow.dataset: 0.15 s)
    if name == "events" and len({t.schema.field("points").type for t in read}) > 1:
        read = [t.set_column(t.schema.get_field_index("points"), "points", t.column("points").cast(pa.int64()))
                for t in read]
    table = pa.concat_tables(read)
    write_parquet(table, path)
    return table.num_rows


def read_detail(params: Params, results: list[ShardResult], name: str) -> pa.Table:
    """The table `write_detail` writes, read back (for tests and tools)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{name}.parquet"
        write_detail(params, results, name, path)
        return pq.read_table(path)


def read_ledger(run_dir: Path):
    """The score changes of a run as a DataFrame: day, citizen, behaviour (the rule), points, sensor,
    false_attribution — the events of kind ``score``, under the names the ledger always had."""
    ev = pq.read_table(Path(run_dir) / "events.parquet", columns=["day", "citizen", "kind", "rule", "points", "sensor",
                                                                 "false_attribution"])
    led = score_events(ev).drop(["kind"]).rename_columns(["day", "citizen", "behaviour", "points", "sensor",
                                                           "false_attribution"])
    return led.to_pandas()


def score_events(events: pa.Table) -> pa.Table:
    """The score changes of an event log (kind == score): the ledger of the README's invariant."""
    kind = events.column("kind").combine_chunks()
    import pyarrow.compute as pc  # here, not at import: a run with --ledger none never needs it

    code = list(kind.dictionary.to_pylist()).index("score") if len(kind.dictionary) else 0
    return events.filter(pc.equal(kind.indices, code))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale(out: Path) -> int:
    """Remove ``.NAME.partial-PID`` and ``.NAME.old-PID`` folders left next to ``out`` by killed runs (PID dead)."""
    import glob

    out = Path(out).resolve()
    n = 0
    for kind in ("partial", "old"):
        for p in out.parent.glob(glob.escape(f".{out.name}.{kind}-") + "*"):
            tail = p.name.rsplit("-", 1)[-1]
            if tail.isdigit() and int(tail) != os.getpid() and not pid_alive(int(tail)) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                n += 1
    return n


def staging_dir(out: Path) -> Path:
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def manifest_kind(path: Path) -> str | None:
    """"run", "sweep" or "comparison" when ``path`` is a directory scorelab wrote (by its manifest), else None."""
    path = Path(path)
    for name, kind in (("run.json", "run"), ("sweep.json", "sweep"), ("compare.json", "comparison"),
                       ("replication.json", "replication")):
        f = path / name
        if f.is_file():
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and ("scorelab" in data or data.get("kind") in ("sweep", "compare", "comparison",
                                                                                       "replication")):
                return kind
    return None


def check_replaceable(out: Path, kinds: tuple[str, ...] = ("run",)) -> None:
    """Refuse to delete ``out`` unless it is a scorelab directory of one of ``kinds`` (or empty), and never
    the current directory, the home directory, a file system root or a folder holding the current directory."""
    from .config.loader import ConfigError

    target = Path(out).resolve()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if target in (cwd, home, Path(target.anchor)) or cwd.is_relative_to(target):
        raise ConfigError(str(out), None, "--force will not replace the current directory, a folder that holds it, "
                                          "your home directory or a root; choose a new --out")
    if not target.exists():
        return
    if not target.is_dir() or target.is_symlink():
        raise ConfigError(str(out), None, "exists and is not a scorelab run directory (it is a file or a link); "
                                          "--force replaces only a run directory; choose another --out")
    if not any(target.iterdir()):
        return
    kind = manifest_kind(target)
    if kind not in kinds:
        what = f"a scorelab {kind} directory" if kind else "not a scorelab run directory (no run.json manifest)"
        raise ConfigError(str(out), None, f"exists and is {what}; --force replaces only a "
                                          f"{' or '.join(kinds)} directory, so nothing was deleted; choose another --out")


def check_writable(out: Path, what: str = "--out") -> None:
    """Fail before any work when ``out`` cannot be created: a parent is a file, read-only, not a real folder."""
    from .atomic import describe_os_error
    from .config.loader import ConfigError
    import tempfile

    target = Path(os.path.abspath(out))
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link
            raise ConfigError(str(out), what, f"{parent} is a broken symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(str(out), what, f"{parent} is a file, not a folder; choose another location")
    if str(parent).startswith(("/proc", "/sys", "/dev")):
        raise ConfigError(str(out), what, f"{parent} is a system folder, not storage; choose another location")
    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".scorelab-write-test-"):
            pass
    except OSError as e:
        raise ConfigError(str(out), what, f"cannot write in {parent}: {describe_os_error(e)}") from None


class OutputLock:
    """An exclusive lock on writing ``out`` (``.NAME.lock`` beside it), so that two runs never race for one
    directory; the second is refused at once. Removed when released."""

    def __init__(self, out: Path):
        out = Path(out).resolve()
        self.path = out.parent / f".{out.name}.lock"
        self.out = out
        self.fd: int | None = None

    def __enter__(self) -> "OutputLock":
        import fcntl

        from .config.loader import ConfigError

        self.created = []  # folders made for the lock: removed again if the run leaves nothing in them
        d = self.path.parent
        while not d.exists():
            self.created.append(d)
            d = d.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self.__exit__()
                raise ConfigError(str(self.out), None, "another scorelab process is writing this directory right now "
                                                       f"(lock {self.path}); wait for it or choose another --out") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its previous holder removed while we opened it
                self.fd = fd
                os.write(fd, f"{os.getpid()}\n".encode())
                return self
            os.close(fd)
        self.__exit__()
        raise ConfigError(str(self.out), None, "could not lock this directory for writing; try again")

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
        for d in self.created:  # deepest first
            try:
                d.rmdir()
            except OSError:  # not empty: the run (or someone) wrote there
                break


def commit_dir(tmp: Path, out: Path, force: bool, kinds: tuple[str, ...] = ("run",)) -> None:
    """Rename the finished staging directory into place (replacing `out` only with force, and only a directory
    of one of ``kinds``)."""
    out = out.resolve()
    if out.exists():
        if not force:
            raise FileExistsError(str(out))
        check_replaceable(out, kinds)
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, trash)
        os.rename(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, out)


def file_digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def table_digests(run_dir: Path) -> dict[str, str]:
    """sha256 of every table of a run directory (recorded in run.json, verified by rundir.check_run)."""
    return {p.name: file_digest(p) for p in sorted(Path(run_dir).glob("*.parquet"))
            if p.stem in ("metrics", "citizens", "events", "distribution")}


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    from .atomic import write_json_atomic

    write_json_atomic(path, manifest, indent=2, sort_keys=False)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "run.json").read_text())
