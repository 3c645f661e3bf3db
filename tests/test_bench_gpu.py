"""benchmarks/gpu.py runs end to end on whatever device JAX finds (here usually the CPU) and says so
(no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'scorelab[test]')")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "benchmarks" / "gpu.py")


def test_quick_benchmark_runs_and_names_the_device(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, SCRIPT, "--quick", "-n", "3000", "-t", "5", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert (figures["population"], figures["days"], figures["shards"]) == (3000, 5, 1)
    assert figures["shard_size"] >= 3000 and figures["agent_days_per_second"] > 0
    assert 0 < figures["mean_score_last_day"] and 0 <= figures["restricted_share_last_day"] <= 1
    assert "run:" in done.stdout and "agent-days/s" in done.stdout
    if jax.devices()[0].platform == "cpu":
        assert figures["platform"] == "cpu"
        assert "no GPU found" in done.stdout and "not a measurement of the target" in done.stdout
    else:  # pragma: no cover - a GPU machine
        assert "no GPU found" not in done.stdout


def test_bad_sizes_are_refused():
    done = subprocess.run([sys.executable, SCRIPT, "-n", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--population: 0 is not allowed" in done.stderr
    assert "Traceback" not in done.stderr
