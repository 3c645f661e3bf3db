"""The JAX backend's jitted day step: the compile-time layout of a scenario (which indicator and wide rows a
day produces) and `lax.scan` over a chunk of days (see jax_backend.py for the contract and docs/gpu.md
for the randomness). Imported by jax_backend.py only."""

from __future__ import annotations

import hashlib
import math
import pickle
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .params import MAX_COUNT, Params

TWO32 = 4294967296.0
MAX_THR = 4294967040.0  # largest float32 below 2**32

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
