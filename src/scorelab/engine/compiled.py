"""The day's core stages compiled with Numba: stages.py's algorithm in one compiled call per day.

stages.py stays the reference. This path runs the scenarios it covers (no mechanism plugins, no sensor
targeting: `unsupported` says why a scenario is not covered) and does, stage for stage and in the same
order, what stages.py does: behave (thinning by deterrence, general chilling, per-citizen heterogeneity,
gaming and score curves), observe (per-group detection, false attributions), touch, score, sanction,
respond, clip, grade_and_restrict and record. Candidate events are still drawn by sampling.Batches from
the same streams, so a shard gives the same bytes through either path: the metrics, the histograms, the
event log row for row and the citizens table (tests/engine/test_compiled.py).

What the compiled day saves is the interpreter: stages.py makes some hundreds of NumPy calls a day, each
over a few thousand candidates; here a day is one call that walks the candidates once per stage.

Numba compiles `_day` on first use (14-25 s on a 2-core machine) and caches the machine code on disk
(``cache=True``: next to this file, or numba's user cache directory where the package is not writable), so
only the first run after an install (or an edit of this file) pays; a later process loads it in ~1 s.
`choose` picks the path for a run: ``SCORELAB_KERNEL`` = ``auto`` (the default: compiled where numba is
installed, the scenario is covered and the busiest process simulates enough agent-days to repay loading the
compiled code), ``numpy`` (always the reference) or ``numba`` (compiled wherever covered).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .params import MAX_COUNT, Params
from .state import ShardState

# Loading numba and the cached day costs each process ~1 s; the compiled day saves ~3.7 ns per agent-day
# (RR-1, 10 M x 365, measured side by side), so "auto" compiles from ~2.6 e8 agent-days per process on.
AUTO_MIN_AGENT_DAYS = 260_000_000
KERNELS = ("auto", "numpy", "numba", "walk")
STAMP_BYTES = 4  # per citizen: the day each was last touched (int32), the compiled day's one addition to the state


def unsupported(P: Params) -> str | None:
    """Why the compiled day does not cover ``P`` (None: it does)."""
    if P.plugins:
        return "mechanism plugins (" + ", ".join(P.plugin_names) + ") run through stages.py"
    if P.targeting is not None and any(P.targeting):
        return "sensor targeting runs through stages.py"
    return None


def numba_available() -> bool:
    """Whether numba is installed (found, not imported: importing it costs ~0.3 s)."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def requested_kernel() -> str:
    value = os.environ.get("SCORELAB_KERNEL", "auto").strip().lower() or "auto"
    if value not in KERNELS:
        from ..config.loader import ConfigError

        raise ConfigError("SCORELAB_KERNEL", None, f"{value!r} is not one of {', '.join(KERNELS)}")
    return value


def choose(P: Params, agent_days_per_process: float, streams: str | None = None) -> tuple[str, str]:
    """("numba", "numpy" or "walk", why): the path a run's shards take, for a run whose busiest process
    simulates ``agent_days_per_process``. numba and numpy give the same bytes; the walk (walk.py) draws
    from its own streams. ``streams`` ("walk" or "reference"), for a resumed run: the streams its
    checkpointed shards came from, which the rest of the run must keep whatever SCORELAB_KERNEL says."""
    want = requested_kernel()
    if streams == "walk":
        if not numba_available():
            from ..config.loader import ConfigError

            raise ConfigError("SCORELAB_KERNEL", None, "this run was started with the walk kernel, which needs "
                                                       "numba; install numba to resume it")
        return "walk", "resumed with the walk, the kernel its checkpointed shards came from"
    if streams == "reference" and want == "walk":
        want = "auto"  # its checkpointed shards came from the reference's streams
    if want == "numpy":
        return "numpy", "SCORELAB_KERNEL=numpy"
    if (why := unsupported(P)) is not None:
        return "numpy", (f"SCORELAB_KERNEL=walk does not cover this scenario: {why}" if want == "walk" else why)
    if not numba_available():
        return "numpy", "numba is not installed"
    if want == "walk":
        return "walk", "SCORELAB_KERNEL=walk: the per-citizen walk (engine/walk.py; its own random streams)"
    if want == "auto" and agent_days_per_process < AUTO_MIN_AGENT_DAYS:
        return "numpy", (f"{agent_days_per_process:.2g} agent-days per process: loading compiled code (~1 s) "
                         f"would cost more than it saves below {AUTO_MIN_AGENT_DAYS:.2g}")
    return "numba", "the compiled day (engine/compiled.py)"


def import_numba():
    """numba, imported for a compiled kernel. Loading numba's array maths (which every compiled function
    does, the first cached one too) imports scipy.linalg where scipy is installed (a test or benchmark
    install has it, through Mesa or JAX), only to learn whether numba's inner products of floats may call
    BLAS; no scorelab kernel takes one, and the import costs ~0.1-0.2 s in each process (measured: a walk
    run's first call 0.31-0.43 -> 0.20-0.22 s). So a process that simulates and exits
    (workers.is_simulating_process: a `scorelab` command, its pool workers) imports that module with scipy
    hidden, where scipy is not loaded yet; numba there takes its own loop for those inner products, and
    scipy stays importable. A notebook or a Dask worker, where other code may use numba, imports numba as
    it comes."""
    import sys

    from .workers import is_simulating_process

    if is_simulating_process() and "scipy" not in sys.modules and "numba.np.arraymath" not in sys.modules:
        sys.modules["scipy"] = None  # `import scipy...` raises ImportError meanwhile
        try:
            import numba.np.arraymath  # noqa: F401
        except Exception:  # pragma: no cover - a numba laid out otherwise: imported below as it comes
            pass
        finally:
            if "scipy" in sys.modules and sys.modules["scipy"] is None:
                del sys.modules["scipy"]
    import numba

    return numba


_JIT = None


def _jit():
    """The compiled day (compiled, or loaded from numba's cache, on first use in a process)."""
    global _JIT, _sort_rows, _put, _clamp
    if _JIT is None:
        numba = import_numba()

        _sort_rows = numba.njit(cache=True, nogil=True)(_sort_rows_py)
        _put = numba.njit(cache=True, nogil=True, inline="always")(_put_py)
        _clamp = numba.njit(cache=True, nogil=True, inline="always")(_clamp_py)
        _JIT = numba.njit(cache=True, nogil=True)(_day_py)
    return _JIT


def _put_py(ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until, cit, kind, rule, pts, sen, false, tgt,
            until):
    """Row ``ne`` of the day's event columns; the next free row."""
    e_cit[ne] = cit
    e_kind[ne] = kind
    e_rule[ne] = rule
    e_pts[ne] = pts
    e_sen[ne] = sen
    e_false[ne] = false
    e_tgt[ne] = tgt
    e_until[ne] = until
    return ne + 1


def _sort_rows_py(a, b, cit, kind, rule, pts, sen, false, tgt, until):
    """Rows [a, b) of the day's event columns in ascending citizen order (the rows name distinct citizens)."""
    if b - a < 2:
        return
    order = np.argsort(cit[a:b]) + a
    cit[a:b] = cit[order]
    kind[a:b] = kind[order]
    rule[a:b] = rule[order]
    pts[a:b] = pts[order]
    sen[a:b] = sen[order]
    false[a:b] = false[order]
    tgt[a:b] = tgt[order]
    until[a:b] = until[order]


def _clamp_py(v, has_min, score_min, has_max, score_max):
    """A score brought into [score_min, score_max] (each bound only where the policy has it)."""
    if has_min and v < score_min:
        return score_min
    if has_max and v > score_max:
        return score_max
    return v


_sort_rows = _sort_rows_py
_put = _put_py
_clamp = _clamp_py


def _day_py(t, keep, offset, bounds, score, listed, deter, misconduct, severity, het, stamp,
            rate, pmax, thin, deter_slot, deter_table, chill, use_chill, het_row,
            gam_off, gam_below, gam_factor, cur_off, cur_xoff, cur_x, cur_y,
            speech, misc, sev_w, has_sev, scored, detect, det_mode, points, sensor_of, no_sensor, clip_rule,
            fsrc_beh, bl_trigger, bl_duration, deter_step, has_min, score_min, has_max, score_max,
            grade_cuts, K, rgrades, rlists,
            c_ids, c_grp, c_uacc, c_uobs, c_off, f_ids, f_grp, f_off, expiring,
            score_sum, restricted_n, restricted_any, grade_n, listed_n,
            metrics, midx, true_idx, obs_idx, false_idx, grade_idx, listed_idx, listings_idx, rest_idx):
    """One day of stages.py's core stages (see there for each rule); returns today's observations (for the
    listing calendar) and today's kept events in emission order."""
    B = rate.shape[0]
    G = rate.shape[1]
    F = len(f_off) - 1
    L = listed.shape[0]
    R = rlists.shape[0]
    m_score_sum, m_restricted, m_pen, m_wpen, m_wrew, m_crit, m_award, m_deduct = (
        midx[0], midx[1], midx[2], midx[3], midx[4], midx[5], midx[6], midx[7])

    # behave: candidates thinned by their propensity at the start of the day. The loops are written to
    # run without data-dependent branches (gather, then decide, then write at a cursor that moves by the
    # decision), so the processor overlaps the cache misses of many candidates.
    nc = len(c_ids)
    a_ids = np.empty(nc, np.int64)
    a_grp = np.empty(nc, np.int64)
    a_uobs = np.empty(nc, np.float32)
    a_off = np.zeros(B + 1, np.int64)
    mult = np.empty(nc, np.float64)
    cnt = np.zeros(G, np.int64)
    na = 0
    for b in range(B):
        s0, s1 = c_off[b], c_off[b + 1]
        slot = deter_slot[b]
        hr = het_row[b]
        if thin[b]:
            for i in range(s0, s1):
                mult[i] = 1.0
            if slot >= 0:
                for i in range(s0, s1):
                    mult[i] *= deter_table[slot, deter[slot, c_ids[i]]]
            if use_chill[b]:
                for i in range(s0, s1):
                    mult[i] *= chill[b, c_grp[i]]
            if hr >= 0:
                for i in range(s0, s1):
                    mult[i] *= np.float64(het[hr, c_ids[i]])
            for j in range(gam_off[b], gam_off[b + 1]):
                below, factor = gam_below[j], gam_factor[j]
                for i in range(s0, s1):
                    mult[i] *= factor if score[c_ids[i]] < below else 1.0
            for c in range(cur_off[b], cur_off[b + 1]):
                xs, ys = cur_x[cur_xoff[c]:cur_xoff[c + 1]], cur_y[cur_xoff[c]:cur_xoff[c + 1]]
                for i in range(s0, s1):
                    mult[i] *= np.interp(np.float64(score[c_ids[i]]), xs, ys)
        cnt[:] = 0
        for i in range(s0, s1):
            g = c_grp[i]
            ok = True
            if thin[b]:
                ok = np.float64(c_uacc[i]) * pmax[b, g] < min(1.0, rate[b, g] * mult[i])
            a_ids[na] = c_ids[i]
            a_grp[na] = g
            a_uobs[na] = c_uobs[i]
            na += ok
            cnt[g] += ok
        a_off[b + 1] = na
        for g in range(G):
            metrics[true_idx[b], t, g] += cnt[g]
            if speech[b]:
                metrics[m_crit, t, g] += cnt[g]
        if misc[b]:
            for i in range(a_off[b], na):
                cid = a_ids[i]
                misconduct[cid] = min(np.int64(misconduct[cid]) + 1, MAX_COUNT)
            if has_sev:
                w = np.float32(sev_w[b])
                for i in range(a_off[b], na):
                    severity[a_ids[i]] += w

    # observe: each scored behaviour's true events seen by its sensor, then the false attributions
    nf = len(f_ids)
    o_ids = np.empty(na + nf, np.int64)
    o_grp = np.empty(na + nf, np.int64)
    nseg = B + F
    seg_b = np.empty(nseg, np.int64)
    seg_s = np.empty(nseg, np.int64)
    seg_e = np.empty(nseg, np.int64)
    seg_false = np.zeros(nseg, np.bool_)
    no = 0
    ns = 0
    for b in range(B):
        if not scored[b]:
            continue
        seg_b[ns] = b
        seg_s[ns] = no
        cnt[:] = 0
        mode = det_mode[b]
        for i in range(a_off[b], a_off[b + 1]):
            g = a_grp[i]
            seen = True
            if mode == 1:
                seen = np.float64(a_uobs[i]) < detect[b, g]
            elif mode == 2:
                seen = detect[b, g] > 0
            o_ids[no] = a_ids[i]
            o_grp[no] = g
            no += seen
            cnt[g] += seen
        for g in range(G):
            metrics[obs_idx[b], t, g] += cnt[g]
        seg_e[ns] = no
        ns += 1
    for k in range(F):
        seg_b[ns] = fsrc_beh[k]
        seg_s[ns] = no
        seg_false[ns] = True
        for i in range(f_off[k], f_off[k + 1]):
            o_ids[no] = f_ids[i]
            o_grp[no] = f_grp[i]
            no += 1
            metrics[false_idx[k], t, f_grp[i]] += 1
        seg_e[ns] = no
        ns += 1

    # touch: the distinct citizens observed or whose listing may end today, as they were yesterday. They
    # are kept in the order first seen (a day stamp per citizen, no sort); the events stages.py writes in
    # ascending id order (clip, restrictions, expiries) are sorted by citizen within their phase instead.
    touched = np.empty(no + len(expiring), np.int64)
    nt = 0
    for i in range(no):
        cid = o_ids[i]
        if stamp[cid] != t:
            stamp[cid] = t
            touched[nt] = cid
            nt += 1
    for i in range(len(expiring)):
        cid = expiring[i]
        if stamp[cid] != t:
            stamp[cid] = t
            touched[nt] = cid
            nt += 1
    touched = touched[:nt]
    tg = np.zeros(nt, np.int64)
    for j in range(nt):
        g = 0
        while g < G - 1 and touched[j] >= bounds[g]:
            g += 1
        tg[j] = g
    old_score = np.empty(nt, np.int64)
    old_listed = np.empty((L, nt), np.int64)
    for j in range(nt):
        old_score[j] = score[touched[j]]
        for k in range(L):
            old_listed[k, j] = listed[k, touched[j]]

    # the day's kept events, in stages.py's emission order
    cap = 0
    if keep > 0:
        cap = no * (1 + L) + nt * (1 + R + L)
    e_cit = np.empty(cap, np.int64)
    e_kind = np.empty(cap, np.int8)
    e_rule = np.empty(cap, np.int16)
    e_pts = np.empty(cap, np.int64)
    e_sen = np.empty(cap, np.int16)
    e_false = np.empty(cap, np.bool_)
    e_tgt = np.empty(cap, np.int16)
    e_until = np.empty(cap, np.int32)
    ne = 0

    # score: each observation adds its rule's points
    for q in range(ns):
        s0, s1 = seg_s[q], seg_e[q]
        if s1 == s0:
            continue
        b = seg_b[q]
        pts = points[b]
        false = seg_false[q]
        cnt[:] = 0
        for i in range(s0, s1):
            cid = o_ids[i]
            score[cid] = score[cid] + pts
            cnt[o_grp[i]] += 1
            if keep > 0 and (cid + offset) % keep == 0:
                ne = _put(ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until, cid + offset, 0, b,
                         pts, sensor_of[b], false, -1, -1)
        for g in range(G):
            if pts > 0:
                metrics[m_award, t, g] += cnt[g] * abs(pts)
            else:
                metrics[m_deduct, t, g] += cnt[g] * abs(pts)
            if pts < 0:
                metrics[m_pen, t, g] += cnt[g]
                if false:
                    metrics[m_wpen, t, g] += cnt[g]
            elif false:
                metrics[m_wrew, t, g] += cnt[g]

    # sanction: a trigger lists the citizen from today; a renewal never shortens a listing
    longer = np.zeros(na + nf, np.bool_)
    for q in range(ns):
        s0, s1 = seg_s[q], seg_e[q]
        if s1 == s0:
            continue
        b = seg_b[q]
        for k in range(L):
            if bl_trigger[k] != b:
                continue
            until = t + bl_duration[k]
            for i in range(s0, s1):
                cid = o_ids[i]
                prev = listed[k, cid]
                listed[k, cid] = max(prev, until)
                longer[i] = False
                if prev >= t:
                    longer[i] = prev < until
                else:
                    metrics[listings_idx[k], t, o_grp[i]] += 1
                    if keep > 0 and (cid + offset) % keep == 0:
                        ne = _put(ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until, cid + offset, 1, b,
                                 0, sensor_of[b], seg_false[q], k, until)
            if keep > 0:
                for i in range(s0, s1):
                    cid = o_ids[i]
                    if longer[i] and (cid + offset) % keep == 0:
                        ne = _put(ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until, cid + offset, 2, b,
                                 0, sensor_of[b], seg_false[q], k, until)

    # respond: specific deterrence from the next day
    for q in range(ns):
        b = seg_b[q]
        slot = deter_slot[b]
        if slot < 0:
            continue
        step = deter_step[b]
        for i in range(seg_s[q], seg_e[q]):
            cid = o_ids[i]
            deter[slot, cid] = min(np.int64(deter[slot, cid]) + step, MAX_COUNT)

    # clip: scores brought back into [score_min, score_max]
    phase = ne
    new_score = np.empty(nt, np.int64)
    delta_g = np.zeros(G, np.int64)
    for j in range(nt):
        cid = touched[j]
        v = np.int64(score[cid])
        c = _clamp(v, has_min, score_min, has_max, score_max)
        if c != v:
            score[cid] = c
            c = np.int64(score[cid])
            delta_g[tg[j]] += c - v
            if keep > 0 and (cid + offset) % keep == 0:
                ne = _put(ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until, cid + offset, 0, clip_rule,
                         c - v, no_sensor, False, -1, -1)
        new_score[j] = c
    for g in range(G):
        metrics[m_deduct, t, g] -= min(delta_g[g], 0)
        metrics[m_award, t, g] += max(delta_g[g], 0)
    _sort_rows(phase, ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until)

    # grade_and_restrict: the aggregates move by the touched citizens' changes
    if nt > 0:
        g_old = np.zeros(nt, np.int64)
        g_new = np.zeros(nt, np.int64)
        for j in range(nt):
            score_sum[tg[j]] += new_score[j] - old_score[j]
            for c in range(K - 1):  # P.grade_of: how many cuts are <= the score (searchsorted, side="right")
                g_old[j] += grade_cuts[c] <= old_score[j]
                g_new[j] += grade_cuts[c] <= new_score[j]
        if R:
            r_old = np.zeros((R, nt), np.bool_)
            r_new = np.zeros((R, nt), np.bool_)
            for r in range(R):
                by_grade = False
                if K:
                    for k in range(K):
                        by_grade = by_grade or rgrades[r, k]
                for j in range(nt):
                    o = False
                    n_ = False
                    if by_grade:
                        o = rgrades[r, g_old[j]]
                        n_ = rgrades[r, g_new[j]]
                    for k in range(L):
                        if rlists[r, k]:
                            o = o or (t - 1 < old_listed[k, j])
                            n_ = n_ or (t < listed[k, touched[j]])
                    r_old[r, j] = o
                    r_new[r, j] = n_
                    restricted_n[r, tg[j]] += np.int64(n_) - np.int64(o)
            for j in range(nt):
                ao = False
                an = False
                for r in range(R):
                    ao = ao or r_old[r, j]
                    an = an or r_new[r, j]
                restricted_any[tg[j]] += np.int64(an) - np.int64(ao)
            if keep > 0:
                for r in range(R):
                    for kind in (5, 6):  # restrict_on, then restrict_off
                        phase = ne
                        for j in range(nt):
                            cid = touched[j]
                            up = r_new[r, j] and not r_old[r, j]
                            down = r_old[r, j] and not r_new[r, j]
                            if (up if kind == 5 else down) and (cid + offset) % keep == 0:
                                ne = _put(ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until,
                                          cid + offset, kind, -1, 0, no_sensor, False, r, -1)
                        _sort_rows(phase, ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until)
        if K:
            for j in range(nt):
                if g_old[j] != g_new[j]:
                    grade_n[g_old[j], tg[j]] -= 1
                    grade_n[g_new[j], tg[j]] += 1
        for k in range(L):
            phase = ne
            for j in range(nt):
                cid = touched[j]
                was_on = t - 1 < old_listed[k, j]
                now_on = t < listed[k, cid]
                listed_n[k, tg[j]] += np.int64(now_on) - np.int64(was_on)
                if keep > 0 and was_on and not now_on and (cid + offset) % keep == 0:
                    ne = _put(ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until, cid + offset, 4, -1,
                             0, no_sensor, False, k, -1)
            _sort_rows(phase, ne, e_cit, e_kind, e_rule, e_pts, e_sen, e_false, e_tgt, e_until)

    # record: the day's stocks
    for g in range(G):
        metrics[m_score_sum, t, g] = score_sum[g]
        metrics[m_restricted, t, g] = restricted_any[g]
        for r in range(R):
            if rest_idx[r] >= 0:
                metrics[rest_idx[r], t, g] = restricted_n[r, g]
        for k in range(K):
            metrics[grade_idx[k], t, g] = grade_n[k, g]
        for k in range(L):
            metrics[listed_idx[k], t, g] = listed_n[k, g]

    return (o_ids[:no], seg_b[:ns], seg_s[:ns], seg_e[:ns],
            e_cit[:ne], e_kind[:ne], e_rule[:ne], e_pts[:ne], e_sen[:ne], e_false[:ne], e_tgt[:ne], e_until[:ne])


class CompiledDay:
    """The tables of ``P`` and the views of a shard state ``S`` that `_day` reads and writes.

    The metrics become views of one [M, T, G] array and the listings rows of one [L, n] array, so the
    compiled day and NumPy code (snapshots, the citizens table) see the same memory.
    """

    def __init__(self, S: ShardState, compile_day: bool = True):
        P = S.P
        B, G, n = P.n_behaviours, S.G, S.n
        names = list(S.metrics)
        stack = np.zeros((len(names), P.days, G), dtype=np.int64)
        S.metrics = {name: stack[i] for i, name in enumerate(names)}
        at = {name: i for i, name in enumerate(names)}
        L = len(S.listed)
        self.listed = np.stack(S.listed) if L else np.empty((0, max(n, 1)), dtype=P.day_dtype)
        S.listed = [self.listed[k] for k in range(L)]
        self.S = S
        chill_use = np.array([P.chills(b) for b in range(B)], dtype=bool)
        het_rows = sorted(S.het)
        het_row = np.full(B, -1, dtype=np.int64)
        for i, b in enumerate(het_rows):
            het_row[b] = i
        het = np.stack([S.het[b] for b in het_rows]) if het_rows else np.empty((0, 1), dtype=np.float32)
        gam_off, gam_below, gam_factor = [0], [], []
        cur_off, cur_xoff, cur_x, cur_y = [0], [0], [], []
        for b in range(B):
            for below, factor in P.gaming[b]:
                gam_below.append(below)
                gam_factor.append(factor)
            gam_off.append(len(gam_below))
            for xs, ys in P.curves[b]:
                cur_x.extend(np.asarray(xs, dtype=np.float64))
                cur_y.extend(np.asarray(ys, dtype=np.float64))
                cur_xoff.append(len(cur_x))
            cur_off.append(len(cur_xoff) - 1)
        thin = np.array([P.deter_slot[b] >= 0 or bool(P.gaming[b]) or bool(P.curves[b]) or chill_use[b]
                         or het_row[b] >= 0 for b in range(B)], dtype=bool)
        det_mode = np.array([P.detection_kind(b) for b in range(B)], dtype=np.int64)
        R, K = len(P.restriction_names), len(P.grade_names)
        i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
        self.args_state = (S.score, self.listed, S.deter, S.misconduct,
                           S.severity if S.severity is not None else np.zeros(0, dtype=np.float32), het,
                           np.full(n if compile_day else 0, -1, dtype=np.int32))  # the day each was last touched
        self.args_params = (
            P.rate, P.pmax, thin, i64(P.deter_slot), P.deter_table,
            P.chill if P.chill is not None else np.ones((B, G)), chill_use, het_row,
            i64(gam_off), i64(gam_below), np.asarray(gam_factor, dtype=np.float64),
            i64(cur_off), i64(cur_xoff), np.asarray(cur_x, dtype=np.float64), np.asarray(cur_y, dtype=np.float64),
            P.speech.astype(bool), P.misconduct.astype(bool), P.severity.astype(np.float64), S.severity is not None,
            P.scored.astype(bool), P.detect, det_mode, i64(P.points), i64(P.sensor_of), len(P.sensors), P.n_behaviours,
            i64([f.behaviour for f in P.false_sources]), i64(P.bl_trigger), i64(P.bl_duration),
            i64(P.deter_step if P.deter_step is not None else np.ones(B)),
            P.score_min is not None, int(P.score_min or 0), P.score_max is not None, int(P.score_max or 0),
            i64(P.grade_cuts), K, P.restriction_grades.astype(bool).reshape(R, K),
            P.restriction_lists.astype(bool).reshape(R, L))
        self.args_aggregates = (S.score_sum, S.restricted_n, S.restricted_any, S.grade_n, S.listed_n, stack,
                                i64([at[m] for m in ("score_sum", "restricted", "penalties", "wrongful_penalties",
                                                     "wrongful_rewards", "criticism", "points_awarded",
                                                     "points_deducted")]),
                                i64([at[f"true_{b}"] for b in P.behaviours]),
                                i64([at[f"observed_{b}"] for b in P.behaviours]),
                                i64([at[f"false_{P.behaviours[f.behaviour]}"] for f in P.false_sources]),
                                i64([at[f"grade_{g}"] for g in P.grade_names]),
                                i64([at[f"listed_{b}"] for b in P.bl_names]),
                                i64([at[f"listings_{b}"] for b in P.bl_names]),
                                i64([at[f"restricted_{r}"] if R > 1 else -1 for r in P.restriction_names]))
        self.bounds = i64(S.bounds)
        self.triggers = [(int(P.bl_trigger[k]), int(P.bl_duration[k])) for k in range(L)]
        self.fn = _jit() if compile_day else None  # the per-citizen walk (walk.py) reads only the tables

    def candidates(self, t: int):
        """Today's candidates of every behaviour and every false source, concatenated (sampling.Batches)."""
        S = self.S
        parts = [c.day(t) for c in S.candidates]
        ids = [p[0] for p in parts]
        off = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in ids], out=off[1:])
        empty_f = np.empty(0, dtype=np.float32)
        c = (np.concatenate(ids) if ids else np.empty(0, np.int64),
             np.concatenate([p[1] for p in parts]).astype(np.int64) if parts else np.empty(0, np.int64),
             np.concatenate([p[2][0] for p in parts]) if parts else empty_f,
             np.concatenate([p[2][1] for p in parts]) if parts else empty_f, off)
        fparts = [f.day(t) for f in S.false_candidates]
        foff = np.zeros(len(fparts) + 1, dtype=np.int64)
        np.cumsum([len(p[0]) for p in fparts], out=foff[1:])
        f = (np.concatenate([p[0] for p in fparts]) if fparts else np.empty(0, np.int64),
             np.concatenate([p[1] for p in fparts]).astype(np.int64) if fparts else np.empty(0, np.int64), foff)
        return c, f

    def day(self, t: int) -> None:
        S = self.S
        c, f = self.candidates(t)
        expiring = S.calendar.pop(t, [])
        exp = np.concatenate(expiring).astype(np.int64) if expiring else np.empty(0, np.int64)
        out = self.fn(t, S.keep, S.offset, self.bounds, *self.args_state, *self.args_params, *c, *f, exp,
                      *self.args_aggregates)
        o_ids, seg_b, seg_s, seg_e = out[:4]
        for b, s, e in zip(seg_b.tolist(), seg_s.tolist(), seg_e.tolist()):
            if e > s:
                for trig, dur in self.triggers:
                    if trig == b:
                        S.calendar.setdefault(t + dur, []).append(o_ids[s:e])
        S.log.extend(t, *out[4:])


def run_days(S: ShardState, progress: Callable[[int], None] | None = None) -> bool:
    """Every day of the shard through the compiled day (snapshots through stages.py's own function); False,
    with nothing done, where numba cannot be imported in this process (the caller runs stages.py: the same
    bytes)."""
    from .stages import snapshot
    from .state import Day

    try:
        _jit()
    except ImportError:
        return False
    core = CompiledDay(S)
    snap = set(S.snap_days.tolist())
    for t in range(S.P.days):
        core.day(t)
        if t in snap:
            snapshot(S, Day(t))
        if progress is not None:
            progress(t + 1)
    return True
