"""The command line's summary of a run, read with pyarrow alone (pandas is not loaded on the run path).

The headline table: per group, the last day's mean score and restricted share and the run's totals of
penalties, wrongful penalties and criticism. Then what the mechanisms did, read from the declarations:
each active mechanism declares its metrics (plugins/, engine/outputs.py Metric): counts and sums are
totalled over the run, stocks shown on the last day, means weighted by their declared weight (or the last
day's value). The kernel's blacklist stocks are shown too.
"""

from __future__ import annotations

import math

import numpy as np

from .engine.outputs import core_metrics
from .store import HEADLINE  # metrics.parquet's RR-1 columns, in the order the table shows them


def _declared(run) -> list:
    P = run.params
    return [d for d in core_metrics(P) if d.name.startswith("listed_")] + list(P.plugin_metrics)


def summary_rows(run) -> tuple[list[tuple[str, dict[str, float]]], list[tuple[str, str]]]:
    """(group, headline figures) per group in the table's order, and (label, value) rows of the mechanisms."""
    decls = _declared(run)
    names = ["day", "group"] + HEADLINE + [d.name for d in decls] + [d.weight for d in decls if d.weight]
    cols = run.columns("metrics", list(dict.fromkeys(names)))
    day, group = cols["day"], cols["group"]
    if len(day) == 0:
        return [], []
    last_day = day.max()
    groups = list(dict.fromkeys(group.tolist()))
    headline = []
    for g in groups:
        rows = group == g
        last = rows & (day == last_day)
        headline.append((g, {"mean_score": float(cols["mean_score"][last][0]),
                             "restricted_share": float(cols["restricted_share"][last][0]),
                             **{k: float(cols[k][rows].sum()) for k in HEADLINE[2:]}}))
    return headline, _mechanism_rows(decls, cols)


def mechanism_rows(run) -> list[tuple[str, str]]:
    """(label, value) rows of what the mechanisms did, for the `all` group."""
    return summary_rows(run)[1]


def _mechanism_rows(decls, cols: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    a = cols["group"] == "all"
    if not a.any():
        return []
    order = np.argsort(cols["day"][a], kind="stable")
    col = {k: v[a][order] for k, v in cols.items()}
    rows: list[tuple[str, str]] = []
    for d in decls:
        if d.name not in col:
            continue
        v = col[d.name]
        unit = f" {d.unit}" if d.unit in ("yuan", "points") else ""
        if d.kind in ("count", "sum"):
            rows.append((f"{d.name} (total)", f"{float(np.nansum(v)):,.0f}{unit}"))
        elif d.kind == "stock":
            rows.append((f"{d.name} (last day)", f"{int(v[-1]):,}"))
        elif d.kind == "mean":
            if d.weight and d.weight in col:
                w = col[d.weight].astype(float)
                value = float((np.nan_to_num(v.astype(float)) * w).sum() / max(float(w.sum()), 1.0))
                rows.append((f"{d.name} (mean over {d.weight})", f"{value:.3f}"))
            elif not math.isnan(float(v[-1])):
                rows.append((f"{d.name} (last day)", f"{float(v[-1]):.3f}"))
    return rows
