"""The audit of a run: who was sanctioned, who wrongly, what speech was chilled, who gamed, how unequal,
how exposed.

Modelled on group → bias → fairness audits (Aequitas) and per-group metrics with intervals (Fairlearn's
MetricFrame), but over a system's whole history and against ground truth: each citizen's true misconduct
and each ledger row's false-attribution flag are known, so errors are measured, not estimated.

Sources of each figure:
* all citizens: metrics.parquet (per day and group) — restricted shares, penalties, events.
* the kept citizens (all, or a systematic sample): citizens.parquet and a replay of ledger.parquet
  (audit/replay.py) — per-citizen restriction days, grade histories, wrongful sanctions, k-anonymity.
* the counterfactual without the policy (audit/counterfactual.py) — chilling effect and gaming.

Intervals: 95% percentile bootstrap over the kept citizens, resampled within each group (stratified),
`BOOTSTRAP` resamples seeded with the run's seed. Because every statistic here is a mean of a discrete
per-citizen value (or a ratio of such means), a resample is drawn exactly as a multinomial over the
distinct values, which costs the same for 1,000 or 1,000,000 citizens.

`audit_run(run_dir)` returns the tables as DataFrames; `audit_summary(run_dir)` the headline scalars;
`write_audit(run_dir)` also stores them as audit.parquet (long form), audit.json and chilling.parquet.

The tables live in rundata.py (loading), bootstrap.py (intervals), harms.py (sanctions, wrongful, chilling,
gaming) and society.py (inequality, transitions, privacy); this module assembles them.
"""


from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .rundata import BOOTSTRAP, DI_HIGH, DI_LOW, K_ANON  # noqa: F401
from .rundata import RunData, open_run, _require_detail  # noqa: F401  (re-exported: the audit's API)
from .bootstrap import _boot_means, _boot_cells, _ci, _di, _di_flag, _ratio, gini  # noqa: F401  (re-exported: the audit's API)
from .harms import _group_rows, _last_day, _metric_sum, sanctions_table, sanctions_aggregate, wrongful_aggregate, wrongful_table, _speech_behaviours, _prices, _bought_behaviours, counterfactual, chilling_curve, chilling_table, gaming_table  # noqa: F401  (re-exported: the audit's API)
from .society import _bottom_grades, inequality_table, _spillover, _household_spillover, _spillover_note, transitions_table, privacy_table, k_anonymity  # noqa: F401  (re-exported: the audit's API)


def _open(run_dir: str | Path | RunData, **options: Any) -> RunData:
    run = run_dir if isinstance(run_dir, RunData) else open_run(run_dir)
    run.options.update({k: v for k, v in options.items() if v is not None})
    return run


def audit_run(run_dir: str | Path | RunData, **options: Any) -> dict[str, pd.DataFrame]:
    """Every audit table of a run. Options: counterfactual="fast"|"full", counterfactual_population=int."""
    run = _open(run_dir, **options)
    if len(run.citizens) == 0:  # aggregate metrics only: what needs citizens is left out, and notes say so
        return {"sanctions": sanctions_aggregate(run), "wrongful": wrongful_aggregate(run),
                "chilling": chilling_table(run), "chilling_curve": chilling_curve(run), "gaming": gaming_table(run)}
    return {
        "sanctions": sanctions_table(run),
        "wrongful": wrongful_table(run),
        "chilling": chilling_table(run),
        "chilling_curve": chilling_curve(run),
        "gaming": gaming_table(run),
        "inequality": inequality_table(run),
        "transitions": transitions_table(run, "start_end"),
        "grade_changes": transitions_table(run, "changes"),
        "privacy": privacy_table(run),
    }


SUMMARY_COLUMNS = {
    "sanctions": ["restricted_final_share", "restricted_mean_share", "ever_restricted_share", "disparate_impact",
                  "disparate_impact_flag",
                  "restricted_days_mean", "false_positive_rate", "false_negative_rate", "innocent_among_restricted"],
    "wrongful": ["falsely_attributed_share", "wrongly_restricted", "wrongly_restricted_share",
                 "wrongful_restriction_days", "grade_changed", "listing_changed"],
    "chilling": ["speech_run", "speech_counterfactual", "speech_fall", "speech_fall_share"],
    "gaming": ["points_bought", "points_earned_by_conduct", "bought_share_of_points_awarded", "events_induced_by_gaming",
               "money_collected"],
    "inequality": ["gini", "bottom_share_final", "ever_bottom_share", "stuck_in_bottom_share", "grade_changes_per_citizen",
                   "contacts_of_restricted_share"],
}
RENAME = {"wrongly_restricted_share": "wrongful_sanctioned_share", "wrongly_restricted": "wrongful_sanctioned",
          "restricted_final_share": "restricted_share"}


def summary_from_tables(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    out: dict[str, float] = {}
    for table, cols in SUMMARY_COLUMNS.items():
        df = tables.get(table)
        if df is None:
            continue
        for col in cols:
            if col not in df.columns:
                continue
            key = RENAME.get(col, col)
            for group, v in df[col].items():
                if isinstance(v, (bool, np.bool_)):
                    v = float(v)
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(v):
                    out[f"{key}[{group}]"] = v
    if "inequality" not in tables:
        return out
    priv = tables["privacy"]["value"]
    for metric in ("sources_per_citizen_mean", "fused_share", "records_per_citizen_mean", "unique_share[all_recipients]",
                   f"below_k{K_ANON}_share[all_recipients]"):
        if metric in priv.index:
            out[metric.replace("[all_recipients]", "") + "[all]"] = float(priv[metric])
    return out


def audit_summary(run_dir: str | Path | RunData, **options: Any) -> dict[str, float]:
    """Flat headline scalars, e.g. "restricted_share[rural]", "disparate_impact[rural]", "gini[all]"."""
    return summary_from_tables(audit_run(run_dir, **options))


def _long(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All tables in one long frame: table, group, metric, value, ci_low, ci_high, text."""
    rows = []
    for name, df in tables.items():
        if name == "chilling_curve":
            continue
        if name in ("transitions", "grade_changes"):
            for frm, row in df.iterrows():
                for to, v in row.items():
                    rows.append((name, str(frm), f"to_{to}", float(v), math.nan, math.nan, ""))
            continue
        if name == "privacy":
            for metric, row in df.iterrows():
                rows.append((name, "all", metric, float(row["value"]), math.nan, math.nan, str(row["note"])))
            continue
        for group, row in df.iterrows():
            for col, v in row.items():
                if col.endswith(("_ci_low", "_ci_high")):
                    continue
                lo = row.get(f"{_ci_base(col)}_ci_low", math.nan)
                hi = row.get(f"{_ci_base(col)}_ci_high", math.nan)
                if isinstance(v, str):
                    rows.append((name, str(group), col, math.nan, math.nan, math.nan, v))
                else:
                    rows.append((name, str(group), col, float(v), float(lo), float(hi), ""))
    return pd.DataFrame(rows, columns=["table", "group", "metric", "value", "ci_low", "ci_high", "text"])


def _ci_base(col: str) -> str:
    return {"ever_restricted_share": "ever_restricted", "restricted_days_mean": "restricted_days",
            "false_positive_rate": "false_positive", "false_negative_rate": "false_negative",
            "wrongly_restricted_share": "wrongly_restricted",
            "wrongful_restriction_days_per_citizen": "wrongful_restriction_days"}.get(col, col)


def event_log_check(run: RunData) -> dict[str, Any]:
    """The per-citizen histories (read from the event log) against the engine's own totals.

    With every citizen kept, the citizens' restricted, listed and household-reached days summed over
    citizens must equal metrics.parquet's daily counts summed over days, and each final state must equal
    the citizens table's; both numbers are reported, so a reader can see they agree.
    """
    out: dict[str, Any] = {"checked": False}
    if len(run.citizens) == 0:
        return out
    h = run.history
    c = run.citizens
    out["final_score_agrees"] = float((h.final_score == c["score"].to_numpy()).mean())
    out["final_restricted_agrees"] = float((h.final_restricted == c["restricted"].to_numpy(dtype=bool)).mean())
    pairs = []
    if len(c) == int(run.manifest["population"]):
        m = run.metrics
        a = m[m["group"].astype(str) == "all"]
        out["checked"] = True
        out["restricted_days_engine"] = int(round(float((a["restricted_share"] * a["population"]).sum())))
        out["restricted_days_events"] = int(h.restricted_days.sum())
        pairs.append(("restricted_days_engine", "restricted_days_events"))
        for k, name in enumerate(run.params.bl_names):
            if f"listed_{name}" in a.columns:
                out[f"listed_days_engine[{name}]"] = int(a[f"listed_{name}"].sum())
                out[f"listed_days_events[{name}]"] = int(h.listed_days[:, k].sum())
                pairs.append((f"listed_days_engine[{name}]", f"listed_days_events[{name}]"))
        for r, name in enumerate(run.params.restriction_names):
            if f"reached_{name}" in a.columns:
                out[f"reached_days_engine[{name}]"] = int(a[f"reached_{name}"].sum())
                out[f"reached_days_events[{name}]"] = int(h.reach_days[:, r].sum())
                pairs.append((f"reached_days_engine[{name}]", f"reached_days_events[{name}]"))
        for decl in run.params.plugin_metrics:  # a plugin's declared stock and its enter/leave events
            if decl.kind == "stock" and decl.target in h.plugin_days and decl.name in a.columns:
                out[f"{decl.name}_days_engine"] = int(a[decl.name].sum())
                out[f"{decl.name}_days_events"] = int(h.plugin_days[decl.target].sum())
                pairs.append((f"{decl.name}_days_engine", f"{decl.name}_days_events"))
    out["exact"] = bool(out["final_score_agrees"] == 1.0 and out["final_restricted_agrees"] == 1.0
                        and all(out[x] == out[y] for x, y in pairs))
    return out


def _fidelity_note(f: dict[str, Any]) -> str:
    if f.get("checked"):
        head = (f"read from the event log; restricted citizen-days: events {f['restricted_days_events']:,}, "
                f"engine {f['restricted_days_engine']:,}")
    else:
        head = "read from the event log of the kept citizens (a sample: the engine's totals cover everyone)"
    if not f.get("exact") and "final_restricted_agrees" in f:
        head += (f". MISMATCH: final states agree for {f['final_restricted_agrees']:.2%} of kept citizens; "
                 "this is a bug, please report it")
    return head


def _truth_note(run: RunData) -> str:
    P = run.params
    bad = [b for b, m in zip(P.behaviours, P.misconduct) if m]
    text = ("true misconduct = at least one true event (observed or not) of a behaviour the scenario declares "
            f"misconduct ({', '.join(bad) or 'none'}); points play no part; restricted = restricted on at least one day")
    sp = [b for b, s, m in zip(P.behaviours, P.speech, P.misconduct) if s and m]
    if sp:
        text += (f". Caution: this scenario declares speech ({', '.join(sp)}) misconduct, so a citizen whose only "
                 "'misconduct' was speaking counts as guilty here")
    return text


def notes(run: RunData, tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    cf = counterfactual(run)
    kept = (f"per-citizen figures use {run.kept_note}" if len(run.citizens) else
            "this run kept no per-citizen detail (--ledger none): ever-restricted shares, errors against ground truth, "
            "wrongful sanctions, inequality, transitions and privacy need a run with --ledger all or a sample size; "
            "disparate impact here compares the groups' mean restricted shares")
    out = {
        "population": f"{run.manifest['population']:,} citizens, {run.params.days} days, seed {run.seed}",
        "kept": kept,
        "intervals": (f"95% percentile bootstrap over the kept citizens, stratified by group, {BOOTSTRAP} resamples, "
                      f"seeded with the run's seed ({run.seed})"),
        "ground_truth": _truth_note(run),
        "wrongful": ("wrongful effects compare each citizen's replayed history with the same history without its false "
                     "attributions, holding the citizen's other recorded events fixed (first order: it ignores that a "
                     "false penalty also deters later behaviour)"),
        "counterfactual": cf["method"],
        "spillover": _spillover_note(run) if len(run.citizens) else "needs per-citizen detail",
        "disparate_impact": (f"{'ever-restricted' if len(run.citizens) else 'mean restricted'} share of each group over that of the least restricted group "
                             f"({tables['sanctions']['reference_group'].iloc[0]}); flagged outside {DI_LOW}-{DI_HIGH}"),
    }
    if len(run.citizens):
        out["history"] = _fidelity_note(event_log_check(run))
    return out


def write_audit(run_dir: str | Path | RunData, **options: Any) -> dict[str, Any]:
    """Compute the audit and store audit.parquet, audit.json and chilling.parquet in the run directory."""
    run = _open(run_dir, **options)
    tables = audit_run(run)
    summary = summary_from_tables(tables)
    note = notes(run, tables)
    from ..store import write_parquet
    import pyarrow as pa

    long = _long(tables)
    _atomic(run.path / "audit.parquet", lambda p: write_parquet(pa.Table.from_pandas(long, preserve_index=False), p))
    curve = tables["chilling_curve"]
    _atomic(run.path / "chilling.parquet", lambda p: write_parquet(pa.Table.from_pandas(curve, preserve_index=False), p))
    doc = {"summary": _clean(summary), "notes": note, "event_log_check": _clean(event_log_check(run)),
           "tables": {k: _records(v) for k, v in tables.items() if k != "chilling_curve"}}
    _atomic(run.path / "audit.json", lambda p: p.write_text(json.dumps(doc, indent=1, default=str) + "\n"))
    return {"run": run, "tables": tables, "summary": summary, "notes": note}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    d = df.reset_index()
    return [{k: _clean(v) for k, v in row.items()} for row in d.to_dict(orient="records")]


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


def _atomic(path: Path, write) -> None:
    from ..atomic import write_atomic

    write_atomic(path, write)
