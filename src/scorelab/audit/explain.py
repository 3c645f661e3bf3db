"""One citizen's own view of their record, as the UN transparency principle asks.

Every score change with its day, rule, sensor and whether it was a false attribution; the grade and listing
history; the restrictions suffered; and what would change if every false attribution were successfully
appealed (the same history without those rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config.loader import ConfigError
from .metrics import RunData, open_run


def _day_states(run: RunData, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per day (end of day) score, grade index, listing per blacklist and restriction per restriction."""
    P = run.params
    T = P.days
    pts = np.zeros(T, dtype=np.int64)
    np.add.at(pts, rows["day"].to_numpy(), rows["points"].to_numpy().astype(np.int64))
    score = P.start_score + np.cumsum(pts)
    days = np.arange(T)
    listed, ends_all = [], []
    for k, name in enumerate(P.bl_names):
        until = np.full(T, -1, dtype=np.int64)
        trig = rows[rows["behaviour"].astype(str) == P.behaviours[P.bl_trigger[k]]]
        np.maximum.at(until, trig["day"].to_numpy(), trig["day"].to_numpy() + int(P.bl_duration[k]))
        ends = np.maximum.accumulate(until)
        listed.append(days < ends)
        ends_all.append(ends)
    grade = P.grade_of(score) if P.grade_names else np.zeros(T, dtype=np.int8)
    restr = []
    for r in range(len(P.restriction_names)):
        on = P.restriction_grades[r][grade] if P.grade_names else np.zeros(T, dtype=bool)
        for k in np.flatnonzero(P.restriction_lists[r]):
            on = on | listed[k]
        restr.append(on)
    return {"score": score, "grade": grade, "listed": listed, "listed_until": ends_all, "restricted": restr}


def _intervals(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(first_day, last_day)] of the runs of True in mask."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def _kept_hint(run: RunData, cid: int) -> str:
    ids = run.citizens["citizen"].to_numpy()
    i = np.searchsorted(ids, cid)
    near = sorted({int(ids[j]) for j in (i - 1, i) if 0 <= j < len(ids)})
    return ", ".join(map(str, near))


def explain_citizen(run_dir: str | Path | RunData, citizen: int) -> dict[str, Any]:
    run = run_dir if isinstance(run_dir, RunData) else open_run(run_dir)
    P = run.params
    N = int(run.manifest["population"])
    if citizen < 0 or citizen >= N:
        raise ConfigError(str(run.path), "--citizen", f"no citizen {citizen}: ids run from 0 to {N - 1:,}")
    cit = run.citizens
    if len(cit) == 0:
        raise ConfigError(str(run.path), "--citizen", "this run kept no per-citizen detail (--ledger none); "
                                                      "rerun with --ledger all or a sample size to explain a citizen")
    row = cit[cit["citizen"] == citizen]
    if row.empty:
        raise ConfigError(str(run.path), "--citizen",
                          f"citizen {citizen} is not in the kept sample ({run.kept_note}); "
                          f"nearest kept ids: {_kept_hint(run, citizen)}")
    info = row.iloc[0]
    led = run.ledger
    rows = led[led["citizen"] == citizen].sort_values(["day"], kind="stable").reset_index(drop=True)
    states = _day_states(run, rows)
    honest = rows[~rows["false_attribution"]]
    appealed = _day_states(run, honest)
    grades = list(P.grade_names) or ["-"]

    events = rows[["day", "behaviour", "points", "sensor", "false_attribution"]].copy()
    events["behaviour"] = events["behaviour"].astype(str)
    events["sensor"] = events["sensor"].astype(str)
    events["score_after"] = states["score"][events["day"].to_numpy()] if len(events) else []
    events["grade_after"] = [grades[g] for g in states["grade"][events["day"].to_numpy()]] if len(events) else []
    events = events.rename(columns={"behaviour": "rule"})

    g = states["grade"]
    start_g = int(P.grade_of(np.array([P.start_score]))[0]) if P.grade_names else 0
    prev = np.concatenate([[start_g], g[:-1]])
    ch = np.flatnonzero(prev != g)
    grade_history = pd.DataFrame({"day": ch, "from": [grades[i] for i in prev[ch]], "to": [grades[i] for i in g[ch]]})

    listings = []
    for k, name in enumerate(P.bl_names):
        for a, b in _intervals(states["listed"][k]):
            until = int(states["listed_until"][k][b])
            listings.append({"blacklist": name, "from_day": a, "to_day": b, "days": b - a + 1,
                             "listed_until": until, "beyond_run": until > P.days})
    sanctions = []
    for r, name in enumerate(P.restriction_names):
        for a, b in _intervals(states["restricted"][r]):
            reason = []
            if P.grade_names and P.restriction_grades[r][g[a]]:
                reason.append(f"grade {grades[g[a]]}")
            for k in np.flatnonzero(P.restriction_lists[r]):
                if states["listed"][k][a]:
                    reason.append(f"listed on {P.bl_names[k]}")
            sanctions.append({"restriction": name, "from_day": a, "to_day": b, "days": b - a + 1,
                              "reason": " and ".join(reason)})

    any_r = np.any(states["restricted"], axis=0) if states["restricted"] else np.zeros(P.days, bool)
    any_a = np.any(appealed["restricted"], axis=0) if appealed["restricted"] else np.zeros(P.days, bool)
    n_false = int(rows["false_attribution"].sum())
    appeal = {
        "false_attributions": n_false,
        "false_points": int(rows.loc[rows["false_attribution"], "points"].sum()),
        "final_score": int(states["score"][-1]), "final_score_if_appealed": int(appealed["score"][-1]),
        "final_grade": grades[int(states["grade"][-1])], "final_grade_if_appealed": grades[int(appealed["grade"][-1])],
        "restricted_days": int(any_r.sum()), "restricted_days_if_appealed": int(any_a.sum()),
        "grade_days_changed": int((states["grade"] != appealed["grade"]).sum()),
        "listed_days": int(sum(x.sum() for x in states["listed"])),
        "listed_days_if_appealed": int(sum(x.sum() for x in appealed["listed"])),
    }
    if n_false == 0:
        appeal["summary"] = "no false attribution is recorded for this citizen: an appeal would change nothing"
    else:
        diffs = [f"{n_false} false attribution(s) removed ({-appeal['false_points']:+d} points)",
                 f"final score {appeal['final_score']} -> {appeal['final_score_if_appealed']}"]
        if appeal["final_grade"] != appeal["final_grade_if_appealed"]:
            diffs.append(f"final grade {appeal['final_grade']} -> {appeal['final_grade_if_appealed']}")
        if appeal["grade_days_changed"]:
            diffs.append(f"a different grade on {appeal['grade_days_changed']} day(s)")
        diffs.append(f"restricted days {appeal['restricted_days']} -> {appeal['restricted_days_if_appealed']}")
        appeal["summary"] = "; ".join(diffs) + " (holding the citizen's other recorded events fixed)"

    profile = {"citizen": int(citizen), "group": str(info["group"]), "start_score": P.start_score,
               "final_score": int(info["score"]), "final_grade": str(info["grade"]), "restricted_at_end": bool(info["restricted"]),
               "true_misconduct_events": int(info["true_misconduct"]),
               "recorded_events": len(rows), "false_attributions": n_false}
    for col in info.index:
        if col.startswith("propensity_"):
            profile[col] = float(info[col])
    return {"profile": profile, "events": events, "grade_history": grade_history,
            "listings": pd.DataFrame(listings, columns=["blacklist", "from_day", "to_day", "days", "listed_until", "beyond_run"]),
            "sanctions": pd.DataFrame(sanctions, columns=["restriction", "from_day", "to_day", "days", "reason"]),
            "appeal": appeal, "days": P.days}
