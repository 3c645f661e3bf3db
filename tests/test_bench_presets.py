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


def test_a_baseline_checkout_is_timed_alternately_and_compared(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, SCRIPT, "-n", "2000", "-t", "3", "--preset", "rr1", "--repeat", "2",
                           "--baseline", str(ROOT / "src"), "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["repeat"] == 2
    (this,), (base,) = doc["runs"], doc["baseline_runs"]
    assert len(this["wall_s_all"]) == len(base["wall_s_all"]) == 2
    assert this["wall_s"] == sorted(this["wall_s_all"])[0]  # the lower middle of two
    assert base["source"] == str((ROOT / "src").resolve())
    assert "speed-up" in done.stdout and "rr1" in done.stdout.split("speed-up")[1]


def test_a_baseline_without_scorelab_is_refused(tmp_path):
    done = subprocess.run([sys.executable, SCRIPT, "--baseline", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--baseline" in done.stderr and "Traceback" not in done.stderr
