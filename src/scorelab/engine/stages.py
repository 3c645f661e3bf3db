"""The day as named stages over the shard state, called in the order of `DAY`.

behave -> observe -> [mechanisms: observe, pre_score] -> touch -> score -> sanction -> respond ->
[mechanisms: apply] -> clip -> grade_and_restrict -> [mechanisms: end_day] -> record.

Each stage is a function of (state, day) and works on only the citizens who act that day: candidates
for each behaviour are drawn sparsely (geometric skips, per group block, kernel._Batches), thinned by
each candidate's own propensity, observed by the rule's sensor; sensors add false attributions.
Aggregates (score sums, restricted counts, grade counts) are kept incrementally from the citizens a day
touched, so a day costs what happens that day. Each rule is written here once; the audit reads the
event log these stages write, never a re-implementation of them.
"""

from __future__ import annotations

import numpy as np

from .params import MAX_COUNT
from .sampling import distinct, distinct_sorted, keep
from .state import Day, ShardState


def sat_inc(counter: np.ndarray, ids: np.ndarray) -> None:
    """counter[ids] += 1, saturating at MAX_COUNT (ids are distinct)."""
    if len(ids):
        c = counter[ids]
        counter[ids] = np.where(c < MAX_COUNT, c + 1, c)


def union(parts: list[np.ndarray]) -> np.ndarray:
    """Sorted distinct ids of several arrays (sort + neighbour test: faster than np.unique's hashing here)."""
    if not parts:
        return np.empty(0, dtype=np.int64)
    c = np.concatenate(parts)
    if len(c) < 2:
        return c.astype(np.int64, copy=False)
    c.sort()  # in place: c is already a copy
    return distinct_sorted(c)


def count_misconduct(S: ShardState, b: int, ids: np.ndarray) -> None:
    """True events of a behaviour declared misconduct add to each citizen's ground truth."""
    P = S.P
    if P.misconduct[b]:
        sat_inc(S.misconduct, ids)
        if S.severity is not None:
            S.severity[ids] += np.float32(P.severity[b])


def behave(S: ShardState, D: Day) -> None:
    """Who truly acts today: each behaviour's candidates thinned by their propensity (the state at the start
    of the day: deterrence, gaming below a score, score curves), then by the mechanisms' gates (only a listed
    citizen can repay a court debt)."""
    P, t, G = S.P, D.t, S.G
    for b in range(P.n_behaviours):
        ids, grp, (u_acc, u_obs) = S.candidates[b].day(t)
        chill = P.chills(b)
        het = S.het.get(b)
        plug = S.propensity.get(b)
        if (P.deter_slot[b] >= 0 or P.gaming[b] or P.curves[b] or chill or het is not None or plug) and len(ids):
            m = np.ones(len(ids), dtype=np.float64)
            slot = P.deter_slot[b]
            if slot >= 0:
                m *= P.deter_table[slot][S.deter[slot, ids]]
            if chill:  # general deterrence: monitoring x sanction, for everyone in the group
                m *= P.chill[b][grp]
            if het is not None:  # the citizen's own propensity
                m *= het[ids]
            for f in plug or ():  # consequences that act (a restriction or privilege held at the start of the day)
                m *= f(b, ids, S, t)
            if P.gaming[b] or P.curves[b]:
                s = S.score[ids]
                for below, factor in P.gaming[b]:
                    m *= np.where(s < below, factor, 1.0)
                for xs, ys in P.curves[b]:
                    m *= np.interp(s, xs, ys)
            p_i = np.minimum(1.0, P.rate[b][grp] * m)
            ok = u_acc * P.pmax[b][grp] < p_i
            ids, grp, u_obs = keep(ok, ids, grp, u_obs)
        for gate in S.gates.get(b, ()):
            ids, grp, u_obs = gate(b, ids, grp, u_obs, S, t)
        D.true_ids.append(ids)
        S.metrics[f"true_{P.behaviours[b]}"][t] += np.bincount(grp, minlength=G)
        if P.speech[b]:
            S.metrics["criticism"][t] += np.bincount(grp, minlength=G)
        count_misconduct(S, b, ids)
        D.acted.append((ids, grp, u_obs))


def observe(S: ShardState, D: Day) -> None:
    """What the authority sees: each scored behaviour's true events seen by its sensor (detection per group),
    then the events the sensors invent (false attributions, one stream per source and group)."""
    P, t, G = S.P, D.t, S.G
    for b, (ids, grp, u_obs) in enumerate(D.acted):
        if not P.scored[b]:
            continue
        det = P.detect[b]
        if P.targeting is not None and P.targeting[b]:  # the sensor sees more of the restricted
            det_i = det[grp].copy()
            for r, factor in P.targeting[b]:
                on = S.restricted_at_start(r, ids, t)
                det_i[on] = np.minimum(1.0, det_i[on] * factor)
            ids, grp = keep(u_obs < det_i, ids, grp)
        elif P.detection_kind(b) == 1:
            ids, grp = keep(u_obs < det[grp], ids, grp)
        elif P.detection_kind(b) == 2:
            ids, grp = keep(det[grp] > 0, ids, grp)
        S.metrics[f"observed_{P.behaviours[b]}"][t] += np.bincount(grp, minlength=G)
        D.obs.append((b, ids, False))
    for k, f in enumerate(P.false_sources):
        ids, grp, _ = S.false_candidates[k].day(t)
        S.metrics[f"false_{P.behaviours[f.behaviour]}"][t] += np.bincount(grp, minlength=G)
        D.obs.append((f.behaviour, ids, True))


def touch(S: ShardState, D: Day) -> None:
    """The citizens whose state may change today (observed, expiring, or named by a mechanism), and their
    state at the end of yesterday."""
    expiring = S.calendar.pop(D.t, [])
    D.touched = union([o[1] for o in D.obs] + expiring + D.extra)
    D.old_score = S.score[D.touched]
    D.old_listed = [bl[D.touched] for bl in S.listed]


def score(S: ShardState, D: Day) -> None:
    """Each observation adds its rule's points (a score event with rule, sensor and false attribution)."""
    P, t, G = S.P, D.t, S.G
    m = S.metrics
    for b, ids, false in D.obs:
        if len(ids) == 0:
            continue
        pts = P.points[b]
        S.score[ids] += pts
        cnt = np.bincount(S.group_of(ids), minlength=G)
        m["points_awarded" if pts > 0 else "points_deducted"][t] += cnt * abs(int(pts))
        if pts < 0:
            m["penalties"][t] += cnt
            if false:
                m["wrongful_penalties"][t] += cnt
        elif false:
            m["wrongful_rewards"][t] += cnt
        S.log.emit("score", t, ids, rule=b, points=pts, sensor=int(P.sensor_of[b]), false=false)


def sanction(S: ShardState, D: Day) -> None:
    """Blacklists: an observation of a trigger lists the citizen for the list's duration from today; a new
    trigger while listed restarts the full duration and never shortens a listing."""
    P, t = S.P, D.t
    for b, ids, false in D.obs:
        if len(ids) == 0:
            continue
        for k in np.flatnonzero(P.bl_trigger == b):
            until = t + int(P.bl_duration[k])
            prev = S.listed[k][ids]
            S.listed[k][ids] = np.maximum(prev, until)
            S.calendar.setdefault(until, []).append(ids)
            was = prev >= t  # listed at the end of yesterday: a renewal, not a new listing
            if (~was).any():  # each citizen once, however many events today
                S.metrics[f"listings_{P.bl_names[k]}"][t] += S.count(distinct(ids[~was]))
            if S.keep:
                if (~was).any():
                    S.log.emit("list_start", t, ids[~was], rule=b, sensor=int(P.sensor_of[b]), false=false,
                               target=int(k), until=until)
                longer = was & (prev < until)
                if longer.any():
                    S.log.emit("list_extend", t, ids[longer], rule=b, sensor=int(P.sensor_of[b]), false=false,
                               target=int(k), until=until)


def respond(S: ShardState, D: Day) -> None:
    """Specific deterrence: every observed event of a deterred behaviour lowers the citizen's propensity from
    the next day (a saturating counter per citizen; with response.deterrence.points_unit, by one step per
    points_unit of the penalty)."""
    P = S.P
    for b, ids, false in D.obs:
        slot = P.deter_slot[b]
        if slot >= 0 and len(ids):
            if P.deter_step is None or P.deter_step[b] == 1:
                sat_inc(S.deter[slot], ids)
            else:  # a harsher penalty counts as several steps
                c = S.deter[slot, ids].astype(np.int64) + int(P.deter_step[b])
                S.deter[slot, ids] = np.minimum(c, MAX_COUNT).astype(np.uint8)


def clip(S: ShardState, D: Day) -> None:
    """Scores outside [score_min, score_max] are brought back (a score event of rule score_range)."""
    P, t = S.P, D.t
    new_score = S.score[D.touched]
    if (P.score_min is not None or P.score_max is not None) and len(D.touched):
        clipped = np.clip(new_score, P.score_min, P.score_max).astype(P.score_dtype)
        moved = clipped != new_score
        if moved.any():
            S.score[D.touched] = clipped
            at = np.flatnonzero(moved)
            adj = clipped.take(at).astype(np.int64) - new_score.take(at)
            cids = D.touched.take(at)
            delta_g = S.sums_sorted(cids, adj)  # (touched is sorted: each group's run, exact)
            S.metrics["points_deducted"][t] -= np.minimum(delta_g, 0)
            S.metrics["points_awarded"][t] += np.maximum(delta_g, 0)
            S.log.emit("score", t, cids, rule=P.n_behaviours, points=adj)
            new_score = clipped
    D.new_score = new_score
    D.new_listed = [bl[D.touched] for bl in S.listed]


def grade_and_restrict(S: ShardState, D: Day) -> None:
    """Grades and restrictions of the touched citizens: the aggregates move by their changes, and each
    change of a kept citizen's restriction or listing is an event."""
    P, t = S.P, D.t
    touched = D.touched
    if not len(touched):
        return
    R, K = len(P.restriction_names), len(P.grade_names)
    tg = D.tg = S.group_of(touched)
    # touched is sorted (union), so each group's changes are one run of it: S.sums_sorted
    S.score_sum += S.sums_sorted(touched, D.new_score.astype(np.int64) - D.old_score)
    D.g_old = P.grade_of(D.old_score) if K else None
    D.g_new = P.grade_of(D.new_score) if K else None
    if R:
        r_old = P.restricted(D.old_score, D.old_listed, t - 1, D.g_old)
        r_new = P.restricted(D.new_score, D.new_listed, t, D.g_new)
        S.restricted_n += S.sums_sorted(touched, r_new.astype(np.int8) - r_old.astype(np.int8))
        a_old, a_new = r_old.any(axis=0), r_new.any(axis=0)
        S.restricted_any += S.sums_sorted(touched, a_new.astype(np.int8) - a_old.astype(np.int8))
        if S.keep:
            for r in range(R):
                S.log.transitions(t, touched, r_old[r], r_new[r], "restrict_on", "restrict_off", r)
    if K:
        changed = D.g_old != D.g_new
        if changed.any():
            tc = tg[changed]
            S.grade_n += P.grade_counts(D.g_new[changed], tc, S.G) - P.grade_counts(D.g_old[changed], tc, S.G)
    for k in range(len(S.listed)):
        was_on, now_on = t - 1 < D.old_listed[k], t < D.new_listed[k]
        S.listed_n[k] += S.sums_sorted(touched, now_on.astype(np.int8) - was_on.astype(np.int8))
        if S.keep:
            ended = was_on & ~now_on
            if k in D.removed and ended.any():
                ended &= ~np.isin(touched, D.removed[k])
            if ended.any():
                S.log.emit("list_expire", t, touched[ended], target=k)


def _hooks(stage: str):
    def run(S: ShardState, D: Day) -> None:
        for hook in S.hooks.get(stage, ()):
            hook(S, D)
    run.__name__ = f"mechanisms_{stage}"
    run.__doc__ = f"The active mechanisms' {stage} stage, in their declared order (plugins/__init__.py)."
    return run


mechanisms_observe = _hooks("observe")  # filter today's observations (blocked attempts, sub-score events)
mechanisms_pre_score = _hooks("pre_score")  # before scores change; adds to D.extra the citizens they will change
mechanisms_apply = _hooks("apply")  # after the rules' points: caps, list removal, reversals, composite, peer
mechanisms_end_day = _hooks("end_day")  # after the aggregates: household reach, privileges, means


def record(S: ShardState, D: Day) -> None:
    """The day's stocks into the metrics (flows were added as they happened)."""
    P, t, m = S.P, D.t, S.metrics
    m["score_sum"][t] = S.score_sum
    m["restricted"][t] = S.restricted_any
    if len(P.restriction_names) > 1:
        for r, name in enumerate(P.restriction_names):
            m[f"restricted_{name}"][t] = S.restricted_n[r]
    for k, name in enumerate(P.grade_names):
        m[f"grade_{name}"][t] = S.grade_n[k]
    for k, name in enumerate(P.bl_names):
        m[f"listed_{name}"][t] = S.listed_n[k]


def snapshot(S: ShardState, D: Day) -> None:
    """The score histogram of each group on the snapshot days."""
    si = np.searchsorted(S.snap_days, D.t)
    if si < len(S.snap_days) and S.snap_days[si] == D.t:
        for g in range(S.G):
            S.hist[si, g] = histogram(S.score[S.starts[g]:S.bounds[g]], S.hist_lo)


HIST_WIDTH = 10
HIST_BINS = 400  # 10-point bins around the start score: +-2000 points, the ends collect the rest


def histogram(score: np.ndarray, lo: int) -> np.ndarray:
    """Counts per HIST_WIDTH-point bin from ``lo`` (the end bins collect the rest): one counting pass."""
    out = np.zeros(HIST_BINS, dtype=np.int64)
    if len(score) == 0:
        return out
    mn, mx = int(score.min()), int(score.max())
    if mx - mn >= 1 << 20:  # a very wide spread: bin each score directly
        bins = np.clip((score.astype(np.int64) - lo) // HIST_WIDTH, 0, HIST_BINS - 1)
        return np.bincount(bins, minlength=HIST_BINS).astype(np.int64)
    shifted = score.astype(np.intp)
    shifted -= mn
    counts = np.bincount(shifted)
    values = mn + np.arange(len(counts), dtype=np.int64)
    bins = np.clip((values - lo) // HIST_WIDTH, 0, HIST_BINS - 1)
    np.add.at(out, bins, counts)
    return out


# The day, in order. Each entry is a stage of (state, day); the kernel calls them one after another.
DAY = (behave, observe, mechanisms_observe, mechanisms_pre_score, touch, score, sanction, respond,
       mechanisms_apply, clip, grade_and_restrict, mechanisms_end_day, record, snapshot)
