"""The figures page (plotly, works offline) and the summary of `scorelab replicate liu2018`."""

from __future__ import annotations

import html
import math

COLOURS = {"max_profit": "#1f77b4", "demographic_parity": "#d62728", "equal_opportunity": "#2ca02c"}
DASH = {"white": "solid", "black": "dash"}


def _label(policy: str) -> str:
    return policy.replace("_", " ")


def figures_html(outcomes, curves, dyn, meta) -> str:
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs
    from plotly.subplots import make_subplots

    parts = []
    fig = make_subplots(rows=1, cols=len(curves), subplot_titles=[f"group {g}" for g in curves])
    for col, (g, c) in enumerate(curves.items(), start=1):
        fig.add_trace(go.Scatter(x=c.selection, y=c.delta_mu, mode="lines", name="outcome curve (expected)",
                                 line=dict(color="#555"), showlegend=(col == 1),
                                 customdata=c.threshold, hovertemplate="threshold %{customdata}<br>selection %{x:.3f}"
                                 "<br>Δμ %{y:.2f}<extra></extra>"), row=1, col=col)
        for o in (o for o in outcomes if o.group == g):
            fig.add_trace(go.Scatter(x=[o.selection_rate], y=[o.delta_mu], mode="markers", name=_label(o.policy),
                                     legendgroup=o.policy, showlegend=(col == 1),
                                     error_y=dict(type="data", array=[1.96 * o.delta_mu_se]),
                                     marker=dict(size=11, color=COLOURS[o.policy]),
                                     hovertemplate=f"{_label(o.policy)}: threshold {o.threshold}<br>simulated selection "
                                     "%{x:.3f}, Δμ %{y:.2f}<extra></extra>"), row=1, col=col)
        fig.add_hline(y=0, line=dict(color="#999", width=1), row=1, col=col)
        fig.update_xaxes(title_text="selection rate (share of the group given a loan)", range=[0, 1], row=1, col=col)
        fig.update_yaxes(title_text="Δμ: mean score change of the group", row=1, col=col)
    fig.update_layout(template="plotly_white", height=460, margin=dict(l=60, r=20, t=80, b=50),
                      title=f"Outcome curves, loss {meta['loss']:g} per default (+1 per repaid loan): line = exact "
                            f"expectation, markers = engine ({meta['population']:,} citizens, bars 95%)")
    parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    if dyn:
        fig = make_subplots(rows=1, cols=2, subplot_titles=["mean score per group", "credit gap (white − black)"])
        for policy in COLOURS:
            for g in DASH:
                pts = [r for r in dyn if r["policy"] == policy and r["group"] == g]
                fig.add_trace(go.Scatter(x=[r["step"] for r in pts], y=[r["mean_score"] for r in pts], mode="lines",
                                         name=f"{_label(policy)} · {g}", line=dict(color=COLOURS[policy], dash=DASH[g])),
                              row=1, col=1)
            w = {r["step"]: r["mean_score"] for r in dyn if r["policy"] == policy and r["group"] == "white"}
            b = {r["step"]: r["mean_score"] for r in dyn if r["policy"] == policy and r["group"] == "black"}
            steps = sorted(w)
            fig.add_trace(go.Scatter(x=steps, y=[w[s] - b[s] for s in steps], mode="lines", name=f"gap · {_label(policy)}",
                                     line=dict(color=COLOURS[policy])), row=1, col=2)
        fig.update_xaxes(title_text="loan cycle")
        fig.update_layout(template="plotly_white", height=460, margin=dict(l=60, r=20, t=80, b=50),
                          title=f"Dynamics: {meta['steps']} loan cycles, thresholds held at each policy's one-step values")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    rows = "".join(f"<tr><td>{_label(o.policy)}</td><td>{o.group}</td><td>{o.threshold}</td><td>{o.selection_rate:.3f}</td>"
                   f"<td>{o.selection_rate_expected:.3f}</td><td>{o.delta_mu:+.2f} ± {1.96 * o.delta_mu_se:.2f}</td>"
                   f"<td>{o.delta_mu_expected:+.2f}</td></tr>" for o in outcomes)
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>scorelab: Liu et al. 2018 replicated</title>"
            f"<script>{get_plotlyjs()}</script><style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}"
            "td,th{padding:3px 10px;text-align:right}th{border-bottom:1px solid #999}</style></head><body>"
            "<h1>Delayed impact of fair machine learning (Liu et al., ICML 2018), through the scorelab engine</h1>"
            f"<p>{html.escape(meta['note'])}</p><table><tr><th>policy</th><th>group</th><th>threshold</th>"
            "<th>selection (engine)</th><th>selection (expected)</th><th>Δμ (engine, 95%)</th><th>Δμ (expected)</th></tr>"
            f"{rows}</table>{''.join(parts)}</body></html>")


def summary_md(outcomes, dyn, meta) -> str:
    lines = [f"# Liu et al. (2018) through the engine: loss {meta['loss']:g}, {meta['population']:,} citizens, seed {meta['seed']}",
             "", meta["note"], "",
             "| policy | group | threshold | selection rate | expected | delta_mu (95%) | expected |",
             "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.policy} | {o.group} | {o.threshold} | {o.selection_rate:.4f} | {o.selection_rate_expected:.4f} "
                     f"| {o.delta_mu:+.2f} ± {1.96 * o.delta_mu_se:.2f} | {o.delta_mu_expected:+.2f} |")
    black = {o.policy: o for o in outcomes if o.group == "black"}
    if len(black) == 3:
        mp = black["max_profit"].delta_mu
        lines += ["", "For the black group, against max profit (the paper's regimes: active harm = Δμ < 0; relative "
                  "harm / improvement = below / above max profit's Δμ):"]
        for p in ("demographic_parity", "equal_opportunity"):
            d = black[p].delta_mu
            regime = "active harm" if d < 0 else ("relative improvement" if d > mp else "relative harm")
            lines.append(f"- {p}: Δμ {d:+.2f} vs max profit {mp:+.2f}: **{regime}**")
    if dyn:
        last = max(r["step"] for r in dyn)
        by = {(r["policy"], r["step"], r["group"]): r["mean_score"] for r in dyn}
        lines += ["", f"Dynamics ({last} cycles, thresholds fixed): credit gap white − black, start → end:"]
        for p in COLOURS:
            g0 = by[(p, 0, "white")] - by[(p, 0, "black")]
            g1 = by[(p, last, "white")] - by[(p, last, "black")]
            lines.append(f"- {p}: {g0:.1f} → {g1:.1f}" + ("" if math.isfinite(g1) else " (not finite)"))
    return "\n".join(lines) + "\n"
