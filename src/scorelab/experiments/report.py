"""The comparison report: one offline HTML file (plotly's JavaScript inlined once, user text escaped)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .stats import Paired
from .summary import DESCRIPTIONS, HEADLINE

if TYPE_CHECKING:
    from .compare import Comparison

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #eee;padding:.25rem .6rem;text-align:right}th{background:#f6f6f6}
td.l,th.l{text-align:left}.sig{font-weight:600}.up{color:#b00}.down{color:#05a}.muted{color:#777}
.note{background:#f8f8f0;border-left:3px solid #cc9;padding:.5rem 1rem;font-size:.9rem}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.1f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.4g}"


def _ci(p: Paired) -> str:
    if p.n < 2:
        return '<span class="muted">needs ≥ 2 replicates</span>'
    return f"[{_num(p.ci_low)}, {_num(p.ci_high)}]"


def _arm_table(label: str, base: str, res: dict[str, Paired]) -> str:
    rows = []
    for key, p in res.items():
        metric, _, group = key.rpartition(".")
        cls = "sig" + (" up" if p.diff_mean > 0 else " down") if p.excludes_zero else ""
        rows.append(
            f"<tr><td class=l title=\"{_e(DESCRIPTIONS.get(metric, ''))}\">{_e(metric or key)}</td><td class=l>{_e(group)}</td>"
            f"<td>{_num(p.baseline_mean)}</td><td>{_num(p.arm_mean)}</td><td class=\"{cls}\">{_num(p.diff_mean)}</td>"
            f"<td>{_ci(p)}</td><td>{p.n}</td></tr>")
    conf = next(iter(res.values())).confidence if res else 0.95
    return (f"<table><tr><th class=l>metric</th><th class=l>group</th><th>{_e(base)} (mean)</th>"
            f"<th>{_e(label)} (mean)</th><th>difference</th><th>{conf:.0%} CI</th><th>n</th></tr>"
            + "".join(rows) + "</table>")


def _plots(cmp: "Comparison") -> list[str]:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        return ['<p class=note>Plots need plotly (pip install "scorelab[report]"); the tables above are complete.</p>']
    out = []
    base = cmp.labels[0]
    # paired differences with their intervals, headline metrics
    heads = [m for m in HEADLINE if any(k.rpartition(".")[0] == m for r in cmp.results.values() for k in r)]
    if heads and cmp.results:
        ncol = min(4, len(heads))
        nrow = (len(heads) + ncol - 1) // ncol
        fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=[h.replace("_", " ") for h in heads],
                            vertical_spacing=0.5 / max(nrow, 1) if nrow > 1 else 0.1)
        for j0, metric in enumerate(heads):
            j, row, col = j0 + 1, j0 // ncol + 1, j0 % ncol + 1
            for i, (label, res) in enumerate(cmp.results.items()):
                items = [(k.rpartition(".")[2], p) for k, p in res.items() if k.rpartition(".")[0] == metric]
                y = [p.diff_mean for _, p in items]
                err_hi = [(p.ci_high - p.diff_mean) if p.has_ci else 0 for _, p in items]
                err_lo = [(p.diff_mean - p.ci_low) if p.has_ci else 0 for _, p in items]
                fig.add_trace(go.Scatter(x=[g for g, _ in items], y=y, mode="markers", name=f"{label} − {base}",
                                         legendgroup=label, showlegend=(j == 1),
                                         error_y=dict(type="data", symmetric=False, array=err_hi, arrayminus=err_lo),
                                         marker=dict(size=9, color=_colour(i))), row=row, col=col)
            fig.add_hline(y=0, line=dict(color="#999", width=1), row=row, col=col)
        fig.update_layout(height=120 + 260 * nrow, margin=dict(l=40, r=20, t=70, b=40),
                          title=f"paired differences against {base} (markers: mean; bars: CI)")
        out.append(fig.to_html(full_html=False, include_plotlyjs=False))
    # the daily course of mean score and restricted share, mean over replicates, per arm
    frames = []
    for t_label in cmp.labels:
        for r in range(cmp.plan["replicates"]):
            p = cmp.root / "runs" / f"policy={t_label}" / f"replicate={r}" / "metrics.parquet"
            if p.is_file():
                m = pd.read_parquet(p, columns=["day", "group", "mean_score", "restricted_share", "criticism"])
                m["group"] = m["group"].astype(str)
                m["policy"] = t_label
                frames.append(m)
    if frames:
        m = pd.concat(frames).groupby(["policy", "group", "day"], as_index=False).mean(numeric_only=True)
        groups = list(dict.fromkeys(m["group"]))
        fig = make_subplots(rows=1, cols=2, subplot_titles=["mean score", "restricted share"])
        for i, label in enumerate(cmp.labels):
            for g in groups:
                s = m[(m["policy"] == label) & (m["group"] == g)]
                dash = "solid" if g == "all" else ("dot" if groups.index(g) % 2 else "dash")
                for col, name in ((1, "mean_score"), (2, "restricted_share")):
                    fig.add_trace(go.Scatter(x=s["day"], y=s[name], mode="lines", name=f"{label} · {g}",
                                             legendgroup=f"{label}{g}", showlegend=(col == 1),
                                             line=dict(color=_colour(i), dash=dash)), row=1, col=col)
        fig.update_layout(height=400, margin=dict(l=40, r=20, t=50, b=40),
                          title="by day, mean over replicates")
        out.append(fig.to_html(full_html=False, include_plotlyjs=False))
    return out


def _colour(i: int) -> str:
    return ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"][i % 8]


def write_report(cmp: "Comparison", path: Path) -> None:
    p = cmp.plan
    base = cmp.labels[0]
    arms = "".join(
        f"<tr><td class=l>{_e(a['label'])}</td><td class=l>{_e(a['kind'])}</td><td class=l>{_e(a['source'])}</td>"
        f"<td class=l>{_e(a['scenario']['policy']['name'])}</td><td>{len(a['scenario']['policy']['rules'])}</td></tr>"
        for a in p["arms"])
    n_ok = len({(r.policy, r.replicate) for r in cmp.summaries.itertuples()}) if not cmp.summaries.empty else 0
    failed = "".join(f"<li>{_e(f.rel)}: {_e(f.error)}</li>" for f in cmp.report.failed)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>scorelab comparison: {_e(' vs '.join(cmp.labels))}</title><style>{CSS}</style>",
    ]
    plots = _plots(cmp)
    if any("plotly" in x for x in plots):
        from plotly.offline import get_plotlyjs

        parts.append(f"<script>{get_plotlyjs()}</script>")
    parts += [
        "</head><body>",
        f"<h1>Comparison: {_e(' vs '.join(cmp.labels))}</h1>",
        f"<p>{p['population']:,} synthetic citizens, {p['days']} days, {p['replicates']} replicate(s); "
        f"replicate <i>r</i> uses the same seed in every arm (common random numbers). Baseline: <b>{_e(base)}</b>. "
        f"{n_ok} of {len(cmp.labels) * p['replicates']} runs finished.</p>",
        "<table><tr><th class=l>arm</th><th class=l>kind</th><th class=l>source</th><th class=l>policy</th><th>rules</th></tr>"
        + arms + "</table>",
    ]
    if failed:
        parts.append(f"<div class=note><b>Failed runs</b> (their replicates are left out of the pairs):<ul>{failed}</ul></div>")
    if p["replicates"] < 2:
        parts.append("<p class=note>One replicate: differences are shown, but a confidence interval needs at least 2 "
                     "replicates.</p>")
    parts += plots
    for label, res in cmp.results.items():
        parts.append(f"<h2>{_e(label)} − {_e(base)}</h2>")
        parts.append("<p class=muted>Paired difference over replicates (arm minus baseline), Student-t interval; "
                     "bold: the interval excludes 0 (red: higher, blue: lower).</p>")
        parts.append(_arm_table(label, base, res))
    parts.append(f"<p class=muted>scorelab {_e(p['scorelab'])} · seeds {_e(', '.join(map(str, p['seeds'])))} · "
                 "tables: summaries.parquet, comparison.json; query the runs with <code>scorelab query</code>.</p>")
    parts.append("</body></html>")
    from ..atomic import write_text_atomic

    write_text_atomic(path, "\n".join(parts))
