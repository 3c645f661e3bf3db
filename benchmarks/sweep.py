"""Sweep throughput: runs per minute with 1 and 2 local worker processes, side by side, on one sweep.

    PYTHONPATH=src python benchmarks/sweep.py                 # RR-1, 100,000 citizens x 120 days, 8 runs
    PYTHONPATH=src python benchmarks/sweep.py --population 50000 --days 90 --runs 12 --workers 1 2 4

Each configuration runs the same sweep (the same runs, the same seeds) into a fresh directory, and the
wall time includes starting the worker processes, as a user's sweep would. Results are checked to be
identical across worker counts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from scorelab.experiments import sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--population", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--runs", type=int, default=8, help="runs in the sweep (4 rates x runs/4 replicates)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    reps = max(1, args.runs // 4)
    text = f"""
base = "rr1"
population = {args.population}
days = {args.days}
replicates = {reps}
[parameters]
"sensors[camera].false_attribution.rate.rural" = {{ values = [0.00008, 0.00016, 0.00024, 0.0008], name = "rural_fm" }}
"""
    rows = []
    frames = {}
    with tempfile.TemporaryDirectory(prefix="scorelab-bench-sweep-") as tmp:
        f = Path(tmp) / "sweep.toml"
        f.write_text(text)
        for w in args.workers:
            out = Path(tmp) / f"run{len(rows)}-w{w}"
            t0 = time.perf_counter()
            _, rep = sweep.start(f, out, workers=w)
            wall = time.perf_counter() - t0
            assert not rep.failed, rep.failed
            frames[w] = {p.parent.relative_to(out): pd.read_parquet(p.parent / "metrics.parquet")
                         for p in sorted(out.rglob("run.json"))}
            rows.append((w, rep.done, wall, 60 * rep.done / wall))
    first = frames[args.workers[0]]
    same = all(frames[w].keys() == first.keys() and all(frames[w][k].equals(first[k]) for k in first) for w in frames)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"sweep: RR-1, {args.population:,} citizens x {args.days} days, {rows[0][1]} runs; {cores} cores available, "
          f"load average {load:.1f} (other work competes for the cores: compare with the count of cores)")
    print(f"{'workers':>8} {'runs':>5} {'wall s':>8} {'runs/min':>9} {'speed-up':>9}")
    base = rows[0][3]
    for w, n, wall, rpm in rows:
        print(f"{w:>8} {n:>5} {wall:>8.2f} {rpm:>9.1f} {rpm / base:>8.2f}x")
    print(f"identical results across worker counts: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
