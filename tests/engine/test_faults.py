"""Faults: kills at several points, a full disk, damaged files, unsafe --force, races, bad outputs.

Each test asserts the same contract as the fuzz suite: exit status 2 with one line naming the file and
what to do (or a clean recovery with the same bytes), no traceback, nothing half-written, no user file
touched. The kill tests run `scorelab` as a subprocess; the `slow` variants (pytest -m slow) kill at
more points and fill a real tmpfs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scorelab.cli import app

runner = CliRunner()
SCORELAB = [sys.executable, "-m", "scorelab"]


def cli(*args: str):
    return runner.invoke(app, list(args))


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def digest(run: Path) -> dict[str, str]:
    return {t: hashlib.sha256((run / f"{t}.parquet").read_bytes()).hexdigest() for t in ("metrics", "citizens", "events")}


def refused(res, *names: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.output.startswith("error:") and "Traceback" not in res.output, res.output
    for n in names:
        assert n in res.output, (n, res.output)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "run"
    res = cli("run", "rr1", "-n", "3000", "-t", "20", "--seed", "3", "--out", str(out), "--quiet", "--no-report")
    assert res.exit_code == 0, res.output
    return out


# ---------------------------------------------------------------- kill -9, then resume


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(p.name))
    return out


def _kill_after(tmp_path: Path, shards_done: int, env: dict[str, str]) -> Path:
    out = tmp_path / "run"
    cmd = SCORELAB + ["run", "rr1", "-n", "60000", "-t", "120", "--seed", "5", "--out", str(out), "-w", "2",
                      "--quiet", "--no-report"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = tmp_path / ".run.partial" / "shards"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if shards.is_dir() and len([p for p in shards.glob("[0-9]*.npz")]) >= shards_done:
            break
        time.sleep(0.02)
    kids = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # PR_SET_PDEATHSIG is immediate; the watcher thread needs at most 0.5 s
    alive = [k for k in kids if Path(f"/proc/{k}").exists() and "Z" not in Path(f"/proc/{k}/stat").read_text().split()[2]]
    assert not alive, f"workers outlived their killed parent: {alive}"
    return out


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("ref") / "run"
    env = {**os.environ, "SCORELAB_SHARD_SIZE": "10000"}
    subprocess.run(SCORELAB + ["run", "rr1", "-n", "60000", "-t", "120", "--seed", "5", "--out", str(out), "-w", "1",
                               "--quiet", "--no-report"], env=env, check=True, stdout=subprocess.DEVNULL)
    return digest(out)


def _kill_and_resume(tmp_path: Path, shards_done: int, reference: dict[str, str]) -> None:
    env = {**os.environ, "SCORELAB_SHARD_SIZE": "10000"}
    out = _kill_after(tmp_path, shards_done, env)
    if not out.exists():
        r = subprocess.run(SCORELAB + ["run", "--resume", str(out), "--quiet", "--no-report"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert digest(out) == reference
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run"]
    assert not leftovers, f"the resumed run left {leftovers}"


def test_kill_9_mid_run_resumes_to_the_same_bytes_and_leaves_no_orphans(tmp_path, reference_run):
    _kill_and_resume(tmp_path, 2, reference_run)


@pytest.mark.slow
@pytest.mark.parametrize("shards_done", [0, 1, 3, 5, 6])
def test_kill_9_at_several_points(tmp_path, reference_run, shards_done):
    _kill_and_resume(tmp_path, shards_done, reference_run)


def test_sigterm_stops_workers_and_keeps_checkpoints(tmp_path):
    env = {**os.environ, "SCORELAB_SHARD_SIZE": "10000"}
    out = tmp_path / "run"
    proc = subprocess.Popen(SCORELAB + ["run", "rr1", "-n", "60000", "-t", "400", "--out", str(out), "-w", "2",
                                        "--quiet", "--no-report"], env=env, stderr=subprocess.PIPE, text=True)
    shards = tmp_path / ".run.partial" / "shards"
    deadline = time.time() + 60
    while time.time() < deadline and not (shards.is_dir() and any(shards.glob("[0-9]*.npz"))):
        time.sleep(0.05)
    kids = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode in (130, 0), stderr
    assert "Traceback" not in stderr
    time.sleep(1.0)
    assert not [k for k in kids if Path(f"/proc/{k}").exists()]


# ---------------------------------------------------------------- a full disk


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(args[1]) if len(args) > 1 else None)


def test_full_disk_while_writing_a_run_leaves_nothing(tmp_path, monkeypatch):
    import scorelab.store as store

    monkeypatch.setattr(store.pq, "write_table", _enospc)
    res = cli("run", "rr1", "-n", "500", "-t", "5", "--out", str(tmp_path / "run"), "--quiet", "--no-report")
    refused(res, "disk is full")
    assert listing(tmp_path) == set()


def test_full_disk_while_writing_a_checkpoint_leaves_no_truncated_file(tmp_path, monkeypatch):
    import numpy as np

    import scorelab.engine.checkpoint as ck
    import scorelab.engine.runner as rn

    def half_then_full(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rn, "SHARD_SIZE", 400)
    monkeypatch.setattr(np, "savez", half_then_full)
    res = cli("run", "rr1", "-n", "1000", "-t", "5", "--out", str(tmp_path / "run"), "-w", "1", "--quiet", "--no-report")
    refused(res, "disk is full")
    shards = tmp_path / ".run.partial" / "shards"
    assert [p.name for p in shards.iterdir()] == [] if shards.is_dir() else True
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert ck.finished_shards(tmp_path / ".run.partial") == {}


def test_full_disk_while_writing_the_report(small_run, monkeypatch):
    import scorelab.atomic as atomic

    before = listing(small_run)
    real = Path.write_text

    def full(self, text, *a, **k):
        if self.name.startswith(".report.html"):
            real(self, text[:100], *a, **k)
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    res = cli("report", str(small_run))
    refused(res, "disk is full", f"{small_run / 'report.html'}:")  # the file the user asked for, not a temporary
    assert ".tmp-" not in res.output
    after = listing(small_run)
    assert not [p for p in after - before if "report" in p], after - before
    assert atomic  # the module that cleans up


def test_a_failed_write_names_the_file_it_was_writing(tmp_path):
    """A full disk raises from write() with no file name (or the temporary's): the error names the file."""
    from scorelab.atomic import write_atomic

    target = tmp_path / "table.parquet"
    for filename in (None, "tmp"):
        def fill(tmp, filename=filename):
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", None if filename is None else str(tmp))

        with pytest.raises(OSError) as err:
            write_atomic(target, fill)
        assert err.value.filename == str(target) and err.value.errno == errno.ENOSPC
        assert list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(OSError) as err:  # another file named by the error keeps its name
        write_atomic(target, lambda tmp: open(tmp_path / "missing" / "x", "rb"))
    assert err.value.filename == str(tmp_path / "missing" / "x")


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")


@pytest.mark.slow
def test_full_tmpfs(tmp_path):
    """A real full disk (a tmpfs; needs permission to mount, skipped otherwise). Too small for the run's
    tables (~0.5 MB): no run directory, only the finished shards' checkpoints for --resume. Room for the tables
    but not for report.html (~3.5 MB): the run directory is complete and the report is not half there."""
    # one worker: its shards are checkpointed one after another, so the tiny disk always holds the first
    # (two workers wrote theirs at once, and whether either fitted was a race)
    run = ["run", "rr1", "-n", "200000", "-t", "30", "--quiet", "--workers", "1"]
    tiny = tmp_path / "tiny"
    _tmpfs(tiny, "256k")
    try:
        p = subprocess.run(SCORELAB + run + ["--out", str(tiny / "run")], capture_output=True, text=True)
        assert p.returncode == 2 and "Traceback" not in p.stderr and "disk is full" in p.stderr, p.stderr
        assert "--resume" in p.stderr
        assert [q.name for q in tiny.iterdir()] == [".run.partial"]  # checkpoints only, no half-written run
    finally:
        subprocess.run(["umount", str(tiny)])
    small = tmp_path / "small"
    _tmpfs(small, "3m")
    try:
        p = subprocess.run(SCORELAB + run + ["--out", str(small / "run")], capture_output=True, text=True)
        assert p.returncode == 2 and "Traceback" not in p.stderr and "disk is full" in p.stderr, p.stderr
        assert "report.html" in p.stderr and "is complete" in p.stderr and "scorelab report" in p.stderr, p.stderr
        again = subprocess.run(SCORELAB + ["report", str(small / "run")], capture_output=True, text=True)
        assert again.returncode == 2 and f"{small / 'run' / 'report.html'}: " in again.stderr, again.stderr
        names = sorted(q.name for q in (small / "run").iterdir())
        assert "run.json" in names and "events.parquet" in names and "citizens.parquet" in names
        assert not [n for n in names if "report" in n], names  # no report, not even part of one
        assert [q.name for q in small.iterdir()] == ["run"]  # no temporary left beside it
        import scorelab

        assert scorelab.Run(small / "run").manifest["population"] == 200000  # the run reads back whole
    finally:
        subprocess.run(["umount", str(small)])


# ---------------------------------------------------------------- damaged run directories


DAMAGE = {
    "truncated events": lambda d: (d / "events.parquet").write_bytes((d / "events.parquet").read_bytes()[:300]),
    "citizens not parquet": lambda d: (d / "citizens.parquet").write_text("not a table"),
    "metrics missing": lambda d: (d / "metrics.parquet").unlink(),
    "run.json wrong types": lambda d: (d / "run.json").write_text(json.dumps(
        {**json.loads((d / "run.json").read_text()), "population": "many"})),
    "run.json not json": lambda d: (d / "run.json").write_text("{ half"),
    "run.json a list": lambda d: (d / "run.json").write_text("[1, 2]"),
    "events from another run": lambda d: (d / "events.parquet").write_bytes((d / "metrics.parquet").read_bytes()),
    "citizens page corrupt, footer whole": lambda d: _flip(d / "citizens.parquet", 100, 400),
}


def _flip(path: Path, start: int, stop: int) -> None:
    b = bytearray(path.read_bytes())
    for i in range(start, stop):
        b[i] ^= 0xFF
    path.write_bytes(bytes(b))
COMMANDS = {"audit": ["audit"], "report": ["report"], "explain": ["explain", "--citizen", "1"],
            "compliance": ["compliance"]}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_damaged_run_directory_is_named_not_a_traceback(tmp_path, small_run, damage, command):
    import shutil

    d = tmp_path / "run"
    shutil.copytree(small_run, d)
    DAMAGE[damage](d)
    before = {p: p.read_bytes() for p in d.iterdir()}
    args = COMMANDS[command]
    res = cli(args[0], str(d), *args[1:])
    refused(res, str(d))
    assert {p: p.read_bytes() for p in d.iterdir()} == before, "a damaged run is left as it was"


def test_damaged_table_inside_a_sweep_is_named(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('base = "rr1"\npopulation = 500\ndays = 3\n[parameters]\n"policy.rules[public_criticism].points" = [-1, -2]\n')
    assert cli("sweep", str(f), "--out", str(tmp_path / "sw"), "--quiet", "-w", "1").exit_code == 0
    run = next((tmp_path / "sw").rglob("run.json")).parent
    (run / "events.parquet").write_bytes(b"garbage")
    res = cli("query", str(tmp_path / "sw"), "SELECT count(*) FROM metrics")
    refused(res, "events.parquet", "sweep --resume")
    refused(cli("sweep", "--resume", str(tmp_path / "sw"), "--quiet"), "events.parquet", "delete")
    refused(cli("query", str(tmp_path / "sw"), "   "), "empty")
    refused(cli("query", str(tmp_path / "sw"), "SELECT 1", "--out", str(tmp_path / "no" / "x.csv")), "does not exist")


# ---------------------------------------------------------------- damaged checkpoints


def test_damaged_checkpoints_are_named_before_simulating(tmp_path, monkeypatch):
    import scorelab
    import scorelab.engine.runner as rn
    from scorelab.engine.checkpoint import partial_dir, save_plan, save_shard

    monkeypatch.setattr(rn, "SHARD_SIZE", 300)
    out = tmp_path / "run"
    ref = scorelab.simulate("rr1", population=900, days=5, seed=2, out=tmp_path / "ref", workers=1)
    # a killed run: its plan and two of its three shards, one of them damaged
    stage = partial_dir(out)
    sc = scorelab.load("rr1", population=900, days=5)
    from scorelab.engine.params import compile_params
    from scorelab.engine.runner import plan_detail, plan_shards, run_shards

    save_plan(stage, {"scenario": sc.model_dump(mode="json"), "seed": 2, "ledger": None, "backend": "numpy",
                      "shard_size": 300, "scorelab": scorelab.__version__})
    params = compile_params(sc)
    specs = plan_shards(900, 2, plan_detail(900, None))
    for r in run_shards(params, specs[:2]):
        save_shard(stage, r)
    shard = stage / "shards" / "000001.npz"
    shard.write_bytes(shard.read_bytes()[:200])
    refused(cli("run", "--resume", str(out), "--quiet", "--no-report"), "000001.npz", "Delete this file")
    shard.unlink()
    assert cli("run", "--resume", str(out), "--quiet", "--no-report").exit_code == 0
    assert digest(out) == digest(ref.path)
    # a damaged plan
    stage.mkdir()
    (stage / "plan.json").write_text('{"scenario": 3}')
    refused(cli("run", "--resume", str(tmp_path / "run"), "--quiet"), "plan.json")


# ---------------------------------------------------------------- --force, races, unwritable outputs


def test_force_never_deletes_user_files(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    refused(cli("run", "rr1", "-n", "300", "-t", "2", "--out", str(mine), "--force", "--quiet"), "not a scorelab run")
    assert (mine / "thesis.txt").read_text() == "years of work"
    monkeypatch.chdir(mine)
    refused(cli("run", "rr1", "-n", "300", "-t", "2", "--out", ".", "--force", "--quiet"), "current directory")
    refused(cli("run", "rr1", "-n", "300", "-t", "2", "--out", str(tmp_path), "--force", "--quiet"), "current directory")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    refused(cli("run", "rr1", "-n", "300", "-t", "2", "--out", str(tmp_path / "home"), "--force", "--quiet"), "home")
    assert (mine / "thesis.txt").read_text() == "years of work"


def test_two_runs_racing_for_one_out(tmp_path):
    from scorelab.store import OutputLock

    out = tmp_path / "run"
    with OutputLock(out):
        refused(cli("run", "rr1", "-n", "300", "-t", "2", "--out", str(out), "--quiet"), "another scorelab process")
    assert cli("run", "rr1", "-n", "300", "-t", "2", "--out", str(out), "--quiet", "--no-report").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_stale_partials_of_dead_processes_are_cleaned(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".run.partial-{dead.pid}"
    stale.mkdir()
    (stale / "metrics.parquet").write_bytes(b"half")
    assert cli("run", "rr1", "-n", "300", "-t", "2", "--out", str(tmp_path / "run"), "--quiet", "--no-report").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_unwritable_out_is_refused_before_simulating(tmp_path):
    (tmp_path / "afile").write_text("x")
    refused(cli("run", "rr1", "-n", "300", "-t", "2", "--out", str(tmp_path / "afile" / "run"), "--quiet"), "is a file")
    refused(cli("run", "rr1", "-n", "300", "-t", "2", "--out", "/proc/scorelab-run", "--quiet"), "/proc")
    refused(cli("compliance", "rr1", "--json", str(tmp_path / "missing" / "c.json")), "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_unreadable_inputs(tmp_path):
    (tmp_path / "a.toml").symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(tmp_path / "a.toml")
    refused(cli("validate", str(tmp_path / "a.toml")), "link")
    refused(cli("run", "rr1", "-n", "300", "-t", "2", "--ledger", "²", "--out", str(tmp_path / "r")), "--ledger")


def test_counterfactual_population_above_the_run_is_refused(small_run):
    refused(cli("audit", str(small_run), "--counterfactual-population", "10000000000000"), "--counterfactual-population")


# ---------------------------------------------------------------- sweeps


def test_bad_scheduler_leaves_nothing(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('base = "rr1"\npopulation = 500\ndays = 3\n[parameters]\n"policy.rules[public_criticism].points" = [-1, -2]\n')
    refused(cli("sweep", str(f), "--out", str(tmp_path / "sw"), "--scheduler", "not::an address", "--quiet"), "--scheduler")
    assert not (tmp_path / "sw").exists()


def test_huge_grid_is_refused_at_once(tmp_path):
    f = tmp_path / "s.toml"
    values = ", ".join(str(-i) for i in range(1, 1001))
    f.write_text(f'base = "rr1"\npopulation = 500\ndays = 3\nreplicates = 2\n[parameters]\n'
                 f'"policy.rules[public_criticism].points" = [{values}]\n'
                 f'"policy.rules[volunteering].points" = [{values.replace("-", "")}]\n')
    t0 = time.perf_counter()
    refused(cli("sweep", str(f), "--out", str(tmp_path / "sw"), "--quiet"), "2,000,000 runs", "--yes")
    assert time.perf_counter() - t0 < 5
    assert not (tmp_path / "sw").exists()


def test_resume_time_is_for_the_simulated_part(tmp_path, monkeypatch):
    import scorelab
    import scorelab.engine.runner as rn

    monkeypatch.setattr(rn, "SHARD_SIZE", 300)
    r = scorelab.simulate("rr1", population=900, days=5, out=tmp_path / "run", workers=1)
    assert r.manifest["simulated_agent_days"] == 900 * 5
