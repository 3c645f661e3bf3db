"""RR-1 on the JAX backend, in one command: the figure issue 6 asks for (1.4 billion citizens x 365 days
in under 5 s on one H200), measured where JAX finds a GPU.

    python benchmarks/gpu.py                       # 1.4e9 x 365 on a GPU; 100,000 x 365 on a CPU
    python benchmarks/gpu.py --quick               # 20,000 x 30: a check that the script runs (any device)
    python benchmarks/gpu.py --prng rbg            # XLA's RngBitGenerator (Philox on GPU): cheaper bits
    python benchmarks/gpu.py -n 100000000 --json benchmarks/results/gpu-<date>.json

What is timed, separately:
- compile: tracing and compiling the jitted chunk of days for the shard shapes of the run, plus one
  throw-away execution of each chunk length on one shard (JAX compiles on first call; the warm-up is
  therefore at most 30 + (T mod 30) days of one shard, reported as part of this figure, not of the run);
- run: `runner.run_shards(..., backend="jax")` over every shard with no per-citizen detail
  (`--ledger none`): every day simulated, every per-day metric and the histogram snapshots copied back
  to the host and merged. Writing Parquet tables is not included (it is the same code as the numpy
  backend and does not depend on N for the metrics table).
agent-days/s = N x T / run seconds. Needs `pip install 'scorelab[gpu]'` (with a CUDA jaxlib on a GPU
machine: `pip install -U "jax[cuda12]"`). Run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

TARGET_N, TARGET_T, TARGET_S = 1_400_000_000, 365, 5.0
CPU_DEFAULT_N = 100_000
QUICK_N, QUICK_T = 20_000, 30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--population", type=float, default=None,
                    help=f"citizens (default {TARGET_N:.2g} on a GPU, {CPU_DEFAULT_N:,} on a CPU)")
    ap.add_argument("-t", "--days", type=int, default=None, help=f"days (default {TARGET_T})")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_N:,} citizens x {QUICK_T} days unless -n/-t say otherwise: checks the script, measures nothing")
    ap.add_argument("-s", "--seed", type=int, default=0)
    ap.add_argument("--prng", default=None, help="JAX PRNG implementation: threefry2x32 (default), rbg, unsafe_rbg")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    a = ap.parse_args(argv)
    for name, value in (("--population", a.population), ("--days", a.days)):
        if value is not None and not (value >= 1 and float(value).is_integer()):
            print(f"--{name.lstrip('-')}: {value:g} is not allowed; give a whole number of at least 1", file=sys.stderr)
            return 2
    if a.seed < 0:
        print(f"--seed: {a.seed} is not allowed; give a whole number of at least 0", file=sys.stderr)
        return 2

    try:
        import jax
    except ImportError:
        print("jax is not installed: pip install 'scorelab[gpu]'", file=sys.stderr)
        return 2
    import os

    if a.prng:
        os.environ["SCORELAB_JAX_PRNG"] = a.prng
    import numpy as np

    import scorelab
    from scorelab.engine import jax_backend as jb
    from scorelab.engine.params import compile_params
    from scorelab.engine.runner import Detail, merge_metrics, plan_shards, run_shards, shard_size_for

    dev = jax.devices()[0]
    on_gpu = dev.platform != "cpu"
    if not on_gpu:
        print(f"no GPU found: JAX's default device is {jb.device_description()} (install a CUDA jaxlib, "
              "e.g. pip install -U 'jax[cuda12]', on a GPU machine); the figures below are CPU figures, "
              "not a measurement of the target", flush=True)
    n = int(a.population) if a.population else (QUICK_N if a.quick else TARGET_N if on_gpu else CPU_DEFAULT_N)
    a.days = a.days or (QUICK_T if a.quick else TARGET_T)
    P = compile_params(scorelab.load("rr1", population=n, days=a.days))
    # on a GPU the device's shard size; on a CPU jax_backend.shard_size() is None (the numpy kernel's cut,
    # as `scorelab run --backend jax` uses there)
    specs = plan_shards(n, a.seed, Detail("none", 0), shard_size=jb.shard_size())
    size = jb.shard_size() or shard_size_for(n)
    print(f"device {jb.device_description()}, jax {jax.__version__}; RR-1 {n:,} citizens x {a.days} days, "
          f"{len(specs)} shard(s) of up to {size:,}", flush=True)

    t0 = time.perf_counter()
    seen = set()
    lay = jb._layout(P)
    for spec in specs:  # one compile per distinct padded shard shape (usually one)
        shape = jb._padded(spec.size, lay, P.n_groups)
        if shape not in seen:
            seen.add(shape)
            jb.precompile(P, spec)
    compile_s = time.perf_counter() - t0
    print(f"compile (+ warm-up of one shard's first chunks): {compile_s:.2f} s", flush=True)

    t0 = time.perf_counter()
    results = run_shards(P, specs, backend="jax")
    run_s = time.perf_counter() - t0
    rate = n * a.days / run_s
    sizes, merged = merge_metrics(P, results)
    mean_score = merged["score_sum"][-1].sum() / sizes.sum()
    restricted = merged["restricted"][-1].sum() / sizes.sum()
    print(f"run: {run_s:.2f} s, {rate / 1e6:,.1f} M agent-days/s ({rate / 1e9:.3f} G); last day mean score {mean_score:.2f}, "
          f"restricted {100 * restricted:.2f}%")
    target_rate = TARGET_N * TARGET_T / TARGET_S
    print(f"target (issue 6): {TARGET_N:.2g} x {TARGET_T} in < {TARGET_S} s on one H200 = "
          f"{target_rate / 1e9:.0f} G agent-days/s; this run: {rate / target_rate:.2%} of it"
          + ("" if on_gpu else " (on a CPU: not a measurement of the target)"))
    peak = None
    try:
        peak = (dev.memory_stats() or {}).get("peak_bytes_in_use")
    except Exception:  # noqa: BLE001 - not every device reports memory statistics
        pass
    if peak:
        print(f"device memory peak: {peak / 2**30:.1f} GiB")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": jb.device_description(), "platform": dev.platform, "jax": jax.__version__,
            "python": platform.python_version(), "numpy": np.__version__,
            "population": n, "days": a.days, "seed": a.seed, "shards": len(specs), "shard_size": size,
            "compile_seconds": round(compile_s, 3), "run_seconds": round(run_s, 3), "agent_days_per_second": rate,
            "device_peak_bytes": peak, "mean_score_last_day": float(mean_score),
            "restricted_share_last_day": float(restricted),
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
