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
in the numpy path imports this module). The jitted day step is in jax_step.py, the host-side outputs
(histograms, event log, citizens) in jax_outputs.py.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

try:  # pragma: no cover - exercised only where jax is missing
    import jax
    import jax.numpy as jnp
except ImportError as e:  # pragma: no cover
    raise ImportError("the JAX backend needs jax: install with pip install 'scorelab[gpu]'") from e

from .jax_outputs import _citizens, _histogram, _ledger
from .jax_step import _compiled, _layout, _padded
from .kernel import HIST_BINS, ShardResult, ShardSpec, hist_lo, metric_names, shard_streams
from .params import Params

MAX_KEPT_PER_SHARD = 8_000_000  # detail kept on device per shard (bytes: ~(S + 4 + 2L + R) per kept citizen-day)
HIST_COPIES: int | None = None  # privatised histogram copies; None: 1 on a CPU, 256 on an accelerator


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
