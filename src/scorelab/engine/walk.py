"""The per-citizen walk: each citizen's whole run in one compiled pass, citizen after citizen (Numba).

stages.py (and the compiled day, engine/compiled.py, which gives its bytes) walks the days and, each day,
the few citizens who act: every stage gathers and scatters over the whole shard's arrays, so most of a
day's cost is cache misses. This kernel turns the loops round. It takes one citizen at a time and walks
that citizen's own events through the run, holding the citizen's state in registers. All the citizen's
sources of candidate events (each behaviour at its bound pmax, each false-attribution source) form one
stream of days: the next day with some candidate is a geometric skip at 1 - prod(1 - p_j), and on that
day the sources that have one are drawn exactly (`candidate_tables`: the first by its share, then, rarely,
any later one). The citizen's day is run only when something can happen to them (a candidate, or a
listing running out). On that day it applies the same rules as stages.py, in the same order — behave
(thinning by deterrence, chilling, heterogeneity, gaming, score curves), observe (per-group detection,
false attributions), score, sanction, respond, clip, grade_and_restrict — and adds to the shard's
per-day, per-group counts; stocks (score sums, restricted, grades, listed) and the score histograms are
kept as changes per day and summed once at the end.

It is the same model, not the same random numbers: each citizen draws from its own counter-free stream
(SplitMix64 seeded by a hash of the run's seed and the citizen's global id), where stages.py draws each
behaviour's candidates for a whole group block from one PCG64 stream. So the two agree statistically, not
byte for byte (tests/engine/test_walk.py compares every metric on a scenario with every feature covered,
and tests/engine/test_rr1_statistics.py runs each of the RR-1 text's rate tests through both); the walk is itself
reproducible: the same seed gives the same bytes, whatever the number of workers. What it gives up is
the common random numbers across policies that the reference's per-(behaviour, group) streams give: two
policies compared with the walk see different draws. It covers what the compiled day covers (no
mechanism plugins, no sensor targeting) and is chosen only on request (``SCORELAB_KERNEL=walk``), since
its bytes differ from the reference's.

Clipping's points metrics are counted per citizen here (points taken by the floor, given by the
ceiling); stages.py nets them per group and day. They differ only on a day when one group has citizens
clipped at both ends.

Measured on a 2-core machine (RR-1, one 1 M-citizen shard x 365 days, CPU seconds of the whole shard,
side by side in one process, three rounds): walk 1.24-1.38 s, compiled day 1.52-1.75 s, stages.py
2.36-2.55 s; the walk's own loop is ~1.1 s of that. What the measurements taught: an array rebound inside
the loop (an event buffer grown in place) costs reference counting on every pass even where nothing is
written, so the buffer is grown between calls; one stream of candidate days for all sources beat one per
source (~12%); drawing each behaviour at the citizen's exact current propensity (redrawn after each
change, no thinning) drew fewer candidates but ran slower than thinning at a fixed bound.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .compiled import _clamp_py
from .params import MAX_COUNT
from .state import ShardState

WALK_KEY = 0x3A1C  # spawn key of the walk's root stream (a run's seed -> one 64-bit key)
CHUNK = 1 << 16  # citizens per compiled call: bounds the event buffer and paces the progress bar
ROW = 9  # event row: day, citizen, kind, rule, points, sensor, false, target, until

_JIT = None


def _jit():
    global _JIT
    if _JIT is None:
        from .compiled import import_numba

        numba = import_numba()
        mix = numba.njit(cache=True, nogil=True, inline="always")(_mix_py)
        globals()["_mix"] = mix
        globals()["_geo"] = numba.njit(cache=True, nogil=True, inline="always")(_geo_py)
        globals()["_uni"] = numba.njit(cache=True, nogil=True, inline="always")(_uni_py)
        globals()["_row"] = numba.njit(cache=True, nogil=True, inline="always")(_row_py)
        globals()["_clamp"] = numba.njit(cache=True, nogil=True, inline="always")(_clamp_py)
        _JIT = numba.njit(cache=True, nogil=True)(_walk_py)
    return _JIT


GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
S30, S27, S31, S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
ONE = np.uint64(1)
TO_UNIT = 1.0 / 9007199254740992.0  # 2 ** -53


def _mix_py(z):
    """SplitMix64's finaliser: a bijection of uint64 that scrambles every bit."""
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)


def _uni_py(st):
    """(next state, a uniform in [0, 1)): one step of SplitMix64."""
    st = st + GOLDEN
    return st, np.float64(_mix(st) >> S11) * TO_UNIT


def _geo_py(st, p, lg, cap):
    """(next state, a Geometric(p) gap >= 1, capped at ``cap``); ``lg`` is log(1 - p)."""
    if p >= 1.0:
        return st, 1
    if p <= 0.0:
        return st, cap
    st = st + GOLDEN
    u = (np.float64(_mix(st) >> S11) + 1.0) * TO_UNIT  # (0, 1]
    x = np.log(u) / lg
    if x >= cap:
        return st, cap
    return st, 1 + np.int64(x)


def _row_py(ev, ne, t, cit, kind, rule, pts, sen, false, tgt, until):
    """Write one event row at ``ne``; the next free row. (The buffer is never grown here: rebinding an
    array inside the hot loop costs reference counting on every pass, even where no row is written.)"""
    ev[ne, 0] = t
    ev[ne, 1] = cit
    ev[ne, 2] = kind
    ev[ne, 3] = rule
    ev[ne, 4] = pts
    ev[ne, 5] = sen
    ev[ne, 6] = false
    ev[ne, 7] = tgt
    ev[ne, 8] = until
    return ne + 1


_mix = _mix_py
_uni = _uni_py
_geo = _geo_py
_row = _row_py
_clamp = _clamp_py


def _walk_py(T, key, offset, keep, lo, hi, g, score, listed, deter, misconduct, severity, het,
             pmax, src_p, any_p, any_lg, first_cum, more, rate, thin, deter_slot, deter_table, chill, use_chill,
             het_row,
             gam_off, gam_below, gam_factor, cur_off, cur_xoff, cur_x, cur_y,
             speech, misc, sev_w, has_sev, scored, detect, det_mode, points, sensor_of, no_sensor, clip_rule,
             f_beh, bl_trigger, bl_duration, deter_step, has_min, score_min, has_max, score_max,
             grade_cuts, K, rgrades, rlists,
             metrics, midx, true_idx, obs_idx, false_idx, grade_idx, listed_idx, listings_idx, rest_idx,
             snap_of_day, hist_diff, hist_lo, hist_width, ev, ne, margin):
    """Citizens [lo, hi) of group ``g``, each through every day, their kept events written to ``ev`` from row
    ``ne``; returns (the first citizen not walked, rows written): it stops early, before a kept citizen,
    when fewer rows are free than a citizen could need (``margin``), and the caller grows ``ev``."""
    B = rate.shape[0]
    F = f_beh.shape[0]
    L = listed.shape[0]
    R = rgrades.shape[0]
    H = hist_diff.shape[2]
    NS = hist_diff.shape[0]
    m_score_sum, m_restricted, m_pen, m_wpen, m_wrew, m_crit, m_award, m_deduct = (
        midx[0], midx[1], midx[2], midx[3], midx[4], midx[5], midx[6], midx[7])
    cap = np.int64(T + 1)
    NSRC = B + F
    fl = np.empty(max(NSRC, 1), np.int64)  # today's sources with a candidate, ascending
    acc = np.empty(B, np.int64)
    obs_b = np.empty(B + F, np.int64)
    obs_f = np.empty(B + F, np.bool_)
    lst = np.empty(L, np.int64)
    old_l = np.empty(L, np.int64)
    inv_w = 1.0 / hist_width
    for i in range(lo, hi):
        gid = i + offset
        st = _mix(key ^ _mix(np.uint64(gid)))
        kept = keep > 0 and gid % keep == 0
        if kept and ne + margin > ev.shape[0]:
            return i, ne
        st, gap = _geo(st, any_p[g], any_lg[g], cap)
        nx = gap - 1  # the next day some source has a candidate
        s = np.int64(score[i])
        for k in range(L):
            lst[k] = listed[k, i]
        last = -1
        while True:
            t = min(T, nx)
            for k in range(L):
                if lst[k] > last:
                    t = min(t, lst[k])
            if t >= T:
                break
            last = t
            old_s = s
            for k in range(L):
                old_l[k] = lst[k]

            # today's candidates: which sources have one (the first, from its share of "some source"; then,
            # rarely, any later one), then the next day some source has a candidate
            nf = 0
            if t == nx:
                st, u = _uni(st)
                j = 0
                while j < NSRC - 1 and first_cum[g, j] <= u:
                    j += 1
                fl[0] = j
                nf = 1
                while j < NSRC - 1:
                    st, u = _uni(st)
                    if u >= more[g, j]:
                        break
                    st, u = _uni(st)
                    x = u * more[g, j]
                    kept_p = 1.0
                    j += 1
                    while j < NSRC - 1:
                        w = src_p[j, g] * kept_p
                        if x < w:
                            break
                        x -= w
                        kept_p *= 1.0 - src_p[j, g]
                        j += 1
                    fl[nf] = j
                    nf += 1
                st, gap = _geo(st, any_p[g], any_lg[g], cap)
                nx = t + gap

            # behave: each candidate of today thinned by the propensity at the start of the day
            na = 0
            for q in range(nf):
                b = fl[q]
                if b >= B:
                    break
                ok = True
                if thin[b]:
                    st, u = _uni(st)
                    m = 1.0
                    slot = deter_slot[b]
                    if slot >= 0:
                        m *= deter_table[slot, deter[slot, i]]
                    if use_chill[b]:
                        m *= chill[b, g]
                    if het_row[b] >= 0:
                        m *= np.float64(het[het_row[b], i])
                    for j in range(gam_off[b], gam_off[b + 1]):
                        if s < gam_below[j]:
                            m *= gam_factor[j]
                    for c in range(cur_off[b], cur_off[b + 1]):
                        m *= np.interp(np.float64(s), cur_x[cur_xoff[c]:cur_xoff[c + 1]],
                                       cur_y[cur_xoff[c]:cur_xoff[c + 1]])
                    ok = u * pmax[b, g] < min(1.0, rate[b, g] * m)
                if ok:
                    metrics[true_idx[b], t, g] += 1
                    if speech[b]:
                        metrics[m_crit, t, g] += 1
                    if misc[b]:
                        misconduct[i] = min(np.int64(misconduct[i]) + 1, MAX_COUNT)
                        if has_sev:
                            severity[i] += np.float32(sev_w[b])
                    acc[na] = b
                    na += 1

            # observe: the scored true events the sensor sees, then the false attributions
            no = 0
            for j in range(na):
                b = acc[j]
                if not scored[b]:
                    continue
                seen = True
                mode = det_mode[b]
                if mode == 1:
                    st, u = _uni(st)
                    seen = u < detect[b, g]
                elif mode == 2:
                    seen = detect[b, g] > 0
                if seen:
                    obs_b[no] = b
                    obs_f[no] = False
                    no += 1
                    metrics[obs_idx[b], t, g] += 1
            for q in range(nf):
                if fl[q] < B:
                    continue
                k = fl[q] - B
                obs_b[no] = f_beh[k]
                obs_f[no] = True
                no += 1
                metrics[false_idx[k], t, g] += 1

            # nothing observed and no listing ending today: the citizen's state is as it was (stages.py does
            # not touch such a citizen either), so the rest of the day has nothing to do
            ends = False
            for k in range(L):
                ends = ends or lst[k] == t
            if no == 0 and not ends:
                continue

            # score: each observation adds its rule's points
            for j in range(no):
                b = obs_b[j]
                pts = points[b]
                s += pts
                if pts > 0:
                    metrics[m_award, t, g] += pts
                else:
                    metrics[m_deduct, t, g] -= pts
                if pts < 0:
                    metrics[m_pen, t, g] += 1
                    if obs_f[j]:
                        metrics[m_wpen, t, g] += 1
                elif obs_f[j]:
                    metrics[m_wrew, t, g] += 1
                if kept:
                    ne = _row(ev, ne, t, gid, 0, b, pts, sensor_of[b], obs_f[j], -1, -1)

            # sanction: a trigger lists the citizen from today; a renewal never shortens a listing
            for j in range(no):
                b = obs_b[j]
                for k in range(L):
                    if bl_trigger[k] != b:
                        continue
                    until = t + bl_duration[k]
                    prev = lst[k]
                    lst[k] = max(prev, until)
                    if prev >= t:
                        if prev < until and kept:
                            ne = _row(ev, ne, t, gid, 2, b, 0, sensor_of[b], obs_f[j], k, until)
                    else:
                        metrics[listings_idx[k], t, g] += 1
                        if kept:
                            ne = _row(ev, ne, t, gid, 1, b, 0, sensor_of[b], obs_f[j], k, until)

            # respond: specific deterrence from the next day
            for j in range(no):
                slot = deter_slot[obs_b[j]]
                if slot >= 0:
                    deter[slot, i] = min(np.int64(deter[slot, i]) + deter_step[obs_b[j]], MAX_COUNT)

            # clip: the score brought back into [score_min, score_max]
            c = _clamp(s, has_min, score_min, has_max, score_max)
            if c != s:
                d = c - s
                if d > 0:
                    metrics[m_award, t, g] += d
                else:
                    metrics[m_deduct, t, g] -= d
                if kept:
                    ne = _row(ev, ne, t, gid, 0, clip_rule, d, no_sensor, False, -1, -1)
                s = c

            # grade_and_restrict: today's changes of the stocks (summed over days at the end)
            moved = ends
            for k in range(L):
                moved = moved or lst[k] != old_l[k]
            if s == old_s and not moved:
                continue
            if s != old_s:
                metrics[m_score_sum, t, g] += s - old_s
                bo = min(max(np.int64(np.floor((old_s - hist_lo) * inv_w)), 0), H - 1)  # no integer division:
                bn = min(max(np.int64(np.floor((s - hist_lo) * inv_w)), 0), H - 1)  # it is slow
                q = snap_of_day[t]
                if bo != bn and q < NS:
                    hist_diff[q, g, bo] -= 1
                    hist_diff[q, g, bn] += 1
            g_old = 0
            g_new = 0
            for c in range(K - 1):
                g_old += grade_cuts[c] <= old_s
                g_new += grade_cuts[c] <= s
            if K and g_old != g_new:
                metrics[grade_idx[g_old], t, g] -= 1
                metrics[grade_idx[g_new], t, g] += 1
            if R:
                any_o = False
                any_n = False
                for r in range(R):
                    o = False
                    n_ = False
                    if K:
                        o = rgrades[r, g_old]
                        n_ = rgrades[r, g_new]
                    for k in range(L):
                        if rlists[r, k]:
                            o = o or (t - 1 < old_l[k])
                            n_ = n_ or (t < lst[k])
                    if o != n_:
                        if rest_idx[r] >= 0:
                            metrics[rest_idx[r], t, g] += np.int64(n_) - np.int64(o)
                        if kept:
                            ne = _row(ev, ne, t, gid, 5 if n_ else 6, -1, 0, no_sensor, False, r, -1)
                    any_o = any_o or o
                    any_n = any_n or n_
                if any_o != any_n:
                    metrics[m_restricted, t, g] += np.int64(any_n) - np.int64(any_o)
            for k in range(L):
                was_on = t - 1 < old_l[k]
                now_on = t < lst[k]
                if was_on != now_on:
                    metrics[listed_idx[k], t, g] += np.int64(now_on) - np.int64(was_on)
                    if was_on and kept:
                        ne = _row(ev, ne, t, gid, 4, -1, 0, no_sensor, False, k, -1)
        score[i] = s
        for k in range(L):
            listed[k, i] = lst[k]
    return hi, ne


def candidate_tables(P) -> tuple[np.ndarray, ...]:
    """Per group, the walk's one stream of candidate days for all sources (behaviours at their bound pmax,
    then the false-attribution sources), exactly: a day has some candidate with probability
    1 - prod(1 - p_j); given that, the first source with one is j with probability p_j prod_{i<j}(1 - p_i)
    over that; and each later source has one independently (``more``: whether any after j has)."""
    rows = [np.asarray(P.pmax[b], dtype=np.float64) for b in range(P.n_behaviours)]
    rows += [np.asarray(f.rate, dtype=np.float64) for f in P.false_sources]
    G = P.n_groups
    src_p = np.clip(np.stack(rows), 0.0, 1.0) if rows else np.zeros((0, G))
    n = len(src_p)
    none_before = np.cumprod(np.vstack([np.ones((1, G)), 1.0 - src_p]), axis=0)  # [n + 1, G]
    any_p = 1.0 - none_before[-1]
    first = src_p * none_before[:-1]  # P(the first source with a candidate is j), unconditioned
    with np.errstate(invalid="ignore", divide="ignore"):
        first_cum = np.where(any_p > 0, np.cumsum(first, axis=0) / any_p, 1.0).T.copy()  # [G, n]
    if n:
        first_cum[:, -1] = 1.0
    none_after = np.ones((n, G))
    for j in range(n - 2, -1, -1):
        none_after[j] = none_after[j + 1] * (1.0 - src_p[j + 1])
    more = (1.0 - none_after).T.copy()  # [G, n]
    any_lg = np.where((any_p > 0) & (any_p < 1), np.log1p(-np.where((any_p > 0) & (any_p < 1), any_p, 0.5)), -1.0)
    return src_p, any_p, any_lg, first_cum, more


def run_walk(S: ShardState, progress: Callable[[int], None] | None = None) -> None:
    """Every citizen of the shard through every day (the scenarios compiled.unsupported accepts)."""
    from .compiled import CompiledDay
    from .stages import HIST_WIDTH, histogram

    try:
        fn = _jit()
    except ImportError as e:  # a Dask worker without numba: the reference would give other figures, so stop
        raise RuntimeError(f"SCORELAB_KERNEL=walk needs numba in every process that runs a shard ({e})") from e
    P, T, G = S.P, S.P.days, S.G
    core = CompiledDay(S, compile_day=False)  # the same tables as the compiled day, the same views of S
    metrics = core.args_aggregates[5]  # [M, T, G], zeros: flows, and the stocks' changes per day
    (rate, pmax, thin, deter_slot, deter_table, chill, use_chill, het_row, gam_off, gam_below, gam_factor,
     cur_off, cur_xoff, cur_x, cur_y, speech, misc, sev_w, has_sev, scored, detect, det_mode, points, sensor_of,
     no_sensor, clip_rule, f_beh, bl_trigger, bl_duration, deter_step, has_min, score_min, has_max, score_max,
     grade_cuts, K, rgrades, rlists) = core.args_params
    score, listed, deter, misconduct, severity, het = core.args_state[:6]
    src_p, any_p, any_lg, first_cum, more = candidate_tables(P)
    midx, true_idx, obs_idx, false_idx, grade_idx, listed_idx, listings_idx, rest_idx = core.args_aggregates[6:]
    snap_of_day = np.searchsorted(S.snap_days, np.arange(T), side="left").astype(np.int64)
    hist_diff = np.zeros_like(S.hist)
    hist0 = np.stack([histogram(S.score[S.starts[g]:S.bounds[g]], S.hist_lo) for g in range(G)])
    start = {"score_sum": S.score_sum.copy(), "restricted_any": S.restricted_any.copy(),
             "restricted_n": S.restricted_n.copy(), "grade_n": S.grade_n.copy()}
    key = np.uint64(np.random.SeedSequence(S.seed, spawn_key=(WALK_KEY,)).generate_state(1, np.uint64)[0])
    B, F, L, R = P.n_behaviours, len(P.false_sources), len(P.bl_names), len(P.restriction_names)
    margin = max(T, 1) * ((B + F) * (1 + L) + 2 + 2 * R + L)  # the most rows one citizen's run can write
    ev = np.empty((margin + (8 * CHUNK if S.keep else 0), ROW), dtype=np.int64)
    ne = 0
    chunks = [(g, a, min(a + CHUNK, int(S.bounds[g]))) for g in range(G)
              for a in range(int(S.starts[g]), int(S.bounds[g]), CHUNK)]
    done = 0
    for g, a, b in chunks:
        size = b - a
        while a < b:
            a, ne = fn(T, key, S.offset, S.keep, a, b, g, score, listed, deter, misconduct, severity, het,
                       pmax, src_p, any_p, any_lg, first_cum, more, rate, thin, deter_slot, deter_table, chill,
                       use_chill, het_row,
                       gam_off, gam_below, gam_factor, cur_off, cur_xoff, cur_x, cur_y,
                       speech, misc, sev_w, has_sev, scored, detect, det_mode, points, sensor_of, no_sensor,
                       clip_rule, f_beh, bl_trigger, bl_duration, deter_step, has_min, score_min,
                       has_max, score_max, grade_cuts, K, rgrades, rlists,
                       metrics, midx, true_idx, obs_idx, false_idx, grade_idx, listed_idx, listings_idx, rest_idx,
                       snap_of_day, hist_diff, S.hist_lo, HIST_WIDTH, ev, ne, margin)
            if a < b:  # the buffer is full: grow it and go on from the citizen where the walk stopped
                bigger = np.empty((2 * len(ev), ROW), dtype=np.int64)
                bigger[:ne] = ev[:ne]
                ev = bigger
        done += size
        if progress is not None:
            progress(int(T * done / max(S.n, 1)))

    # the stocks: their value before day 0 plus the changes of each day so far
    def settle(m: int, before: np.ndarray) -> np.ndarray:
        np.cumsum(metrics[m], axis=0, out=metrics[m])
        metrics[m] += before[None, :]
        return metrics[m, -1].copy() if T else before

    S.score_sum = settle(midx[0], start["score_sum"])
    S.restricted_any = settle(midx[1], start["restricted_any"])
    for r, m in enumerate(rest_idx):
        if m >= 0:
            S.restricted_n[r] = settle(m, start["restricted_n"][r])
    if len(P.restriction_names) == 1:
        S.restricted_n[0] = S.restricted_any
    for k, m in enumerate(grade_idx):
        S.grade_n[k] = settle(m, start["grade_n"][k])
    for k, m in enumerate(listed_idx):
        S.listed_n[k] = settle(m, np.zeros(G, dtype=np.int64))
    S.hist[:] = hist0[None] + np.cumsum(hist_diff, axis=0)

    rows = ev[:ne]
    if ne:
        day = rows[:, 0]
        if T <= np.iinfo(np.uint16).max:  # days as uint16: numpy's stable sort is then a radix sort (5x)
            day = day.astype(np.uint16)
        rows = rows[np.argsort(day, kind="stable")]  # day by day, as the reference's log reads
        S.log.extend(rows[:, 0].astype(np.int32), rows[:, 1].copy(), rows[:, 2].astype(np.int8),
                     rows[:, 3].astype(np.int16), rows[:, 4].copy(), rows[:, 5].astype(np.int16),
                     rows[:, 6].astype(bool), rows[:, 7].astype(np.int16), rows[:, 8].astype(np.int32))
    if progress is not None:
        progress(T)
