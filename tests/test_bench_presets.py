"""benchmarks/presets.py times each preset as a whole process and says whether it meets its target (no timing
asserted: the figures belong in benchmarks/RESULTS.md, not in a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "benchmarks" / "presets.py")


def test_presets_benchmark_reports_each_preset_against_its_target(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, SCRIPT, "-n", "3000", "-t", "5", "--preset", "rr1", "--preset", "nosedive",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [r["preset"] for r in runs] == ["rr1", "nosedive"]
    for r in runs:
        assert (r["population"], r["days"]) == (3000, 5) and r["wall_s"] > 0
        assert r["agent_days_per_s"] == 3000 * 5 / r["wall_s"]
        assert r["simulate_s"] > 0 and r["outside_s"] >= 0 and r["event_rows"] > 0
    assert runs[0]["target_agent_days_per_s"] == 100e6 and runs[1]["target_agent_days_per_s"] == 30e6
    assert "NOT met" in done.stdout  # a toy size never reaches the targets, and says so


def test_unknown_preset_is_refused_with_the_allowed_names():
    done = subprocess.run([sys.executable, SCRIPT, "--preset", "nope"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown preset 'nope'" in done.stderr and "rongcheng" in done.stderr
    assert "Traceback" not in done.stderr
