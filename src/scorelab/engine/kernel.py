"""The day step, vectorised over one shard of citizens.

State is a struct of arrays (one array per attribute, the smallest dtype that fits). Each day runs the
stages of design.md in order — behave, observe, score, grade, sanction, respond — over only the citizens
who act that day: candidates for each behaviour are drawn sparsely (geometric skips, per group block),
thinned by each candidate's own propensity, observed by the rule's sensor; sensors add false attributions.
Aggregates (score sums, restricted counts, grade counts) are kept incrementally from the citizens a day
touched, so a day costs what happens that day.

Within a shard, citizens are laid out in group blocks (all of group 0, then group 1, ...): a citizen's
group is its block, so it costs no memory, and sampling a group is sampling a range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .events import EventLog
from .mechanisms import ShardMechanisms
from .params import MAX_COUNT, Params
from .sampling import bernoulli_positions

TARGET_CHUNK_EVENTS = 1_500_000  # candidates drawn per batch of days (bounds memory, amortises calls)


@dataclass(frozen=True)
class ShardSpec:
    index: int
    offset: int  # global id of the shard's first citizen
    size: int
    seed: int
    keep_stride: int  # keep ledger/citizen detail for global ids divisible by this; 0 = keep none
    snapshot_every: int = 30


@dataclass
class ShardResult:
    index: int
    group_sizes: np.ndarray  # [G]
    metrics: dict[str, np.ndarray]  # name -> [T, G] (sums and counts; means are formed after merging)
    hist_days: np.ndarray  # [S] days of the score-histogram snapshots
    hist: np.ndarray  # [S, G, H] counts per score bin
    ledger: dict[str, np.ndarray] = field(default_factory=dict)
    citizens: dict[str, np.ndarray] = field(default_factory=dict)


HIST_WIDTH = 10
HIST_BINS = 400  # 10-point bins around the start score: +-2000 points, the ends collect the rest


def hist_lo(params: Params) -> int:
    return params.start_score - (HIST_BINS // 2) * HIST_WIDTH


def shard_streams(seed: int, index: int, params: Params) -> dict[str, object]:
    """Independent generators per purpose: one per (behaviour, group), one per (false source, group), one per
    group for start scores.

    Each behaviour has its own stream per group, whose draws depend on neither the policy nor the other
    groups' parameters: two policies run with the same seed see the same candidate events (common random
    numbers), and changing one group's rate leaves every other group's events exactly as they were.
    """
    G = params.n_groups
    root = np.random.SeedSequence(seed, spawn_key=(index,))
    kids = root.spawn(2 + params.n_behaviours + len(params.false_sources))

    def per_group(ss: np.random.SeedSequence) -> list[np.random.Generator]:
        return [np.random.Generator(np.random.PCG64(k)) for k in ss.spawn(G)]

    gens: dict[str, object] = {"groups": np.random.Generator(np.random.PCG64(kids[0])), "start": per_group(kids[1])}
    for b, name in enumerate(params.behaviours):
        gens[f"b:{name}"] = per_group(kids[2 + b])
    for k in range(len(params.false_sources)):
        gens[f"f:{k}"] = per_group(kids[2 + params.n_behaviours + k])
    return gens


class _Group:
    """Candidate positions of one source in one group for a batch of days, from the group's own stream."""

    __slots__ = ("rng", "g", "p", "start", "size", "days", "uniforms", "span", "first", "stop", "pos", "bounds", "u")

    def __init__(self, rng: np.random.Generator, g: int, p: float, start: int, size: int, days: int, uniforms: int):
        self.rng, self.g, self.p, self.start, self.size, self.days, self.uniforms = rng, g, p, start, size, days, uniforms
        per_day = p * size
        self.span = int(max(1, min(days, TARGET_CHUNK_EVENTS // max(per_day, 1.0))))
        self.first = self.stop = 0

    def fill(self, day0: int) -> None:
        span = min(self.span, self.days - day0)
        self.pos = bernoulli_positions(self.rng, self.size * span, self.p)
        self.bounds = np.searchsorted(self.pos, np.arange(span + 1, dtype=np.int64) * self.size)
        self.u = [self.rng.random(len(self.pos), dtype=np.float32) for _ in range(self.uniforms)]
        self.first, self.stop = day0, day0 + span


class _Batches:
    """Candidate events of one source, sliced one day at a time; each group draws from its own stream in
    batches sized by its own rate, so one group's parameters never move another group's draws."""

    def __init__(self, rngs: list[np.random.Generator], p: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                 days: int, uniforms: int):
        self.uniforms = uniforms
        self.parts = [_Group(rngs[g], g, float(pg), int(start), int(size), days, uniforms)
                      for g, (pg, start, size) in enumerate(zip(p, starts, sizes)) if size > 0 and pg > 0]

    def day(self, t: int):
        """Candidates of day t: ids (group 0's first, each group's ascending), their groups, uniforms."""
        ids, grp, us = [], [], [[] for _ in range(self.uniforms)]
        for part in self.parts:
            if t >= part.stop:
                part.fill(t)
            k = t - part.first
            s, e = part.bounds[k], part.bounds[k + 1]
            ids.append(part.pos[s:e] + (part.start - k * part.size))
            grp.append(np.full(e - s, part.g, dtype=np.uint8))
            for j in range(self.uniforms):
                us[j].append(part.u[j][s:e])
        if len(ids) == 1:
            return ids[0], grp[0], [x[0] for x in us]
        if not ids:
            empty = np.empty(0, dtype=np.float32)
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint8), [empty] * self.uniforms
        return np.concatenate(ids), np.concatenate(grp), [np.concatenate(x) for x in us]


def metric_names(P: Params) -> list[str]:
    """The per-day, per-group sums and counts every backend fills, in their table order."""
    names = ["score_sum", "restricted", "penalties", "wrongful_penalties", "wrongful_rewards", "criticism"]
    names += [f"restricted_{r}" for r in P.restriction_names] if len(P.restriction_names) > 1 else []
    names += [f"grade_{g}" for g in P.grade_names] + [f"listed_{b}" for b in P.bl_names]
    names += [f"true_{b}" for b in P.behaviours] + [f"observed_{b}" for b in P.behaviours]
    names += [f"false_{P.behaviours[f.behaviour]}" for f in P.false_sources]
    names += ["points_awarded", "points_deducted"]
    return list(dict.fromkeys(names))


def _histogram(score: np.ndarray, lo: int) -> np.ndarray:
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


def _union(parts: list[np.ndarray]) -> np.ndarray:
    """Sorted distinct ids of several arrays (sort + neighbour test: faster than np.unique's hashing here)."""
    if not parts:
        return np.empty(0, dtype=np.int64)
    c = np.concatenate(parts)
    if len(c) < 2:
        return c.astype(np.int64, copy=False)
    c.sort()
    keep = np.empty(len(c), dtype=bool)
    keep[0] = True
    np.not_equal(c[1:], c[:-1], out=keep[1:])
    return c[keep]


def _sat_inc(counter: np.ndarray, ids: np.ndarray) -> None:
    """counter[ids] += 1, saturating at MAX_COUNT (ids are distinct)."""
    if len(ids):
        c = counter[ids]
        counter[ids] = np.where(c < MAX_COUNT, c + 1, c)


def _start_scores(P: Params, gens, sizes: np.ndarray) -> np.ndarray | None:
    """Day-0 scores drawn from each group's start distribution (None: everyone at the policy's start_score)."""
    if all(d is None for d in P.start):
        return None
    from ..config.start import sample_start

    parts = []
    for g, (dist, size) in enumerate(zip(P.start, sizes)):
        if dist is None:
            parts.append(np.full(int(size), P.start_score, dtype=np.int64))
        else:
            parts.append(sample_start(dist, int(size), gens["start"][g]))
    return np.concatenate(parts)


def _plugins(P: Params, spec: ShardSpec, sizes, starts, bounds, metrics, log) -> list:
    """The active mechanism plugins of this shard, constructed in registry order over one shared context."""
    if not P.plugins:
        return []
    from ..plugins import ShardContext

    rules = {name: i for i, name in enumerate(P.rule_names)}
    targets = {name: i for i, name in enumerate(P.plugin_targets)}
    ctx = ShardContext(P, spec, sizes, starts, bounds, metrics, log, rules, targets)
    return [plugin(compiled, ctx) for plugin, compiled in P.plugins]


def simulate_shard(params: Params, spec: ShardSpec, progress: Callable[[int], None] | None = None) -> ShardResult:
    P = params
    T, G, B = P.days, P.n_groups, P.n_behaviours
    gens = shard_streams(spec.seed, spec.index, P)
    sizes = gens["groups"].multinomial(spec.size, P.shares).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    bounds = np.cumsum(sizes)
    n = spec.size
    M = P.mech if P.mech is not None and P.mech.active else None
    n_priv = len(M.privilege_names) if M is not None else 0

    def group_of(ids: np.ndarray) -> np.ndarray:
        """Group of each local id (groups are contiguous blocks): a few comparisons beat a search."""
        if G > 4:
            return np.searchsorted(bounds, ids, side="right")
        g = np.zeros(len(ids), dtype=np.intp)
        for k in range(G - 1):
            g += ids >= bounds[k]
        return g

    # ---- state: one array per attribute ----
    drawn = _start_scores(P, gens, sizes)
    score = np.full(n, P.start_score, dtype=P.score_dtype) if drawn is None else drawn.astype(P.score_dtype)
    listed = [np.full(n, -1, dtype=P.day_dtype) for _ in P.bl_names]
    n_det = P.deter_table.shape[0]
    deter = np.zeros((n_det, n), dtype=np.uint8)
    misconduct = np.zeros(n, dtype=np.uint8)  # true events of declared misconduct (ground truth)
    weighted = bool(((P.severity != 1.0) & P.misconduct).any())
    severity = np.zeros(n, dtype=np.float32) if weighted else None

    # ---- incremental aggregates ----
    R, K = len(P.restriction_names), len(P.grade_names)
    no_list = [np.array([-1])] * len(P.bl_names)
    if drawn is None:
        score_sum = sizes * P.start_score
        start_r = P.restricted(np.array([P.start_score]), no_list, 0)[:, 0]
        restricted_n = np.outer(start_r.astype(np.int64), sizes)  # [R, G]
        restricted_any = sizes * int(bool(start_r.any()))
        grade_n = np.zeros((K, G), dtype=np.int64)
        if K:
            grade_n[int(P.grade_of(np.array([P.start_score]))[0])] = sizes
    else:
        gid = np.repeat(np.arange(G), sizes)
        score_sum = np.bincount(gid, weights=drawn, minlength=G).astype(np.int64)
        r0 = P.restricted(score, [np.full(n, -1)] * len(P.bl_names), 0) if R else np.zeros((0, n), dtype=bool)
        restricted_n = np.stack([np.bincount(gid, weights=r0[r], minlength=G) for r in range(R)]).astype(np.int64) \
            if R else np.zeros((0, G), dtype=np.int64)
        restricted_any = np.bincount(gid, weights=r0.any(axis=0), minlength=G).astype(np.int64) if R else np.zeros(G, np.int64)
        grade_n = np.zeros((K, G), dtype=np.int64)
        if K:
            np.add.at(grade_n, (P.grade_of(score), gid), 1)
    listed_n = np.zeros((len(P.bl_names), G), dtype=np.int64)
    calendar: dict[int, list[np.ndarray]] = {}

    metrics = {m: np.zeros((T, G), dtype=np.int64) for m in metric_names(P)}

    snap_days = np.array(sorted(set(range(spec.snapshot_every - 1, T, spec.snapshot_every)) | {T - 1}), dtype=np.int64)
    hist = np.zeros((len(snap_days), G, HIST_BINS), dtype=np.int64)
    lo = hist_lo(P)

    # ---- candidate streams ----
    needs_accept = np.array([P.deter_slot[b] >= 0 or bool(P.gaming[b]) or bool(P.curves[b]) for b in range(B)])
    partial_obs = (P.detect > 0) & (P.detect < 1)
    beh = [_Batches(gens[f"b:{name}"], P.pmax[b], starts, sizes, T, 2) for b, name in enumerate(P.behaviours)]
    fal = [_Batches(gens[f"f:{k}"], f.rate, starts, sizes, T, 0) for k, f in enumerate(P.false_sources)]

    keep = spec.keep_stride
    log = EventLog(keep, spec.offset, len(P.sensors))
    has_clip = P.score_min is not None or P.score_max is not None

    # initial states of the kept citizens (day 0): restrictions and privileges their start score gives
    if keep and (R or n_priv):
        kept0 = np.arange(n, dtype=np.int64)
        kept0 = kept0[log.kept(kept0)]
        if len(kept0):
            g0 = P.grade_of(score[kept0]) if K else None
            none0 = np.zeros(len(kept0), dtype=bool)
            if R:
                r0k = P.restricted(score[kept0], [np.full(len(kept0), -1)] * len(P.bl_names), 0, g0)
                for r in range(R):
                    log.transitions(0, kept0, none0, r0k[r], "restrict_on", "restrict_off", r)
            for q in range(n_priv):
                log.transitions(0, kept0, none0, M.privilege_grades[q][g0], "privilege_on", "privilege_off", q)

    # [mechanisms hook 0] preset mechanisms (engine/mechanisms.py); None for plain point systems like RR-1
    mech = ShardMechanisms(P, spec, sizes, starts, bounds, metrics, log, keep) if M is not None else None
    plugins = _plugins(P, spec, sizes, starts, bounds, metrics, log)  # mechanism plugins (plugins/), registry order

    for t in range(T):
        # ---- behave: thin candidates by each one's propensity (state at the start of the day) ----
        true_ids: list[np.ndarray] = []
        obs: list[tuple[int, np.ndarray, bool]] = []  # (behaviour, ids, false attribution?)
        for b in range(B):
            ids, grp, (u_acc, u_obs) = beh[b].day(t)
            if needs_accept[b] and len(ids):
                m = np.ones(len(ids), dtype=np.float64)
                slot = P.deter_slot[b]
                if slot >= 0:
                    m *= P.deter_table[slot][deter[slot, ids]]
                if P.gaming[b] or P.curves[b]:
                    s = score[ids]
                    for below, factor in P.gaming[b]:
                        m *= np.where(s < below, factor, 1.0)
                    for xs, ys in P.curves[b]:
                        m *= np.interp(s, xs, ys)
                p_i = np.minimum(1.0, P.rate[b][grp] * m)
                ok = u_acc * P.pmax[b][grp] < p_i
                ids, grp, u_obs = ids[ok], grp[ok], u_obs[ok]
            if mech is not None and mech.M.gated[b]:  # [mechanisms hook 1] state-gated behaviours
                ids, grp, u_obs = mech.gate(b, ids, grp, u_obs, score, listed, t)
            true_ids.append(ids)
            metrics[f"true_{P.behaviours[b]}"][t] += np.bincount(grp, minlength=G)
            if P.speech[b]:
                metrics["criticism"][t] += np.bincount(grp, minlength=G)
            if P.misconduct[b]:
                _sat_inc(misconduct, ids)
                if severity is not None:
                    severity[ids] += np.float32(P.severity[b])
            # ---- observe ----
            if not P.scored[b]:
                continue
            if partial_obs[b].any():
                seen = u_obs < P.detect[b][grp]
                ids, grp = ids[seen], grp[seen]
            elif not (P.detect[b] > 0).all():
                seen = P.detect[b][grp] > 0
                ids, grp = ids[seen], grp[seen]
            metrics[f"observed_{P.behaviours[b]}"][t] += np.bincount(grp, minlength=G)
            obs.append((b, ids, False))
        for k, f in enumerate(P.false_sources):
            ids, grp, _ = fal[k].day(t)
            metrics[f"false_{P.behaviours[f.behaviour]}"][t] += np.bincount(grp, minlength=G)
            obs.append((f.behaviour, ids, True))

        # [mechanisms hook 2] blocked attempts, due process, sub-score events, peer ratings
        extra = mech.pre_score(t, obs, true_ids, score, listed) if mech is not None else []
        for pl in plugins:
            extra += pl.pre_score(t, obs, true_ids, score, listed)
        expiring = calendar.pop(t, [])
        parts = [o[1] for o in obs] + expiring + extra
        touched = _union(parts)
        old_score = score[touched]
        old_listed = [bl[touched] for bl in listed]

        # ---- score ----
        for b, ids, false in obs:
            if len(ids) == 0:
                continue
            pts = P.points[b]
            score[ids] += pts
            grp = group_of(ids)
            cnt = np.bincount(grp, minlength=G)
            metrics["points_awarded" if pts > 0 else "points_deducted"][t] += cnt * abs(int(pts))
            if pts < 0:
                metrics["penalties"][t] += cnt
                if false:
                    metrics["wrongful_penalties"][t] += cnt
            elif false:
                metrics["wrongful_rewards"][t] += cnt
            log.emit("score", t, ids, rule=b, points=pts, sensor=int(P.sensor_of[b]), false=false)
            # ---- sanction: blacklists ----
            for k in np.flatnonzero(P.bl_trigger == b):
                until = t + int(P.bl_duration[k])
                prev = listed[k][ids]
                listed[k][ids] = np.maximum(prev, until)  # never shortens an extended listing
                calendar.setdefault(until, []).append(ids)
                if keep:
                    was = prev >= t  # listed at the end of yesterday: a renewal, not a new listing
                    if (~was).any():
                        log.emit("list_start", t, ids[~was], rule=b, sensor=int(P.sensor_of[b]), false=false,
                                 target=int(k), until=until)
                    longer = was & (prev < until)
                    if longer.any():
                        log.emit("list_extend", t, ids[longer], rule=b, sensor=int(P.sensor_of[b]), false=false,
                                 target=int(k), until=until)
            # ---- respond: deterrence (takes effect from the next day) ----
            slot = P.deter_slot[b]
            if slot >= 0:
                _sat_inc(deter[slot], ids)

        if mech is not None:  # [mechanisms hook 3] caps, list removal/extension, reversals, composite, peer
            mech.apply(t, score, listed, calendar)
        for pl in plugins:
            pl.apply(t, obs, score, listed, calendar)
        new_score = score[touched]
        if has_clip and len(touched):
            clipped = np.clip(new_score, P.score_min, P.score_max).astype(P.score_dtype)
            moved = clipped != new_score
            if moved.any():
                score[touched] = clipped
                adj = (clipped[moved].astype(np.int64) - new_score[moved])
                cids = touched[moved]
                delta_g = np.bincount(group_of(cids), weights=adj, minlength=G).astype(np.int64)
                metrics["points_deducted"][t] -= np.minimum(delta_g, 0)
                metrics["points_awarded"][t] += np.maximum(delta_g, 0)
                log.emit("score", t, cids, rule=B, points=adj)
                new_score = clipped
        new_listed = [bl[touched] for bl in listed]

        # ---- grade and restrictions: update the aggregates from the touched citizens ----
        if len(touched):
            tg = group_of(touched)
            score_sum += np.bincount(tg, weights=(new_score.astype(np.int64) - old_score), minlength=G).astype(np.int64)
            g_old = P.grade_of(old_score) if K else None
            g_new = P.grade_of(new_score) if K else None
            if R:
                r_old = P.restricted(old_score, old_listed, t - 1, g_old)
                r_new = P.restricted(new_score, new_listed, t, g_new)
                restricted_n += np.stack([np.bincount(tg, weights=(r_new[r].astype(np.int64) - r_old[r]), minlength=G)
                                          for r in range(R)]).astype(np.int64)
                a_old, a_new = r_old.any(axis=0), r_new.any(axis=0)
                restricted_any += np.bincount(tg, weights=a_new.astype(np.int64) - a_old, minlength=G).astype(np.int64)
                if keep:
                    for r in range(R):
                        log.transitions(t, touched, r_old[r], r_new[r], "restrict_on", "restrict_off", r)
            if K:
                changed = g_old != g_new
                if changed.any():
                    np.add.at(grade_n, (g_old[changed], tg[changed]), -1)
                    np.add.at(grade_n, (g_new[changed], tg[changed]), 1)
                    if keep:
                        for q in range(n_priv):
                            pg = M.privilege_grades[q]
                            log.transitions(t, touched, pg[g_old], pg[g_new], "privilege_on", "privilege_off", q)
            removed = mech.removed_today if mech is not None else {}
            for k in range(len(listed)):
                was_on, now_on = t - 1 < old_listed[k], t < new_listed[k]
                d = now_on.astype(np.int64) - was_on
                listed_n[k] += np.bincount(tg, weights=d, minlength=G).astype(np.int64)
                if keep:
                    ended = was_on & ~now_on
                    if k in removed and ended.any():
                        ended &= ~np.isin(touched, removed[k])
                    if ended.any():
                        log.emit("list_expire", t, touched[ended], target=k)

        if mech is not None:  # [mechanisms hook 4] household reach, privileges, sub-score means
            mech.end_day(t, touched, old_listed, new_listed, grade_n, listed)
        for pl in plugins:
            pl.end_day(t, touched)
        metrics["score_sum"][t] = score_sum
        metrics["restricted"][t] = restricted_any
        if R > 1:
            for r, name in enumerate(P.restriction_names):
                metrics[f"restricted_{name}"][t] = restricted_n[r]
        for k, name in enumerate(P.grade_names):
            metrics[f"grade_{name}"][t] = grade_n[k]
        for k, name in enumerate(P.bl_names):
            metrics[f"listed_{name}"][t] = listed_n[k]

        si = np.searchsorted(snap_days, t)
        if si < len(snap_days) and snap_days[si] == t:
            for g in range(G):
                hist[si, g] = _histogram(score[starts[g]:bounds[g]], lo)
        if progress is not None:
            progress(t + 1)

    if mech is not None:  # a listing from before the run stands for one true event of its trigger
        for k, ids in mech.initial_listed:
            b = int(P.bl_trigger[k])
            if P.misconduct[b]:
                _sat_inc(misconduct, ids)
                if severity is not None:
                    severity[ids] += np.float32(P.severity[b])
    result = ShardResult(spec.index, sizes, metrics, snap_days, hist)
    if keep:
        result.ledger = log.arrays()
        ids = np.arange(n, dtype=np.int64)
        if keep > 1:
            first = (-spec.offset) % keep
            ids = ids[first::keep]
        fin_r = P.restricted(score[ids], [bl[ids] for bl in listed], T - 1)
        cit = {
            "citizen": ids + spec.offset,
            "group": group_of(ids).astype(np.int16),
            "start_score": (np.full(len(ids), P.start_score) if drawn is None else drawn[ids]).astype(np.int32),
            "score": score[ids].astype(np.int32),
            "grade": P.grade_of(score[ids]) if K else np.zeros(len(ids), dtype=np.int8),
            "restricted": fin_r.any(axis=0),
            "true_misconduct": misconduct[ids],
        }
        if severity is not None:
            cit["misconduct_severity"] = severity[ids]
        if R > 1:
            for r, name in enumerate(P.restriction_names):
                cit[f"restricted_{name}"] = fin_r[r]
        if listed:
            cit["blacklisted_until"] = np.max(np.stack([bl[ids] for bl in listed]), axis=0).astype(np.int32)
            if len(listed) > 1:
                for k, name in enumerate(P.bl_names):
                    cit[f"listed_until_{name}"] = listed[k][ids].astype(np.int32)
        for b, name in enumerate(P.behaviours):
            slot = P.deter_slot[b]
            if slot >= 0:
                cit[f"propensity_{name}"] = P.deter_table[slot][deter[slot, ids]].astype(np.float32)
        if mech is not None:  # [mechanisms hook 5] per-citizen outputs of the mechanisms
            cit.update(mech.citizens(ids, score))
        for pl in plugins:
            cit.update(pl.citizens(ids, score))
        result.citizens = cit
    return result
