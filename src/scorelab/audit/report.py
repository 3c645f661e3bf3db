"""`RUN/report.html`: one self-contained page that opens with no internet.

The scenario in words, score distributions over time by group, restricted share, wrongful penalties, the
chilling curve, grade transitions as heat maps, the audit tables and the compliance table. Plotly's
JavaScript is inlined once for the page; each figure is a JSON literal passed to `Plotly.newPlot`, with
`<`, `>` and `&` escaped inside the JSON so no string can close the script. Every string that comes from a
user's file (names, descriptions, purposes) goes through `html.escape` before it reaches the page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .._version import __version__
from ..atomic import write_atomic, write_text_atomic
from .compliance import Context, evaluate
from ..glossary import TERMS, glossary_html, labels_on, privacy_label
from .metrics import RunData, open_run, write_audit
from .story import fmt_rate, headline

from .html import e, _num, _safe_json, Page, csv_link, html_table, compliance_table, PALETTE, CSS  # noqa: F401  (re-exported)
from .figures import _groups, _color, fig_distribution, restriction_threshold, fig_mean_score, fig_lines, fig_chilling, fig_transitions, LOG_SHARE_TICKS  # noqa: F401  (re-exported)


def scenario_words(run: RunData) -> str:
    sc, m = run.scenario, run.manifest
    pol = sc.policy
    groups = ", ".join(f"{e(g.name)} ({g.share:.0%})" for g in sc.groups)
    out = [f"<p><b>{e(sc.scenario.name)}</b>: {e(sc.scenario.description)}</p>",
           f"<p>{m['population']:,} synthetic citizens in groups {groups}, simulated for {m['days']} days with seed "
           f"{m['seed']}. Per-citizen detail kept for {e(run.kept_note)}.</p>",
           f"<p>Policy <b>{e(pol.name)}</b>: {e(pol.description)}"
           + ("" if f"starts at {pol.start_score}" in (pol.description or "") else f" Everyone starts at {pol.start_score} points.")
           + "</p>"]

    def also(r) -> str:
        bits = []
        if getattr(r, "cap_score", None) is not None:
            bits.append(f"score capped at {r.cap_score}")
        if getattr(r, "money", 0.0):
            bits.append(f"costs the citizen {r.money:,.0f} (money collected)")
        price = sc.policy.governance.prices.get(r.behaviour)
        if price:
            bits.append(f"price {price:,.0f}")
        return e("; ".join(bits))

    rows = "".join(
        f"<tr><td>{e(r.behaviour)}</td><td>{r.points:+d}</td><td>{also(r)}</td><td>{e(r.sensor)}</td>"
        f"<td>{e(', '.join(s.value for s in r.sensitive))}</td><td>{e(sc.policy.governance.contexts.get(r.behaviour, ''))}</td></tr>"
        for r in pol.rules)
    out.append("<table class='t'><tr><th>rule (behaviour)</th><th>points</th><th>also</th><th>sensor</th><th>sensitive</th>"
               f"<th>context</th></tr>{rows}</table>")
    bands = sorted(pol.grades, key=lambda g: -1e18 if g.min is None else g.min, reverse=True)
    if bands:
        out.append("<p>Grades: " + "; ".join(
            f"{e(g.name)} {'≥ ' + str(g.min) if g.max is None else ('≤ ' + str(g.max) if g.min is None else f'{g.min}–{g.max}')}"
            for g in bands) + ".</p>")
    for bl in pol.blacklists:
        extra = []
        if getattr(bl, "removed_by", None):
            extra.append(f"a citizen leaves it on {' or '.join(map(e, bl.removed_by))}")
        if getattr(bl, "extended_by", None):
            extra.append(f"the listing is extended on {' or '.join(map(e, bl.extended_by))}")
        share = getattr(bl, "initial_share", 0)
        if isinstance(share, dict) and any(share.values()):
            parts = ", ".join(f"{v:.2%} of {g}" for g, v in share.items())
            extra.append(f"{parts} are already listed when the run starts")
        elif share:
            extra.append(f"{share:.1%} of citizens are already listed when the run starts")
        out.append(f"<p>Blacklist <b>{e(bl.name)}</b>: one observed {e(bl.trigger)} lists a citizen for "
                   f"{bl.duration_days} days" + "".join(f"; {x}" for x in extra) + f". {e(bl.description)}</p>")
    for r in pol.restrictions:
        why = [f"in grade {', '.join(map(e, r.grades))}"] if r.grades else []
        why += [f"listed on {', '.join(map(e, r.blacklists))}"] if r.blacklists else []
        acts = "".join(f"; while it holds, their propensity to {e(x.behaviour)} is multiplied by {x.factor:g}"
                       for x in r.effects)
        out.append(f"<p>Restriction <b>{e(r.name)}</b> ({e(r.description)}) applies to citizens {' or '.join(why)}"
                   f"{acts}.</p>")
    d = sc.response.deterrence
    resp = []
    if d.factor < 1:
        resp.append(f"each penalty multiplies the citizen's propensity for that behaviour by {d.factor:g} (deterrence, the chilling effect)")
    for gm in sc.response.gaming:
        resp.append(f"below {gm.below_score} points, citizens do {e(gm.behaviour)} {gm.factor:g} times as often (gaming)")
    for ch in sc.response.chilling:
        resp.append(f"everyone does {e(ch.behaviour)} less the more it is watched and the harsher its sanction "
                    f"(general deterrence, elasticity {ch.elasticity:g})")
    for ln in sc.response.learning:
        resp.append(f"after a refused {e(ln.behaviour)}, a citizen tries {ln.factor:g} times as often for {ln.days} days")
    het = [b for b in sc.behaviours if b.heterogeneity > 0]
    if het:
        resp.append("propensities differ per citizen for " + ", ".join(e(b.name) for b in het))
    if resp:
        out.append("<p>Response: " + "; ".join(resp) + ".</p>")
    g = pol.governance

    def decl(v: Any) -> str:
        return "not declared" if v is None else ("yes" if v is True else "no" if v is False else e(v))

    out.append(f"<p>Data governance, as declared: purpose {decl(g.purpose)}; legal basis {decl(g.legal_basis)}; "
               f"citizens notified {decl(g.notice)}; human review of restrictions {decl(g.human_review)}; "
               f"appeal {decl(g.appeal)}; retention "
               f"{'not limited' if g.retention_days is None else str(g.retention_days) + ' days'}; "
               f"{len(g.recipients)} recipient(s) outside the scoring authority.</p>")
    return "\n".join(out)


# ------------------------------------------------------------------ figures


def headline_html(run: RunData, tables: dict[str, pd.DataFrame]) -> str:
    """The three largest harms in words (audit/story.py), each with its groups, size and driver."""
    top = headline(run, tables)
    if not top:
        return ("<section class='headline'><h2>What this policy did</h2><p>No harm the audit measures is above zero "
                "in this run: no false penalties, no restriction without misconduct, no speech lost.</p></section>")
    items = "".join(f"<li><b>{e(h.title)}:</b> {e(h.sentence)}." + (f" <span class='driver'>{e(h.driver[:1].upper() + h.driver[1:])}.</span>" if h.driver else "")
                    + "</li>" for h in top)
    if len(top) < 3:
        items += ("<li class='none'>No other harm the audit measures (false penalties, restriction without misconduct "
                  "or by sensor errors alone, lost speech, unequal restriction) is above zero in this run.</li>")
    return ("<section class='headline'><h2>What this policy did</h2><ol>" + items + "</ol>"
            "<p class='note'>The largest harms the audit measured, ranked by their size in the group each hits "
            "hardest, counted per 1,000 (citizens, citizens without misconduct, or speech acts). The sentences "
            "are written from this run's figures (the tables below and audit.json) and its event log.</p></section>")


def cards_html(run: RunData, t: dict[str, pd.DataFrame]) -> str:
    """One card per group (and everyone): the figures a reader asks about first."""
    s, w, c = t["sanctions"], t["wrongful"], t["chilling"]
    m = run.metrics.assign(group=lambda d: d["group"].astype(str))
    first, last = m[m["day"] == m["day"].min()].set_index("group"), m[m["day"] == m["day"].max()].set_index("group")
    start = run.start_scores if len(run.citizens) else None
    cards = []
    for g in run.groups + ["all"]:
        rows = [("citizens", f"{int(s.loc[g, 'citizens']):,}"),
                ("restricted at the end", _num(s.loc[g, "restricted_final_share"], pct=True))]
        if "ever_restricted_share" in s.columns:
            rows.append(("ever restricted", _num(s.loc[g, "ever_restricted_share"], pct=True)))
        if "false_positive_rate" in s.columns:
            rows.append(("restricted without misconduct", f"{fmt_rate(1000 * float(s.loc[g, 'false_positive_rate']))} per 1,000"))
        fa = 1000 * float(w.loc[g, "false_attributions_all_citizens"]) / max(float(s.loc[g, "citizens"]), 1)
        rows.append(("falsely penalised", f"{fmt_rate(fa)} per 1,000"))
        if "wrongly_restricted" in w.columns:
            rows.append(("wrongly restricted", f"{int(w.loc[g, 'wrongly_restricted']):,}"))
        if g in c.index and "speech_fall_share" in c.columns:
            rows.append(("speech lost", _num(c.loc[g, "speech_fall_share"], pct=True)))
        if start is not None:
            mask = np.ones(len(start), bool) if g == "all" else (run.citizens["group"].astype(str) == g).to_numpy()
            s0 = float(start[mask].mean()) if mask.any() else float(first.loc[g, "mean_score"])
        else:
            s0 = float(first.loc[g, "mean_score"])
        rows.append(("mean score, start → end", f"{s0:,.1f} → {float(last.loc[g, 'mean_score']):,.1f}"))
        if g != "all" and "disparate_impact" in s.columns:
            flag = bool(s.loc[g, "disparate_impact_flag"])
            rows.append(("disparate impact", _num(s.loc[g, "disparate_impact"]) + (" (flagged)" if flag else "")))
        body = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in rows)
        cls = "card flagged" if g != "all" and bool(s.loc[g].get("disparate_impact_flag", False)) else "card"
        cards.append(f"<div class='{cls}'><h3>{'everyone' if g == 'all' else e(g)}</h3><dl>{body}</dl></div>")
    return "<h2>Each group</h2><div class='cards'>" + "".join(cards) + "</div>"


def exactness_html(run: RunData, notes: dict[str, str]) -> str:
    """What is counted exactly and what is estimated or approximated, figure by figure."""
    pop, kept = int(run.manifest["population"]), len(run.citizens)
    items = []
    if kept == 0:
        items.append("This run kept no per-citizen detail, so the figures that need it are not shown; every figure "
                     "shown is counted over all citizens from the engine's daily totals.")
    elif kept < pop:
        items.append(f"Per-citizen figures (ever restricted, restricted days, restricted without misconduct, "
                     f"misconduct never restricted, innocent among the restricted, wrongly restricted, inequality, "
                     f"grade transitions, privacy) are counted on a sample of {kept:,} of {pop:,} citizens: their "
                     f"intervals give the sampling uncertainty. Restricted at the end, false attributions, speech "
                     f"and gaming count every citizen.")
    else:
        items.append(f"Every citizen is kept: per-citizen figures are counted, not estimated, from the event log "
                     f"({e(notes.get('history', ''))}).")
    if kept:
        items.append("Approximate: <b>wrongly restricted</b>, <b>days of wrongful restriction</b>, <b>grade changed</b> "
                     "and <b>listing changed</b> replay each citizen's history without its false attributions, holding "
                     "the citizen's other recorded events fixed; they ignore that a false penalty also deters the "
                     "citizen's later behaviour (a first-order counterfactual).")
    cf = notes.get("counterfactual", "")
    if "no common random numbers" in cf:
        items.append(f"Estimated: <b>speech lost</b> and <b>events induced by gaming</b> compare rates with a smaller "
                     f"counterfactual society, without common random numbers ({e(cf)}).")
    elif "drawn afresh" in cf:
        items.append(f"Estimated: <b>events induced by gaming</b> compare with an independent draw of the bought "
                     f"behaviours ({e(cf)}); speech lost keeps common random numbers.")
    items.append("Intervals in brackets are 95% bootstrap intervals over the kept citizens (they describe how much "
                 "the figure would vary in another society drawn the same way, not an approximation).")
    box = "warnbox" if "MISMATCH" in notes.get("history", "") else "note"
    return (f"<h2>What is exact, and what is not</h2><ul class='{box}'>" + "".join(f"<li>{x}</li>" for x in items)
            + "</ul>")


def build_report(run_dir: str | Path | RunData, out: Path | None = None,
                 progress: Callable[[str], None] | None = None, **audit_options: Any) -> Path:
    """Audit the run, check compliance, and write RUN/report.html (or ``out``); returns its path.

    ``progress(step)`` is called with a few words before each stage (the CLI shows them on stderr)."""
    say = progress or (lambda _step: None)
    say("opening the run")
    if not isinstance(run_dir, RunData):
        from ..rundir import check_run

        check_run(run_dir)  # the report also reads distribution.parquet
    run = run_dir if isinstance(run_dir, RunData) else open_run(run_dir)
    say("auditing: sanctions, errors against ground truth, bootstrap intervals, the counterfactual")
    res = write_audit(run, **audit_options)
    t, notes, summ = res["tables"], res["notes"], res["summary"]
    say("checking compliance")
    comp = evaluate(Context(run.scenario.policy, run.scenario, t, str(run.path)))
    write_atomic(run.path / "compliance.json", lambda p: comp.to_json(p, orient="records", indent=1))
    say("writing the headline and the group cards")

    p = Page()
    name = run.scenario.scenario.name
    p.add(f"<h1>scorelab report: {e(name)}</h1><p class='note'>scorelab {e(__version__)} · run directory "
          f"{e(run.path)} · every population here is synthetic · terms: <a href='#glossary'>glossary</a>.</p>")
    verdicts = comp["verdict"].value_counts()
    kpis = [("citizens", f"{run.manifest['population']:,}"), ("days", str(run.params.days)),
            ("restricted at the end", _num(summ.get("restricted_share[all]"), pct=True)),
            ("of the restricted had no true misconduct", _num(summ.get("innocent_among_restricted[all]"), pct=True)),
            ("wrongly restricted (kept citizens)", _num(summ.get("wrongful_sanctioned[all]"))),
            ("speech lost to the policy", _num(summ.get("speech_fall_share[all]"), pct=True)),
            ("principles failed", f"{verdicts.get('fail', 0)} of {len(comp)}")]
    p.add("<div>" + "".join(f"<span class='kpi'><b>{v}</b>{e(k)}</span>" for k, v in kpis) + "</div>")
    p.add(headline_html(run, t))
    p.add(cards_html(run, t))
    p.add(exactness_html(run, notes))
    p.add("<h2>The scenario</h2>" + scenario_words(run))
    say("drawing the figures")

    p.add("<h2>Scores over time</h2>")
    ms = run.metrics["mean_score"]
    if float(ms.min()) == float(ms.max()):
        p.add(f"<p>No score moved in this run: every citizen ends where they started ({float(ms.iloc[0]):,.0f} points on "
              "average), so there is no score distribution to draw. What the policy does, it does through lists and "
              "restrictions (below).</p>")
    else:
        p.figure(fig_distribution(run), "Share of each group's citizens per 10-point score bin, at snapshot days (log scale).")
        p.figure(fig_mean_score(run), "Mean score at the end of each day. The axis reaches down to the score at which a "
                 "grade restriction starts (dashed), or 10% below the start score, so small drifts look small.")

    p.add("<h2>Who was sanctioned</h2>")
    p.figure(fig_lines(run, "restricted_share", "Restricted share by group", "share restricted", pct=True),
             "Share of each group under any restriction at the end of each day (all citizens).")
    s = t["sanctions"]
    p.add(html_table(s, [("citizens", "citizens"), ("restricted_final_share", "restricted at the end"),
                         ("restricted_mean_share", "restricted, mean over days"),
                         ("ever_restricted_share", "ever restricted"), ("disparate_impact", "disparate impact"),
                         ("restricted_days_mean", "restricted days per citizen"),
                         ("false_positive_rate", "restricted without misconduct (FPR)"),
                         ("false_negative_rate", "misconduct never restricted (FNR)"),
                         ("innocent_among_restricted", "innocent among the restricted")],
                     pct={"restricted_final_share", "restricted_mean_share", "ever_restricted_share", "false_positive_rate",
                          "false_negative_rate", "innocent_among_restricted"},
                     ci={"ever_restricted_share": ("ever_restricted_ci_low", "ever_restricted_ci_high"),
                         "disparate_impact": ("disparate_impact_ci_low", "disparate_impact_ci_high"),
                         "restricted_days_mean": ("restricted_days_ci_low", "restricted_days_ci_high"),
                         "false_positive_rate": ("false_positive_ci_low", "false_positive_ci_high"),
                         "false_negative_rate": ("false_negative_ci_low", "false_negative_ci_high"),
                         "innocent_among_restricted": ("innocent_among_restricted_ci_low", "innocent_among_restricted_ci_high")}, csv="sanctions"))
    p.add(f"<p class='note'>{e(notes['disparate_impact'])}. {e(notes['ground_truth'])}. Intervals: {e(notes['intervals'])}.</p>")

    p.add("<h2>Wrongful penalties and sanctions</h2>")
    if float(run.metrics["wrongful_penalties"].abs().sum()) > 0:
        p.figure(fig_lines(run, "wrongful_penalties", "False attributions scored, cumulative per 1,000 citizens",
                           "per 1,000 citizens", cumulative=True, per=1000.0),
                 "Penalties from sensor errors (a camera naming the wrong person), all citizens.")
    else:
        p.add("<p>No sensor scored a false attribution in this run, so nobody was penalised for something they did "
              "not do.</p>")
    p.add(html_table(t["wrongful"], [("false_attributions_all_citizens", "false attributions (all citizens)"),
                                     ("citizens_falsely_attributed", "citizens falsely attributed (kept)"),
                                     ("false_points", "points lost to them"), ("final_score_changed", "final score changed"),
                                     ("grade_changed", "grade changed"), ("listing_changed", "listing changed"),
                                     ("wrongly_restricted", "wrongly restricted"),
                                     ("wrongful_restriction_days", "days of wrongful restriction"),
                                     ("wrongful_restriction_days_per_victim", "days per victim")], csv="wrongful"))
    p.add(f"<p class='note'>{e(notes['wrongful'])}.</p>")

    p.add("<h2>The chilling effect</h2>")
    curve = t["chilling_curve"]
    if not bool(np.any(run.params.speech)):
        p.add("<p>This scenario has no speech behaviour (none is marked <code>speech = true</code>), so there is no "
              "chilling of speech to measure.</p>")
    elif float(curve[["run", "counterfactual"]].abs().to_numpy().sum()) == 0:
        p.add("<p>Nobody spoke in this run or in its counterfactual, so there is no chilling to draw.</p>")
    else:
        p.figure(fig_chilling(run, curve), "Dotted: the same society, same random numbers, without the policy.")
    p.add(html_table(t["chilling"], [("speech_run", "speech with policy"), ("speech_counterfactual", "without policy"),
                                     ("speech_fall", "fall"), ("speech_fall_share", "fall (share)"),
                                     ("per_1000_citizen_days_run", "per 1,000 citizen-days with"),
                                     ("per_1000_citizen_days_counterfactual", "without")], pct={"speech_fall_share"}, csv="chilling"))
    p.add(f"<p class='note'>Counterfactual: {e(notes['counterfactual'])}.</p>")

    p.add("<h2>Gaming: points bought</h2>")
    p.add(html_table(t["gaming"], [("bought_behaviours", "bought behaviours"), ("points_bought", "points bought"),
                                   ("points_earned_by_conduct", "points earned by conduct"),
                                   ("bought_share_of_points_awarded", "bought share"),
                                   ("events_induced_by_gaming", "events induced by gaming"),
                                   ("money_collected", "money collected")], pct={"bought_share_of_points_awarded"}, csv="gaming"))

    if "inequality" not in t:
        p.add(f"<h2>Per-citizen audit</h2><p class='note'>{e(notes['kept'])}.</p>")
    else:
        _per_citizen_sections(p, run, t, notes)

    p.add("<h2>Compliance</h2><p class='note'>Each principle is judged on the policy's rules and declarations and on "
          "this run's outcomes; the cause names the rule or setting, the text is what it is judged against.</p>")
    p.add(compliance_table(comp))
    if progress:
        progress("writing the page")
    return _write_page(p, run, out)


def _per_citizen_sections(p: Page, run: RunData, t: dict[str, pd.DataFrame], notes: dict[str, str]) -> None:
    p.add("<h2>Inequality and mobility</h2>")
    if len(t["transitions"].columns):
        starts = t["transitions"].sum(axis=1)
        only = [str(g) for g, v in starts.items() if v > 0]
        first = (f" Every citizen starts in grade {e(only[0])}, so the left matrix has one row: where they ended."
                 if len(only) == 1 else "")
        p.figure(fig_transitions(run, t), "Rows: grade before; columns: grade after (kept citizens)." + first)
    p.add(html_table(t["inequality"], [("gini", "Gini of scores"), ("score_p10", "p10"), ("score_p50", "median"),
                                       ("score_p90", "p90"), ("bottom_grades", "bottom grades"),
                                       ("bottom_share_final", "in bottom grades at the end"),
                                       ("ever_bottom_share", "ever in bottom grades"),
                                       ("stuck_in_bottom_share", "of those, still there at the end"),
                                       ("contacts_of_restricted_share", "free citizens living with / in contact with a restricted one")],
                     pct={"bottom_share_final", "ever_bottom_share", "stuck_in_bottom_share", "contacts_of_restricted_share"}, csv="inequality"))
    p.add("<p class='note'>Gini is computed on the final scores measured from 0 (or from the lowest possible score "
          "when scores can be negative). When everyone starts high (say 1000 points) and loses or gains tens of "
          "points, the Gini is close to 0 even for citizens whose lives the grades changed: read it with the "
          "p10-p90 spread and the bottom-grade shares beside it.</p>")
    p.add(f"<p class='note'>Spill-over: {e(notes['spillover'])}.</p>")

    p.add("<h2>Privacy exposure</h2>")
    priv = t["privacy"].copy()
    labels = [privacy_label(k) for k in priv.index]
    priv["note"] = [n if n else meaning for n, (_, meaning) in zip(priv["note"], labels)]
    priv["name"] = priv.index  # the audit's key, kept in the CSV
    priv.index = pd.Index([label for label, _ in labels], name="metric")
    p.add(html_table(priv, [("value", "value"), ("note", "what it means")], index_name="metric", csv="privacy"))
    gov = run.scenario.policy.governance
    if gov.recipients:
        p.add("<table class='t'><tr><th>recipient</th><th>kind</th><th>purpose</th><th>fields</th><th>safeguards</th></tr>"
              + "".join(f"<tr><td>{e(r.name)}</td><td>{e(r.kind)}</td><td>{e(r.purpose)}</td><td>{e(', '.join(r.fields))}</td>"
                        f"<td>{e('not declared' if r.safeguards is None else r.safeguards)}</td></tr>" for r in gov.recipients)
              + "</table>")


ALWAYS = ("misconduct", "false attribution", "counterfactual", "chilling effect", "speech")


def page_terms(body: str) -> dict[str, str]:
    """The glossary entries of every label on the page, and the few words every report uses."""
    shown = labels_on(body) | set(ALWAYS)
    return {k: TERMS[k] for k in shown if k in TERMS}


def _write_page(p: Page, run: RunData, out: Path | None) -> Path:
    import plotly.offline

    name = run.scenario.scenario.name
    plotly_js = plotly.offline.get_plotlyjs()
    calls = "\n".join(f"Plotly.newPlot({json.dumps(fid)}, F{i}.data, F{i}.layout, "
                      f"{{responsive:true,displaylogo:false}});" for i, (fid, _) in enumerate(p.figures))
    data = "\n".join(f"var F{i} = {js};" for i, (_, js) in enumerate(p.figures))
    body = "".join(p.parts)
    body += glossary_html(page_terms(body))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>scorelab report: {e(name)}</title>"
            f"<style>{CSS}</style><script>{plotly_js}</script></head><body>{body}"
            f"<script>{data}\n{calls}</script></body></html>")
    target = Path(out) if out else run.path / "report.html"
    write_text_atomic(target, page)
    return target
