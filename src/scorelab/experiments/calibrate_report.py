"""The fit report of a calibration: every target beside the best trial's simulation (replicate CIs), the
parameters found, and the search (objective by trial). Markdown (fit.md) and an offline HTML page (fit.html)."""

from __future__ import annotations

import html
import math
from typing import Any


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:,.2f} M"
    if ax >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _rows(fit) -> list[list[str]]:
    out = []
    for r in fit.itertuples():
        ci = f"{_num(r.ci_low)} – {_num(r.ci_high)}" if not math.isnan(r.ci_low) else "(one replicate)"
        out.append([r.target, r.role, f"{r.metric} ({r.group}), {r.when}", _num(r.published), _num(r.uncertainty),
                    _num(r.simulated), ci, f"{r.z:+.2f}"])
    return out


HEAD = ["target", "role", "metric, when", "published", "± uncertainty", "simulated (mean)", "95% CI (replicates)",
        "z"]


def _params(plan: dict[str, Any], best) -> list[list[str]]:
    out = []
    for col, path in plan["parameters"].items():
        p = plan["spec"]["parameters"][path]
        v = best.params[col]
        rng = f"{p['values']}" if p["values"] is not None else f"{p['low']:g} … {p['high']:g}{' (log)' if p['log'] else ''}"
        out.append([path, "× base value" if p["scale"] else "set", rng, f"{v:.6g}" if isinstance(v, float) else repr(v)])
    return out


def build_report(plan: dict[str, Any], fit, trials, best, markdown: bool) -> str:
    spec = plan["spec"]
    base = plan["base_scenario"]["scenario"]
    lines_intro = [
        f"Scenario `{plan['scenario_source']}` ({base['population']:,} citizens, {base['days']} days), "
        f"{spec['replicates']} replicate(s) per trial with the same seeds in every trial (common random numbers), "
        f"{int((trials['state'] == 'COMPLETE').sum())} complete trials ({spec['search']['sampler']} sampler, "
        f"seed {spec['search']['seed']}).",
        f"Counts are multiplied by {plan['scale']:,.6g} (scale_to / population) before they are set beside the "
        "published figures." if plan["scale"] != 1 else "Simulated values are compared unscaled.",
        ("Fixed before the search: " + "; ".join(f"{k} = {v!r}" for k, v in spec["fixed"].items()) + ".")
        if spec.get("fixed") else "No values were fixed before the search.",
        f"Best: trial {best.number}, objective {best.value:.4g} (mean of z² over the fitted targets; "
        "z = (simulated − published) / uncertainty).",
        "A hold-out target is not fitted: it is an out-of-sample check of the calibrated scenario. The CI is "
        "Monte-Carlo error of the best trial only; it does not include the uncertainty of the fitted parameters.",
    ]
    if markdown:
        def table(head, rows):
            return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                             + ["| " + " | ".join(r) + " |" for r in rows])
        return "\n\n".join(["# Calibration fit", *lines_intro, "## Targets", table(HEAD, _rows(fit)),
                            "## Parameters found", table(["path", "how", "range", "best"], _params(plan, best))]) + "\n"

    def htable(head, rows):
        h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"

    figure = _figures(fit, trials)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Calibration fit</title>
<style>body{{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
th{{background:#f3f3f3}}</style></head><body>
<h1>Calibration fit</h1>{''.join(f'<p>{html.escape(x)}</p>' for x in lines_intro)}
<h2>Targets</h2>{htable(HEAD, _rows(fit))}
<h2>Parameters found</h2>{htable(["path", "how", "range", "best"], _params(plan, best))}
<h2>Figures</h2>{figure}
</body></html>
"""


def _figures(fit, trials) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rel = fit.assign(rel=fit["simulated"] / fit["published"], lo=fit["ci_low"] / fit["published"],
                     hi=fit["ci_high"] / fit["published"], u=fit["uncertainty"] / fit["published"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("simulated / published (bars: published ± uncertainty)",
                                                        "objective by trial"))
    for role, colour in (("fitted", "#1f77b4"), ("hold-out", "#d62728")):
        part = rel[rel["role"] == role]
        if len(part):
            fig.add_trace(go.Scatter(x=part["target"], y=part["rel"], mode="markers", name=role,
                                     marker=dict(size=10, color=colour),
                                     error_y=dict(type="data", symmetric=False, array=(part["hi"] - part["rel"]).fillna(0),
                                                  arrayminus=(part["rel"] - part["lo"]).fillna(0))), row=1, col=1)
    fig.add_trace(go.Bar(x=rel["target"], y=2 * rel["u"], base=1 - rel["u"], marker_color="rgba(0,0,0,0.12)",
                         name="published ± uncertainty"), row=1, col=1)
    done = trials[trials["state"] == "COMPLETE"]
    fig.add_trace(go.Scatter(x=done["trial"], y=done["objective"], mode="markers", name="trial",
                             marker=dict(color="#555")), row=1, col=2)
    fig.add_trace(go.Scatter(x=done["trial"], y=done["objective"].cummin(), mode="lines", name="best so far",
                             line=dict(color="#2ca02c")), row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(height=420, margin=dict(l=40, r=20, t=40, b=40))
    return fig.to_html(full_html=False, include_plotlyjs=True)
