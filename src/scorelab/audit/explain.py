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


def _event_states(run: RunData, ev: pd.DataFrame, start: int) -> dict[str, Any]:
    """Per day (end of day) score, grade, listings, restrictions and household reach of one citizen, read
    from their events in log order: the engine's own record, nothing re-derived."""
    P, T = run.params, run.params.days
    days = np.arange(T)
    kind = ev["kind"].astype(str).to_numpy()
    day = ev["day"].to_numpy().astype(np.int64)
    target = ev["target"].astype(str).to_numpy()
    sc = kind == "score"
    per_day = np.bincount(day[sc], weights=ev["points"].to_numpy()[sc].astype(np.float64), minlength=T)[:T]
    score_d = (start + np.cumsum(np.rint(per_day))).astype(np.int64)

    def state(on: tuple[str, ...], off: tuple[str, ...], name: str) -> np.ndarray:
        out = np.zeros(T, dtype=bool)
        level, last = False, 0
        for k, d, tg in zip(kind, day, target):
            if tg != name or (k not in on and k not in off):
                continue
            out[last:d] = level
            level, last = k in on, int(d)
        out[last:] = level
        return out

    listed, ends_all = [], []
    for name in P.bl_names:
        listed.append(state(("list_start",), ("list_remove", "list_expire"), name))
        e = np.full(T, -1, dtype=np.int64)
        sel = np.isin(kind, ("list_start", "list_extend")) & (target == name)
        e[day[sel]] = ev["until"].to_numpy()[sel]
        set_days = np.maximum.accumulate(np.where(e >= 0, days, -1))
        ends_all.append(np.where(set_days >= 0, e[np.maximum(set_days, 0)], -1))
    restr = [state(("restrict_on",), ("restrict_off",), name) for name in P.restriction_names]
    reach = [state(("reach_on",), ("reach_off",), name) for name in P.restriction_names]
    grade = P.grade_of(score_d) if P.grade_names else np.zeros(T, dtype=np.int8)
    return {"score": score_d, "grade": grade, "listed": listed, "listed_until": ends_all, "restricted": restr,
            "reach": reach}


def _day_states(run: RunData, rows: pd.DataFrame, recompute: bool = False, start: int | None = None) -> dict[str, np.ndarray]:
    """Per day (end of day) score, grade index, listing per blacklist and restriction per restriction.

    One citizen's rows, in ledger order. Listings follow their triggers, removals (``removed_by``) and
    extensions (``extended_by``). With ``recompute`` (the history without its false attributions), the
    rows whose points depend on the score at the time are recomputed from the new score: a rule's score
    cap (``<behaviour>:cap``: the score becomes at most the cap) and the score range (``score_range``).
    """
    P = run.params
    caps, lists = P.plugin("caps"), P.plugin("lists")
    T = P.days
    bidx = {b: i for i, b in enumerate(P.behaviours)}
    names = rows["behaviour"].astype(str).to_numpy()
    day_a = rows["day"].to_numpy().astype(np.int64)
    pts_a = rows["points"].to_numpy().astype(np.int64)
    L = len(P.bl_names)
    score = int(P.start_score if start is None else start)
    start_score = score
    end_score = np.full(T, -1 << 62, dtype=np.int64)
    ends = [np.full(T, -1, dtype=np.int64) for _ in range(L)]
    cur_end = [-1] * L
    for i in range(len(rows)):
        t, name, pts = int(day_a[i]), names[i], int(pts_a[i])
        if recompute and name.endswith(":cap") and caps is not None and name[:-4] in bidx:
            pts = min(0, int(caps.cap[bidx[name[:-4]]]) - score)
        elif recompute and name == "score_range":
            lo = P.score_min if P.score_min is not None else score
            hi = P.score_max if P.score_max is not None else score
            pts = min(max(score, lo), hi) - score
        score += pts
        end_score[t] = score
        b = bidx.get(name)
        if b is None:
            continue
        for k in range(L):
            if P.bl_trigger[k] == b:
                cur_end[k] = max(cur_end[k], t + int(P.bl_duration[k]))
            if lists is not None and lists.removed_by[k, b] and cur_end[k] > t:
                cur_end[k] = t  # leaves the list today
            if lists is not None and lists.extended_by[k, b] and cur_end[k] > t:
                cur_end[k] += int(lists.extension_days[k])
            ends[k][t] = cur_end[k]
    # carry each day's end-of-day state forward over days without rows
    filled = np.maximum.accumulate(np.where(end_score > -(1 << 62), np.arange(T), -1))
    score_d = np.where(filled >= 0, end_score[np.maximum(filled, 0)], start_score)
    days = np.arange(T)
    listed, ends_all = [], []
    for k in range(L):
        set_days = np.maximum.accumulate(np.where(ends[k] >= 0, days, -1))
        e_k = np.where(set_days >= 0, ends[k][np.maximum(set_days, 0)], -1)
        listed.append(days < e_k)
        ends_all.append(e_k)
    grade = P.grade_of(score_d) if P.grade_names else np.zeros(T, dtype=np.int8)
    restr = []
    for r in range(len(P.restriction_names)):
        on = P.restriction_grades[r][grade] if P.grade_names else np.zeros(T, dtype=bool)
        for k in np.flatnonzero(P.restriction_lists[r]):
            on = on | listed[k]
        restr.append(on)
    return {"score": score_d, "grade": grade, "listed": listed, "listed_until": ends_all, "restricted": restr}


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
    start = int(info["start_score"]) if "start_score" in info.index else int(P.start_score)
    led = run.ledger
    rows = led[led["citizen"] == citizen].sort_values(["day"], kind="stable").reset_index(drop=True)
    ev_all = run.events
    ev = ev_all[ev_all["citizen"] == citizen]
    states = _event_states(run, ev, start)
    honest = rows[~rows["false_attribution"]]
    appealed = _day_states(run, honest, recompute=True, start=start)
    grades = list(P.grade_names) or ["-"]

    events = rows[["day", "behaviour", "points", "sensor", "false_attribution"]].copy()
    events["behaviour"] = events["behaviour"].astype(str)
    events["sensor"] = events["sensor"].astype(str)
    events["score_after"] = states["score"][events["day"].to_numpy()] if len(events) else []
    events["grade_after"] = [grades[g] for g in states["grade"][events["day"].to_numpy()]] if len(events) else []
    events = events.rename(columns={"behaviour": "rule"})

    g = states["grade"]
    start_g = int(P.grade_of(np.array([start]))[0]) if P.grade_names else 0
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

    # household reach: restricted because a member of the household is listed
    for r, name in enumerate(P.restriction_names):
        for a, b in _intervals(states["reach"][r]):
            sanctions.append({"restriction": name, "from_day": a, "to_day": b, "days": b - a + 1,
                              "reason": "a member of the household is listed"})
    caveats = []
    if bool(info["restricted"]) != bool(any_r[-1]):  # cannot happen: the event log is the engine's own record
        caveats.append("the event log and the citizens table disagree on the final restriction: this is a bug, "
                       "please report it")
    blocked = ev[ev["kind"].astype(str) == "blocked"]
    profile = {"citizen": int(citizen), "group": str(info["group"]), "start_score": start,
               "final_score": int(info["score"]), "final_grade": str(info["grade"]), "restricted_at_end": bool(info["restricted"]),
               "true_misconduct_events": int(info["true_misconduct"]),
               "recorded_events": len(rows), "recorded_penalties": int((rows["points"] < 0).sum()),
               "false_attributions": n_false, "blocked_attempts": len(blocked),
               "state_events": int((ev["kind"].astype(str) != "score").sum())}
    for col in info.index:
        if col.startswith("propensity_"):
            profile[col] = float(info[col])
    return {"profile": profile, "events": events, "grade_history": grade_history,
            "listings": pd.DataFrame(listings, columns=["blacklist", "from_day", "to_day", "days", "listed_until", "beyond_run"]),
            "sanctions": pd.DataFrame(sanctions, columns=["restriction", "from_day", "to_day", "days", "reason"]),
            "appeal": appeal, "days": P.days, "caveats": caveats,
            "record": ev[["day", "kind", "rule", "points", "sensor", "false_attribution", "target", "until"]].astype(
                {"kind": str, "rule": str, "sensor": str, "target": str}).reset_index(drop=True)}
