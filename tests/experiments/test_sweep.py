"""Sweeps: dotted paths, sweep files, planning, local and Dask execution, a real kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import scorelab
from scorelab.cli import app
from scorelab.config.loader import ConfigError, load_scenario
from scorelab.experiments import paths, sweep
from scorelab.experiments.execute import replicate_seed

SRC = str(Path(scorelab.__file__).resolve().parents[1])
runner = CliRunner()


@pytest.fixture()
def env_path(monkeypatch):
    """Child processes (Dask workers, the CLI under test) import scorelab from this checkout."""
    old = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", SRC + (os.pathsep + old if old else ""))
    return os.environ.copy()


def write(tmp: Path, text: str, name: str = "sweep.toml") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


SMALL = """
base = "rr1"
population = 2000
days = 20
replicates = 2
seed = 3

[parameters]
"sensors[camera].false_attribution.rate.rural" = {{ values = [0.00008, 0.0008], name = "rural_fm" }}
"policy.rules[public_criticism].points" = [-20, -10]
{extra}
"""


def finished(root: Path) -> list[Path]:
    """run.json of every finished run (a staging directory, named .*.partial-*, holds one before its rename)."""
    if not (root / "runs").exists():
        return []
    return sorted(p for p in (root / "runs").rglob("run.json")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


def metrics_of(root: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for run_json in finished(root):
        rel = str(run_json.parent.relative_to(root))
        out[rel] = pd.read_parquet(run_json.parent / "metrics.parquet")
    return out


# ---- dotted paths ----

def base_dict():
    return load_scenario("rr1").model_dump(mode="json")


def test_paths_address_list_items_by_name_and_behaviour():
    b = base_dict()
    assert paths.check(b, "policy.rules[public_criticism].points") == -20
    assert paths.check(b, "sensors[camera].false_attribution.rate.rural") == 0.00008
    assert paths.check(b, "policy.grades[AAA].min") == 1050
    assert paths.check(b, "response.gaming[donation].factor") == 3.0
    assert paths.check(b, "groups[1].share") == 0.4
    assert paths.check(b, "policy.score_min") is None  # optional, absent from the file, still addressable
    out = paths.apply(b, {"policy.rules[public_criticism].points": -10, "response.deterrence.factor": 0.9})
    assert paths.check(out, "policy.rules[public_criticism].points") == -10
    assert paths.check(b, "policy.rules[public_criticism].points") == -20  # the base is not changed


def test_paths_split_a_single_rate_per_group():
    b = base_dict()
    assert paths.check(b, "behaviours[volunteering].rate.rural") == 0.010
    out = paths.apply(b, {"behaviours[volunteering].rate.rural": 0.02})
    assert paths.check(out, "behaviours[volunteering].rate.urban") == 0.010
    assert out["behaviours"][1]["rate"] == {"urban": 0.010, "rural": 0.02}


@pytest.mark.parametrize("path, words", [
    ("policy.rules[public_critcism].points", ["no item named 'public_critcism'", "public_criticism"]),
    ("sensors[camera].false_atribution.rate", ["no key 'false_atribution'", "false_attribution"]),
    ("policy.rules", ["is a list"]),
    ("sensors[camera].coverage", ["is a table", "rural, urban"]),
    ("policy..rules", ["empty key"]),
    ("policy.rules[9].points", ["index out of range"]),
    ("policy.start_score.x", ["is a value"]),
])
def test_paths_errors_say_what_exists(path, words):
    with pytest.raises(paths.PathError) as e:
        paths.check(base_dict(), path)
    for w in words:
        assert w in str(e.value)


# ---- sweep files ----

def test_unknown_path_is_an_error_naming_file_and_key(tmp_path):
    f = write(tmp_path, SMALL.format(extra='"policy.rules[public_critcism].points" = [1]'))
    with pytest.raises(ConfigError) as e:
        sweep.build_plan(f)
    assert e.value.source == str(f)
    assert e.value.field == "parameters.policy.rules[public_critcism].points"
    res = runner.invoke(app, ["sweep", str(f), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "public_critcism" in res.output and not (tmp_path / "out").exists()


def test_sweep_file_keys_are_validated(tmp_path):
    f = write(tmp_path, 'base = "rr1"\nreplicate = 2\n')
    with pytest.raises(ConfigError) as e:
        sweep.build_plan(f)
    assert e.value.field == "replicate" and "allowed" in e.value.message and "replicates" in e.value.message
    f = write(tmp_path, 'base = "rr1"\n[parameters]\n"policy.start_score" = { values = [1], lo = 3 }\n')
    with pytest.raises(ConfigError) as e:
        sweep.build_plan(f)
    assert "lo" in e.value.field and "low" in e.value.message
    f = write(tmp_path, 'base = "nope"\n')
    with pytest.raises(ConfigError) as e:
        sweep.build_plan(f)
    assert e.value.source == str(f) and e.value.field == "base" and "rr1" in e.value.message


def test_every_point_is_validated_before_running(tmp_path):
    f = write(tmp_path, SMALL.format(extra='"behaviours[donation].rate.rural" = [0.001, 1.5]'))
    res = runner.invoke(app, ["sweep", str(f), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "1.5" in res.output and "probability" in res.output
    assert not (tmp_path / "out").exists()


def test_range_needs_random(tmp_path):
    f = write(tmp_path, 'base = "rr1"\n[parameters]\n"response.deterrence.factor" = { low = 0.5, high = 1.0 }\n')
    with pytest.raises(ConfigError, match="random"):
        sweep.build_plan(f)


def test_grid_plan_and_common_seeds(tmp_path):
    plan = sweep.build_plan(write(tmp_path, SMALL.format(extra="")))
    tasks = sweep.tasks_of(plan)
    assert len(tasks) == 2 * 2 * 2
    assert plan["partitions"] == {"rural_fm": "DOUBLE", "policy_rules_public_criticism_points": "BIGINT",
                                  "replicate": "INTEGER"}
    assert tasks[0].rel == "runs/rural_fm=8e-05/policy_rules_public_criticism_points=-20/replicate=0"
    # replicate r has one seed at every point (common random numbers), distinct across replicates
    by_rep = {}
    for t in tasks:
        by_rep.setdefault(t.keys["replicate"], set()).add(t.seed)
    assert by_rep == {0: {replicate_seed(3, 0)}, 1: {replicate_seed(3, 1)}}
    assert replicate_seed(3, 0) != replicate_seed(3, 1)
    assert tasks[-1].scenario["policy"]["rules"][4]["points"] == -10
    assert tasks[-1].scenario["sensors"][0]["false_attribution"]["rate"]["rural"] == 0.0008


def test_random_plan_is_reproducible_and_in_range(tmp_path):
    text = """
base = "rr1"
population = 1000
days = 5
[random]
n = 12
seed = 5
[parameters]
"policy.rules[public_criticism].points" = { low = -40, high = -5 }
"response.deterrence.factor" = { low = 0.5, high = 1.0 }
"sensors[camera].false_attribution.rate.rural" = { low = 0.00001, high = 0.001, log = true }
"policy.blacklists[court_defaulters].duration_days" = [365, 730]
"""
    p1 = sweep.build_plan(write(tmp_path, text))
    p2 = sweep.build_plan(write(tmp_path, text, "again.toml"))
    assert p1["points"] == p2["points"] and 1 <= len(p1["points"]) <= 12
    for pt in p1["points"]:
        pts = pt["policy_rules_public_criticism_points"]
        assert isinstance(pts, int) and -40 <= pts <= -5
        assert 0.5 <= pt["response_deterrence_factor"] <= 1.0
        assert 0.00001 <= pt["sensors_camera_false_attribution_rate_rural"] <= 0.001
        assert pt["policy_blacklists_court_defaulters_duration_days"] in (365, 730)
    assert len({pt["response_deterrence_factor"] for pt in p1["points"]}) > 1


# ---- running ----

def test_failed_run_is_recorded_and_others_finish(tmp_path):
    # ten billion citizens with every citizen's ledger kept: simulate refuses (about 2 TB of memory)
    text = """
base = "rr1"
population = 1000
days = 10
ledger = "all"
[parameters]
"scenario.population" = [1000, 10000000000]
"""
    f = write(tmp_path, text)
    out = tmp_path / "out"
    res = runner.invoke(app, ["sweep", str(f), "--out", str(out), "--workers", "2", "--quiet"])
    assert res.exit_code == 1, res.output
    assert (out / "runs/scenario_population=1000/replicate=0/run.json").is_file()
    assert not (out / "runs/scenario_population=10000000000").exists()
    failures = json.loads((out / "failures.json").read_text())
    assert len(failures) == 1
    assert failures[0]["parameters"] == {"scenario_population": 10000000000, "replicate": 0}
    assert "GiB" in failures[0]["error"] and failures[0]["traceback"]
    assert "1 run(s) failed" in res.output


def test_dask_local_cluster_runs_a_sweep_like_local_workers(tmp_path, env_path):
    distributed = pytest.importorskip("distributed")
    f = write(tmp_path, SMALL.format(extra=""))
    _, local = sweep.start(f, tmp_path / "local", workers=2)
    assert local.done == 8 and not local.failed
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        res = runner.invoke(app, ["sweep", str(f), "--out", str(tmp_path / "dask"), "--scheduler",
                                  cluster.scheduler_address, "--quiet"])
    assert res.exit_code == 0, res.output
    assert "8/8 runs finished" in res.output and "2 worker(s)" in res.output
    a, b = metrics_of(tmp_path / "local"), metrics_of(tmp_path / "dask")
    assert sorted(a) == sorted(b) and len(a) == 8
    for rel in a:
        pd.testing.assert_frame_equal(a[rel], b[rel])


def test_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("scorelab.engine.cluster.CONNECT_TIMEOUT", "1s")
    f = write(tmp_path, SMALL.format(extra=""))
    res = runner.invoke(app, ["sweep", str(f), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9", "-q"])
    assert res.exit_code == 2 and "cannot reach the Dask scheduler" in res.output


def test_killed_sweep_resumes_to_identical_results(tmp_path, env_path):
    text = """
base = "rr1"
population = 2000
days = 30
replicates = 4
seed = 11
[parameters]
"sensors[camera].false_attribution.rate.rural" = [0.00008, 0.00024, 0.0008]
"""
    f = write(tmp_path, text)
    out = tmp_path / "killed"
    total = 12
    proc = subprocess.Popen([sys.executable, "-m", "scorelab", "sweep", str(f), "--out", str(out), "--workers", "1",
                             "--quiet"], env=env_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = len(finished(out))
            if done >= 1:
                break
            time.sleep(0.02)
    finally:
        # a real kill, of the whole process group (the CLI and its worker processes), mid-sweep
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(finished(out))
    assert 1 <= done < total, f"the kill should land mid-sweep ({done} of {total} finished)"
    assert (out / "sweep.json").is_file()

    res = runner.invoke(app, ["sweep", "--resume", str(out), "--workers", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"{total}/{total} runs finished ({total - done} now, {done} before)" in res.output
    assert not list(out.rglob(".*partial*")), "staging directories of the killed run are cleaned up"

    _, clean = sweep.start(f, tmp_path / "clean", workers=2)
    assert clean.done == total
    a, b = metrics_of(out), metrics_of(tmp_path / "clean")
    assert sorted(a) == sorted(b) and len(a) == total
    for rel in a:
        pd.testing.assert_frame_equal(a[rel], b[rel])
    # resuming a finished sweep runs nothing
    res = runner.invoke(app, ["sweep", "--resume", str(out), "--quiet"])
    assert res.exit_code == 0 and f"{total}/{total} runs finished (0 now, {total} before)" in res.output


def test_start_refuses_an_existing_sweep(tmp_path):
    f = write(tmp_path, SMALL.format(extra=""))
    out = tmp_path / "o"
    out.mkdir()
    (out / "sweep.json").write_text("{}")
    res = runner.invoke(app, ["sweep", str(f), "--out", str(out)])
    assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, ["sweep"])
    assert res.exit_code == 2


def test_base_scenario_file_is_relative_to_the_sweep_file(tmp_path, monkeypatch):
    d = tmp_path / "study"
    d.mkdir()
    text = (Path(scorelab.__file__).parent / "config/presets/rr1.toml").read_text()
    (d / "town.toml").write_text(text.replace('name = "rr1"', 'name = "town"', 1))
    write(d, 'base = "town.toml"\npopulation = 500\ndays = 3\n[parameters]\n"response.deterrence.factor" = [0.5, 0.9]\n')
    monkeypatch.chdir(tmp_path)  # not the sweep file's folder
    plan = sweep.build_plan(Path("study/sweep.toml"))
    assert plan["base_scenario"]["scenario"]["name"] == "town"
    assert [p["response_deterrence_factor"] for p in plan["points"]] == [0.5, 0.9]
    assert plan["base_scenario"]["scenario"]["population"] == 500
