"""Checking a run directory before any command reads it.

`check_run` is what audit, report, explain, compliance and query call first: a run directory whose
manifest is unreadable or of the wrong shape, whose tables are missing, truncated or not Parquet, or
whose tables do not hold the rows the manifest records, is refused with the file named and how to get
a whole run back (runs are reproducible: the same scenario and seed give the same tables).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config.loader import ConfigError

# the columns every reader relies on (a run has more)
COLUMNS = {
    "metrics": ("day", "group", "population", "mean_score", "restricted_share", "penalties", "wrongful_penalties",
                "criticism"),
    "citizens": ("citizen",),
    "events": ("day", "citizen", "kind", "rule", "points", "sensor", "false_attribution", "target", "until"),
    "distribution": ("day", "group", "score_lo", "score_hi", "citizens"),
}
REQUIRED = ("metrics", "citizens", "events")
MANIFEST_TYPES: dict[str, tuple[type, ...]] = {"scenario": (dict,), "population": (int,), "days": (int,),
                                               "seed": (int,), "group_sizes": (dict,)}


def _recover(manifest: dict[str, Any] | None, path: Path) -> str:
    if manifest is None:
        return ("the run cannot be read back; simulate its scenario again into a new directory "
                f"(and delete {path} yourself: --force replaces only a directory whose run.json is whole)")
    sc = manifest.get("scenario", {}).get("scenario", {}) if isinstance(manifest.get("scenario"), dict) else {}
    name = sc.get("name", "SCENARIO") if isinstance(sc, dict) else "SCENARIO"
    return (f"simulate it again: scenario {name} with --seed {manifest.get('seed')} -n {manifest.get('population')} "
            f"-t {manifest.get('days')} gives the same tables (`scorelab run SCENARIO ... --out {path} --force`)")


def read_manifest_checked(path: Path) -> dict[str, Any]:
    f = path / "run.json"
    if not f.is_file():
        raise ConfigError(str(path), None, "not a run directory: run.json is missing (give the directory `scorelab run` printed)")
    try:
        manifest = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ConfigError(str(f), None, f"unreadable run manifest ({type(e).__name__}); {_recover(None, path)}") from None
    if not isinstance(manifest, dict):
        raise ConfigError(str(f), None, f"not a scorelab run manifest (a JSON object is expected); {_recover(None, path)}")
    for key, types in MANIFEST_TYPES.items():
        v = manifest.get(key)
        if key not in manifest:
            raise ConfigError(str(f), key, f"missing: not a scorelab run manifest; {_recover(None, path)}")
        if not isinstance(v, types) or isinstance(v, bool):
            raise ConfigError(str(f), key, f"has the wrong type ({type(v).__name__}, expected "
                                           f"{' or '.join(t.__name__ for t in types)}): the manifest is damaged; "
                                           f"{_recover(None, path)}")
    if manifest["population"] <= 0 or manifest["days"] <= 0 or manifest["seed"] < 0:
        raise ConfigError(str(f), None, f"population, days and seed are out of range: the manifest is damaged; "
                                        f"{_recover(None, path)}")
    sizes = manifest["group_sizes"]
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in sizes.values()):
        raise ConfigError(str(f), "group_sizes", f"holds a value that is not a count: the manifest is damaged; "
                                                 f"{_recover(None, path)}")
    detail = manifest.get("detail", {})
    if not isinstance(detail, dict):
        raise ConfigError(str(f), "detail", f"has the wrong type: the manifest is damaged; {_recover(None, path)}")
    return manifest


def check_run(run_dir: str | Path, tables: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The manifest of a whole run directory; ConfigError naming the damaged file otherwise.

    ``tables``: which to check (default: metrics, citizens, events, and every other table run.json lists)."""
    import pyarrow.parquet as pq

    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(str(path), None, "no such run directory (give the directory `scorelab run` printed)")
    manifest = read_manifest_checked(path)
    if tables is None:
        listed = manifest.get("tables") if isinstance(manifest.get("tables"), list) else []
        tables = REQUIRED + tuple(Path(str(t)).stem for t in listed if Path(str(t)).stem in COLUMNS
                                  and Path(str(t)).stem not in REQUIRED)
    detail = manifest.get("detail", {})
    rows = {"events": detail.get("event_rows"), "citizens": detail.get("citizens_rows")}
    for name in tables:
        f = path / f"{name}.parquet"
        if not f.is_file():
            raise ConfigError(str(path), None, f"{name}.parquet is missing: not a complete run directory; "
                                               f"{_recover(manifest, path)}")
        try:
            meta = pq.read_metadata(f)
            names = set(meta.schema.names)
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError and others for a damaged file
            raise ConfigError(str(f), None, f"not a readable Parquet table (truncated or damaged: {str(e)[:120]}); "
                                            f"{_recover(manifest, path)}") from None
        missing = [c for c in COLUMNS.get(name, ()) if c not in names]
        if missing and not (name == "citizens" and meta.num_rows == 0):
            raise ConfigError(str(f), missing[0], f"column missing: the table is damaged or not scorelab's; "
                                                  f"{_recover(manifest, path)}")
        digests = manifest.get("sha256")
        if isinstance(digests, dict) and isinstance(digests.get(f.name), str):
            from .store import file_digest

            if file_digest(f) != digests[f.name]:
                raise ConfigError(str(f), None, "its bytes differ from those run.json recorded when the run was "
                                                f"written (damaged or replaced); {_recover(manifest, path)}")
        want = rows.get(name)
        if isinstance(want, int) and not isinstance(want, bool) and meta.num_rows != want:
            raise ConfigError(str(f), None, f"holds {meta.num_rows:,} rows, run.json records {want:,}: the table "
                                            f"is damaged or from another run; {_recover(manifest, path)}")
    return manifest


def read_table(path: str | Path, **kw: Any):
    """A run's table as a DataFrame; a table damaged past its footer (a corrupt page) is a ConfigError
    naming the file, not a pyarrow traceback."""
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    try:
        return pd.read_parquet(path, **kw)
    except (OSError, pa.ArrowException, ValueError) as e:
        try:
            manifest = read_manifest_checked(path.parent)
        except ConfigError:
            manifest = None
        why = " ".join(str(e).split())[:120]
        raise ConfigError(str(path), None, f"the table is damaged and cannot be read ({why}); "
                                           f"{_recover(manifest, path.parent)}") from None
