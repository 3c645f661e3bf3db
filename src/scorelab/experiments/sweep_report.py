"""The sweep report: ``SWEEPDIR/report.html``, one offline page (plotly's JavaScript inlined once, user text
escaped).

For each swept parameter, the headline harm metrics of every group against the parameter's value: each
point is the mean over the finished runs at that value (the replicates, and the other parameters' values
if there are several, which the page says), with a Student-t interval over those runs. A metric is drawn
when it moves beyond noise: the paired difference between its highest and lowest value (same seeds, so
common random numbers) has an interval that excludes 0; the others are listed, not drawn. Every figure's table can be downloaded as CSV.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..glossary import TERMS, glossary_html, metric_label
from .report import CSS, _colour, is_share
from .stats import mean_ci, paired

# the harms a sweep is usually run to move, in the order they are shown
HARMS = ["wrongful_penalties_per_100k", "share_wrongfully_penalised", "false_positive_rate", "wrongful_sanctioned_share",
         "ever_restricted_share", "disparate_impact", "speech_fall_share", "final_restricted_share", "final_mean_score"]
REPORT = "report.html"


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: float, pct: bool) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    if pct:
        return f"{v:.3%}" if abs(v) < 0.1 else f"{v:.2%}"
    a = abs(v)
    return f"{v:,.1f}" if a >= 1000 else (f"{v:.3f}" if a >= 1 else f"{v:.4g}")


def sweep_table(summ: pd.DataFrame, column: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per value of ``column``, metric and group: mean over runs, t interval, number of runs."""
    rows = []
    for (value, metric, group), d in summ.groupby([column, "metric", "group"], sort=True):
        mean, lo, hi, n = mean_ci(d["value"].to_numpy(), confidence)
        rows.append({column: value, "metric": metric, "group": group, "mean": mean, "ci_low": lo, "ci_high": hi, "runs": n})
    return pd.DataFrame(rows)


def _varies(runs: pd.DataFrame, column: str, others: list[str], confidence: float = 0.95) -> bool:
    """Does the metric change across the sweep beyond noise? In some group, the values of ``column`` with the
    highest and the lowest mean differ with a paired interval (pairs: the same replicate and the same other
    parameters, so the same seeds: common random numbers) that excludes 0; with one run per value, by at
    least 1% of the larger mean."""
    for _, d in runs.groupby("group"):
        wide = d.pivot_table(index=["replicate", *others], columns=column, values="value", aggfunc="first")
        means = wide.mean()
        means = means[np.isfinite(means)]
        if len(means) < 2 or means.max() == means.min():
            continue
        hi, lo = wide[means.idxmax()].to_numpy(), wide[means.idxmin()].to_numpy()
        p = paired(lo, hi, confidence)
        if p.n >= 2:
            if p.excludes_zero or (p.diff_sd == 0 and p.diff_mean != 0):
                return True
        elif abs(means.max() - means.min()) >= 0.01 * max(abs(means.max()), abs(means.min())):
            return True
    return False


def build_sweep_report(out: str | Path, progress: Callable[[str], None] | None = None,
                       confidence: float = 0.95) -> Path:
    """Write ``out/report.html`` for a sweep directory; returns its path."""
    from ..audit.report import csv_link
    from ..config.loader import ConfigError
    from .execute import is_done
    from .sweep import load_plan, tasks_of, write_summaries

    say = progress or (lambda _s: None)
    out = Path(out)
    plan = load_plan(out)
    path = out / "summaries.parquet"
    if not path.is_file():
        say("summarising the runs")
        write_summaries(out, tasks_of(plan))
    if not path.is_file():
        raise ConfigError(str(out), None, "no finished run in this sweep yet: nothing to report")
    say("reading the summaries")
    summ = pd.read_parquet(path)
    columns = plan["parameters"]  # column name -> dotted path
    tasks = tasks_of(plan)
    done = sum(is_done(out, t.rel) for t in tasks)
    groups = [g["name"] for g in plan["base_scenario"]["groups"]] + ["all"]
    spec = plan["spec"]
    metrics = [m for m in HARMS if m in set(summ["metric"])]

    parts = [f"<h1>Sweep: {_e(Path(plan.get('sweep_file', out)).name)}</h1>",
             f"<p>Base scenario <b>{_e(spec.get('base'))}</b>, {plan['base_scenario']['scenario']['population']:,} "
             f"synthetic citizens, {plan['base_scenario']['scenario']['days']} days; {len(plan['points'])} parameter "
             f"point(s) × {plan['replicates']} replicate(s); {done} of {len(tasks)} runs finished. Replicate <i>r</i> "
             "uses the same seed at every point (common random numbers).</p>"]
    rows = "".join(f"<tr><td class=l><b>{_e(c)}</b></td><td class=l><code>{_e(p)}</code></td>"
                   f"<td class=l>{_e(', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in _order({pt[c] for pt in plan['points']})))}</td></tr>"
                   for c, p in columns.items())
    parts.append("<table><tr><th class=l>parameter</th><th class=l>scenario path</th><th class=l>values</th></tr>"
                 + rows + "</table>")
    used: dict[str, str] = {"parameter": "a value of the scenario the sweep changes (its column name in the results)",
                            "scenario path": "where the parameter lives in the scenario (the dotted paths of docs/experiments.md)",
                            "values": "the values the sweep runs", "group": TERMS["group"],
                            f"{confidence:.0%} CI": f"{confidence:.0%} confidence interval of the mean (Student t over the runs at that value)",
                            "runs": TERMS["runs"]}
    figures = []
    say("drawing the figures")
    for column, dotted in columns.items():
        parts.append(f"<h2>{_e(column)}</h2><p class=muted>{_e(dotted)}</p>")
        used[column] = f"the swept parameter: the scenario's {dotted}"
        others = [c for c in columns if c != column]
        if others:
            parts.append(f"<p class=note>Each point averages the runs at this value of {_e(column)} over every value of "
                         f"{_e(', '.join(others))} and every replicate; the interval is over those runs.</p>")
        elif plan["replicates"] < 2:
            parts.append("<p class=note>One replicate: no interval (it needs at least 2 runs per value).</p>")
        sub = summ[summ["metric"].isin(metrics)]
        table = sweep_table(sub, column, confidence)
        shown = [m for m in metrics if _varies(sub[sub["metric"] == m], column, others, confidence)]
        flat = [m for m in metrics if m not in shown]
        numeric = pd.api.types.is_numeric_dtype(table[column]) and not pd.api.types.is_bool_dtype(table[column])
        if shown:
            figures.append(_figure(table, column, shown, groups, numeric))
            parts.append(f"<div id='sweep-plot-{len(figures)}' class=plot></div>")
        else:
            parts.append("<p>No headline harm changed across this parameter's values.</p>")
        if flat:
            parts.append("<p class=muted>Did not change across the sweep: "
                         + _e(", ".join(metric_label(m)[0] for m in flat)) + ".</p>")
        for m in shown:
            used[metric_label(m)[0]] = metric_label(m)[1]
        parts.append(_table_html(table, column, shown, groups))
        parts.append(csv_link(table.assign(label=table["metric"].map(lambda m: metric_label(m)[0])), f"sweep-{column}"))
    parts.append(glossary_html(used))
    say("writing the page")
    return _write(out / REPORT, plan, parts, figures)


def _figure(table: pd.DataFrame, column: str, metrics: list[str], groups: list[str], numeric: bool):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ncol = min(3, len(metrics))
    nrow = (len(metrics) + ncol - 1) // ncol
    fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=[metric_label(m)[0] for m in metrics],
                        vertical_spacing=min(0.35 / max(nrow, 1), 0.18) if nrow > 1 else 0.1)
    xs = _order(table[column].unique())
    log = numeric and len(xs) > 2 and min(xs) > 0 and max(xs) / min(xs) >= 20
    for j, m in enumerate(metrics):
        row, col = j // ncol + 1, j % ncol + 1
        t = table[table["metric"] == m]
        for i, g in enumerate(gr for gr in groups if gr in set(t["group"])):
            s = t[t["group"] == g].set_index(column).reindex(xs)
            up = (s["ci_high"] - s["mean"]).fillna(0).clip(lower=0)
            down = (s["mean"] - s["ci_low"]).fillna(0).clip(lower=0)
            fig.add_trace(go.Scatter(x=[str(x) for x in xs] if not numeric else xs, y=s["mean"], mode="lines+markers",
                                     name=_e(g), legendgroup=g, showlegend=(j == 0),
                                     line=dict(color=_colour(i), dash="dot" if g == "all" else "solid"),
                                     error_y=dict(type="data", symmetric=False, array=up, arrayminus=down)),
                          row=row, col=col)
        fig.update_xaxes(title_text=_e(column), row=row, col=col, type="log" if log else None,
                         tickformat="~g" if numeric else None)
        if m == "final_mean_score":
            lo, hi = float(t["mean"].min()), float(t["mean"].max())
            top = max(hi, lo)
            bottom = min(lo, top - 0.1 * max(abs(top), 1.0))
            fig.update_yaxes(range=[bottom, top + 0.02 * (top - bottom)], row=row, col=col)
        else:
            fig.update_yaxes(rangemode="tozero", row=row, col=col, tickformat=".2%" if is_share(m) else None)
    fig.update_layout(template="plotly_white", height=130 + 270 * nrow, margin=dict(l=60, r=20, t=70, b=50),
                      title=f"headline harms against {_e(column)} (mean over runs; bars: interval)")
    return fig


def _order(values) -> list:
    """Numbers in numeric order, then everything else by its text."""
    vals = list(values)
    nums = sorted(v for v in vals if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool))
    rest = sorted((v for v in vals if v not in nums), key=str)
    return nums + rest


def _table_html(table: pd.DataFrame, column: str, metrics: list[str], groups: list[str]) -> str:
    if not metrics:
        return ""
    head = (f"<tr><th class=l>{_e(column)}</th><th class=l>group</th>"
            + "".join(f"<th title='{_e(metric_label(m)[1])}'>{_e(metric_label(m)[0])}</th>" for m in metrics) + "<th>runs</th></tr>")
    body = []
    t = table.set_index([column, "group", "metric"])
    for x in _order(table[column].unique()):
        for g in groups:
            if (x, g, metrics[0]) not in t.index:
                continue
            cells = []
            n = 0
            for m in metrics:
                if (x, g, m) not in t.index:
                    cells.append("<td>–</td>")
                    continue
                r = t.loc[(x, g, m)]
                pct = is_share(m)
                ci = (f" <span class=muted>[{_fmt(r['ci_low'], pct)}, {_fmt(r['ci_high'], pct)}]</span>"
                      if math.isfinite(r["ci_low"]) else "")
                cells.append(f"<td>{_fmt(r['mean'], pct)}{ci}</td>")
                n = int(r["runs"])
            xv = f"{x:g}" if isinstance(x, (float, np.floating)) else x
            body.append(f"<tr><td class=l>{_e(xv)}</td><td class=l>{_e(g)}</td>{''.join(cells)}<td>{n}</td></tr>")
    return "<table>" + head + "".join(body) + "</table>"


def _write(target: Path, plan: dict, parts: list[str], figures: list) -> Path:
    from plotly.offline import get_plotlyjs

    from ..audit.report import _safe_json

    data = "\n".join(f"var S{i} = {_safe_json(f.to_plotly_json())};\nPlotly.newPlot('sweep-plot-{i + 1}', S{i}.data, "
                     f"S{i}.layout, {{responsive:true,displaylogo:false}});" for i, f in enumerate(figures))
    title = _e(Path(plan.get("sweep_file", target.parent)).name)
    page = ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>scorelab sweep: {title}</title><style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + f"<script>{data}</script></body></html>")
    from ..atomic import write_text_atomic

    write_text_atomic(target, page)  # no .tmp left by a full disk
    return target
