"""The day step on an accelerator through JAX: dense, one jitted step, `lax.scan` over chunks of days.

Same contract as `kernel.simulate_shard` (a `ShardSpec` in, a `ShardResult` out, the same metric names
and meanings) for scenarios without preset mechanisms (RR-1-class: groups, per-group rates, sensors with
coverage and false attributions, points, clipping, grades, blacklists, restrictions, deterrence, gaming,
score curves). Where the numpy kernel is sparse (it draws only the events that happen), this one is
dense: every citizen gets one random 32-bit word per behaviour and per false-attribution source per day,
which is what a GPU does best (no compaction, no scatter; one fused pass over the state per day).

Randomness (documented in docs/gpu.md):
- one key per shard, from the run seed and shard index through `SeedSequence` (so any 64-bit seed works),
  one key per day by `fold_in(shard_key, day)`, one `jax.random.bits(day_key, (S, n), uint32)` per day;
- behaviour b happens to citizen i when ``word < floor(p_i * 2**32)``, and is observed when
  ``word < floor(p_i * coverage * 2**32)``: the same word, nested, so P(observed | happened) = coverage
  exactly and one word serves both tests. Probabilities are resolved to 2**-32 (2.3e-10), computed in
  float32 (relative error 6e-8): exact enough for rates down to ~1e-8;
- a different generator from the numpy backend, so the two agree statistically, not bitwise; the same
  seed gives identical output on the same backend and device kind.

Aggregates: each group starts on a block boundary on the device, so per-group sums are block sums: per-day
counts are int8 indicator rows summed per block in int32 then per group; wide sums (score deviation from
the start score, clipping adjustments) are summed in int32 per block (small enough never to overflow) and
the blocks are added per group on the host in int64. Histograms are taken between chunks (chunks end on snapshot days).

JAX is imported lazily by the caller (`scorelab.engine.jax_backend` imports it at module import; nothing
in the numpy path imports this module).
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

try:  # pragma: no cover - exercised only where jax is missing
    import jax
    import jax.numpy as jnp
    from jax import lax
except ImportError as e:  # pragma: no cover
    raise ImportError("the JAX backend needs jax: install with pip install 'scorelab[gpu]'") from e

from .kernel import HIST_BINS, HIST_WIDTH, ShardResult, ShardSpec, hist_lo, metric_names, shard_streams
from .events import EventLog
from .params import MAX_COUNT, Params

MAX_KEPT_PER_SHARD = 8_000_000  # detail kept on device per shard (bytes: ~(S + 4 + 2L + R) per kept citizen-day)
HIST_COPIES: int | None = None  # privatised histogram copies; None: 1 on a CPU, 256 on an accelerator
TWO32 = 4294967296.0
MAX_THR = 4294967040.0  # largest float32 below 2**32


class JaxBackendError(ValueError):
    """The scenario uses something the JAX backend does not implement."""


def unsupported(params: Params) -> str | None:
    """Why the JAX backend cannot run these params, or None."""
    if any(d is not None for d in params.start):
        return ("the scenario draws start scores from a distribution (groups[].start); the JAX backend starts "
                "everyone at the policy's start_score: use --backend numpy")
    weighted = bool(((params.severity != 1.0) & params.misconduct).any())
    parts = [name for name, on in (("response.chilling", params.chill is not None),
                                    ("behaviours[].severity", weighted),
                                    ("behaviours[].heterogeneity", params.het is not None),
                                    ("response.deterrence.points_unit", params.deter_step is not None)) if on]
    if params.plugins:
        parts.append(f"the mechanism(s) {', '.join(p.name for p, _ in params.plugins)} (plugins/)")
    if parts:
        return (f"the scenario uses {'; '.join(parts)}, which the JAX backend does not implement (it runs "
                "RR-1-class point systems: rules, grades, blacklists, restrictions, deterrence, gaming, score "
                "curves): use --backend numpy")
    return None


def check_detail(specs: list[ShardSpec]) -> str | None:
    """Why the kept detail (ledger/citizens) of these shards is too much for this backend, or None."""
    for spec in specs:
        kept = len(range((-spec.offset) % spec.keep_stride, spec.size, spec.keep_stride)) if spec.keep_stride else 0
        if kept > MAX_KEPT_PER_SHARD:
            return (f"the JAX backend keeps ledger detail for at most {MAX_KEPT_PER_SHARD:,} citizens per shard "
                    f"(shard {spec.index} would keep {kept:,}); keep a sample (--ledger 1000000) or none (--ledger none)")
    return None


def device_description() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', d.platform)} (jax prng {prng_name()})"


# --------------------------------------------------------------------------------------------------
# compile-time layout of one scenario: which indicator rows and wide rows a day produces


@dataclass(frozen=True)
class _Layout:
    count_rows: tuple[str, ...]  # metric names of the int8 indicator rows, in order
    wide_rows: tuple[str, ...]  # "score_dev", "clip_adj"
    block: int  # citizens per int32 partial sum


def _block_size(P: Params) -> int:
    """Largest power of two such that block * (largest per-citizen |value|) < 2**31."""
    pos = int(P.points[P.points > 0].sum())
    neg = int(-P.points[P.points < 0].sum()) * (1 + len(P.false_sources))
    per_day = max(pos, neg, 1)
    dev = per_day * P.days  # |score - start| without clipping
    if P.score_min is not None and P.score_max is not None:  # a clipped score stays in range
        dev = min(dev, max(abs(P.score_max - P.start_score), abs(P.score_min - P.start_score)))
    dev += per_day + 1  # a clipping adjustment undoes at most one day's points beyond that
    b = 1 << max(0, min(16, int(math.floor(math.log2((2**31 - 1) / dev)))))
    return b


def _padded(n: int, lay: _Layout, G: int) -> int:
    """Device positions for n citizens: each group padded to whole blocks; depends on n alone (one compile per
    shard size, whatever the group sizes)."""
    return (-(-n // lay.block) + G) * lay.block


def _layout(P: Params) -> _Layout:
    R = len(P.restriction_names)
    rows = ["restricted", "penalties", "wrongful_penalties", "wrongful_rewards", "criticism"]
    rows += [f"restricted_{r}" for r in P.restriction_names] if R > 1 else []
    rows += [f"grade_{g}" for g in P.grade_names] + [f"listed_{b}" for b in P.bl_names]
    rows += [f"listings_{b}" for b in P.bl_names]
    rows += [f"true_{b}" for b in P.behaviours] + [f"observed_{b}" for b in P.behaviours]
    rows += [f"false_{P.behaviours[f.behaviour]}" for f in P.false_sources]
    wide = ["score_dev"] + (["clip_adj"] if P.score_min is not None or P.score_max is not None else [])
    return _Layout(tuple(dict.fromkeys(rows)), tuple(wide), _block_size(P))


# --------------------------------------------------------------------------------------------------
# the day step


def _thr(p):
    """uint32 threshold t with P(word < t) = p (to 2**-32), and a flag for p >= 1."""
    return jnp.minimum(p * TWO32, MAX_THR).astype(jnp.uint32), p >= 1.0


def _make_chunk(P: Params, lay: _Layout, n_pad: int, n_keep: int, donate: bool):
    """A jitted function running ``len(days)`` days from a state; returns the new state and per-day outputs."""
    G, B, F = P.n_groups, P.n_behaviours, len(P.false_sources)
    L, R, K = len(P.bl_names), len(P.restriction_names), len(P.grade_names)
    f32 = jnp.float32
    # small constant tables (padded with a zero-rate "no group" row G for padding citizens)
    rate = np.concatenate([P.rate, np.zeros((B, 1))], axis=1).astype(np.float32)  # [B, G+1]
    detect = np.concatenate([P.detect, np.zeros((B, 1))], axis=1).astype(np.float32)
    frate = [np.concatenate([f.rate, [0.0]]).astype(np.float32) for f in P.false_sources]
    deter_table = P.deter_table.astype(np.float32)
    # points of each observation source: behaviours 0..B-1 (true, observed), then false sources
    src_beh = list(range(B)) + [f.behaviour for f in P.false_sources]
    src_false = [False] * B + [True] * F
    src_scored = [bool(P.scored[b]) for b in range(B)] + [True] * F
    src_pts = [int(P.points[b]) for b in src_beh]
    has_clip = "clip_adj" in lay.wide_rows
    lo_clip = -(2**31) if P.score_min is None else int(P.score_min)
    hi_clip = 2**31 - 1 if P.score_max is None else int(P.score_max)
    cuts = [int(c) for c in P.grade_cuts]
    sdt = jnp.dtype(P.score_dtype)
    ddt = jnp.dtype(P.day_dtype)
    nb = n_pad // lay.block

    def day_step(carry, xs, consts):
        score, listed, deter, misconduct = carry
        t, key = xs
        grp, block_group, kept = consts
        words = jax.random.bits(key, (B + F, n_pad), jnp.uint32)
        s32 = score.astype(jnp.int32)
        sf = score.astype(f32)
        rows: dict[str, list] = {}

        def add(name, x):
            rows.setdefault(name, []).append(x)

        obs_src = []  # per source: bool [n] observed (true sources) or false attribution
        for b in range(B):
            m = None
            slot = int(P.deter_slot[b])
            if slot >= 0:
                m = jnp.take(jnp.asarray(deter_table[slot]), deter[slot].astype(jnp.int32))
            for below, factor in P.gaming[b]:
                g = jnp.where(s32 < below, f32(factor), f32(1.0))
                m = g if m is None else m * g
            for xsc, ysc in P.curves[b]:
                c = jnp.interp(sf, jnp.asarray(xsc, f32), jnp.asarray(ysc, f32))
                m = c if m is None else m * c
            p = jnp.take(jnp.asarray(rate[b]), grp)
            if m is not None:
                p = jnp.minimum(f32(1.0), p * m)
            thr, one = _thr(p)
            w = words[b]
            happened = (w < thr) | one
            add(f"true_{P.behaviours[b]}", happened)
            if P.speech[b]:
                add("criticism", happened)
            if P.misconduct[b]:  # declared ground truth (behaviours[].misconduct), never the points' sign
                misconduct = jnp.where(happened & (misconduct < MAX_COUNT), misconduct + 1, misconduct)
            if P.scored[b]:
                po = p * jnp.take(jnp.asarray(detect[b]), grp)
                othr, oone = _thr(po)
                seen = happened & ((w < othr) | oone)
                add(f"observed_{P.behaviours[b]}", seen)
            else:
                seen = None
            obs_src.append(seen)
        for k, f in enumerate(P.false_sources):
            pf = jnp.take(jnp.asarray(frate[k]), grp)
            thr, one = _thr(pf)
            fa = (words[B + k] < thr) | one
            add(f"false_{P.behaviours[f.behaviour]}", fa)
            obs_src.append(fa)

        # ---- score, sanctions, deterrence ----
        delta = jnp.zeros(n_pad, jnp.int32)
        any_event = jnp.zeros(n_pad, bool)
        inc = {}
        for s, o in enumerate(obs_src):
            if o is None or not src_scored[s]:
                continue
            b, pts = src_beh[s], src_pts[s]
            any_event = any_event | o
            if pts:
                delta = delta + jnp.where(o, jnp.int32(pts), jnp.int32(0))
            if pts < 0:
                add("penalties", o)
                if src_false[s]:
                    add("wrongful_penalties", o)
            elif pts > 0 and src_false[s]:
                add("wrongful_rewards", o)
            for k in np.flatnonzero(P.bl_trigger == b):
                until = (t + int(P.bl_duration[k])).astype(ddt)
                add(f"listings_{P.bl_names[k]}", o & (listed[k].astype(jnp.int32) < t))  # not listed yesterday
                listed = listed.at[k].set(jnp.where(o, jnp.maximum(listed[k], until), listed[k]))
            slot = int(P.deter_slot[b])
            if slot >= 0:
                inc[slot] = inc.get(slot, 0) + o.astype(jnp.int32)
        for slot, d in inc.items():
            deter = deter.at[slot].set(jnp.minimum(deter[slot].astype(jnp.int32) + d, MAX_COUNT).astype(jnp.uint8))
        new = s32 + delta
        wide = []
        if has_clip:
            clipped = jnp.where(any_event, jnp.clip(new, lo_clip, hi_clip), new)
            adj = clipped - new
            new = clipped
        score = new.astype(sdt)
        wide.append(new - P.start_score)
        if has_clip:
            wide.append(adj)

        # ---- grade, lists, restrictions at the end of the day ----
        grade = None
        if K:
            grade = jnp.zeros(n_pad, jnp.int32)
            for c in cuts:
                grade = grade + (new >= c).astype(jnp.int32)
            for k, gname in enumerate(P.grade_names):
                add(f"grade_{gname}", grade == k)
        on_list = [t < listed[k].astype(jnp.int32) for k in range(L)]
        for k, lname in enumerate(P.bl_names):
            add(f"listed_{lname}", on_list[k])
        any_r = jnp.zeros(n_pad, bool)
        per_r = []
        for r, rname in enumerate(P.restriction_names):
            rr = jnp.zeros(n_pad, bool)
            for k in np.flatnonzero(P.restriction_grades[r]):
                rr = rr | (grade == int(k))
            for k in np.flatnonzero(P.restriction_lists[r]):
                rr = rr | on_list[int(k)]
            if R > 1:
                add(f"restricted_{rname}", rr)
            per_r.append(rr)
            any_r = any_r | rr
        add("restricted", any_r)

        # ---- per-group reductions ----
        stack = []
        idt = jnp.int8 if B + F < 127 else jnp.int16  # a row adds at most one indicator per source
        for name in lay.count_rows:
            parts = rows.get(name)
            if not parts:
                stack.append(jnp.zeros(n_pad, idt))
                continue
            v = parts[0].astype(idt)
            for x in parts[1:]:
                v = v + x.astype(idt)
            stack.append(v)
        # every block of citizens belongs to one group (groups are padded to whole blocks), so per-group sums
        # are block sums (one pass, no masks per group) followed by a tiny masked sum over blocks; exact
        X = jnp.where((grp < G)[None, :], jnp.stack(stack), idt(0))  # [M, n] small ints, padding zeroed
        part = X.reshape(len(stack), nb, lay.block).sum(axis=2, dtype=jnp.int32)  # [M, nb]
        counts = jnp.stack([jnp.sum(jnp.where(block_group == g, part, 0), axis=1, dtype=jnp.int32)
                            for g in range(G)], axis=1)  # [M, G]
        wsum = [w.reshape(nb, lay.block).sum(axis=1, dtype=jnp.int32) for w in wide]  # [nb] each, int64 on host
        out = {"counts": counts, "wide": jnp.stack(wsum)}
        if n_keep:
            src = [o for o in obs_src if o is not None]
            out["events"] = jnp.stack(src)[:, kept] if src else jnp.zeros((0, n_keep), bool)
            out["adj"] = (adj if has_clip else jnp.zeros(n_pad, jnp.int32))[kept]
            # the kept citizens' states at the end of the day, for the event log's state changes
            out["listed"] = listed[:, kept] if L else jnp.zeros((0, n_keep), ddt)
            out["restr"] = jnp.stack(per_r)[:, kept] if R else jnp.zeros((0, n_keep), bool)
        return (score, listed, deter, misconduct), out

    def chunk(state, consts, days, keys):
        return lax.scan(lambda c, x: day_step(c, x, consts), state, (days, keys))

    return jax.jit(chunk, donate_argnums=(0,) if donate else ())


_CACHE: dict[tuple, Callable] = {}


def _compiled(P: Params, lay: _Layout, n_pad: int, n_keep: int, donate: bool):
    """The jitted chunk for these params and shapes, shared by the shards of a run (same-size shards compile once)."""
    key = (hashlib.sha256(pickle.dumps(P)).hexdigest(), n_pad, n_keep, donate)  # by content: equal scenarios share
    fn = _CACHE.get(key)
    if fn is None:
        if len(_CACHE) > 8:
            _CACHE.clear()
        fn = _CACHE[key] = _make_chunk(P, lay, n_pad, n_keep, donate)
    return fn


# --------------------------------------------------------------------------------------------------


def prng_name(impl: str | None = None) -> str:
    """The PRNG implementation in use: ``impl``, else $SCORELAB_JAX_PRNG, else JAX's default."""
    return impl or os.environ.get("SCORELAB_JAX_PRNG") or str(jax.config.jax_default_prng_impl)


def _shard_key(seed: int, index: int, impl: str | None):
    impl = prng_name(impl)
    words = np.random.SeedSequence(seed, spawn_key=(index, 0x4A4158)).generate_state(2, dtype=np.uint32)
    key = jax.random.key(0, impl=impl)
    for w in words:
        key = jax.random.fold_in(key, int(w))
    return key


def simulate_shard_jax(params: Params, spec: ShardSpec, progress: Callable[[int], None] | None = None, *,
                       prng_impl: str | None = None) -> ShardResult:
    """One shard on the default JAX device; same contract as `kernel.simulate_shard` (no mechanisms).

    ``prng_impl``: JAX PRNG implementation (None: JAX's default, threefry2x32; "rbg" or "unsafe_rbg" are
    faster on GPUs). Output depends on it.
    """
    P = params
    why = unsupported(P)
    if why:
        raise JaxBackendError(why)
    T, G = P.days, P.n_groups
    L = len(P.bl_names)
    n = spec.size
    if n >= 2**31 - 2**17:
        raise JaxBackendError(f"a JAX shard holds fewer than 2**31 citizens; got {n:,}")
    gens = shard_streams(spec.seed, spec.index, P)  # group sizes exactly as the numpy backend draws them
    sizes = gens["groups"].multinomial(n, P.shares).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    bounds = np.cumsum(sizes)
    lay = _layout(P)
    BLK = lay.block
    n_pad = _padded(n, lay, G)
    nb = n_pad // BLK
    # on the device each group starts on a block boundary: position = local id - starts[g] + pstart[g]
    gblocks = -(-sizes // BLK)
    pstart = np.concatenate([[0], np.cumsum(gblocks * BLK)[:-1]]).astype(np.int64)
    grp_np = np.full(n_pad, G, dtype=np.int8 if G < 127 else np.int16)
    block_group = np.full(nb, G, dtype=np.int32)
    for g in range(G):
        grp_np[pstart[g]:pstart[g] + sizes[g]] = g
        block_group[pstart[g] // BLK:pstart[g] // BLK + gblocks[g]] = g

    def pos_of(local: np.ndarray) -> np.ndarray:
        g = np.searchsorted(bounds, local, side="right")
        return local - starts[g] + pstart[g]

    keep = spec.keep_stride
    kept_idx = np.empty(0, dtype=np.int64)
    if keep:
        kept_idx = np.arange((-spec.offset) % keep, n, keep, dtype=np.int64)
    why = check_detail([spec])
    if why:
        raise JaxBackendError(why)
    n_keep = len(kept_idx)
    kept_pos = pos_of(kept_idx)

    dev = jax.devices()[0]
    donate = dev.platform != "cpu"
    step = _compiled(P, lay, n_pad, n_keep, donate)
    grp = jnp.asarray(grp_np)
    consts = (grp, jnp.asarray(block_group), jnp.asarray(kept_pos.astype(np.int32)))
    state = (
        jnp.full(n_pad, P.start_score, dtype=jnp.dtype(P.score_dtype)),
        jnp.full((L, n_pad), -1, dtype=jnp.dtype(P.day_dtype)),
        jnp.zeros((P.deter_table.shape[0], n_pad), dtype=jnp.uint8),
        jnp.zeros(n_pad, dtype=jnp.uint8),
    )
    key = _shard_key(spec.seed, spec.index, prng_impl)

    snap_days = np.array(sorted(set(range(spec.snapshot_every - 1, T, spec.snapshot_every)) | {T - 1}), dtype=np.int64)
    hist = np.zeros((len(snap_days), G, HIST_BINS), dtype=np.int64)
    lo = hist_lo(P)
    M = len(lay.count_rows)
    counts = np.zeros((T, M, G), dtype=np.int64)
    wide = np.zeros((T, len(lay.wide_rows), G), dtype=np.int64)
    led_parts: list[tuple[int, np.ndarray, np.ndarray]] = []

    copies = HIST_COPIES or (1 if dev.platform == "cpu" else 256)
    per_copy = -(-n_pad // copies)

    t0 = 0
    for si, sday in enumerate(snap_days):
        t1 = int(sday) + 1
        days = jnp.arange(t0, t1, dtype=jnp.int32)
        keys = jax.vmap(lambda d: jax.random.fold_in(key, d))(days)
        state, out = step(state, consts, days, keys)
        counts[t0:t1] = np.asarray(out["counts"])
        wb = np.asarray(out["wide"])  # [days, W, nb]
        for g in range(G):
            wide[t0:t1, :, g] = wb[:, :, block_group == g].sum(axis=2, dtype=np.int64)
        if n_keep:
            led_parts.append((t0, np.asarray(out["events"]), np.asarray(out["adj"]), np.asarray(out["listed"]),
                              np.asarray(out["restr"])))
        hist[si] = np.asarray(_histogram(state[0], grp, lo, G, copies, per_copy)).reshape(G + 1, HIST_BINS)[:G]
        t0 = t1
        if progress is not None:
            progress(t1)

    # ---- metrics, in the numpy kernel's names and order ----
    metrics = {m: np.zeros((T, G), dtype=np.int64) for m in metric_names(P)}
    for i, name in enumerate(lay.count_rows):
        metrics[name] = counts[:, i, :].copy()
    metrics["score_sum"] = sizes[None, :] * P.start_score + wide[:, 0, :]
    for b in range(P.n_behaviours):
        pts = int(P.points[b])
        if pts == 0 or not P.scored[b]:
            continue
        c = metrics[f"observed_{P.behaviours[b]}"]
        metrics["points_awarded" if pts > 0 else "points_deducted"] += c * abs(pts)
    for f in P.false_sources:
        pts = int(P.points[f.behaviour])
        c = metrics[f"false_{P.behaviours[f.behaviour]}"]
        if pts > 0:
            metrics["points_awarded"] += c * pts
        elif pts < 0:
            metrics["points_deducted"] += c * -pts
    if "clip_adj" in lay.wide_rows:
        adj = wide[:, 1, :]
        metrics["points_deducted"] -= np.minimum(adj, 0)
        metrics["points_awarded"] += np.maximum(adj, 0)

    result = ShardResult(spec.index, sizes, metrics, snap_days, hist)
    if keep:
        result.ledger = _ledger(P, spec, kept_idx, led_parts)
        result.citizens = _citizens(P, spec, kept_idx, kept_pos, bounds, state)
    return result


@partial(jax.jit, static_argnames=("lo", "G", "copies", "per_copy"))
def _histogram(score, grp, lo: int, G: int, copies: int, per_copy: int):
    """[(G+1) * HIST_BINS] counts of the numpy kernel's score bins per group (row G: padding citizens).

    Privatised: on a GPU most citizens share a few bins, so each of `copies` slices of the population adds
    into its own copy (the atomics spread over `copies` addresses), and the copies are summed.
    """
    width = (G + 1) * HIST_BINS
    bins = jnp.clip((score.astype(jnp.int32) - lo) // HIST_WIDTH, 0, HIST_BINS - 1)
    idx = grp.astype(jnp.int32) * HIST_BINS + bins
    if copies > 1:
        idx = idx + (jnp.arange(score.shape[0], dtype=jnp.int32) // per_copy) * width
    return jnp.bincount(idx, length=copies * width).reshape(copies, width).sum(axis=0)


def _ledger(P: Params, spec: ShardSpec, kept_idx: np.ndarray, parts) -> dict[str, np.ndarray]:
    """The event log of the kept citizens, in the numpy kernel's kinds and order within a day: each source's
    score events by ascending id; listings started or extended (attributed to the first source in that order
    whose event triggered them); clipping; restrictions on/off; listings that ran out. Scores come from the
    device's events, states (listed until, restricted) from the device's own end-of-day state, so no rule is
    re-derived here; day 0 starts from the start score's restrictions, as the numpy kernel's does."""
    B = P.n_behaviours
    no_sensor = len(P.sensors)
    srcs = [(b, False) for b in range(B) if P.scored[b]] + [(f.behaviour, True) for f in P.false_sources]
    L, R = len(P.bl_names), len(P.restriction_names)
    n = len(kept_idx)
    log = EventLog(1, spec.offset, no_sensor)
    cid = kept_idx  # local ids of the kept citizens (the log adds the offset)
    prev_until = np.full((L, n), -1, dtype=np.int64)
    start = np.full(n, P.start_score, dtype=np.int64)
    prev_r = P.restricted(start, [np.full(n, -1)] * L, -1) if R else np.zeros((0, n), dtype=bool)
    for r in range(R):  # restricted by the start score's grade from the start (numpy: _initial_restrictions)
        log.emit("restrict_on", 0, cid[prev_r[r]], target=r)
    for t0, events, adj, listed, restr in parts:  # events [days, S, n], adj [days, n], listed [days, L, n]
        for d in range(events.shape[0]):
            t = t0 + d
            for s, (b, false) in enumerate(srcs):
                sel = np.flatnonzero(events[d, s])
                if len(sel):
                    log.emit("score", t, cid[sel], rule=b, points=int(P.points[b]), sensor=int(P.sensor_of[b]),
                             false=false)
            now_until = listed[d].astype(np.int64)
            seen = prev_until.copy()  # listed until, as the day's sources are taken in order
            for s, (b, false) in enumerate(srcs):
                for k in np.flatnonzero(P.bl_trigger == b):
                    sel = np.flatnonzero(events[d, s])
                    if not len(sel):
                        continue
                    was = seen[k, sel] >= t
                    until = now_until[k, sel]
                    log.emit("list_start", t, cid[sel[~was]], rule=b, sensor=int(P.sensor_of[b]), false=false,
                             target=int(k), until=until[~was])
                    longer = was & (seen[k, sel] < until)
                    log.emit("list_extend", t, cid[sel[longer]], rule=b, sensor=int(P.sensor_of[b]), false=false,
                             target=int(k), until=until[longer])
                    seen[k, sel] = np.maximum(seen[k, sel], until)
            sel = np.flatnonzero(adj[d])
            if len(sel):
                log.emit("score", t, cid[sel], rule=B, points=adj[d][sel].astype(np.int64))
            for r in range(R):
                log.transitions(t, cid, prev_r[r], restr[d, r], "restrict_on", "restrict_off", r)
            for k in range(L):
                ended = (t - 1 < prev_until[k]) & ~(t < now_until[k])
                log.emit("list_expire", t, cid[ended], target=k)
            prev_until = now_until
            prev_r = restr[d]
    return log.arrays()


def _citizens(P: Params, spec: ShardSpec, ids: np.ndarray, pos: np.ndarray, bounds: np.ndarray,
              state) -> dict[str, np.ndarray]:
    T = P.days
    score_d, listed_d, deter_d, misc_d = state
    idx = jnp.asarray(pos.astype(np.int32))
    score = np.asarray(score_d[idx])
    listed = [np.asarray(listed_d[k][idx]) for k in range(len(P.bl_names))]
    deter = np.asarray(deter_d[:, idx]) if deter_d.shape[0] else np.zeros((0, len(ids)), np.uint8)
    misconduct = np.asarray(misc_d[idx])
    R, K = len(P.restriction_names), len(P.grade_names)
    fin_r = P.restricted(score, listed, T - 1)
    cit = {
        "citizen": ids + spec.offset,
        "group": np.searchsorted(bounds, ids, side="right").astype(np.int16),
        "start_score": np.full(len(ids), P.start_score, dtype=np.int32),
        "score": score.astype(np.int32),
        "grade": P.grade_of(score) if K else np.zeros(len(ids), dtype=np.int8),
        "restricted": fin_r.any(axis=0),
        "true_misconduct": misconduct,
    }
    if R > 1:
        for r, name in enumerate(P.restriction_names):
            cit[f"restricted_{name}"] = fin_r[r]
    if listed:
        cit["blacklisted_until"] = np.max(np.stack(listed), axis=0).astype(np.int32)
        if len(listed) > 1:
            for k, name in enumerate(P.bl_names):
                cit[f"listed_until_{name}"] = listed[k].astype(np.int32)
    for b, name in enumerate(P.behaviours):
        slot = P.deter_slot[b]
        if slot >= 0:
            cit[f"propensity_{name}"] = P.deter_table[slot][deter[slot]].astype(np.float32)
    return cit


GPU_SHARD_SIZE = 1 << 27  # 134 million citizens: few shards, few kernel launches per citizen-day


def shard_size() -> int:
    """Citizens per shard for this device: large on accelerators, the numpy kernel's size on CPU."""
    from .runner import SHARD_SIZE

    return SHARD_SIZE if jax.devices()[0].platform == "cpu" else GPU_SHARD_SIZE


def precompile(params: Params, spec: ShardSpec, prng_impl: str | None = None) -> None:
    """Compile (and run once, discarding the result) the day-chunk shapes a shard of ``spec.size`` needs.

    Used by benchmarks/gpu.py to time compilation apart from the run: later shards of that size hit the cache.
    """
    P = params
    lay = _layout(P)
    n_pad = _padded(spec.size, lay, P.n_groups)
    n_keep = len(range((-spec.offset) % spec.keep_stride, spec.size, spec.keep_stride)) if spec.keep_stride else 0
    step = _compiled(P, lay, n_pad, n_keep, jax.devices()[0].platform != "cpu")
    G = P.n_groups
    grp = jnp.zeros(n_pad, dtype=jnp.int8 if G < 127 else jnp.int16)
    consts = (grp, jnp.zeros(n_pad // lay.block, jnp.int32), jnp.zeros(n_keep, jnp.int32))
    key = _shard_key(spec.seed, spec.index, prng_impl)
    T, every = P.days, spec.snapshot_every
    lengths = {min(every, T)} | ({T % every} if T % every else set())
    for length in sorted(lengths):
        state = (
            jnp.full(n_pad, P.start_score, dtype=jnp.dtype(P.score_dtype)),
            jnp.full((len(P.bl_names), n_pad), -1, dtype=jnp.dtype(P.day_dtype)),
            jnp.zeros((P.deter_table.shape[0], n_pad), dtype=jnp.uint8),
            jnp.zeros(n_pad, dtype=jnp.uint8),
        )
        days = jnp.arange(length, dtype=jnp.int32)
        keys = jax.vmap(lambda d: jax.random.fold_in(key, d))(days)
        jax.block_until_ready(step(state, consts, days, keys))
