"""Every shipped preset at 1,000,000 citizens x 120 days, whole process with its default ledger, in one command.

    python benchmarks/presets.py                                  # all presets, 1 M x 120
    python benchmarks/presets.py --preset nosedive --preset rr1   # some of them
    python benchmarks/presets.py -n 200000 -t 60 --json figures.json
    python benchmarks/presets.py --repeat 3 --baseline ../old/src      # median of 3, beside another checkout

Each run is timed as a whole process (`python -m scorelab run PRESET --population N --days T --quiet
--no-report --out <tmp>`: interpreter start, imports, the population, the simulation and every table
written), with the preset's default detail (`--ledger auto`: every citizen up to 2 million). Throughput is
N x T / wall seconds. "simulate s" is the simulation alone (run.json `simulate_seconds`); "outside s" is the
rest of the in-process time (tables built and written, the manifest; run.json `wall_seconds` minus
`simulate_seconds`), so its share of the process shows what writing costs. `--repeat K` times each preset K
times and reports the median run (by process seconds); `--baseline SRC` also times another checkout's sources
(SRC is its `src` folder), alternating run by run with this checkout's, and prints each preset's ratio, so a
speed-up is measured side by side on a machine whose speed drifts. The targets are issue 13's:
>= 100 M agent-days/s for every preset, >= 30 M for nosedive (its peer ratings touch every citizen daily).
"""

from __future__ import annotations

import argparse
import json
import os
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


def with_src(src: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(src).resolve()), env.get("PYTHONPATH")) if p)
    return env


def median_run(runs: list[dict]) -> dict:
    """The run of median process seconds (the lower middle one of an even number), with every run's seconds."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    pick = dict(ordered[(len(ordered) - 1) // 2])
    pick["wall_s_all"] = [r["wall_s"] for r in runs]
    return pick


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
    ap.add_argument("--repeat", type=int, default=1, help="time each preset this many times; the median run counts")
    ap.add_argument("--baseline", help="another checkout's src folder, timed alternately with this one's")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    if a.population < 1 or a.days < 1 or a.repeat < 1:
        print(f"error: --population, --days and --repeat must be at least 1 (got {a.population}, {a.days}, {a.repeat})",
              file=sys.stderr)
        return 2
    if a.baseline is not None and not (Path(a.baseline) / "scorelab" / "__init__.py").is_file():
        print(f"error: --baseline: {a.baseline} has no scorelab package; give a checkout's src folder", file=sys.stderr)
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
    envs = {"this": env} if a.baseline is None else {"this": env, "baseline": with_src(a.baseline)}
    rows, base_rows = [], []
    for p in chosen:
        print(f"  timing {p} ...", flush=True)
        runs = {k: [] for k in envs}
        for _ in range(a.repeat):
            for k, e in envs.items():  # alternately, so that drift in the machine's speed hits both alike
                runs[k].append(bench(p, a.population, a.days, a.seed, e, flags))
        rows.append(median_run(runs["this"]))
        if a.baseline is not None:
            base_rows.append({**median_run(runs["baseline"]), "source": str(Path(a.baseline).resolve())})
    print(f"\n{'preset':<20} {'process s':>9} {'simulate s':>10} {'outside s':>9} {'agent-days/s':>12} "
          f"{'events':>12} {'peak RSS MiB':>12}  target")
    for r in rows:
        out = "-" if r["outside_s"] is None else f"{r['outside_s']:.2f}"
        sim = "-" if r["simulate_s"] is None else f"{r['simulate_s']:.2f}"
        ev = "-" if r["event_rows"] is None else f"{r['event_rows']:,}"
        print(f"{r['preset']:<20} {r['wall_s']:>9.2f} {sim:>10} {out:>9} {fmt_rate(r['agent_days_per_s']):>12} "
              f"{ev:>12} {r['peak_rss_tree_mib']:>12.0f}  >= {fmt_rate(r['target_agent_days_per_s'])}: "
              f"{'met' if r['met'] else 'NOT met'}")
    if base_rows:
        print(f"\nbeside the baseline ({a.baseline}), median of {a.repeat}, alternating:")
        print(f"{'preset':<20} {'baseline s':>10} {'this s':>9} {'speed-up':>8}")
        for r, b in zip(rows, base_rows):
            print(f"{r['preset']:<20} {b['wall_s']:>10.2f} {r['wall_s']:>9.2f} {b['wall_s'] / r['wall_s']:>7.2f}x")
    if a.json:
        doc = {"machine": info, "repeat": a.repeat, "runs": rows}
        if base_rows:
            doc["baseline_runs"] = base_rows
        Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"figures written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
