"""One shard of citizens through the days: build its state, run the day's stages in order, collect.

The state is a struct of arrays (state.py); the day is a list of named stages over it (stages.py `DAY`),
among them the active mechanism plugins' own stages (plugins/). This module owns the random streams,
the state's construction, and the shard's outputs (metrics per day and group, histogram snapshots, the
kept citizens' event log and final records).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .events import EventLog
from .params import Params
from .sampling import Batches
from .stages import DAY, HIST_BINS, HIST_WIDTH, count_misconduct
from .state import Day, ShardState


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
    # "events" / "citizens": this shard's rows of that table encoded as a whole Parquet file (uint8), and
    # their row counts; once encoded, ledger and citizens are empty (engine/tables.py `prepare`)
    encoded: dict[str, np.ndarray] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def prepared(self) -> bool:
        """The per-citizen detail is encoded as the tables' Parquet parts (else raw records, or none)."""
        return bool(self.encoded)


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


def metric_names(P: Params) -> list[str]:
    """The per-day, per-group sums and counts every backend fills, in their table order."""
    names = ["score_sum", "restricted", "penalties", "wrongful_penalties", "wrongful_rewards", "criticism"]
    names += [f"restricted_{r}" for r in P.restriction_names] if len(P.restriction_names) > 1 else []
    names += [f"grade_{g}" for g in P.grade_names] + [f"listed_{b}" for b in P.bl_names]
    names += [f"listings_{b}" for b in P.bl_names]
    names += [f"true_{b}" for b in P.behaviours] + [f"observed_{b}" for b in P.behaviours]
    names += [f"false_{P.behaviours[f.behaviour]}" for f in P.false_sources]
    names += ["points_awarded", "points_deducted"]
    return list(dict.fromkeys(names))


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


def new_state(P: Params, spec: ShardSpec) -> ShardState:
    """The shard's state on day 0: group blocks, start scores, empty listings, the aggregates they give."""
    G = P.n_groups
    gens = shard_streams(spec.seed, spec.index, P)
    sizes = gens["groups"].multinomial(spec.size, P.shares).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    bounds = np.cumsum(sizes)
    n = spec.size
    drawn = _start_scores(P, gens, sizes)
    score = np.full(n, P.start_score, dtype=P.score_dtype) if drawn is None else drawn.astype(P.score_dtype)
    R, K, L = len(P.restriction_names), len(P.grade_names), len(P.bl_names)
    if drawn is None:
        score_sum = sizes * P.start_score
        start_r = P.restricted(np.array([P.start_score]), [np.array([-1])] * L, 0)[:, 0]
        restricted_n = np.outer(start_r.astype(np.int64), sizes)  # [R, G]
        restricted_any = sizes * int(bool(start_r.any()))
        grade_n = np.zeros((K, G), dtype=np.int64)
        if K:
            grade_n[int(P.grade_of(np.array([P.start_score]))[0])] = sizes
    else:
        gid = np.repeat(np.arange(G), sizes)
        score_sum = np.bincount(gid, weights=drawn, minlength=G).astype(np.int64)
        r0 = P.restricted(score, [np.full(n, -1)] * L, 0) if R else np.zeros((0, n), dtype=bool)
        restricted_n = np.stack([np.bincount(gid, weights=r0[r], minlength=G) for r in range(R)]).astype(np.int64) \
            if R else np.zeros((0, G), dtype=np.int64)
        restricted_any = np.bincount(gid, weights=r0.any(axis=0), minlength=G).astype(np.int64) if R \
            else np.zeros(G, np.int64)
        grade_n = P.grade_counts(P.grade_of(score), gid, G) if K else np.zeros((K, G), dtype=np.int64)
    weighted = bool(((P.severity != 1.0) & P.misconduct).any())
    T = P.days
    S = ShardState(
        P=P, index=spec.index, seed=spec.seed, offset=spec.offset, keep=spec.keep_stride,
        sizes=sizes, starts=starts, bounds=bounds, gens=gens, score=score, drawn=drawn,
        listed=[np.full(n, -1, dtype=P.day_dtype) for _ in range(L)],
        deter=np.zeros((P.deter_table.shape[0], n), dtype=np.uint8),
        misconduct=np.zeros(n, dtype=np.uint8), severity=np.zeros(n, dtype=np.float32) if weighted else None,
        calendar={}, score_sum=score_sum, restricted_n=restricted_n, restricted_any=restricted_any,
        grade_n=grade_n, listed_n=np.zeros((L, G), dtype=np.int64),
        metrics={m: np.zeros((T, G), dtype=np.int64) for m in metric_names(P)},
        log=EventLog(spec.keep_stride, spec.offset, len(P.sensors)),
        rule_code={name: i for i, name in enumerate(P.rule_names)},
        target_code={name: i for i, name in enumerate(P.plugin_targets)})
    S.candidates = [Batches(gens[f"b:{name}"], P.pmax[b], starts, sizes, T, 2) for b, name in enumerate(P.behaviours)]
    S.false_candidates = [Batches(gens[f"f:{k}"], f.rate, starts, sizes, T, 0) for k, f in enumerate(P.false_sources)]
    S.snap_days = np.array(sorted(set(range(spec.snapshot_every - 1, T, spec.snapshot_every)) | {T - 1}), dtype=np.int64)
    S.hist = np.zeros((len(S.snap_days), G, HIST_BINS), dtype=np.int64)
    S.hist_lo = hist_lo(P)
    _initial_restrictions(S)
    if P.het is not None:
        S.het = _heterogeneity(P, spec, sizes)
    return S


HET_KEY = 0x4E7E


def _heterogeneity(P: Params, spec: ShardSpec, sizes: np.ndarray) -> dict[int, np.ndarray]:
    """Per-citizen propensity multipliers, lognormal with mean 1 and log-sd ``behaviours[].heterogeneity``,
    capped at ``heterogeneity_cap``; one stream per (behaviour, group), so a group's draws depend on nothing
    else (common random numbers)."""
    out = {}
    for b in np.flatnonzero(P.het > 0):
        sigma, cap = float(P.het[b]), float(P.het_cap[b])
        root = np.random.SeedSequence(spec.seed, spawn_key=(spec.index, HET_KEY, int(b)))
        parts = []
        for g, ss in enumerate(root.spawn(len(sizes))):
            z = np.random.Generator(np.random.PCG64(ss)).standard_normal(int(sizes[g]))
            parts.append(np.minimum(np.exp(sigma * z - 0.5 * sigma * sigma), cap).astype(np.float32))
        out[int(b)] = np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)
    return out


def _initial_restrictions(S: ShardState) -> None:
    """restrict_on events of day 0 for the kept citizens whose start score restricts them."""
    P = S.P
    R = len(P.restriction_names)
    if not (S.keep and R):
        return
    kept0 = np.arange(S.n, dtype=np.int64)
    kept0 = kept0[S.log.kept(kept0)]
    if len(kept0):
        g0 = P.grade_of(S.score[kept0]) if len(P.grade_names) else None
        none0 = np.zeros(len(kept0), dtype=bool)
        r0k = P.restricted(S.score[kept0], [np.full(len(kept0), -1)] * len(P.bl_names), 0, g0)
        for r in range(R):
            S.log.transitions(0, kept0, none0, r0k[r], "restrict_on", "restrict_off", r)


def attach_plugins(S: ShardState) -> None:
    """Construct the active mechanism plugins over the state (registry order) and collect their stages."""
    P = S.P
    for plugin, compiled in P.plugins:
        S.plugins[plugin.name] = plugin(compiled, S)
    instances = list(S.plugins.values())
    for stage in ("observe", "pre_score", "apply", "end_day", "finish"):
        S.hooks[stage] = [getattr(pl, stage) for pl in instances if pl.joins(stage)]
    for pl in instances:
        for b in pl.gated_behaviours():
            S.gates.setdefault(int(b), []).append(pl.gate)
        for b in pl.propensity_behaviours():
            S.propensity.setdefault(int(b), []).append(pl.propensity)


def simulate_shard(params: Params, spec: ShardSpec, progress: Callable[[int], None] | None = None,
                   kernel: str = "numpy", tables: bool = False) -> ShardResult:
    """One shard through every day; ``kernel`` "numba" runs the day's stages compiled (compiled.py, the
    scenarios it covers; the same bytes), "walk" each citizen's run in one compiled pass (walk.py: the same
    model on its own random streams, so the same figures statistically), "numpy" through stages.py.
    ``tables``: the ledger and citizens encoded as this shard's Parquet parts of events.parquet and
    citizens.parquet (``result.encoded``; engine/tables.py), the log encoded as it grows; else raw records."""
    S = new_state(params, spec)
    attach_plugins(S)
    writer = None
    if S.keep and tables:
        from .tables import LedgerWriter

        writer, report = LedgerWriter(params, kept_ids(S)), progress

        def progress(day: int) -> None:  # each day's end: the log is encoded once it holds a row group
            writer.maybe_flush(S.log)
            if report is not None:
                report(day)
    compiled_ran = False
    if kernel == "numba":  # the same stages compiled (compiled.py): the same bytes
        from .compiled import run_days

        compiled_ran = run_days(S, progress)  # False where numba is missing here (a Dask worker without it)
    if kernel == "walk":  # each citizen's run in one pass (walk.py): the same model, its own random streams
        from .walk import run_walk

        run_walk(S, progress)
        compiled_ran = True
    if not compiled_ran:
        for t in range(params.days):
            D = Day(t)
            for stage in DAY:
                stage(S, D)
            if progress is not None:
                progress(t + 1)
    for hook in S.hooks.get("finish", ()):
        hook(S)
    result = ShardResult(spec.index, S.sizes, S.metrics, S.snap_days, S.hist)
    if writer is not None:
        from .. import arrowio as aio
        from .tables import citizen_columns, citizens_arrow

        events, rows, counts = writer.finish(S.log)
        cit = citizen_columns(params, citizens(S), counts=counts)
        result.encoded = {"events": events, "citizens": aio.parquet_bytes(citizens_arrow(params, cit))}
        result.rows = {"events": rows, "citizens": len(cit["citizen"])}
    elif S.keep:
        result.ledger = S.log.arrays()
        result.citizens = citizens(S)
    return result


def kept_ids(S: ShardState) -> np.ndarray:
    """Global ids of the shard's kept citizens (every keep-th global id)."""
    return _kept_local(S) + S.offset


def _kept_local(S: ShardState) -> np.ndarray:
    ids = np.arange(S.n, dtype=np.int64)
    if S.keep > 1:
        ids = ids[(-S.offset) % S.keep::S.keep]
    return ids


def citizens(S: ShardState) -> dict[str, np.ndarray]:
    """The kept citizens' final records (every keep-th global id)."""
    P = S.P
    ids = _kept_local(S)
    score, listed = S.score, S.listed
    R = len(P.restriction_names)
    fin_r = P.restricted(score[ids], [bl[ids] for bl in listed], P.days - 1)
    cit = {
        "citizen": ids + S.offset,
        "group": S.group_of(ids).astype(np.int16),
        "start_score": (np.full(len(ids), P.start_score) if S.drawn is None else S.drawn[ids]).astype(np.int32),
        "score": score[ids].astype(np.int32),
        "grade": P.grade_of(score[ids]) if len(P.grade_names) else np.zeros(len(ids), dtype=np.int8),
        "restricted": fin_r.any(axis=0),
        "true_misconduct": S.misconduct[ids],
    }
    if S.severity is not None:
        cit["misconduct_severity"] = S.severity[ids]
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
            cit[f"propensity_{name}"] = P.deter_table[slot][S.deter[slot, ids]].astype(np.float32)
    for pl in S.plugins.values():
        cit.update(pl.citizens(ids, S))
    return cit


__all__ = ["ShardSpec", "ShardResult", "HIST_BINS", "HIST_WIDTH", "hist_lo", "shard_streams", "metric_names",
           "new_state", "attach_plugins", "simulate_shard", "count_misconduct"]
