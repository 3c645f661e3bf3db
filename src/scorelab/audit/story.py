"""The headline of a run, in words, derived from the audit's own figures.

Each candidate harm is measured per group from the audit tables (the numbers `audit.json` stores), as a
count per 1,000 (citizens, citizens without misconduct, or speech acts), so harms of different kinds can be
ranked by their size in the group they hit hardest. The three largest that are above zero make the
headline; each names its most and least affected groups, the ratio between them, and what drives it, read
from the event log (which rule or sensor the points came from) and the scenario (a sensor's
false-attribution rate per group, a rule's points, the deterrence factor). Nothing here is written per
preset: a sentence exists only where the figures give it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .metrics import RunData


@dataclass
class Harm:
    key: str  # harm kind: false_penalties, restricted_innocent, wrongly_restricted, speech_lost, unequal_restriction
    title: str
    per_1000: dict[str, float]  # group (and "all") -> size per 1,000 of the base
    base: str  # what the 1,000 are: "citizens", "citizens without misconduct", "speech acts"
    worst: str
    best: str | None
    sentence: str = ""
    driver: str = ""
    source: dict[str, Any] = field(default_factory=dict)  # where in audit.json each figure is

    @property
    def size(self) -> float:
        return self.per_1000[self.worst]

    @property
    def ratio(self) -> float:
        if self.best is None:
            return math.nan
        b = self.per_1000[self.best]
        return self.size / b if b > 0 else math.inf


def fmt_rate(v: float) -> str:
    """A count per 1,000 as a person would say it: 47, 4.3, 0.62."""
    if not math.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    if abs(v) >= 10:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def fmt_ratio(r: float) -> str:
    if math.isinf(r):
        return "∞"
    return f"{r:.1f}×" if r < 100 else f"{r:,.0f}×"


def _who(group: str) -> str:
    return "all" if group == "all" else group


def _ranked(per: dict[str, float], groups: list[str]) -> tuple[str, str | None]:
    vals = {g: per[g] for g in groups if math.isfinite(per.get(g, math.nan))}
    worst = max(vals, key=lambda g: vals[g])
    rest = {g: v for g, v in vals.items() if g != worst}
    best = min(rest, key=lambda g: rest[g]) if rest else None
    return worst, best


def _compare_words(h: Harm, unit_worst: str, unit_best: str) -> str:
    """'... 47 times per 1,000, urban 11 — 4.3×' style tail."""
    if h.best is None:
        return unit_worst
    b = h.per_1000[h.best]
    if b == 0:
        return f"{unit_worst}; {h.best}: none"
    return f"{unit_worst}, {h.best} {unit_best} — {fmt_ratio(h.ratio)}"


def _group_mask(run: RunData, group: str) -> np.ndarray:
    g = run.citizens["group"].astype(str).to_numpy()
    return np.ones(len(g), bool) if group == "all" else g == group


def _points_by_rule(run: RunData, who: np.ndarray) -> pd.Series:
    """Points lost (negative points summed, as a positive number) by rule, over the citizens in ``who``."""
    a = run.ledger_arrays
    if not len(a["pos"]) or not who.any():
        return pd.Series(dtype=float)
    sel = who[a["pos"]] & (a["points"] < 0) & ~a["cap_row"] & ~a["range_row"]
    names = list(run.params.behaviours) + ["other"]
    s = pd.Series(-a["points"][sel], index=[names[b] for b in a["behaviour"][sel]])
    return s.groupby(level=0).sum().sort_values(ascending=False)


def _rule_driver(run: RunData, who: np.ndarray, whose: str) -> str:
    """The rule that took most points from ``who``; where points did not restrict them (a court list whose
    rules give 0 points), what put them on a list."""
    lost = _points_by_rule(run, who)
    bits = []
    if not lost.empty and lost.sum() > 0:
        rule, pts = lost.index[0], float(lost.iloc[0])
        bits.append(f"the rule on {rule} contributes most: {pts / lost.sum():.0%} of the points {whose} lost "
                    f"({pts:,.0f} of {lost.sum():,.0f})")
    ev = run.events
    if len(ev) and who.any():
        ids = run.citizens["citizen"].to_numpy()[who]
        ls = ev[(ev["kind"].astype(str) == "list_start") & ev["citizen"].isin(ids)]
        if len(ls):
            by = ls.groupby([ls["rule"].astype(str), ls["target"].astype(str)]).size().sort_values(ascending=False)
            (rule, target), k = by.index[0], int(by.iloc[0])
            how = "were already on it when the run began" if rule == "initial_listing" else f"were listed after {rule}"
            bits.append(f"of the listings of {whose}, {k / by.sum():.0%} put them on {target} ({k:,} of "
                        f"{int(by.sum()):,}): they {how}")
    return "; ".join(bits)


def _sensor_rates(run: RunData) -> dict[str, dict[str, float]]:
    sc = run.scenario
    out = {}
    for s in sc.sensors:
        if s.false_attribution is not None:
            out[s.name] = dict(zip([g.name for g in sc.groups], sc.per_group(s.false_attribution.rate)))
    return out


def _false_driver(run: RunData, worst: str, best: str | None, who: np.ndarray | None = None) -> str:
    """Which sensor's false matches drive the false penalties of the group ``worst``."""
    rates = _sensor_rates(run)
    ev = run.events
    sensor, share = None, None
    if len(run.citizens) and len(ev):
        led = run.ledger
        f = led[led["false_attribution"].to_numpy(dtype=bool) & (led["points"].to_numpy() < 0)]
        if who is None:
            who = _group_mask(run, worst)
        ids = set(run.citizens["citizen"].to_numpy()[who])
        f = f[f["citizen"].isin(ids)]
        if len(f):
            by = f["sensor"].astype(str).value_counts()
            sensor, share = str(by.index[0]), float(by.iloc[0] / by.sum())
    if sensor is None and len(rates) == 1:
        sensor = next(iter(rates))
    if sensor is None:
        return ""
    words = f"driven by the {sensor} sensor's false matches"
    if share is not None and share < 1:
        words += f" ({share:.0%} of them)"
    r = rates.get(sensor)
    if r and worst in r:
        words += f": its false-match rate names {one_in(r[worst])} {worst} citizens a day"
        if best is not None and best in r:
            words += f", {one_in(r[best])} {best}"
            if r[best] > 0 and r[worst] / r[best] >= 1.05:
                words += f" ({fmt_ratio(r[worst] / r[best])})"
    return words


def one_in(p: float) -> str:
    """A daily probability as '1 in 12,500'."""
    if p <= 0:
        return "none of the"
    n = 1 / p
    return f"1 in {n:,.0f}" if n >= 10 else f"{p:.0%} of"


def harms(run: RunData, tables: dict[str, pd.DataFrame]) -> list[Harm]:
    """Every harm above zero, largest first (by its size in the hardest-hit group, per 1,000)."""
    groups = run.groups
    s, w = tables["sanctions"], tables["wrongful"]
    out: list[Harm] = []
    full = len(run.citizens) > 0

    # 1. false penalties: every citizen (metrics.parquet), per 1,000 of the group
    per = {g: 1000.0 * float(w.loc[g, "false_attributions_all_citizens"]) / max(float(s.loc[g, "citizens"]), 1.0)
           for g in groups + ["all"]}
    if max(per[g] for g in groups) > 0:
        worst, best = _ranked(per, groups)
        h = Harm("false_penalties", "False penalties", per, "citizens", worst, best,
                 source={"numerator": "wrongful.false_attributions_all_citizens", "denominator": "sanctions.citizens"})
        h.sentence = (f"{_who(worst)} citizens were falsely penalised "
                      + _compare_words(h, f"{fmt_rate(h.size)} times per 1,000", fmt_rate(per[best]) if best else ""))
        h.driver = _false_driver(run, worst, best)
        out.append(h)

    if full:
        # 2. restricted without any true misconduct
        per = {g: 1000.0 * float(s.loc[g, "false_positive_rate"]) for g in groups + ["all"]
               if math.isfinite(float(s.loc[g, "false_positive_rate"]))}
        if per and max(per.get(g, 0) for g in groups) > 0:
            worst, best = _ranked(per, [g for g in groups if g in per])
            h = Harm("restricted_innocent", "Restricted without misconduct", per, "citizens without misconduct",
                     worst, best, source={"value": "sanctions.false_positive_rate", "scale": 1000})
            h.sentence = (f"Of every 1,000 {worst} citizens with no misconduct, {fmt_rate(h.size)} were restricted"
                          + ("" if best is None else
                             (f"; of {best}, none" if per[best] == 0 else
                              f"; of {best}, {fmt_rate(per[best])} — {fmt_ratio(h.ratio)}")))
            ever = run.history.restricted_days > 0
            innocent = run.citizens["true_misconduct"].to_numpy() == 0
            who = ever & innocent & _group_mask(run, worst)
            h.driver = _rule_driver(run, who, "these citizens")
            out.append(h)

        # 3. restricted because of false attributions alone
        per = {g: 1000.0 * float(w.loc[g, "wrongly_restricted_share"]) for g in groups + ["all"]
               if math.isfinite(float(w.loc[g, "wrongly_restricted_share"]))}
        if per and max(per.get(g, 0) for g in groups) > 0:
            worst, best = _ranked(per, [g for g in groups if g in per])
            h = Harm("wrongly_restricted", "Restricted by sensor errors alone", per, "citizens", worst, best,
                     source={"value": "wrongful.wrongly_restricted_share", "scale": 1000})
            h.sentence = (f"{_who(worst)} citizens were restricted because of false attributions alone "
                          + _compare_words(h, f"{fmt_rate(h.size)} per 1,000", fmt_rate(per[best]) if best else ""))
            victims = (run.replay.restricted_days - run.replay_without_false.restricted_days > 0) & _group_mask(run, worst)
            h.driver = _false_driver(run, worst, best, victims)
            out.append(h)

    # 4. speech lost to the policy (all citizens, against the counterfactual)
    c = tables["chilling"]
    if "speech_fall_share" in c.columns:
        per = {g: 1000.0 * float(c.loc[g, "speech_fall_share"]) for g in groups + ["all"]
               if g in c.index and math.isfinite(float(c.loc[g, "speech_fall_share"]))}
        if per and max(per.get(g, 0) for g in groups) > 0:
            worst, best = _ranked(per, [g for g in groups if g in per])
            h = Harm("speech_lost", "Speech lost (chilling effect)", per, "speech acts", worst, best,
                     source={"value": "chilling.speech_fall_share", "scale": 1000})
            pct = lambda g: fmt_rate(per[g] / 10) + "%"  # noqa: E731
            h.sentence = (f"{_who(worst)} citizens spoke {pct(worst)} less than the same people without the policy"
                          + ("" if best is None else f", {best} {pct(best)} less"))
            h.driver = _speech_driver(run, worst)
            out.append(h)

    # 5. unequal restriction, where the audit flags disparate impact
    if "disparate_impact_flag" in s.columns:
        flagged = [g for g in groups if bool(s.loc[g, "disparate_impact_flag"])]
        col = "ever_restricted_share" if "ever_restricted_share" in s.columns else "restricted_mean_share"
        if flagged:
            per = {g: 1000.0 * float(s.loc[g, col]) for g in groups + ["all"]}
            worst = max(flagged, key=lambda g: per[g])
            best = str(s["reference_group"].iloc[0])
            if worst != best and per[worst] > 0:
                h = Harm("unequal_restriction", "Unequal restriction (disparate impact)", per, "citizens", worst, best,
                         source={"value": f"sanctions.{col}", "scale": 1000, "ratio": "sanctions.disparate_impact"})
                what = "restricted at some point" if col == "ever_restricted_share" else "restricted on an average day"
                h.sentence = (f"{fmt_rate(h.size)} of every 1,000 {worst} citizens were {what}, against "
                              f"{fmt_rate(per[best])} of {best}, the least restricted group — "
                              f"{fmt_ratio(h.ratio)} (the four-fifths rule flags outside 0.8–1.25)")
                if full:
                    ever = run.history.restricted_days > 0
                    h.driver = _rule_driver(run, ever & _group_mask(run, worst), f"restricted {worst} citizens")
                out.append(h)

    out.sort(key=lambda h: -h.size)
    return out


def _speech_driver(run: RunData, worst: str) -> str:
    P, sc = run.params, run.scenario
    speech = [b for b, sp in zip(P.behaviours, P.speech) if sp]
    rules = [r for r in sc.policy.rules if r.behaviour in speech and r.points < 0]
    bits = []
    for r in rules:
        bits.append(f"the rule on {r.behaviour} ({r.points:+d} points per observed event, sensor {r.sensor})")
    d = sc.response.deterrence
    if d.factor < 1 and rules:
        bits.append(f"each penalty multiplies the citizen's propensity to do it again by {d.factor:g}")
    if not rules:
        return "no rule penalises speech directly: the fall comes through the score's other effects"
    return "driven by " + "; ".join(bits)


def headline(run: RunData, tables: dict[str, pd.DataFrame], n: int = 3) -> list[Harm]:
    return harms(run, tables)[:n]
