"""A run killed part-way (a real SIGKILL) resumes from its shard checkpoints to the same bytes."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from scorelab.cli import app

TABLES = ["metrics.parquet", "citizens.parquet", "events.parquet", "distribution.parquet"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


def digest(path):
    return {t: hashlib.sha256((Path(path) / t).read_bytes()).hexdigest() for t in TABLES}


def scorelab_cmd(*args):
    return [sys.executable, "-m", "scorelab", *args]


def env():
    e = dict(os.environ, SCORELAB_SHARD_SIZE="2000", PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return e


def test_kill_and_resume_gives_the_same_run(tmp_path):
    args = ["run", "rr1", "-n", "24000", "-t", "200", "--workers", "1", "--quiet", "--no-report"]
    whole = tmp_path / "whole"
    subprocess.run(scorelab_cmd(*args, "--out", str(whole)), check=True, env=env(), capture_output=True)

    out = tmp_path / "killed"
    stage = tmp_path / ".killed.partial"
    proc = subprocess.Popen(scorelab_cmd(*args, "--out", str(out)), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list((stage / "shards").glob("0*.npz")) if (stage / "shards").exists() else []
        if len([p for p in done if ".tmp" not in p.name]) >= 2:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = [p for p in (stage / "shards").glob("*.npz") if ".tmp" not in p.name]
    assert 2 <= len(finished) < 12, "the kill must land part-way"
    assert not out.exists()

    res = subprocess.run(scorelab_cmd("run", "--resume", str(out), "--quiet", "--no-report"), env=env(),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"{len(finished)} of 12 shards came from checkpoints" in res.stdout.replace("\n", " ")
    assert digest(out) == digest(whole)
    assert not stage.exists()


def test_resume_errors(tmp_path):
    r = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no unfinished run" in r.output
    r = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "x"), "--population", "5"])
    assert r.exit_code == 2 and "give only the run directory" in r.output


def test_fresh_run_refuses_to_clobber_a_checkpoint(tmp_path):
    stage = tmp_path / ".r.partial"
    (stage / "shards").mkdir(parents=True)
    r = CliRunner().invoke(app, ["run", "rr1", "-n", "300", "-t", "3", "--out", str(tmp_path / "r"), "--quiet", "--no-report"])
    assert r.exit_code == 2 and "--resume" in r.output and stage.exists()
    r = CliRunner().invoke(app, ["run", "rr1", "-n", "300", "-t", "3", "--out", str(tmp_path / "r"), "--quiet",
                                 "--no-report", "--force"])
    assert r.exit_code == 0 and (tmp_path / "r" / "run.json").exists() and not stage.exists()
