"""A whole run: split the population into shards, simulate them, merge what they measured.

Citizens of RR-1-like scenarios do not interact, so the population is cut into shards of at most
`SHARD_SIZE` citizens, each simulated from its own seed (`SeedSequence(seed, spawn_key=(shard,))`).
The cut depends on N alone, never on the number of workers: the same seed gives the same bytes whether
one process or many ran the shards. Memory follows the shards in flight, not N.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .kernel import ShardResult, ShardSpec, simulate_shard
from .checkpoint import load_shard, save_shard
from .params import Params
from .workers import start_worker, stop_pool

# Shard size: 1,048,576 citizens up to 64 shards' worth, 4,194,304 beyond (fewer shards, less per-day
# overhead for national runs). A function of N alone, recorded in run.json. SCORELAB_SHARD_SIZE (or
# setting SHARD_SIZE) fixes it, for tests and tuning.
SHARD_SIZE: int | None = int(os.environ["SCORELAB_SHARD_SIZE"]) if os.environ.get("SCORELAB_SHARD_SIZE") else None
SMALL_SHARD, LARGE_SHARD = 1 << 20, 1 << 22


def shard_size_for(population: int) -> int:
    if SHARD_SIZE:
        return int(SHARD_SIZE)
    return SMALL_SHARD if population <= 64 * SMALL_SHARD else LARGE_SHARD


MIN_SPLIT = 200_000  # from this population on, at least two shards, and an even number of them
DEFAULT_DETAIL_LIMIT = 2_000_000  # keep every citizen's ledger up to this population
DEFAULT_SAMPLE = 1_000_000


@dataclass(frozen=True)
class Detail:
    """Which citizens keep per-citizen detail (ledger rows, citizens-table rows)."""

    mode: str  # "all" | "sample" | "none"
    stride: int  # keep global ids divisible by stride; 0 = none

    def describe(self, population: int) -> str:
        if self.mode == "all":
            return "all citizens"
        if self.mode == "none":
            return "no citizens (aggregate metrics only)"
        kept = math.ceil(population / self.stride)
        return f"a systematic sample of {kept:,} citizens (every {self.stride:,}th id)"


def plan_detail(population: int, ledger: str | None) -> Detail:
    """``ledger``: None/"auto", "all", "none", or a number of citizens to sample."""
    if ledger in (None, "auto"):
        ledger = "all" if population <= DEFAULT_DETAIL_LIMIT else str(DEFAULT_SAMPLE)
    if ledger == "all":
        return Detail("all", 1)
    if ledger == "none":
        return Detail("none", 0)
    k = int(ledger)
    if k >= population:
        return Detail("all", 1)
    return Detail("sample", max(1, math.ceil(population / k)))


def plan_shards(population: int, seed: int, detail: Detail, snapshot_every: int = 30,
                shard_size: int | None = None) -> list[ShardSpec]:
    """The cut of the population into shards: a function of N alone (``shard_size`` fixes the size)."""
    n = max(1, math.ceil(population / (shard_size or shard_size_for(population))))
    if shard_size is None and population >= MIN_SPLIT and n % 2:  # an even count keeps two cores busy
        n += 1
    base, extra = divmod(population, n)
    specs, offset = [], 0
    for i in range(n):
        size = base + (1 if i < extra else 0)
        specs.append(ShardSpec(i, offset, size, seed, detail.stride, snapshot_every))
        offset += size
    return specs


_PROGRESS = None  # shared day counters of a pool's shards (inherited by forked workers)


def _run_in_worker(args):
    """A pool worker's shard. With a checkpoint directory the worker writes the checkpoint itself (the
    workers write theirs at once, while the main process waits) and sends back its path, not the arrays:
    the main process maps the file (checkpoint.load_shard), so a shard's columns are neither pickled
    through a pipe nor copied into the main process."""
    params, spec, kernel, checkpoint = args
    counters = _PROGRESS

    def tick(day: int) -> None:
        if counters is not None:
            counters[spec.index] = day

    r = run_shard(params, spec, tick, kernel)
    if checkpoint is None:
        return r
    return save_shard(checkpoint, r)


def run_shard(params: Params, spec: ShardSpec, progress: Callable[[int], None] | None = None,
              kernel: str = "numpy") -> ShardResult:
    """One shard simulated and its rows of the events and citizens tables encoded where it ran (a pool
    worker, this process, a Dask worker): the main process only joins the shards' Parquet parts."""
    return simulate_shard(params, spec, progress, kernel, tables=True)


def run_shards(params: Params, specs: list[ShardSpec], workers: int = 1,
               progress: Callable[[int, int], None] | None = None,
               skip: set[int] | None = None, backend: str = "numpy", client=None,
               kernel: str = "numpy", checkpoint: Path | None = None) -> list[ShardResult]:
    """Simulate shards (in this process, a pool of `workers` processes, or the workers of a Dask
    ``client``: `engine/cluster.py`); results in shard order.

    ``progress(days_done, days_total)`` is called as days complete (as shards complete on Dask);
    ``checkpoint``: a run's partial directory, where each shard is checkpointed as it ends (by the pool
    worker that ran it; here otherwise). Shards in ``skip`` are not run. ``kernel``: "numpy", "numba" or "walk" for the numpy backend (compiled.choose).
    """
    global _PROGRESS
    todo = [s for s in specs if not skip or s.index not in skip]
    total = len(todo) * params.days
    results: list[ShardResult] = []
    workers = max(1, min(workers, len(todo)))
    sim = run_shard
    if backend == "jax":  # engine/jax_backend.py; one process drives the device (no fork once JAX runs)
        from .jax_backend import simulate_shard_jax as sim
        workers = 1
    if client is not None:  # the same shards, run on a cluster (api.py refuses it with the JAX backend)
        from .cluster import run_shards_dask

        save = (lambda r: save_shard(checkpoint, r)) if checkpoint is not None else None
        results = run_shards_dask(client, params, todo, params.days, progress, save, kernel) if todo else []
        return sorted(results, key=lambda r: r.index)
    if workers == 1:
        finished = 0
        for spec in todo:
            tick = (lambda d, f=finished: progress(f + d, total)) if progress else None
            r = sim(params, spec, tick) if backend == "jax" else sim(params, spec, tick, kernel)
            finished += params.days
            if checkpoint is not None:
                save_shard(checkpoint, r)
            results.append(r)
        return sorted(results, key=lambda r: r.index)
    ctx = mp.get_context("fork")
    _PROGRESS = ctx.Array("i", max(s.index for s in todo) + 1, lock=False)
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=start_worker,
                                   initargs=(os.getpid(),))
        try:
            futures = {pool.submit(_run_in_worker, (params, s, kernel, checkpoint)): s for s in todo}
            pending = set(futures)
            while pending:
                # wakes as soon as a shard ends (or every 0.1 s, for the progress bar)
                finished_now, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for f in finished_now:
                    pending.discard(f)
                    r = f.result()
                    if not isinstance(r, ShardResult):  # the worker checkpointed it: map its file
                        r = load_shard(r, mapped=True)
                    results.append(r)
                if progress:
                    progress(sum(_PROGRESS[s.index] for s in todo), total)
        except BaseException:  # interrupted or a shard failed: start no new shard, keep the checkpoints
            stop_pool(pool)
            raise
        pool.shutdown()
    finally:
        _PROGRESS = None
    return sorted(results, key=lambda r: r.index)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def merge_metrics(params: Params, results: list[ShardResult]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sum the shards' per-day sums and counts; returns group sizes and name -> [T, G]."""
    sizes = np.sum([r.group_sizes for r in results], axis=0)
    names = list(results[0].metrics)
    merged = {m: np.sum([r.metrics[m] for r in results], axis=0) for m in names}
    return sizes, merged
