"""One run's shards on a Dask cluster (`scorelab run --scheduler`, `simulate(scheduler=...)`): the same bytes as
a local run with the same seed, and a bad address refused before anything is written."""

import hashlib
import json

import pytest
from typer.testing import CliRunner

import scorelab
from scorelab.cli import app
from scorelab.engine import runner

distributed = pytest.importorskip("distributed")

TABLES = ["metrics.parquet", "citizens.parquet", "events.parquet", "distribution.parquet"]
cli = CliRunner()


def digest(path):
    return {t: hashlib.sha256((path / t).read_bytes()).hexdigest() for t in TABLES}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_dask_run_gives_the_bytes_of_a_local_run(tmp_path, monkeypatch, cluster):
    """As tests/engine/test_determinism.py's workers=1 vs workers=2: small shards so that the run has several."""
    monkeypatch.setattr(runner, "SHARD_SIZE", 1500)
    local = scorelab.simulate("rr1", seed=5, population=5000, days=30, out=tmp_path / "local", workers=1)
    res = cli.invoke(app, ["run", "rr1", "-n", "5000", "-t", "30", "-s", "5", "-o", str(tmp_path / "dask"),
                           "--scheduler", cluster.scheduler_address, "--no-report", "-q"])
    assert res.exit_code == 0, res.output
    dask = scorelab.Run(tmp_path / "dask")
    assert local.manifest["shards"] == dask.manifest["shards"] == 4
    assert digest(local.path) == digest(dask.path)
    assert dask.metrics.equals(local.metrics)
    assert len(set(dask.citizens.citizen)) == 5000
    manifest = json.loads((tmp_path / "dask" / "run.json").read_text())
    assert manifest["scheduler"] == cluster.scheduler_address and manifest["workers"] == 2
    assert manifest["sha256"] == local.manifest["sha256"]
    assert not list(tmp_path.glob(".*partial*")), "the checkpoints are removed once the run is written"


def test_simulate_takes_an_address_or_a_client(tmp_path, monkeypatch, cluster):
    monkeypatch.setattr(runner, "SHARD_SIZE", 700)
    local = scorelab.simulate("fair-baseline", seed=2, population=2000, days=20, out=tmp_path / "l", workers=2)
    by_address = scorelab.simulate("fair-baseline", seed=2, population=2000, days=20, out=tmp_path / "a",
                                   scheduler=cluster.scheduler_address)
    with distributed.Client(cluster.scheduler_address) as client:
        in_memory = scorelab.simulate("fair-baseline", seed=2, population=2000, days=20, scheduler=client)
        assert client.status == "running", "a client the caller passed is left open"
    assert local.manifest["shards"] == 3
    assert digest(local.path) == digest(by_address.path)
    assert in_memory.in_memory and in_memory.metrics.equals(local.metrics)
    assert in_memory.events.equals(local.events)


def test_resume_on_a_cluster_finishes_a_killed_run(tmp_path, monkeypatch, cluster):
    """Shard checkpoints written here: `--resume DIR --scheduler` runs only the missing shards on the cluster."""
    from scorelab.engine.checkpoint import partial_dir

    monkeypatch.setattr(runner, "SHARD_SIZE", 1000)
    full = scorelab.simulate("rr1", seed=3, population=3000, days=15, out=tmp_path / "full", workers=1)
    out = tmp_path / "cut"
    real = runner.run_shards

    def first_shard_then_die(params, specs, **kw):  # a kill after the first checkpoint
        real(params, specs[:1], workers=1, checkpoint=kw["checkpoint"])
        raise KeyboardInterrupt

    monkeypatch.setattr("scorelab.api.run_shards", first_shard_then_die)
    with pytest.raises(KeyboardInterrupt):
        scorelab.simulate("rr1", seed=3, population=3000, days=15, out=out, workers=1)
    monkeypatch.setattr("scorelab.api.run_shards", real)
    assert partial_dir(out).is_dir() and not out.exists()
    res = cli.invoke(app, ["run", "--resume", str(out), "--scheduler", cluster.scheduler_address, "-q", "--no-report"])
    assert res.exit_code == 0, res.output
    assert "resumed: 1 of 3 shards came from checkpoints" in res.output
    assert digest(out) == digest(full.path)


@pytest.mark.parametrize("address, words", [("tcp://127.0.0.1:9", "cannot reach the Dask scheduler"),
                                            ("not::an address", "--scheduler")])
def test_bad_scheduler_is_exit_2_and_writes_nothing(tmp_path, monkeypatch, address, words):
    monkeypatch.setattr("scorelab.engine.cluster.CONNECT_TIMEOUT", "1s")
    out = tmp_path / "runs" / "r"
    res = cli.invoke(app, ["run", "rr1", "-n", "1000", "-t", "5", "-o", str(out), "--scheduler", address, "-q"])
    assert res.exit_code == 2, res.output
    assert words in res.output and "Traceback" not in res.output
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit)
    assert list(tmp_path.iterdir()) == [], "no run directory, lock or checkpoint folder is left"


def test_scheduler_with_workers_or_jax_is_refused(tmp_path, cluster):
    for extra, words in ((["--workers", "2"], "--workers: not used with --scheduler"),
                         (["--backend", "jax"], "--scheduler: the JAX backend runs on this machine")):
        res = cli.invoke(app, ["run", "rr1", "-n", "1000", "-t", "5", "-o", str(tmp_path / "r"), "-q",
                               "--scheduler", cluster.scheduler_address, *extra])
        assert res.exit_code == 2, res.output
        assert words in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()
