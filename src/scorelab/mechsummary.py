"""What a run's mechanisms did, in a few lines for the command line's summary, read from the declarations.

Each active mechanism declares its metrics (plugins/, engine/outputs.py Metric): counts and sums are
totalled over the run, stocks shown on the last day, means weighted by their declared weight (or the last
day's value). The kernel's blacklist stocks are shown too.
"""

from __future__ import annotations

import math

from .engine.outputs import core_metrics


def mechanism_rows(run) -> list[tuple[str, str]]:
    """(label, value) rows for the `all` group."""
    m = run.metrics
    a = m[m.group == "all"]
    if a.empty:
        return []
    P = run.params
    decls = [d for d in core_metrics(P) if d.name.startswith("listed_")] + list(P.plugin_metrics)
    last = a.iloc[-1]
    rows: list[tuple[str, str]] = []
    for d in decls:
        if d.name not in a:
            continue
        unit = f" {d.unit}" if d.unit in ("yuan", "points") else ""
        if d.kind in ("count", "sum"):
            rows.append((f"{d.name} (total)", f"{float(a[d.name].sum()):,.0f}{unit}"))
        elif d.kind == "stock":
            rows.append((f"{d.name} (last day)", f"{int(last[d.name]):,}"))
        elif d.kind == "mean":
            if d.weight and d.weight in a:
                w = a[d.weight]
                value = float((a[d.name].fillna(0) * w).sum() / max(float(w.sum()), 1.0))
                rows.append((f"{d.name} (mean over {d.weight})", f"{value:.3f}"))
            elif not math.isnan(float(last[d.name])):
                rows.append((f"{d.name} (last day)", f"{float(last[d.name]):.3f}"))
    return rows
