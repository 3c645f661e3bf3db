"""Bad input: one clear message naming the file, the field and what is allowed; exit 2; nothing written."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scorelab.cli import app
from scorelab.config.loader import ConfigError, load_scenario
from scorelab.engine.params import compile_params

RR1 = Path(__file__).resolve().parents[2] / "src/scorelab/config/presets/rr1.toml"
runner = CliRunner()


def write(tmp_path, text, name="bad.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def rr1_with(tmp_path, old, new, count=1):
    text = RR1.read_text()
    assert old in text, old
    return write(tmp_path, text.replace(old, new, count))


def run_cli(*args):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    "old,new,field,allowed",
    [
        ('name = "urban"\nshare = 0.6', 'name = "urban"\nshare = 0.6\ncolour = "red"', "groups[0].colour", "unknown key"),
        ("points = -5", 'points = "five"', "policy.rules[0].points", "valid integer"),
        ("rate = 0.010", "rate = 1.5", "behaviours[1].rate", "from 0 to 1"),
        ("coverage = { urban = 0.8, rural = 0.3 }", "coverage = { urban = 0.8, rural = -0.3 }", "sensors[0].coverage", "from 0 to 1"),
        ('behaviour = "donation"\nsensor = "payment"', 'behaviour = "donations"\nsensor = "payment"', "policy.rules[2].behaviour", "unknown behaviour 'donations'"),
        ('sensor = "court"', 'sensor = "courts"', "policy.rules[3].sensor", "unknown sensor 'courts'"),
        ("min = 1030\nmax = 1049", "min = 1030\nmax = 1055", None, "overlap"),
        ("min = 1030\nmax = 1049", "min = 1030\nmax = 1045", None, "gap between AA (up to 1045) and AAA (from 1050)"),
        ("population = 670000", "population = 0", "scenario.population", "greater than 0"),
        ("days = 365", "days = -3", "scenario.days", "greater than 0"),
        ("share = 0.4", "share = 0.5", None, "add up to 1"),
        ('rate = { urban = 0.002, rural = 0.001 }\n\n[[behaviours]]\nname = "loan_default"',
         'rate = { urban = 0.002, rurall = 0.001 }\n\n[[behaviours]]\nname = "loan_default"', "behaviours[2].rate", "unknown group 'rurall'"),
        ('trigger = "loan_default"', 'trigger = "default"', "policy.blacklists[0].trigger", "unknown behaviour 'default'"),
        ('grades = ["C", "D"]', 'grades = ["C", "E"]', None, "unknown grade 'E'"),
    ],
)
def test_bad_field_is_named(tmp_path, old, new, field, allowed):
    bad = rr1_with(tmp_path, old, new)
    with pytest.raises(ConfigError) as e:
        load_scenario(bad)
    msg = str(e.value)
    assert str(bad) in msg
    if field:
        assert field in msg, msg
    assert allowed in msg, msg
    out = tmp_path / "out"
    res = run_cli("run", str(bad), "--out", str(out), "--quiet")
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert str(bad) in res.output.replace("\n", "")
    assert not out.exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_malformed_toml(tmp_path):
    bad = write(tmp_path, "[scenario\nname = 'x'")
    res = run_cli("run", str(bad), "--quiet")
    assert res.exit_code == 2
    assert "malformed TOML" in res.output and str(bad) in res.output.replace("\n", "")


def test_missing_file_and_unknown_preset(tmp_path):
    res = run_cli("run", str(tmp_path / "nope.toml"))
    assert res.exit_code == 2 and "no such scenario file" in res.output
    res = run_cli("run", "no-such-preset")
    assert res.exit_code == 2 and "presets are: " in res.output and "rr1" in res.output


@pytest.mark.parametrize("opt,val", [("--population", "0"), ("--days", "0"), ("--days", "-5"), ("--workers", "0")])
def test_bad_options(tmp_path, opt, val):
    out = tmp_path / "o"
    res = run_cli("run", "rr1", opt, val, "--out", str(out), "--quiet")
    assert res.exit_code == 2 and opt in res.output and "at least 1" in res.output
    assert not out.exists()


def test_bad_ledger_option(tmp_path):
    res = run_cli("run", "rr1", "--ledger", "some", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and "--ledger" in res.output and "all, none, auto" in res.output


def test_existing_output_refused_unless_force(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = run_cli("run", "rr1", "-n", "500", "-t", "5", "--out", str(out), "--quiet")
    assert res.exit_code == 2 and "--force" in res.output
    assert (out / "keep.txt").read_text() == "mine"
    # --force replaces a scorelab run directory only: a folder of the user's files is never deleted
    res = run_cli("run", "rr1", "-n", "500", "-t", "5", "--out", str(out), "--quiet", "--force")
    assert res.exit_code == 2 and "not a scorelab run directory" in res.output
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    out.rmdir()
    res = run_cli("run", "rr1", "-n", "500", "-t", "5", "--out", str(out), "--quiet", "--no-report")
    assert res.exit_code == 0, res.output
    res = run_cli("run", "rr1", "-n", "400", "-t", "5", "--out", str(out), "--quiet", "--force", "--no-report")
    assert res.exit_code == 0, res.output
    assert (out / "run.json").exists() and '"population": 400' in (out / "run.json").read_text()


def test_population_too_large_is_refused_before_allocating(tmp_path):
    out = tmp_path / "huge"
    res = run_cli("run", "rr1", "--population", "9000000000", "--ledger", "all", "--out", str(out), "--quiet")
    assert res.exit_code == 2
    assert "GiB" in res.output and "--ledger" in res.output
    assert not out.exists()


def test_policy_in_own_file(tmp_path):
    text = RR1.read_text()
    head, policy = text.split("[policy]\n", 1)
    policy, response = policy.split("[response.deterrence]", 1)
    (tmp_path / "pol.toml").write_text("[policy]\n" + policy.replace("policy.", "policy."))
    sc_path = write(tmp_path, head.replace('[scenario]', 'policy = "pol.toml"\n\n[scenario]', 1)
                    + "[response.deterrence]" + response, "sc.toml")
    sc = load_scenario(sc_path)
    assert [r.points for r in sc.policy.rules] == [-5, 5, 10, -50, -20]
    (tmp_path / "pol.toml").write_text("[policy]\nstart_score = 'high'\n")
    with pytest.raises(ConfigError) as e:
        load_scenario(sc_path)
    assert "pol.toml" in str(e.value) and "start_score" in str(e.value)


def test_no_traceback_from_process(tmp_path):
    bad = write(tmp_path, "[scenario]\nname = 'x'\n")
    p = subprocess.run([sys.executable, "-m", "scorelab", "run", str(bad), "--quiet"], capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "groups" in p.stderr


def test_grade_edges_exact():
    params = compile_params(load_scenario("rr1"))
    import numpy as np

    scores = np.array([2000, 1050, 1049, 1030, 1029, 960, 959, 850, 849, 600, 599, -100])
    names = [params.grade_names[g] for g in params.grade_of(scores)]
    assert names == ["AAA", "AAA", "AA", "AA", "A", "A", "B", "B", "C", "C", "D", "D"]


def test_a_path_or_name_with_colons_is_printed_as_written(tmp_path):
    # rich would turn ":smile:" into a picture; the CLI prints users' names and paths verbatim
    src = Path(__file__).resolve().parents[2] / "src" / "scorelab" / "config" / "presets" / "rr1.toml"
    f = tmp_path / "a:smile:b.toml"
    f.write_text(src.read_text())
    r = run_cli("validate", str(f))
    assert r.exit_code == 0 and "a:smile:b.toml" in r.output.replace("\n", "")
