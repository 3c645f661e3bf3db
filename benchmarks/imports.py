"""Import time of scorelab's run path, in fresh interpreters (median of 5 by default).

    python benchmarks/imports.py                 # this checkout
    python benchmarks/imports.py --src OTHER/src # another checkout's sources (e.g. a worktree of an older commit)
    python benchmarks/imports.py --json benchmarks/results/imports-<date>.json

What is measured, each in its own fresh `python` process, `--repeat` times, median reported:
- `import scorelab.cli`: wall time of the import statement alone (perf_counter around it);
- the run path: `scorelab run fair-baseline -n 1000 --days 5 --no-report -q` executed in-process, with
  every module load timed by a wrapper on importlib's loader (`importlib._bootstrap._find_and_load`, which
  `import` statements and `importlib.import_module` both go through; only the outermost load is timed, so
  nested imports count once): every second spent importing during the command, the lazy imports inside
  functions included (the simulation itself, some 0.05 s at this size, is not counted), plus the
  interpreter's own start-up imports (site, encodings), which run before any wrapper can, taken from
  `-X importtime`. The same command under `python -X importtime` gives the sum of the top-level imports'
  cumulative times too, and the breakdown below; it is printed beside the headline figure but runs slower:
  the interpreter then times and prints every one of some 700 modules (measured: 0.32-0.33 s against
  0.25-0.27 s by the wrapper, 2026-12-08);
- the whole process of that command (no `-X importtime`): start, imports, simulation, tables, summary.
It also lists the heavy packages the run path loads (pandas, pyarrow.dataset, plotly, duckdb, ...) and the
largest imports of the median run. Target (issue 13): imports on the run path <= 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ["run", "fair-baseline", "-n", "1000", "--days", "5", "--no-report", "-q"]
HEAVY = ["pandas", "pyarrow", "pyarrow.parquet", "pyarrow.compute", "pyarrow.dataset", "plotly", "duckdb",
         "distributed", "dask", "jax", "scipy", "rich.progress", "rich.table", "pydantic", "numpy", "typer"]
TARGET_S = 0.3


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_cli_import(env: dict[str, str]) -> float:
    code = "import time; t = time.perf_counter(); import scorelab.cli; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


RUN_COMMAND = """
sys.argv = ["scorelab", *{args!r}]
from scorelab.cli import main
try:
    main()
except SystemExit as e:
    if e.code not in (0, None):
        raise
"""

RUN_CODE = "import sys" + RUN_COMMAND + """import json
print("MODULES " + json.dumps(sorted(sys.modules)))
"""

HOOKED_CODE = """
import sys, time
import importlib._bootstrap as _bootstrap
_load, _depth, _spent = _bootstrap._find_and_load, [0], [0.0]
def _timed_load(name, import_):
    if _depth[0]:  # nested in a load already being timed
        return _load(name, import_)
    _depth[0] += 1
    t = time.perf_counter()
    try:
        return _load(name, import_)
    finally:
        _spent[0] += time.perf_counter() - t
        _depth[0] -= 1
_bootstrap._find_and_load = _timed_load""" + RUN_COMMAND + """print("IMPORT_SECONDS", _spent[0])
"""


def startup_imports(env: dict[str, str]) -> float:
    """Seconds of the imports the interpreter makes before running any code (site, encodings, ...)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], env=env, capture_output=True,
                          text=True, check=True)
    total = 0.0
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m[3]) == 1:
            total += int(m[2]) / 1e6
    return total


def time_run_path_hooked(env: dict[str, str], out: Path) -> float:
    """Seconds spent importing during the run command, timed by a wrapper on importlib's loader."""
    code = HOOKED_CODE.format(args=[*RUN, "-o", str(out), "--force"])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the run command failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.rsplit("IMPORT_SECONDS", 1)[1].split()[0])


def time_run_path(env: dict[str, str], out: Path) -> tuple[float, list[tuple[float, str]], list[str]]:
    """Seconds spent importing during the run command; the top-level imports (seconds, name); modules loaded."""
    code = RUN_CODE.format(args=[*RUN, "-o", str(out), "--force"])
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"the run command failed:\n{done.stderr[-3000:]}")
    top = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m[3]) == 1:  # one space: a top-level import (not nested in another)
            top.append((int(m[2]) / 1e6, m[4]))
    modules = json.loads(done.stdout.split("MODULES ", 1)[1])
    return sum(s for s, _ in top), top, modules


def time_whole_process(env: dict[str, str], out: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scorelab", *RUN, "-o", str(out), "--force"], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the sources to measure (default: this checkout's)")
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per figure (default 5)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        print(f"--repeat: {a.repeat} is not allowed; give a whole number of at least 1", file=sys.stderr)
        return 2
    src = a.src.resolve()
    if not (src / "scorelab" / "__init__.py").is_file():
        print(f"--src: {a.src} has no scorelab package (give the folder that holds scorelab/)", file=sys.stderr)
        return 2
    env = _env(src)
    with tempfile.TemporaryDirectory(prefix="scorelab-imports-") as tmp:
        out = Path(tmp) / "run"
        subprocess.run([sys.executable, "-c", "import scorelab.cli"], env=env, check=True)  # bytecode compiled once
        cli = [time_cli_import(env) for _ in range(a.repeat)]
        start = statistics.median(startup_imports(env) for _ in range(a.repeat))
        hooked = [time_run_path_hooked(env, out) + start for _ in range(a.repeat)]
        runs = [time_run_path(env, out) for _ in range(a.repeat)]
        whole = [time_whole_process(env, out) for _ in range(a.repeat)]
    run_s = [r[0] for r in runs]
    median_run = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    loaded = [m for m in HEAVY if m in median_run[2]]
    fig = {
        "import_scorelab_cli_s": statistics.median(cli),
        "run_path_imports_s": statistics.median(hooked),
        "run_path_imports_importtime_s": statistics.median(run_s),
        "startup_imports_s": start,
        "run_whole_process_s": statistics.median(whole),
    }
    print(f"sources: {src}; python {platform.python_version()}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}; median of {a.repeat} fresh processes")
    print(f"import scorelab.cli:                  {fig['import_scorelab_cli_s']:.3f} s  "
          f"(all: {', '.join(f'{x:.3f}' for x in cli)})")
    print(f"imports on the run path:              {fig['run_path_imports_s']:.3f} s  "
          f"(all: {', '.join(f'{x:.3f}' for x in hooked)}; of which {start:.3f} s the interpreter's own; "
          f"target <= {TARGET_S} s: {'met' if fig['run_path_imports_s'] <= TARGET_S else 'not met'})")
    print(f"  the same under -X importtime:       {fig['run_path_imports_importtime_s']:.3f} s  "
          f"(all: {', '.join(f'{x:.3f}' for x in run_s)}; slower: the interpreter times and prints every module)")
    print(f"whole process `scorelab {' '.join(RUN)}`: {fig['run_whole_process_s']:.3f} s")
    print(f"heavy packages loaded on the run path: {', '.join(loaded) or 'none'}; not loaded: "
          f"{', '.join(m for m in HEAVY if m not in loaded)}")
    print("largest top-level imports (median run): " + ", ".join(
        f"{name} {s:.3f} s" for s, name in sorted(median_run[1], reverse=True)[:8]))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "sources": str(src),
            "python": platform.python_version(), "cores": os.cpu_count(), "load_average": os.getloadavg()[0],
            "command": ["scorelab", *RUN], "repeat": a.repeat, **fig,
            "all": {"import_scorelab_cli_s": cli, "run_path_imports_s": hooked,
                    "run_path_imports_importtime_s": run_s, "run_whole_process_s": whole},
            "heavy_loaded": loaded,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
