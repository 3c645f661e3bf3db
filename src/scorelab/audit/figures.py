"""The run report's figures (plotly): score distributions, mean score with the restriction threshold,
lines per group, the chilling curve, grade transitions; axes that do not exaggerate."""

from __future__ import annotations


import numpy as np
import pandas as pd

from .metrics import RunData

from .html import e, PALETTE


def _groups(run: RunData) -> list[str]:
    return run.groups + ["all"]


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def fig_distribution(run: RunData):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..rundir import read_table

    dist = read_table(run.path / "distribution.parquet")
    dist["group"] = dist["group"].astype(str)
    days = sorted(dist["day"].unique())
    pick = sorted({days[int(round(i))] for i in np.linspace(0, len(days) - 1, min(4, len(days)))})
    groups = _groups(run)
    fig = make_subplots(rows=1, cols=len(groups), shared_yaxes=True, subplot_titles=[e(g) for g in groups])
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    for j, g in enumerate(groups):
        for k, d in enumerate(pick):
            s = dist[(dist["group"] == g) & (dist["day"] == d)]
            total = s["citizens"].sum()
            x = np.where(s["score_lo"] == lo, s["score_hi"] - 9, s["score_lo"]).astype(float)
            x = np.where(s["score_hi"] == hi, s["score_lo"], x) + 5
            fig.add_trace(go.Scatter(x=x, y=s["citizens"] / max(total, 1), mode="lines+markers", name=f"day {d}",
                                     line=dict(color=_color(k), shape="hvh"), legendgroup=str(d), showlegend=(j == 0)),
                          row=1, col=j + 1)
        fig.update_yaxes(type="log", row=1, col=j + 1, **LOG_SHARE_TICKS)
        fig.update_xaxes(title_text="score", row=1, col=j + 1)
    fig.update_yaxes(title_text="share of citizens (log scale)", row=1, col=1)
    fig.update_layout(title="Score distribution over time, by group", height=400)
    return fig


# a log axis of shares read as percentages (plotly's default would print 100µ for 0.0001)
LOG_SHARE_TICKS = dict(tickvals=[10.0 ** k for k in range(-7, 1)],
                       ticktext=["0.00001%", "0.0001%", "0.001%", "0.01%", "0.1%", "1%", "10%", "100%"])


def restriction_threshold(run: RunData) -> float | None:
    """The highest score at which a grade-based restriction applies (None if no restriction uses grades)."""
    pol = run.scenario.policy
    named = {g for r in pol.restrictions for g in (r.grades or [])}
    tops = [g.max for g in pol.grades if g.name in named and g.max is not None]
    return float(max(tops)) if tops else None


def fig_mean_score(run: RunData):
    """Mean score by group on an axis that does not exaggerate: it reaches down to the score at which
    restrictions start (or 10% below the start score) so a drift of a few points looks like one."""
    fig = fig_lines(run, "mean_score", "Mean score by group", "mean score")
    m = run.metrics
    lo, hi = float(m["mean_score"].min()), float(m["mean_score"].max())
    start = float(run.scenario.policy.start_score)
    thr = restriction_threshold(run)
    floor = thr if thr is not None and thr < start else start - 0.1 * max(abs(start), 1.0)
    bottom, top = min(lo, floor), max(hi, start)
    pad = 0.05 * max(top - bottom, 1e-9)
    fig.update_yaxes(range=[bottom - pad, top + pad])
    if thr is not None and bottom - pad <= thr <= top + pad:
        fig.add_hline(y=thr, line=dict(color="#d62728", dash="dash", width=1),
                      annotation_text=f"restricted at {thr:,.0f} and below", annotation_position="bottom right")
    return fig


def fig_lines(run: RunData, col: str, title: str, ytitle: str, cumulative: bool = False, per: float | None = None,
              pct: bool = False):
    import plotly.graph_objects as go

    m = run.metrics.assign(group=lambda d: d["group"].astype(str))
    fig = go.Figure()
    for i, g in enumerate(_groups(run)):
        s = m[m["group"] == g].sort_values("day")
        y = s[col].to_numpy(dtype=float)
        if cumulative:
            y = np.cumsum(y)
        if per:
            y = y * per / np.maximum(s["population"].to_numpy(dtype=float), 1)
        fig.add_trace(go.Scatter(x=s["day"], y=y, mode="lines", name=e(g), line=dict(color=_color(i), dash="dot" if g == "all" else "solid")))
    fig.update_layout(title=title, xaxis_title="day", yaxis_title=ytitle)
    fig.update_yaxes(rangemode="tozero")  # counts and shares start at 0, so a small change looks small
    if pct:
        fig.update_yaxes(tickformat="~%")
    return fig


def fig_chilling(run: RunData, curve: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["speech per 1,000 citizens per day (7-day mean)",
                                                         "cumulative speech lost to the policy"])
    for i, g in enumerate(_groups(run)):
        s = curve[curve["group"] == g].sort_values("day")
        pop = max(float(s["population"].iloc[0]), 1.0) if len(s) else 1.0
        for col, dash, label in (("run", "solid", "with policy"), ("counterfactual", "dot", "without policy")):
            y = s[col].rolling(7, min_periods=1).mean() * 1000 / pop
            fig.add_trace(go.Scatter(x=s["day"], y=y, mode="lines", name=f"{e(g)}: {label}",
                                     line=dict(color=_color(i), dash=dash), legendgroup=g), row=1, col=1)
        fall = np.cumsum(s["counterfactual"].to_numpy(float) - s["run"].to_numpy(float))
        fig.add_trace(go.Scatter(x=s["day"], y=fall, mode="lines", name=f"{e(g)}: events lost", showlegend=True,
                                 line=dict(color=_color(i)), legendgroup=g), row=1, col=2)
    fig.update_xaxes(title_text="day")
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(title="The chilling effect: true speech with the policy vs the same society without it", height=420)
    return fig


def fig_transitions(run: RunData, tables: dict[str, pd.DataFrame]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["grade at the start → grade at the end (share of row)",
                                                         "grade changes during the run (count)"], horizontal_spacing=0.15)
    for c, (name, norm) in enumerate((("transitions", True), ("grade_changes", False))):
        df = tables[name]
        z = df.to_numpy(dtype=float)
        if norm:
            rs = z.sum(axis=1, keepdims=True)
            z = np.where(rs > 0, z / np.where(rs > 0, rs, 1), np.nan)
        labels = [e(x) for x in df.columns]
        text = [[("" if not np.isfinite(v) else (f"{v:.1%}" if norm else f"{int(v):,}")) for v in row] for row in z]
        fig.add_trace(go.Heatmap(z=z, x=labels, y=[e(x) for x in df.index], text=text, texttemplate="%{text}",
                                 colorscale="Reds", showscale=False, hoverongaps=False), row=1, col=c + 1)
        fig.update_yaxes(title_text="from", autorange="reversed", row=1, col=c + 1)
        fig.update_xaxes(title_text="to", row=1, col=c + 1)
    fig.update_layout(title="Grade transitions", height=430)
    return fig


# ------------------------------------------------------------------ tables
