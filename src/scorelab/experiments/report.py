"""The comparison report: one offline HTML file (plotly's JavaScript inlined once, user text escaped)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..glossary import TERMS, glossary_html, metric_label
from .stats import Paired
from .summary import HEADLINE

if TYPE_CHECKING:
    from .compare import Comparison

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #eee;padding:.25rem .6rem;text-align:right;white-space:nowrap}td.l{white-space:normal}th{background:#f6f6f6}
td.l,th.l{text-align:left}.sig{font-weight:600}.up{color:#b00}.down{color:#05a}.muted{color:#777}
.note{background:#f8f8f0;border-left:3px solid #cc9;padding:.5rem 1rem;font-size:.9rem}
ul.inwords li{margin:.25rem 0} code.muted{font-size:.75rem} tr.more td{border-bottom:1px solid #f4f4f4} tr.first td{border-top:1px solid #ccc} a.csv{font-size:.8rem} details{margin:.3rem 0 .6rem;font-size:.9rem}
dl.glossary{display:grid;grid-template-columns:minmax(180px,max-content) 1fr;gap:.25em 1em;font-size:.9em}
dl.glossary dt{font-weight:600} dl.glossary dd{margin:0;color:#333}
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


ONE_REPLICATE_THRESHOLD = 0.01  # with no interval, a difference counts as a move at 1% of the baseline


def moved(p: Paired) -> bool:
    """Did the metric move beyond noise? With replicates: the interval excludes 0. With one replicate
    (no interval): the difference is at least 1% of the baseline's size (not a test; the report says so)."""
    if p.n == 0 or math.isnan(p.diff_mean) or p.diff_mean == 0:
        return False
    if p.has_ci:
        return p.excludes_zero
    if p.n >= 2:  # identical replicates: a sd of 0 gives a zero-width interval
        return p.diff_mean != 0
    return abs(p.diff_mean) >= ONE_REPLICATE_THRESHOLD * max(abs(p.baseline_mean), 1e-12)


def _split(key: str) -> tuple[str, str]:
    metric, _, group = key.rpartition(".")
    return (metric or key), group


def is_share(metric: str) -> bool:
    return (metric.endswith(("_share", "_rate")) or metric.startswith("share_") or metric in
            ("innocent_among_restricted", "bought_share_of_points_awarded", "speech_fall_share"))


def _val(v: float, pct: bool) -> str:
    if pct and v is not None and not (isinstance(v, float) and math.isnan(v)):
        return f"{v:.3%}" if abs(v) < 0.1 else f"{v:.2%}"
    return _num(v)


def _arm_table(label: str, base: str, res: dict[str, Paired], used: dict[str, str]) -> str:
    by: dict[str, list[tuple[str, Paired]]] = {}
    for key, p in res.items():
        if moved(p):
            metric, group = _split(key)
            by.setdefault(metric, []).append((group, p))
    if not by:
        return "<p>No metric moved beyond noise.</p>"
    rows = []
    for metric, items in by.items():
        name, meaning = metric_label(metric)
        used[name] = meaning
        pct = is_share(metric)
        for i, (group, p) in enumerate(items):
            cls = "sig" + (" up" if p.diff_mean > 0 else " down")
            head = (f"<td class=l rowspan={len(items)}><b>{_e(name)}</b> <code class=muted>{_e(metric)}</code><br>"
                    f"<span class=muted>{_e(meaning)}</span></td>") if i == 0 else ""
            ci = (f"[{_val(p.ci_low, pct)}, {_val(p.ci_high, pct)}]" if p.has_ci else _ci(p))
            rows.append(f"<tr class={'first' if i == 0 else 'more'}>{head}<td class=l>{_e(group)}</td>"
                        f"<td>{_val(p.baseline_mean, pct)}</td><td>{_val(p.arm_mean, pct)}</td>"
                        f"<td class=\"{cls}\">{_val(p.diff_mean, pct)}</td><td>{ci}</td><td>{p.n}</td></tr>")
    conf = next(iter(res.values())).confidence if res else 0.95
    used[f"{conf:.0%} CI"] = f"{conf:.0%} confidence interval of the difference (Student t over the paired replicates)"
    for arm in (base, label):
        used[f"{arm} (mean)"] = f"the metric's mean over the replicates of {arm}"
    return (f"<table><tr><th class=l>metric</th><th class=l>group</th><th>{_e(base)} (mean)</th>"
            f"<th>{_e(label)} (mean)</th><th>difference</th><th>{conf:.0%} CI</th><th>replicates</th></tr>"
            + "".join(rows) + "</table>")


def _in_words(label: str, base: str, res: dict[str, Paired]) -> str:
    """The headline metrics that moved, one line each: the label, then each moved group's before → after."""
    items = []
    for metric in HEADLINE:
        moves = [(g, p) for g, p in ((_split(k)[1], p) for k, p in res.items() if _split(k)[0] == metric) if moved(p)]
        if not moves:
            continue
        name, meaning = metric_label(metric)
        pct = is_share(metric)
        bits = "; ".join(f"{'everyone' if g == 'all' else _e(g)} {_val(p.baseline_mean, pct)} → {_val(p.arm_mean, pct)}"
                         for g, p in moves)
        items.append(f"<li><b>{_e(name)}</b> ({_e(meaning)}): {bits}</li>")
    if not items:
        return f"<p>None of the headline metrics moved beyond noise from {_e(base)} to {_e(label)}.</p>"
    return (f"<p>From <b>{_e(base)}</b> to <b>{_e(label)}</b>, the headline metrics that moved (mean over "
            f"replicates, {_e(base)} → {_e(label)}):</p><ul class=inwords>" + "".join(items) + "</ul>")


def _unmoved(res: dict[str, Paired]) -> str:
    still = sorted({metric_label(_split(k)[0])[0] for k, p in res.items() if not moved(p)})
    if not still:
        return ""
    return (f"<details><summary>{len([1 for p in res.values() if not moved(p)])} metric × group pairs did not move "
            f"beyond noise ({len(still)} metrics)</summary><p class=muted>{_e(', '.join(still))}</p></details>")


def _plots(cmp: "Comparison") -> list[str]:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        return ['<p class=note>Plots need plotly (pip install "scorelab[report]"); the tables above are complete.</p>']
    out = []
    base = cmp.labels[0]
    # paired differences with their intervals, for the headline metrics that moved in some arm and group
    heads = [m for m in HEADLINE if any(_split(k)[0] == m and moved(p) for r in cmp.results.values() for k, p in r.items())]
    if heads and cmp.results:
        ncol = min(3, len(heads))
        nrow = (len(heads) + ncol - 1) // ncol
        fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=[metric_label(h)[0] for h in heads],
                            vertical_spacing=min(0.35 / max(nrow, 1), 0.18) if nrow > 1 else 0.1)
        for j0, metric in enumerate(heads):
            j, row, col = j0 + 1, j0 // ncol + 1, j0 % ncol + 1
            for i, (label, res) in enumerate(cmp.results.items()):
                items = [(_split(k)[1], p) for k, p in res.items() if _split(k)[0] == metric]
                y = [p.diff_mean for _, p in items]
                err_hi = [(p.ci_high - p.diff_mean) if p.has_ci else 0 for _, p in items]
                err_lo = [(p.diff_mean - p.ci_low) if p.has_ci else 0 for _, p in items]
                fig.add_trace(go.Scatter(x=[g for g, _ in items], y=y, mode="markers", name=f"{label} − {base}",
                                         legendgroup=label, showlegend=(j == 1),
                                         error_y=dict(type="data", symmetric=False, array=err_hi, arrayminus=err_lo),
                                         marker=dict(size=9, color=_colour(i))), row=row, col=col)
            fig.add_hline(y=0, line=dict(color="#999", width=1), row=row, col=col)
            if is_share(metric):
                fig.update_yaxes(tickformat="~%", row=row, col=col)
        fig.update_layout(height=120 + 250 * nrow, margin=dict(l=60, r=20, t=80, b=40), template="plotly_white",
                          title=f"what moved: paired differences against {base} (markers: mean; bars: CI; 0: no change)")
        out.append(fig.to_html(full_html=False, include_plotlyjs=False))
    # the daily course of mean score and restricted share, mean over replicates, per arm (flat-zero panels left out)
    frames = []
    for t_label in cmp.labels:
        for r in range(cmp.plan["replicates"]):
            p = cmp.root / "runs" / f"policy={t_label}" / f"replicate={r}" / "metrics.parquet"
            if p.is_file():
                m = pd.read_parquet(p, columns=["day", "group", "mean_score", "restricted_share"])
                m["group"] = m["group"].astype(str)
                m["policy"] = t_label
                frames.append(m)
    if frames:
        m = pd.concat(frames).groupby(["policy", "group", "day"], as_index=False).mean(numeric_only=True)
        groups = list(dict.fromkeys(m["group"]))
        panels = [(n, t) for n, t in (("mean_score", "mean score"), ("restricted_share", "share restricted"))
                  if m[n].abs().max() > 0 and m[n].nunique() > 1]
        if panels:
            fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
            for i, label in enumerate(cmp.labels):
                for g in groups:
                    s = m[(m["policy"] == label) & (m["group"] == g)]
                    dash = "solid" if g == "all" else ("dot" if groups.index(g) % 2 else "dash")
                    for col, (name, _) in enumerate(panels, start=1):
                        fig.add_trace(go.Scatter(x=s["day"], y=s[name], mode="lines", name=f"{label} · {g}",
                                                 legendgroup=f"{label}{g}", showlegend=(col == 1),
                                                 line=dict(color=_colour(i), dash=dash)), row=1, col=col)
            for col, (name, _) in enumerate(panels, start=1):
                if name == "mean_score":
                    start = float(cmp.plan["arms"][0]["scenario"]["policy"].get("start_score", m[name].max()))
                    lo, hi = float(m[name].min()), float(m[name].max())
                    bottom, top = min(lo, start - 0.1 * max(abs(start), 1.0)), max(hi, start)
                    pad = 0.05 * max(top - bottom, 1e-9)
                    fig.update_yaxes(range=[bottom - pad, top + pad], row=1, col=col)
                else:
                    fig.update_yaxes(rangemode="tozero", tickformat="~%", row=1, col=col)
                fig.update_xaxes(title_text="day", row=1, col=col)
            fig.update_layout(height=420, margin=dict(l=60, r=20, t=60, b=40), template="plotly_white",
                              title="by day, mean over replicates (the mean-score axis reaches 10% below the start score)")
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
        parts.append(f"<p class=note>One replicate: no confidence interval (it needs at least 2 replicates), so noise "
                     f"cannot be told from an effect. Shown: differences of at least {ONE_REPLICATE_THRESHOLD:.0%} of "
                     "the baseline.</p>")
    else:
        parts.append("<p class=note>Shown: only the metrics that moved beyond noise, i.e. whose paired "
                     f"{next(iter(next(iter(cmp.results.values())).values())).confidence:.0%} confidence interval "
                     "excludes 0. The others are listed, folded, under each table; every metric is in the CSV and in "
                     "comparison.json.</p>" if cmp.results and any(cmp.results.values()) else "")
    for label, res in cmp.results.items():
        parts.append(_in_words(label, base, res))
    parts += plots
    used: dict[str, str] = {k: TERMS[k] for k in ("metric", "group", "difference", "replicates", "baseline", "arm",
                                                  "rules", "policy")}
    used["kind"] = "what an arm is: a preset, a scenario file, or a policy file applied to the base scenario"
    used["source"] = "what was named on the command line for the arm"
    from ..audit.report import csv_link

    for label, res in cmp.results.items():
        parts.append(f"<h2>{_e(label)} − {_e(base)}: what moved</h2>")
        parts.append("<p class=muted>Paired difference over replicates (arm minus baseline, the same seeds), "
                     "Student-t interval; red: higher, blue: lower.</p>")
        parts.append(_arm_table(label, base, res, used))
        parts.append(_unmoved(res))
        rows = [{"metric": _split(k)[0], "label": metric_label(_split(k)[0])[0], "group": _split(k)[1],
                 "moved": moved(q), "baseline": q.baseline_mean, "arm": q.arm_mean, "difference": q.diff_mean,
                 "ci_low": q.ci_low, "ci_high": q.ci_high, "replicates": q.n} for k, q in res.items()]
        parts.append(csv_link(pd.DataFrame(rows), f"{label}-minus-{base}"))
    parts.append(glossary_html(used))
    parts.append(f"<p class=muted>scorelab {_e(p['scorelab'])} · seeds {_e(', '.join(map(str, p['seeds'])))} · "
                 "tables: summaries.parquet, comparison.json; query the runs with <code>scorelab query</code>.</p>")
    parts.append("</body></html>")
    from ..atomic import write_text_atomic

    write_text_atomic(path, "\n".join(parts))
