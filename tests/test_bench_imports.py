"""benchmarks/imports.py times the run path's imports by a wrapper on importlib's loader, and under
-X importtime for the breakdown (no timing asserted: the figures belong in benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "benchmarks" / "imports.py")


def test_imports_benchmark_times_every_import_of_the_run_path(tmp_path):
    out = tmp_path / "imports.json"
    done = subprocess.run([sys.executable, SCRIPT, "--repeat", "1", "--json", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    fig = json.loads(out.read_text())
    # the wrapper sees the command's own imports (the CLI, the API, pyarrow's writer: tens of ms at the least)
    # on top of the interpreter's start-up ones
    assert 0 < fig["startup_imports_s"] < fig["run_path_imports_s"]
    assert fig["run_path_imports_s"] > fig["startup_imports_s"] + 0.02
    assert fig["run_path_imports_importtime_s"] > 0.02 and fig["run_whole_process_s"] > 0
    assert "imports on the run path" in done.stdout and "-X importtime" in done.stdout


def test_a_bad_repeat_is_refused():
    done = subprocess.run([sys.executable, SCRIPT, "--repeat", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--repeat" in done.stderr
