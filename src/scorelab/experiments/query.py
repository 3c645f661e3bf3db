"""SQL over every run of a sweep or comparison directory, with DuckDB.

Each table of a run directory becomes one view over all finished runs (those with ``run.json``), with
the Hive partition columns (parameters or policy, and replicate) added from the directory names and
typed from the plan: ``metrics``, ``citizens``, ``events`` (and ``ledger``, its score changes), ``distribution``. A ``runs`` view has one
row per run (partition columns, seed, population, days, wall seconds, path).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config.loader import ConfigError
from ..store import TABLES

PLAN_FILES = ("sweep.json", "compare.json")


def _partition_types(root: Path) -> dict[str, str]:
    for name in PLAN_FILES:
        p = root / name
        if p.is_file():
            try:
                return dict(json.loads(p.read_text()).get("partitions", {}))
            except (json.JSONDecodeError, AttributeError):
                return {}
    return {}


def finished_runs(root: Path) -> list[Path]:
    runs = root / "runs"
    if not runs.is_dir():
        return []
    return sorted(p.parent for p in runs.rglob("run.json") if not any(part.startswith(".") for part in p.relative_to(runs).parts))


def _keys(root: Path, run: Path) -> dict[str, str]:
    out = {}
    for part in run.relative_to(root / "runs").parts:
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    return out


def connect(root: str | Path):
    """A DuckDB connection with the views over ``root``'s runs. Raises ConfigError without runs."""
    import duckdb
    import pandas as pd
    from urllib.parse import unquote

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(str(root), None, "no such directory")
    runs = finished_runs(root)
    if not runs:
        raise ConfigError(str(root), None, "no finished runs here (looked for runs/**/run.json)")
    from .summary import checked_run

    for r in runs:  # a damaged table is named here, not met as a DuckDB error half-way through a query
        checked_run(root, r)
    types = _partition_types(root)
    con = duckdb.connect()
    hive_types = {k: v for k, v in types.items()}
    for table in TABLES:
        files = [str(r / f"{table}.parquet") for r in runs if (r / f"{table}.parquet").is_file()]
        if not files:
            continue
        listing = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        opts = "hive_partitioning = true, union_by_name = true"
        if hive_types:
            opts += ", hive_types = {" + ", ".join(f"'{k}': '{v}'" for k, v in hive_types.items()) + "}"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({listing}, {opts})")
        if table == "events":  # the score changes alone, under the ledger's names
            con.execute("CREATE VIEW ledger AS SELECT * EXCLUDE (kind, rule, target, until), rule AS behaviour "
                        "FROM events WHERE kind = 'score'")
    rows = []
    for r in runs:
        m = json.loads((r / "run.json").read_text())
        keys = {k: unquote(v) for k, v in _keys(root, r).items()}
        rows.append({**keys, "seed": m.get("seed"), "population": m.get("population"), "days": m.get("days"),
                     "wall_seconds": m.get("wall_seconds"), "path": str(r)})
    frame = pd.DataFrame.from_records(rows)
    for k, t in types.items():
        if k in frame.columns:
            if t in ("BIGINT", "INTEGER"):
                frame[k] = pd.to_numeric(frame[k]).astype("int64")
            elif t == "DOUBLE":
                frame[k] = pd.to_numeric(frame[k]).astype("float64")
            elif t == "BOOLEAN":
                frame[k] = frame[k] == "true"
    con.register("_runs_frame", frame)
    con.execute("CREATE VIEW runs AS SELECT * FROM _runs_frame")
    summaries = root / "summaries.parquet"
    if summaries.is_file():
        con.execute(f"CREATE VIEW summaries AS SELECT * FROM read_parquet('{str(summaries).replace(chr(39), chr(39) * 2)}')")
    return con


def query(root: str | Path, sql: str):
    """Run ``sql`` over ``root``'s views; returns a pandas DataFrame. DuckDB errors become ConfigError."""
    import duckdb

    if not sql.strip():
        raise ConfigError("SQL", None, "the query is empty; give a statement such as \"SELECT * FROM runs\"")
    con = connect(root)
    try:
        return con.execute(sql).df()
    except duckdb.Error as e:
        raise ConfigError("SQL", None, f"{e}") from None
    finally:
        con.close()


def views(root: str | Path) -> list[str]:
    con = connect(root)
    try:
        return [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall() if not r[0].startswith('_')]
    finally:
        con.close()


def render(df, max_rows: int = 50) -> Any:
    """A rich Table of a result (at most ``max_rows`` rows)."""
    import math

    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for c in df.columns:
        numeric = df[c].dtype.kind in "iuf"
        table.add_column(str(c), justify="right" if numeric else "left")
    for row in df.head(max_rows).itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append("NaN" if math.isnan(v) else f"{v:.6g}")
            else:
                cells.append(str(v))
        table.add_row(*cells)
    if len(df) > max_rows:
        table.caption = f"{len(df) - max_rows:,} more rows not shown (of {len(df):,}); use --max-rows or --out"
    return table
