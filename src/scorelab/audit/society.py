"""The society tables: how unequal (inequality, spillover through households), how grades move
(transitions), how exposed (privacy, k-anonymity of what is shared)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..engine.params import Params
from .rundata import K_ANON
from .rundata import RunData, _require_detail
from .bootstrap import gini
from .harms import _group_rows


def _bottom_grades(P: Params) -> list[int]:
    """Grades that some restriction names (the sanctioned bands); else the lowest two."""
    K = len(P.grade_names)
    if not K:
        return []
    named = [k for k in range(K) if P.restriction_grades[:, k].any()] if len(P.restriction_names) else []
    return named or list(range(min(2, K)))


def inequality_table(run: RunData) -> pd.DataFrame:
    _require_detail(run, "the inequality audit")
    P = run.params
    rp = run.history
    score = run.citizens["score"].to_numpy().astype(np.float64)
    shift = min(0.0, float(P.score_min) if P.score_min is not None else float(score.min(initial=0)))
    bottom = _bottom_grades(P)
    bdays = rp.grade_days[:, bottom].sum(axis=1) if bottom else np.zeros(len(score))
    ever_bottom = bdays > 0
    end_bottom = np.isin(rp.final_grade, bottom)
    graph = _spillover(run)
    rows = []
    for name, mask in _group_rows(run):
        s = score[mask]
        rows.append({"group": name, "gini": gini(s - shift) if len(s) else math.nan,
                     "score_mean": float(s.mean()) if len(s) else math.nan,
                     "score_p10": float(np.percentile(s, 10)) if len(s) else math.nan,
                     "score_p50": float(np.percentile(s, 50)) if len(s) else math.nan,
                     "score_p90": float(np.percentile(s, 90)) if len(s) else math.nan,
                     "bottom_grades": ", ".join(P.grade_names[k] for k in bottom),
                     "bottom_share_final": float(end_bottom[mask].mean()) if mask.any() else math.nan,
                     "ever_bottom_share": float(ever_bottom[mask].mean()) if mask.any() else math.nan,
                     "stuck_in_bottom_share": float(end_bottom[mask & ever_bottom].mean()) if (mask & ever_bottom).any() else 0.0,
                     "bottom_days_mean": float(bdays[mask].mean()) if mask.any() else math.nan,
                     "grade_changes_per_citizen": float(rp.grade_changes[mask].mean()) if mask.any() else math.nan,
                     "contacts_of_restricted_share": graph.get(name, math.nan)})
    return pd.DataFrame(rows).set_index("group")


def _spillover(run: RunData) -> dict[str, float]:
    """Share of unrestricted kept citizens with a restricted contact, from graph.parquet (citizen, contact).

    Runs without a social graph have no spill-over channel: the values are NaN and the notes say so.
    """
    path = run.path / "graph.parquet"
    if not path.is_file():
        return _household_spillover(run)
    edges = pd.read_parquet(path)
    ids = run.citizens["citizen"].to_numpy()
    restricted = run.history.restricted_days > 0
    src = np.searchsorted(ids, edges["citizen"].to_numpy())
    dst = np.searchsorted(ids, edges["contact"].to_numpy())
    ok = (src < len(ids)) & (dst < len(ids))
    ok &= (ids[np.minimum(src, len(ids) - 1)] == edges["citizen"].to_numpy()) & (ids[np.minimum(dst, len(ids) - 1)] == edges["contact"].to_numpy())
    exposed = np.zeros(len(ids), dtype=bool)
    exposed[src[ok][restricted[dst[ok]]]] = True
    out = {}
    for name, mask in _group_rows(run):
        free = mask & ~restricted
        out[name] = float(exposed[free].mean()) if free.any() else math.nan
    return out


def _household_spillover(run: RunData) -> dict[str, float]:
    """Share of citizens free at the end who live with a member restricted at the end (the engine's final
    states in citizens.parquet, households from its `household` column). Needs every citizen kept: a
    sample splits households. Empty without households."""
    c = run.citizens
    if "household" not in c.columns or len(c) != int(run.manifest["population"]) or len(c) == 0:
        return {}
    hh = pd.factorize(c["household"].to_numpy())[0]
    restricted = c["restricted"].to_numpy(dtype=bool)
    n_restricted = np.bincount(hh, weights=restricted, minlength=int(hh.max()) + 1)
    exposed = (n_restricted[hh] - restricted) > 0
    out = {}
    for name, mask in _group_rows(run):
        free = mask & ~restricted
        out[name] = float(exposed[free].mean()) if free.any() else math.nan
    return out


def _spillover_note(run: RunData) -> str:
    if (run.path / "graph.parquet").is_file():
        return "share of unrestricted citizens with a restricted contact, from graph.parquet"
    c = run.citizens
    if "household" in c.columns:
        if len(c) != int(run.manifest["population"]):
            return ("households are known but only a sample of citizens was kept, which splits households: "
                    "not measured (rerun with --ledger all)")
        reached = [col for col in run.metrics.columns if col.startswith("reached_")]
        m = run.metrics
        last = m[(m["day"] == m["day"].max()) & (m["group"].astype(str) == "all")]
        extra = "".join(f"; the engine counts {int(last[col].iloc[0]):,} household members reached by "
                        f"{col[len('reached_'):]} on the last day" for col in reached)
        return ("through households: share of citizens free at the end who live with a citizen restricted at the "
                "end (the engine's final states)" + extra + ". Contact networks are not stored, so spill-over "
                "through contacts is not measured")
    return "this run has no households or social graph, so no spill-over channel exists: not measured"


def transitions_table(run: RunData, kind: str = "start_end") -> pd.DataFrame:
    """Grade-to-grade matrix: `start_end` (grade at the start vs at the end, kept citizens) or
    `changes` (every grade change during the run). Rows: from; columns: to; highest grade first."""
    _require_detail(run, "the grade-transition audit")
    P = run.params
    names = list(P.grade_names)[::-1]
    K = len(P.grade_names)
    if K == 0:
        return pd.DataFrame(index=pd.Index([], name="from"))
    if kind == "changes":
        mat = run.history.transitions
    else:
        mat = np.zeros((K, K), dtype=np.int64)
        np.add.at(mat, (run.history.start_grade, run.history.final_grade), 1)
    mat = mat[::-1, ::-1]
    df = pd.DataFrame(mat, index=pd.Index(names, name="from"), columns=names)
    return df


def privacy_table(run: RunData) -> pd.DataFrame:
    """Data fused per citizen, records held, recipients, retention, and k-anonymity of what is shared."""
    _require_detail(run, "the privacy audit")
    gov = run.scenario.policy.governance
    a = run.ledger_arrays
    n = len(run.citizens)
    real = a["real_sensor"]
    seen = np.zeros((n, max(1, a["n_sensors"])), dtype=bool)
    seen[a["pos"][real], a["sensor"][real]] = True
    sources = seen.sum(axis=1)
    records = np.bincount(a["pos"], minlength=n)
    rows = [
        ("sensors", len(run.params.sensors), "data sources the policy reads: " + ", ".join(run.params.sensors)),
        ("sources_per_citizen_mean", float(sources.mean()) if n else math.nan, "distinct sensors with a record on the citizen"),
        ("sources_per_citizen_max", int(sources.max(initial=0)), ""),
        ("fused_share", float((sources >= 2).mean()) if n else math.nan, "share of citizens with records from 2 or more sources"),
        ("records_per_citizen_mean", float(records.mean()) if n else math.nan, "ledger rows held per citizen"),
        ("records_per_citizen_max", int(records.max(initial=0)), ""),
        ("records_held", int(records.sum()), f"ledger rows for {run.kept_note}"),
        ("retention_days", math.nan if gov.retention_days is None else gov.retention_days,
         "no retention limit declared: records are kept indefinitely" if gov.retention_days is None else "declared retention"),
        ("recipients", len(gov.recipients), ", ".join(f"{r.name} ({r.kind})" for r in gov.recipients) or "none declared"),
    ]
    shared = list(dict.fromkeys(f for r in gov.recipients for f in r.fields))
    for label, fields in [("all_recipients", shared)] + [(r.name, list(r.fields)) for r in gov.recipients]:
        res = k_anonymity(run.citizens, fields)
        if not fields:
            what = "no recipient is declared, so nothing is measured as shared (a published list the policy does not declare is not counted)"
        elif not res["fields"]:
            what = f"not measurable: the shared fields ({', '.join(res['missing'])}) are not in this run's tables"
        else:
            what = f"share of citizens unique on {', '.join(res['fields'])}" + (
                f" (not in this run's tables: {', '.join(res['missing'])})" if res["missing"] else "")
        rows.append((f"unique_share[{label}]", res["unique_share"], what))
        rows.append((f"below_k{K_ANON}_share[{label}]", res["below_k_share"], f"share in a class of fewer than {K_ANON} citizens"))
        rows.append((f"min_k[{label}]", res["min_k"], "size of the smallest class"))
    return pd.DataFrame(rows, columns=["metric", "value", "note"]).set_index("metric")


def k_anonymity(citizens: pd.DataFrame, fields: list[str]) -> dict[str, Any]:
    """Sizes of the classes of citizens that share the same values of ``fields`` (quasi-identifiers)."""
    have = [f for f in fields if f in citizens.columns]
    missing = [f for f in fields if f not in citizens.columns]
    n = len(citizens)
    if not have or n == 0:  # nothing shared that the run's tables hold: not measurable, not "safe"
        return {"fields": have, "missing": missing, "unique_share": math.nan, "below_k_share": math.nan,
                "min_k": math.nan, "classes": 0}
    codes = [pd.factorize(citizens[f])[0].astype(np.int64) for f in have]
    key = codes[0]
    for c in codes[1:]:
        key = key * (int(c.max()) + 1) + c
        key = pd.factorize(key)[0].astype(np.int64)
    size = np.bincount(key)
    k = size[key]
    return {"fields": have, "missing": missing, "unique_share": float((k == 1).mean()),
            "below_k_share": float((k < K_ANON).mean()), "min_k": int(k.min()), "classes": int(len(size))}


# ---------------------------------------------------------------- the whole audit
