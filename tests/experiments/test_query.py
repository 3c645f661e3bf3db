"""`scorelab query`: DuckDB views over every finished run of a sweep or comparison directory."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from scorelab.cli import app
from scorelab.config.loader import ConfigError
from scorelab.experiments import compare, sweep
from scorelab.experiments.query import query, views

runner = CliRunner()

SWEEP = """
base = "rr1"
population = 1500
days = 12
replicates = 2
[parameters]
"sensors[camera].false_attribution.rate.rural" = { values = [0.00008, 0.0008], name = "rural_fm" }
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    f = d / "s.toml"
    f.write_text(SWEEP)
    _, rep = sweep.start(f, d / "out", workers=2)
    assert rep.done == 4
    return d / "out"


def test_views_and_typed_partition_columns(swept):
    assert {"metrics", "citizens", "ledger", "distribution", "runs"} <= set(views(swept))
    df = query(swept, "SELECT typeof(rural_fm) t, typeof(replicate) r, count(*) n FROM metrics GROUP BY ALL")
    assert df.to_dict("records") == [{"t": "DOUBLE", "r": "INTEGER", "n": 4 * 12 * 3}]
    df = query(swept, "SELECT rural_fm, replicate, sum(wrongful_penalties) w FROM metrics "
                      "WHERE \"group\" = 'all' GROUP BY ALL ORDER BY ALL")
    assert df["rural_fm"].tolist() == [0.00008, 0.00008, 0.0008, 0.0008]
    # each value equals what that run's own table says
    for row in df.itertuples():
        m = pd.read_parquet(swept / f"runs/rural_fm={row.rural_fm!r}/replicate={row.replicate}/metrics.parquet")
        assert row.w == m[m["group"] == "all"]["wrongful_penalties"].sum()
    runs = query(swept, "SELECT * FROM runs ORDER BY rural_fm, replicate")
    assert len(runs) == 4 and set(runs["population"]) == {1500} and runs["seed"].nunique() == 2


def test_unfinished_runs_are_not_read(swept, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(swept, copy)
    victim = copy / "runs/rural_fm=0.0008/replicate=1"
    (victim / "run.json").unlink()  # as if this run had not finished
    (copy / "runs/rural_fm=0.0008/.replicate=1.partial-1").mkdir()
    shutil.copy(victim / "metrics.parquet", copy / "runs/rural_fm=0.0008/.replicate=1.partial-1/metrics.parquet")
    df = query(copy, "SELECT count(DISTINCT (rural_fm, replicate)) n FROM metrics")
    assert df["n"].iloc[0] == 3


def test_cli_prints_a_table_and_writes_files(swept, tmp_path):
    res = runner.invoke(app, ["query", str(swept), "SELECT rural_fm, avg(mean_score) AS s FROM metrics GROUP BY 1 ORDER BY 1"])
    assert res.exit_code == 0, res.output
    assert "rural_fm" in res.output and "0.0008" in res.output
    out = tmp_path / "r.csv"
    res = runner.invoke(app, ["query", str(swept), "SELECT * FROM runs", "--out", str(out), "--max-rows", "1"])
    assert res.exit_code == 0 and "3 more rows" in res.output
    assert len(pd.read_csv(out)) == 4


def test_sql_errors_exit_2_with_duckdbs_message(swept, tmp_path):
    res = runner.invoke(app, ["query", str(swept), "SELECT nope FROM metrics"])
    assert res.exit_code == 2 and "Binder Error" in res.output and "nope" in res.output
    res = runner.invoke(app, ["query", str(swept), "SELEC 1"])
    assert res.exit_code == 2 and "Parser Error" in res.output
    res = runner.invoke(app, ["query", str(tmp_path), "SELECT 1"])
    assert res.exit_code == 2 and "no finished runs" in res.output
    res = runner.invoke(app, ["query", str(tmp_path / "missing"), "SELECT 1"])
    assert res.exit_code == 2 and "no such directory" in res.output
    with pytest.raises(ConfigError):
        query(swept, "SELECT * FROM no_such_table")


def test_comparison_directories_are_queryable(tmp_path):
    c = compare.run(["rr1", "rr1"], tmp_path / "c", workers=1, replicates=1, population=800, days=6)
    df = query(c.root, "SELECT policy, count(*) n FROM metrics GROUP BY 1 ORDER BY 1")
    assert df.to_dict("records") == [{"policy": "rr1", "n": 18}, {"policy": "rr1-2", "n": 18}]
    s = query(c.root, "SELECT DISTINCT metric FROM summaries WHERE metric = 'final_mean_score'")
    assert len(s) == 1


def test_sweep_summaries_view(swept):
    df = query(swept, "SELECT rural_fm, replicate, value FROM summaries "
                      "WHERE metric = 'wrongful_penalties' AND \"group\" = 'rural' ORDER BY ALL")
    direct = query(swept, "SELECT rural_fm, replicate, sum(wrongful_penalties) AS value FROM metrics "
                          "WHERE \"group\" = 'rural' GROUP BY ALL ORDER BY ALL")
    assert len(df) == 4
    assert df["value"].tolist() == direct["value"].astype(float).tolist()
