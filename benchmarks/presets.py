"""Every shipped preset at 1,000,000 citizens x 120 days, whole process with its default ledger, in one command.

    python benchmarks/presets.py                                  # all presets, 1 M x 120
    python benchmarks/presets.py --preset nosedive --preset rr1   # some of them
    python benchmarks/presets.py -n 200000 -t 60 --json figures.json

Each run is timed as a whole process (`python -m scorelab run PRESET --population N --days T --quiet
--no-report --out <tmp>`: interpreter start, imports, the population, the simulation and every table
written), with the preset's default detail (`--ledger auto`: every citizen up to 2 million). Throughput is
N x T / wall seconds. "simulate s" is the simulation alone (run.json `simulate_seconds`); "outside s" is the
rest of the in-process time (tables built and written, the manifest; run.json `wall_seconds` minus
`simulate_seconds`), so its share of the process shows what writing costs. The targets are issue 13's:
>= 100 M agent-days/s for every preset, >= 30 M for nosedive (its peer ratings touch every citizen daily).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rr1 import env_with_src, fmt_rate, machine, scorelab_run_flags, timed_process  # noqa: E402

TARGET = 100e6
TARGETS = {"nosedive": 30e6}


def presets(env: dict) -> list[str]:
    import subprocess

    out = subprocess.run([sys.executable, "-c", "from scorelab.config.loader import list_presets as l; "
                          "print(' '.join(p.name for p in l()))"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def bench(preset: str, population: int, days: int, seed: int, env: dict, flags: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="scorelab-bench-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "scorelab", "run", preset, "--population", str(population), "--days", str(days),
               "--seed", str(seed), "--out", str(out), *flags]
        r = timed_process(cmd, env)
        m = json.loads((out / "run.json").read_text())
        size = sum(p.stat().st_size for p in out.iterdir())
    r.pop("stdout")
    sim, wall_in = m.get("simulate_seconds"), m.get("wall_seconds")
    target = TARGETS.get(preset, TARGET)
    rate = population * days / r["wall_s"]
    r.update({"preset": preset, "population": population, "days": days, "seed": seed,
              "agent_days_per_s": rate, "simulate_s": sim,
              "outside_s": (wall_in - sim) if sim is not None and wall_in is not None else None,
              "event_rows": m.get("detail", {}).get("event_rows"), "run_bytes": size,
              "target_agent_days_per_s": target, "met": rate >= target})
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", action="append", help="a preset to time (repeat; default: every preset)")
    ap.add_argument("--population", "-n", type=int, default=1_000_000)
    ap.add_argument("--days", "-t", type=int, default=120)
    ap.add_argument("--seed", "-s", type=int, default=0)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    if a.population < 1 or a.days < 1:
        print(f"error: --population and --days must be at least 1 (got {a.population}, {a.days})", file=sys.stderr)
        return 2
    env = env_with_src()
    names = presets(env)
    chosen = a.preset or names
    unknown = [p for p in chosen if p not in names]
    if unknown:
        print(f"error: --preset: unknown preset {unknown[0]!r}; allowed: {', '.join(names)}", file=sys.stderr)
        return 2
    flags = scorelab_run_flags(env)
    info = machine()
    print(f"presets at {a.population:,} x {a.days}, whole process, default ledger; {info.get('cores')} cores, "
          f"{info.get('cpu')}, load average {info.get('load_average_at_start')[0]:.2f}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    rows = []
    for p in chosen:
        print(f"  timing {p} ...", flush=True)
        rows.append(bench(p, a.population, a.days, a.seed, env, flags))
    print(f"\n{'preset':<20} {'process s':>9} {'simulate s':>10} {'outside s':>9} {'agent-days/s':>12} "
          f"{'events':>12} {'peak RSS MiB':>12}  target")
    for r in rows:
        out = "-" if r["outside_s"] is None else f"{r['outside_s']:.2f}"
        sim = "-" if r["simulate_s"] is None else f"{r['simulate_s']:.2f}"
        ev = "-" if r["event_rows"] is None else f"{r['event_rows']:,}"
        print(f"{r['preset']:<20} {r['wall_s']:>9.2f} {sim:>10} {out:>9} {fmt_rate(r['agent_days_per_s']):>12} "
              f"{ev:>12} {r['peak_rss_tree_mib']:>12.0f}  >= {fmt_rate(r['target_agent_days_per_s'])}: "
              f"{'met' if r['met'] else 'NOT met'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": info, "runs": rows}, indent=2) + "\n")
        print(f"figures written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
