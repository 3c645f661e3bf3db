"""benchmarks/rr1.py runs end to end at a toy size and reports what it claims (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mesa", reason="Mesa is not installed (pip install 'scorelab[test]'); the benchmark times it")

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_command_prints_and_saves_both_throughputs(tmp_path):
    out = tmp_path / "figures.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "rr1.py"), "-n", "3000", "-t", "4", "--ledger", "none",
           "--workers", "1", "--mesa-population", "200", "--mesa-days", "4", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "smaller population" in done.stdout and "Mesa's agent-days per second" in done.stdout
    figures = json.loads(out.read_text())
    scorelab, mesa = figures["runs"]
    assert scorelab["implementation"] == "scorelab" and mesa["implementation"].startswith("Mesa")
    assert (scorelab["population"], scorelab["days"], scorelab["agent_days"]) == (3000, 4, 12_000)
    assert (mesa["population"], mesa["days"], mesa["agent_days"]) == (200, 4, 800)
    for r in (scorelab, mesa):
        assert r["wall_s"] > 0 and r["agent_days_per_s"] > 0 and r["peak_rss_largest_process_mib"] > 0
    assert scorelab["ratio_vs_mesa"] == pytest.approx(scorelab["agent_days_per_s"] / mesa["agent_days_per_s"])
    assert scorelab["table_bytes"]["metrics.parquet"] > 0
    assert figures["machine"]["cores"] >= 1
    assert figures["targets"] == []  # neither target's size was run


def test_benchmark_rejects_bad_sizes():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rr1.py"), "-n", "0"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--population: 0 is not allowed" in done.stderr
