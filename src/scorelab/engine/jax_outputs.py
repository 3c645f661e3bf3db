"""The JAX backend's outputs on the host: score histograms (privatised copies on the device), the kept
citizens' event log and their citizens-table rows. Imported by jax_backend.py only."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .events import EventLog
from .kernel import HIST_BINS, HIST_WIDTH, ShardSpec
from .params import Params

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
            hits = [np.flatnonzero(events[d, s]) for s in range(len(srcs))]  # kept citizens with each source's event
            for (b, false), sel in zip(srcs, hits):
                if len(sel):
                    log.emit("score", t, cid[sel], rule=b, points=int(P.points[b]), sensor=int(P.sensor_of[b]),
                             false=false)
            now_until = listed[d].astype(np.int64)
            seen = prev_until.copy()  # listed until, as the day's sources are taken in order
            for (b, false), sel in zip(srcs, hits):
                if not len(sel):
                    continue
                for k in np.flatnonzero(P.bl_trigger == b):
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
