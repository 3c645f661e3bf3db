"""The harm tables: who was sanctioned and who wrongly (sanctions, wrongful), what speech was chilled
and who gamed (chilling, gaming), per group with 95% bootstrap intervals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..config.loader import ConfigError
from .counterfactual import counterfactual_events
from .rundata import RunData, _require_detail
from .bootstrap import _boot_means, _boot_cells, _ci, _di, _di_flag, _ratio


def _group_rows(run: RunData) -> list[tuple[str, np.ndarray]]:
    """(label, bool mask over kept citizens) for each group and `all`."""
    g = run.group_code
    return [(name, g == i) for i, name in enumerate(run.groups)] + [("all", np.ones(len(g), dtype=bool))]


def _last_day(run: RunData) -> pd.DataFrame:
    m = run.metrics
    return m[m["day"] == m["day"].max()].assign(group=lambda d: d["group"].astype(str)).set_index("group")


def _metric_sum(run: RunData, col: str) -> pd.Series:
    m = run.metrics
    if col not in m.columns:
        return pd.Series(0.0, index=run.groups + ["all"])
    return m.assign(group=m["group"].astype(str)).groupby("group")[col].sum()


# ---------------------------------------------------------------- tables


def sanctions_table(run: RunData) -> pd.DataFrame:
    """Restriction by group, disparate impact against the most favoured group, errors against ground truth."""
    _require_detail(run, "the sanctions audit")
    rng = np.random.default_rng([run.seed, 1])
    rp = run.history
    ever = rp.restricted_days > 0
    guilty = run.citizens["true_misconduct"].to_numpy() > 0
    a = run.ledger_arrays
    penalised = np.zeros(len(ever), dtype=bool)
    penalised[a["pos"][a["points"] < 0]] = True
    m = run.metrics.assign(group=lambda d: d["group"].astype(str))
    mean_share = m.groupby("group")["restricted_share"].mean()
    last = _last_day(run)

    rows, draws = [], {}
    for name, mask in _group_rows(run):
        # cells: (restricted & innocent, free & innocent, restricted & guilty, free & guilty)
        cells = np.array([(ever & ~guilty & mask).sum(), (~ever & ~guilty & mask).sum(),
                          (ever & guilty & mask).sum(), (~ever & guilty & mask).sum()], dtype=np.float64)
        bc = _boot_cells(cells, rng)
        n = cells.sum()
        rate = (cells[0] + cells[2]) / n if n else math.nan
        rate_d = (bc[:, 0] + bc[:, 2]) / max(n, 1)
        fpr_d = _ratio(bc[:, 0], bc[:, 0] + bc[:, 1])
        fnr_d = _ratio(bc[:, 3], bc[:, 2] + bc[:, 3])
        fdr_d = _ratio(bc[:, 0], bc[:, 0] + bc[:, 2])
        draws[name] = rate_d
        days = rp.restricted_days[mask]
        days_d = _boot_means(days, rng)
        pcells = np.array([(penalised & ~guilty & mask).sum(), (~penalised & ~guilty & mask).sum(),
                           (penalised & guilty & mask).sum(), (~penalised & guilty & mask).sum()], dtype=np.float64)
        rows.append({
            "group": name,
            "citizens": int(run.manifest["population"] if name == "all" else run.manifest["group_sizes"].get(name, 0)),
            "kept": int(n),
            "restricted_final_share": float(last.loc[name, "restricted_share"]),
            "restricted_mean_share": float(mean_share.get(name, math.nan)),
            "ever_restricted_share": rate, "ever_restricted_ci_low": _ci(rate_d)[0], "ever_restricted_ci_high": _ci(rate_d)[1],
            "restricted_days_mean": float(days.mean()) if len(days) else math.nan,
            "restricted_days_ci_low": _ci(days_d)[0], "restricted_days_ci_high": _ci(days_d)[1],
            "misconduct_share": float((guilty & mask).sum() / n) if n else math.nan,
            "false_positive_rate": float(_ratio(cells[0], cells[0] + cells[1])),
            "false_positive_ci_low": _ci(fpr_d)[0], "false_positive_ci_high": _ci(fpr_d)[1],
            "false_negative_rate": float(_ratio(cells[3], cells[2] + cells[3])),
            "false_negative_ci_low": _ci(fnr_d)[0], "false_negative_ci_high": _ci(fnr_d)[1],
            "innocent_among_restricted": float(_ratio(cells[0], cells[0] + cells[2])),
            "innocent_among_restricted_ci_low": _ci(fdr_d)[0], "innocent_among_restricted_ci_high": _ci(fdr_d)[1],
            "penalty_false_positive_rate": float(_ratio(pcells[0], pcells[0] + pcells[1])),
            "penalty_false_negative_rate": float(_ratio(pcells[3], pcells[2] + pcells[3])),
        })
    df = pd.DataFrame(rows).set_index("group")
    groups = run.groups
    rates = df.loc[groups, "ever_restricted_share"]
    ref = rates.idxmin() if rates.notna().any() else groups[0]
    df["reference_group"] = ref
    di = _di(df["ever_restricted_share"].to_numpy(), df.loc[ref, "ever_restricted_share"])
    df["disparate_impact"] = di
    for name in df.index:
        d = _di(draws[name], draws[ref])
        d = d[~np.isnan(d)]  # +inf draws (a resample without restricted reference citizens) are kept
        lo, hi = (1.0, 1.0) if name == ref else ((math.nan, math.nan) if len(d) == 0 else
                                                  tuple(float(x) for x in np.quantile(d, [0.025, 0.975], method="inverted_cdf")))
        df.loc[name, "disparate_impact_ci_low"] = lo
        df.loc[name, "disparate_impact_ci_high"] = hi
    tshare = df.loc[groups, "restricted_mean_share"]
    tref = tshare.idxmin()
    df["disparate_impact_time"] = _di(df["restricted_mean_share"].to_numpy(), df.loc[tref, "restricted_mean_share"])
    df["disparate_impact_flag"] = [
        (name != "all") and _di_flag(v) for name, v in zip(df.index, df["disparate_impact"])
    ]
    df.loc["all", ["disparate_impact", "disparate_impact_ci_low", "disparate_impact_ci_high", "disparate_impact_time"]] = np.nan
    return df


def sanctions_aggregate(run: RunData) -> pd.DataFrame:
    """The sanctions table from metrics.parquet alone (runs kept without per-citizen detail).

    Without citizens there is no ever-restricted share and no ground truth per citizen: disparate impact
    is then the ratio of the groups' mean restricted shares over the run (the share of citizen-days).
    """
    m = run.metrics.assign(group=lambda d: d["group"].astype(str))
    mean_share = m.groupby("group")["restricted_share"].mean()
    last = _last_day(run)
    groups = run.groups
    ref = mean_share[groups].idxmin()
    rows = []
    for name in groups + ["all"]:
        di = float(_di(mean_share[name], mean_share[ref])) if name != "all" else np.nan
        rows.append({"group": name,
                     "citizens": int(run.manifest["population"] if name == "all" else run.manifest["group_sizes"].get(name, 0)),
                     "kept": 0, "restricted_final_share": float(last.loc[name, "restricted_share"]),
                     "restricted_mean_share": float(mean_share[name]), "reference_group": ref,
                     "disparate_impact": float(di), "disparate_impact_time": float(di),
                     "disparate_impact_flag": bool(name != "all" and _di_flag(di))})
    return pd.DataFrame(rows).set_index("group")


def wrongful_aggregate(run: RunData) -> pd.DataFrame:
    pen_all = _metric_sum(run, "wrongful_penalties")
    return pd.DataFrame([{"group": g, "kept": 0, "false_attributions_all_citizens": int(pen_all.get(g, 0))}
                         for g in run.groups + ["all"]]).set_index("group")


def wrongful_table(run: RunData) -> pd.DataFrame:
    """Citizens whose score, grade, listing or restrictions were changed by false attributions alone."""
    _require_detail(run, "the wrongful-sanctions audit")
    rng = np.random.default_rng([run.seed, 2])
    a = run.ledger_arrays
    n = len(run.citizens)
    fmask = a["false"]
    n_false = np.bincount(a["pos"][fmask], minlength=n)
    false_pts = np.bincount(a["pos"][fmask], weights=a["points"][fmask], minlength=n).astype(np.int64)
    rp, cf = run.replay, run.replay_without_false
    grade_changed = (rp.grade_days != cf.grade_days).any(axis=1)
    listing_changed = (rp.listed_days != cf.listed_days).any(axis=1) if rp.listed_days.shape[1] else np.zeros(n, bool)
    extra_days = rp.restricted_days - cf.restricted_days
    wrongly = extra_days > 0
    pen_all = _metric_sum(run, "wrongful_penalties")
    rows = []
    for name, mask in _group_rows(run):
        k = mask.sum()
        d = _boot_means(wrongly[mask].astype(np.int8), rng)
        dd = _boot_means(extra_days[mask], rng)
        rows.append({
            "group": name, "kept": int(k),
            "false_attributions_all_citizens": int(pen_all.get(name, 0)),
            "citizens_falsely_attributed": int((n_false[mask] > 0).sum()),
            "falsely_attributed_share": float((n_false[mask] > 0).mean()) if k else math.nan,
            "false_points": int(false_pts[mask].sum()),
            "final_score_changed": int((false_pts[mask] != 0).sum()),
            "grade_changed": int(grade_changed[mask].sum()),
            "listing_changed": int(listing_changed[mask].sum()),
            "wrongly_restricted": int(wrongly[mask].sum()),
            "wrongly_restricted_share": float(wrongly[mask].mean()) if k else math.nan,
            "wrongly_restricted_ci_low": _ci(d)[0], "wrongly_restricted_ci_high": _ci(d)[1],
            "wrongful_restriction_days": int(extra_days[mask].sum()),
            "wrongful_restriction_days_per_citizen": float(extra_days[mask].mean()) if k else math.nan,
            "wrongful_restriction_days_ci_low": _ci(dd)[0], "wrongful_restriction_days_ci_high": _ci(dd)[1],
            "wrongful_restriction_days_per_victim": float(extra_days[mask & wrongly].mean()) if (mask & wrongly).any() else 0.0,
        })
    return pd.DataFrame(rows).set_index("group")


def _speech_behaviours(run: RunData) -> list[str]:
    return [b for b, s in zip(run.params.behaviours, run.params.speech) if s]


def _prices(run: RunData) -> dict[str, float]:
    """Money paid per observed event: governance ``prices``, else a rule's ``money`` (e.g. Rongcheng's
    500-yuan donation), which the engine also counts in metrics' ``money_collected``."""
    out = {r.behaviour: float(r.money) for r in run.scenario.policy.rules if getattr(r, "money", 0.0)}
    out.update({k: float(v) for k, v in run.scenario.policy.governance.prices.items()})
    return out


def _bought_behaviours(run: RunData) -> list[str]:
    """Behaviours whose points are bought, not earned: priced (governance price or a rule's money), or
    the target of gaming."""
    sc = run.scenario
    names = set(_prices(run)) | {g.behaviour for g in sc.response.gaming}
    return [b for b in run.params.behaviours if b in names and run.params.points[run.params.behaviours.index(b)] > 0]


def counterfactual(run: RunData) -> dict[str, Any]:
    """Counterfactual true events (cached on the RunData) for speech and bought behaviours."""
    if "_cf" not in run.options:
        wanted = list(dict.fromkeys(_speech_behaviours(run) + _bought_behaviours(run)))
        mode = run.options.get("counterfactual", "fast")
        pop = run.options.get("counterfactual_population")
        if pop is not None and pop > run.manifest["population"]:  # a smaller re-simulation, never a larger one
            raise ConfigError("--counterfactual-population", None,
                              f"{pop:,} is above the run's population ({run.manifest['population']:,}); "
                              "give a number from 1 to the run's population")
        run.options["_cf"] = counterfactual_events(run.scenario, run.seed, wanted, mode=mode, population=pop)
    return run.options["_cf"]


def chilling_curve(run: RunData) -> pd.DataFrame:
    """Per day and group: true speech events in the run and in the counterfactual without the policy."""
    speech = _speech_behaviours(run)
    cf = counterfactual(run)
    m = run.metrics.assign(group=lambda d: d["group"].astype(str))
    cur = m[["day", "group", "criticism", "population"]].rename(columns={"criticism": "run"})
    t = cf["table"]
    t = t[t["behaviour"].isin(speech)].groupby(["day", "group"], as_index=False)["events"].sum()
    t = t.rename(columns={"events": "counterfactual"})
    out = cur.merge(t, on=["day", "group"], how="left").fillna({"counterfactual": 0})
    if not cf["common_random_numbers"]:  # a smaller counterfactual population: scale its counts to the run's
        sizes = dict(cf["group_sizes"] or {})
        sizes["all"] = sum(sizes.values())
        pop = out.groupby("group")["population"].first()
        scale = {g: pop[g] / sizes[g] if sizes.get(g) else 0.0 for g in pop.index}
        out["counterfactual"] = out["counterfactual"] * out["group"].map(scale)
    out["counterfactual"] = out["counterfactual"].astype(np.float64)
    return out[["day", "group", "run", "counterfactual", "population"]]


def chilling_table(run: RunData) -> pd.DataFrame:
    curve = chilling_curve(run)
    cf = counterfactual(run)
    tot = curve.groupby("group")[["run", "counterfactual"]].sum()
    pop = curve.groupby("group")["population"].first()
    days = run.params.days
    rows = []
    for name in run.groups + ["all"]:
        r, c = float(tot.loc[name, "run"]), float(tot.loc[name, "counterfactual"])
        cd = pop[name] * days
        rows.append({"group": name, "speech_run": r, "speech_counterfactual": c, "speech_fall": c - r,
                     "speech_fall_share": (c - r) / c if c > 0 else 0.0,
                     "per_1000_citizen_days_run": 1000 * r / cd if cd else math.nan,
                     "per_1000_citizen_days_counterfactual": 1000 * c / cd if cd else math.nan,
                     "method": cf["method"]})
    if not _speech_behaviours(run):
        for row in rows:
            row["method"] = "no behaviour is marked speech = true in this scenario: nothing to chill"
    return pd.DataFrame(rows).set_index("group")


def gaming_table(run: RunData) -> pd.DataFrame:
    """Points bought (priced or gamed behaviours) versus points earned by conduct, and money collected."""
    P = run.params
    bought = _bought_behaviours(run)
    prices = _prices(run)
    obs = {b: _metric_sum(run, f"observed_{b}") for b in P.behaviours}
    true = {b: _metric_sum(run, f"true_{b}") for b in P.behaviours}
    wrong_rewards = _metric_sum(run, "wrongful_rewards")
    awarded = _metric_sum(run, "points_awarded")
    cf = counterfactual(run)["table"] if bought else None
    rows = []
    for name in run.groups + ["all"]:
        pts_bought = sum(float(obs[b].get(name, 0)) * int(P.points[P.behaviours.index(b)]) for b in bought)
        money = sum(float(obs[b].get(name, 0)) * float(prices.get(b, 0.0)) for b in bought)
        induced = 0.0
        for b in bought:
            c = float(cf[(cf["behaviour"] == b) & (cf["group"] == name)]["events"].sum())
            induced += float(true[b].get(name, 0)) - c
        total_pos = float(awarded.get(name, 0))
        rows.append({"group": name, "bought_behaviours": ", ".join(bought) or "none",
                     "points_bought": pts_bought, "points_earned_by_conduct": total_pos - pts_bought,
                     "bought_share_of_points_awarded": pts_bought / total_pos if total_pos else 0.0,
                     "events_induced_by_gaming": induced, "money_collected": money,
                     "price_declared": bool(bought) and all(b in prices for b in bought),
                     "wrongful_rewards": float(wrong_rewards.get(name, 0))})
    return pd.DataFrame(rows).set_index("group")
