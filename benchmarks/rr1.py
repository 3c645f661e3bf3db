"""RR-1 throughput, scorelab against Mesa, in one command.

    python benchmarks/rr1.py                              # scorelab 670,000 x 365 and Mesa 20,000 x 365
    python benchmarks/rr1.py --population 10000000        # the 10-million-citizen target
    python benchmarks/rr1.py --population 670000 --population 10000000 --json figures.json
    python benchmarks/rr1.py --mesa-population 0          # scorelab only
    python benchmarks/rr1.py -n 10000000 --kernel numpy --kernel numba   # both kernels side by side

scorelab is timed as a whole process — interpreter start, imports, building the population, simulating
and writing every table of the run directory: `python -m scorelab run rr1 --quiet --out <tmp>`.
Throughput is agent-days per second, N x T / wall seconds, as shared/reference/rr1.md defines it.
Mesa (`python benchmarks/mesa_rr1.py`, one Mesa Agent per citizen) runs in its own process too, but its
agent-days per second counts only the model's own time (creating the agents, stepping every day,
collecting the metrics), not the second or so of interpreter start and imports: at Mesa's smaller size
that fixed cost would otherwise count against it, so the ratio printed is, if anything, kind to Mesa. Mesa runs on a smaller population because its
cost is linear in N x T (one Python `step` per citizen per day), so its agent-days per second carries over
to any N; running it at 670,000 x 365 would take about ten minutes.

"timed CPU s" is the user + system CPU time of what was timed (all of scorelab's processes; Mesa's model),
which other work on a shared machine disturbs less than wall time does.

Peak memory is the largest resident set of any one process of the run (`ru_maxrss` of the waited child,
the figure `getrusage(RUSAGE_CHILDREN)` gives for a single child) and, because scorelab forks one worker per
core, the peak total resident set of the whole process tree, sampled every 50 ms from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_N, DEFAULT_T = 670_000, 365
TARGET_DEFAULT_WALL_S = 2.0  # the full default run, whole process, tables written (issue 13)
TARGET_RATIO = 3000.0  # scorelab at 10 million citizens x 365 days vs Mesa, agent-days per second (issue 13)
TARGET_RATIO_POPULATION = 10_000_000


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    versions = {}
    for pkg in ("numpy", "pandas", "pyarrow", "mesa"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {"cores": cores, "cpu": cpu, "ram_gib": round(ram / 2**30, 1) if ram else None,
            "python": platform.python_version(), **versions, "load_average_at_start": list(os.getloadavg())}


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants, from /proc (0 where it has gone)."""
    total, todo, page = 0, [pid], os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def timed_process(cmd: list[str], env: dict) -> dict:
    """Run `cmd` to completion; wall seconds, peak RSS of its largest process and of its whole tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks, err_chunks = [], []
    readers = [threading.Thread(target=lambda s=s, c=c: c.append(s.read()), daemon=True)
               for s, c in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = b"".join(out_chunks).decode(errors="replace")
    stderr = b"".join(err_chunks).decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed (exit {proc.returncode}): {' '.join(cmd)}\n{stderr or stdout}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_largest_process_mib": usage.ru_maxrss / 1024,
            "peak_rss_tree_mib": peak[0] / 2**20, "stdout": stdout}


def env_with_src() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


def scorelab_run_flags(env: dict) -> list[str]:
    """Flags that keep `scorelab run` to simulating and writing tables (no progress bar, no report)."""
    helptext = subprocess.run([sys.executable, "-m", "scorelab", "run", "--help"], env=env, capture_output=True,
                              text=True).stdout
    flags = ["--quiet"]
    if "--no-report" in helptext:
        flags.append("--no-report")
    return flags


def bench_scorelab(population: int, days: int, seed: int, ledger: str, workers: int | None, env: dict,
                   flags: list[str], kernel: str = "auto") -> dict:
    with tempfile.TemporaryDirectory(prefix="scorelab-bench-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "scorelab", "run", "rr1", "--population", str(population), "--days", str(days),
               "--seed", str(seed), "--ledger", ledger, "--out", str(out), *flags]
        if workers:
            cmd += ["--workers", str(workers)]
        r = timed_process(cmd, {**env, "SCORELAB_KERNEL": kernel})
        manifest = json.loads((out / "run.json").read_text())
        tables = {p.name: p.stat().st_size for p in out.iterdir()}
    r.pop("stdout")
    r.update({
        "implementation": "scorelab" if kernel == "auto" else f"scorelab, SCORELAB_KERNEL={kernel}",
        "kernel": manifest.get("kernel", {}).get("name", "numpy"), "population": population, "days": days, "seed": seed,
        "agent_days": population * days, "agent_days_per_s": population * days / r["wall_s"],
        "command": " ".join(([f"SCORELAB_KERNEL={kernel}"] if kernel != "auto" else []) + ["python", "-m", "scorelab", "run", "rr1", "--population", str(population), "--days",
                             str(days), "--seed", str(seed), "--ledger", ledger, "--out", "<tmp>", *flags]
                            + (["--workers", str(workers)] if workers else [])),
        "simulate_s": manifest.get("simulate_seconds"), "workers": manifest.get("workers"),
        "detail": manifest.get("detail", {}).get("kept"), "table_bytes": tables,
    })
    return r


def bench_mesa(population: int, days: int, seed: int, env: dict) -> dict:
    cmd = [sys.executable, str(HERE / "mesa_rr1.py"), "--population", str(population), "--days", str(days),
           "--seed", str(seed), "--json"]
    r = timed_process(cmd, env)
    inner = json.loads(r.pop("stdout").strip().splitlines()[-1])
    model_s = inner["model_seconds"]
    r.update({
        "model_s": model_s, "model_cpu_s": inner["model_cpu_seconds"], "agent_days_per_s_whole_process": population * days / r["wall_s"],
        "implementation": f"Mesa {version('mesa')} (one Agent per citizen)", "population": population,
        "days": days, "seed": seed, "agent_days": population * days, "agent_days_per_s": population * days / model_s,
        "command": f"python benchmarks/mesa_rr1.py --population {population} --days {days} --seed {seed} --json",
    })
    return r


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:,.2f} M" if x >= 1e6 else f"{x / 1e3:,.0f} k"


def print_table(rows: list[dict]) -> None:
    head = ("implementation", "citizens", "days", "process s", "timed s", "timed CPU s", "agent-days/s",
            "peak RSS MiB (largest / tree)")
    body = [(r["implementation"], f"{r['population']:,}", str(r["days"]), f"{r['wall_s']:.2f}",
             f"{r.get('model_s', r['wall_s']):.2f}", f"{r.get('model_cpu_s', r['cpu_s']):.2f}",
             fmt_rate(r["agent_days_per_s"]),
             f"{r['peak_rss_largest_process_mib']:,.0f} / {r['peak_rss_tree_mib']:,.0f}") for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    print(line.format(*head))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print(line.format(*b))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--population", "-n", type=int, action="append",
                    help=f"scorelab citizens; repeat to time several sizes (default {DEFAULT_N:,})")
    ap.add_argument("--days", "-t", type=int, default=DEFAULT_T, help="days for scorelab (default 365)")
    ap.add_argument("--ledger", default="auto",
                    help="scorelab --ledger (default auto: every citizen's detail up to 2 M, else a 1 M sample)")
    ap.add_argument("--workers", "-w", type=int, default=None, help="scorelab --workers (default: all cores)")
    ap.add_argument("--seed", "-s", type=int, default=0)
    ap.add_argument("--mesa-population", type=int, default=20_000,
                    help="Mesa citizens (default 20,000; 0 skips Mesa)")
    ap.add_argument("--mesa-days", type=int, default=DEFAULT_T, help="Mesa days (default 365)")
    ap.add_argument("--kernel", action="append", choices=("auto", "numpy", "numba", "walk"),
                    help="SCORELAB_KERNEL for scorelab's runs; repeat to time kernels side by side (default auto: "
                         "compiled where it pays, engine/compiled.py)")
    ap.add_argument("--repeat", type=int, default=1, help="time each scorelab size this many times; the best counts")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    pops = a.population or [DEFAULT_N]
    for name, v in (("--population", min(pops)), ("--days", a.days), ("--repeat", a.repeat), ("--mesa-days", a.mesa_days)):
        if v <= 0:
            ap.error(f"{name}: {v} is not allowed; give a whole number of at least 1")
    if a.mesa_population < 0:
        ap.error(f"--mesa-population: {a.mesa_population} is not allowed; give 0 (skip Mesa) or more")
    if a.mesa_population:
        try:
            version("mesa")
        except PackageNotFoundError:
            ap.error("--mesa-population: Mesa is not installed (pip install mesa), or pass --mesa-population 0")
    if a.workers is not None and a.workers <= 0:
        ap.error(f"--workers: {a.workers} is not allowed; give a whole number of at least 1")

    env = env_with_src()
    info = machine()
    info["date_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    flags = scorelab_run_flags(env)
    print(f"RR-1 throughput on {info['cores']} cores ({info['cpu']}, {info['ram_gib']} GiB RAM), "
          f"load average {info['load_average_at_start'][0]:.2f}, {info['date_utc']}", flush=True)

    rows: list[dict] = []
    kernels = a.kernel or ["auto"]
    for n in pops:
        for kernel in kernels:
            best = None
            for _ in range(a.repeat):
                print(f"  timing scorelab at {n:,} x {a.days} (SCORELAB_KERNEL={kernel}) ...", flush=True)
                r = bench_scorelab(n, a.days, a.seed, a.ledger, a.workers, env, flags, kernel)
                best = r if best is None or r["wall_s"] < best["wall_s"] else best
            best["repeats"] = a.repeat
            rows.append(best)
    mesa_row = None
    if a.mesa_population:
        print(f"  timing Mesa at {a.mesa_population:,} x {a.mesa_days} ...", flush=True)
        mesa_row = bench_mesa(a.mesa_population, a.mesa_days, a.seed, env)
        rows.append(mesa_row)

    print()
    print_table(rows)
    print()
    targets = []
    for r in rows[: len(pops) * len(kernels)]:
        if r["population"] == DEFAULT_N and a.days == DEFAULT_T:
            ok = r["wall_s"] < TARGET_DEFAULT_WALL_S
            targets.append({"target": f"full default run {DEFAULT_N:,} x {DEFAULT_T}, whole process incl. tables, "
                                      f"< {TARGET_DEFAULT_WALL_S:g} s ({r['kernel']} kernel)", "result": f"{r['wall_s']:.2f} s", "met": ok})
        if mesa_row is not None:
            ratio = r["agent_days_per_s"] / mesa_row["agent_days_per_s"]
            r["ratio_vs_mesa"] = ratio
            print(f"scorelab at {r['population']:,} x {r['days']} ({r['kernel']} kernel): {ratio:,.0f}x Mesa's "
                  "agent-days per second")
            if r["population"] == TARGET_RATIO_POPULATION and a.days == DEFAULT_T:
                targets.append({"target": f"scorelab {TARGET_RATIO_POPULATION:,} x {DEFAULT_T} >= "
                                          f"{TARGET_RATIO:,.0f}x Mesa agent-days/s ({r['kernel']} kernel)", "result": f"{ratio:,.0f}x",
                                "met": ratio >= TARGET_RATIO})
    if mesa_row is not None:
        print(f"Mesa ran on {mesa_row['population']:,} citizens x {mesa_row['days']} days, a smaller population "
              "than scorelab's: its cost is linear in citizens x days (one Python step per agent per day), so its "
              "agent-days per second holds at any size.")
    for t in targets:
        print(f"target: {t['target']}: {t['result']} -> {'met' if t['met'] else 'NOT met'}")
    if info["load_average_at_start"][0] > 0.5 * (info["cores"] or 1):
        print(f"note: the machine was busy when timing started (load average {info['load_average_at_start'][0]:.2f} "
              f"on {info['cores']} cores); figures may be slower than on an idle machine")
    info["load_average_at_end"] = list(os.getloadavg())
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"machine": info, "runs": rows, "targets": targets}, indent=2))
        print(f"figures written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
