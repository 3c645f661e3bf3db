"""What a preset's mechanisms did in a run, in a few lines for the command line's summary."""

from __future__ import annotations

FLOWS = ("money_collected", "blocked_", "removed_", "extended_", "capped", "review_caught", "contest_dropped",
         "reversed_", "interactions")
STOCKS = ("listed_", "reached_", "privileged_")
MEANS = ("fakeness", "stars_given", "stars_honest")


def mechanism_rows(run) -> list[tuple[str, str]]:
    """(label, value) rows for the `all` group: totals of flows, last-day stocks, interaction-weighted means."""
    m = run.metrics
    a = m[m.group == "all"]
    if a.empty:
        return []
    rows: list[tuple[str, str]] = []
    last = a.iloc[-1]
    for col in a.columns:
        if col.startswith(FLOWS):
            total = float(a[col].sum())
            unit = " yuan" if col == "money_collected" else ""
            rows.append((f"{col} (total)", f"{total:,.0f}{unit}"))
        elif col.startswith(STOCKS):
            rows.append((f"{col} (last day)", f"{int(last[col]):,}"))
        elif col in MEANS and "interactions" in a:
            w = a["interactions"]
            mean = float((a[col].fillna(0) * w).sum() / max(float(w.sum()), 1.0))
            rows.append((f"{col} (mean over interactions)", f"{mean:.3f}"))
    return rows
