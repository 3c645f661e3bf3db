"""Per-citizen histories read from the event log, exactly: nothing is re-derived from rules.

A state that an event switches on and another switches off (listed, restricted, reached through the
household, privileged) lasts, for one citizen, sum(off days) - sum(on days) + T x (ons - offs): on and off
alternate in the log, and a state still on at the end lasts to day T. States are those at the end of a
day, as in metrics.parquet. Any restriction at all is the union over restrictions, found by a running
count of the citizen's restrict_on/off events in log order.

Grades are a function of the score, and every score change is an event of kind ``score``, so the grade
history is the step function of each citizen's start score plus the cumulative points of their events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine.params import Params


@dataclass
class History:
    n: int
    days: int
    restricted_days: np.ndarray  # [n] days under any restriction (own grade or own listing)
    restriction_days: np.ndarray  # [n, R] days under each restriction
    listed_days: np.ndarray  # [n, L]
    reach_days: np.ndarray  # [n, R] days restricted through the household
    privilege_days: np.ndarray  # [n, P]
    blocked: np.ndarray  # [n] attempts refused
    plugin_days: dict  # target name -> [n] days in a plugin's list or state (enter ... leave)
    final_restricted: np.ndarray  # [n] bool
    grade_days: np.ndarray  # [n, K]
    start_grade: np.ndarray  # [n]
    final_score: np.ndarray  # [n]
    final_grade: np.ndarray  # [n]
    transitions: np.ndarray  # [K, K] grade changes from row grade to column grade
    grade_changes: np.ndarray  # [n]


def _codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    c = col.astype("category") if not isinstance(col.dtype, pd.CategoricalDtype) else col
    return c.cat.codes.to_numpy().astype(np.int64), [str(x) for x in c.cat.categories]


def _on_off_days(pos: np.ndarray, day: np.ndarray, on: np.ndarray, off: np.ndarray, n: int, T: int) -> np.ndarray:
    """[n] days in the state for events where ``on``/``off`` mark the switching rows (they alternate)."""
    d = day.astype(np.float64)
    out = np.bincount(pos[off], weights=d[off], minlength=n) - np.bincount(pos[on], weights=d[on], minlength=n)
    out += T * (np.bincount(pos[on], minlength=n) - np.bincount(pos[off], minlength=n))
    return np.rint(out).astype(np.int64)


def build_history(params: Params, events: pd.DataFrame, ids: np.ndarray, start_score: np.ndarray) -> History:
    """Histories of the citizens ``ids`` (sorted) from their events, in log order."""
    P, T, n = params, params.days, len(ids)
    pos = np.searchsorted(ids, events["citizen"].to_numpy())
    day = events["day"].to_numpy().astype(np.int64)
    kind, knames = _codes(events["kind"])
    tgt, tnames = _codes(events["target"])

    def is_kind(*names: str) -> np.ndarray:
        codes = [knames.index(k) for k in names if k in knames]
        return np.isin(kind, codes) if codes else np.zeros(len(kind), dtype=bool)

    def on_target(name: str) -> np.ndarray:
        return tgt == tnames.index(name) if name in tnames else np.zeros(len(tgt), dtype=bool)

    R, L = len(P.restriction_names), len(P.bl_names)
    priv = P.plugin("privileges")
    privs = list(priv.names) if priv is not None else []
    r_on, r_off = is_kind("restrict_on"), is_kind("restrict_off")
    restriction_days = np.zeros((n, R), dtype=np.int64)
    reach_days = np.zeros((n, R), dtype=np.int64)
    for r, name in enumerate(P.restriction_names):
        t_r = on_target(name)
        restriction_days[:, r] = _on_off_days(pos, day, r_on & t_r, r_off & t_r, n, T)
        reach_days[:, r] = _on_off_days(pos, day, is_kind("reach_on") & t_r, is_kind("reach_off") & t_r, n, T)
    listed_days = np.zeros((n, L), dtype=np.int64)
    l_on, l_off = is_kind("list_start"), is_kind("list_remove", "list_expire")
    for k, name in enumerate(P.bl_names):
        t_k = on_target(name)
        listed_days[:, k] = _on_off_days(pos, day, l_on & t_k, l_off & t_k, n, T)
    privilege_days = np.zeros((n, len(privs)), dtype=np.int64)
    for q, name in enumerate(privs):
        t_q = on_target(name)
        privilege_days[:, q] = _on_off_days(pos, day, is_kind("privilege_on") & t_q, is_kind("privilege_off") & t_q, n, T)

    # any restriction: a running count of active restrictions per citizen, in log order
    sel = np.flatnonzero(r_on | r_off)
    restricted_days = np.zeros(n, dtype=np.int64)
    final_restricted = np.zeros(n, dtype=bool)
    if len(sel):
        order = sel[np.lexsort((day[sel], pos[sel]))]  # stable: log order within a citizen's day
        p, d = pos[order], day[order]
        step = np.where(r_on[order], 1, -1)
        cs = np.cumsum(step)
        first = np.ones(len(p), dtype=bool)
        first[1:] = p[1:] != p[:-1]
        base = np.maximum.accumulate(np.where(first, np.arange(len(p)), 0))
        count = cs - (cs - step)[base]  # active restrictions after each event, per citizen
        prev = count - step
        up = (prev == 0) & (count > 0)
        down = (prev > 0) & (count == 0)
        restricted_days = _on_off_days(p, d, up, down, n, T)
        last = np.ones(len(p), dtype=bool)
        last[:-1] = p[1:] != p[:-1]
        final_restricted[p[last]] = count[last] > 0
    blocked = np.bincount(pos[is_kind("blocked")], minlength=n).astype(np.int64)
    p_on, p_off = is_kind("enter", "privilege_on"), is_kind("leave", "privilege_off")  # a mechanism's list or state
    plugin_days = {name: _on_off_days(pos, day, p_on & on_target(name), p_off & on_target(name), n, T)
                   for name in P.plugin_targets}

    # grades from the score events
    sc = is_kind("score")
    spos, sday, spts = pos[sc], day[sc], events["points"].to_numpy()[sc].astype(np.int64)
    grade_days, start_grade, final_score, final_grade, transitions, changes = grade_history(
        P, n, np.asarray(start_score, dtype=np.int64), spos, sday, spts)
    return History(n, T, restricted_days, restriction_days, listed_days, reach_days, privilege_days, blocked,
                   plugin_days, final_restricted, grade_days, start_grade, final_score, final_grade, transitions, changes)


def grade_history(P: Params, n: int, start: np.ndarray, pos: np.ndarray, day: np.ndarray, pts: np.ndarray):
    """Days in each grade, start and final grade, final score, grade transitions, from score changes."""
    T, K = P.days, len(P.grade_names)
    # the score at the end of each (citizen, day) with changes
    key = pos * (T + 1) + day
    order = np.argsort(key, kind="stable")
    key = key[order]
    final_score = start.copy()
    if len(key):
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        idx = np.flatnonzero(first)
        cpos, cday = pos[order][idx], day[order][idx]
        cpts = np.add.reduceat(pts[order], idx)
    else:
        cpos = cday = cpts = np.empty(0, dtype=np.int64)
    m = len(cpos)
    seg0 = np.ones(m, dtype=bool)
    seg0[1:] = cpos[1:] != cpos[:-1]
    cs = np.cumsum(cpts)
    head = np.maximum.accumulate(np.where(seg0, np.arange(m), 0)) if m else np.empty(0, dtype=np.int64)
    score = start[cpos] + cs - ((cs - cpts)[head] if m else 0)
    start_grade = P.grade_of(start).astype(np.int64) if K else np.zeros(n, dtype=np.int64)
    grade = P.grade_of(score).astype(np.int64) if K else np.zeros(m, dtype=np.int64)
    nxt = np.empty(m, dtype=np.int64)
    last = np.ones(m, dtype=bool)
    if m:
        nxt[:-1] = cday[1:]
        last[:-1] = cpos[1:] != cpos[:-1]
        nxt[last] = T
    dur = nxt - cday
    first_day = np.full(n, T, dtype=np.int64)
    if m:
        first_day[cpos[seg0]] = cday[seg0]
    grade_days = np.zeros((n, max(K, 1)), dtype=np.int64)
    if K:
        grade_days = np.bincount(cpos * K + grade, weights=dur, minlength=n * K).astype(np.int64).reshape(n, K)
        np.add.at(grade_days, (np.arange(n), start_grade), first_day)
    final_grade = start_grade.copy()
    if m:
        final_score[cpos[last]] = score[last]
        final_grade[cpos[last]] = grade[last]
    transitions = np.zeros((max(K, 1), max(K, 1)), dtype=np.int64)
    changes = np.zeros(n, dtype=np.int64)
    if K and m:
        prev = np.empty(m, dtype=np.int64)
        prev[1:] = grade[:-1]
        prev[seg0] = start_grade[cpos[seg0]]
        moved = prev != grade
        np.add.at(transitions, (prev[moved], grade[moved]), 1)
        changes = np.bincount(cpos[moved], minlength=n).astype(np.int64)
    return grade_days, start_grade, final_score, final_grade, transitions, changes
