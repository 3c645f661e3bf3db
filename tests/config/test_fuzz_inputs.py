"""Fuzzing the three input formats (scenario, policy, sweep): valid files broken in one place.

Each example takes a shipped preset (or a valid sweep file), changes one value to something the format
must refuse (a wrong type, a huge number, NaN or ±inf, an unknown key, absurd nesting), writes it, and
runs the command a user would. Whatever the change, the command must end with exit status 2 and one
`error:` line that names the file and the field, without a traceback, and write nothing.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from scorelab.cli import app
from scorelab.config.loader import _presets_dir

PRESETS = sorted(p.stem for p in _presets_dir().glob("*.toml"))
runner = CliRunner()
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _data(preset: str) -> dict[str, Any]:
    return tomllib.loads((_presets_dir() / f"{preset}.toml").read_text())


def leaves(data: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, value) of every number and boolean of a TOML document."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out += leaves(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += leaves(v, path + (i,))
    elif isinstance(data, (bool, int, float)):
        out.append((path, data))
    return out


def tables(data: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every table (dict) of a TOML document that is a model, not a {group: value} map."""
    out = []
    if isinstance(data, dict):
        if path and path[-1] not in ("rate", "coverage", "initial", "behaviour_mean", "prices", "contexts", "parameters"):
            out.append(path)
        for k, v in data.items():
            out += tables(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += tables(v, path + (i,))
    return out


def put(data: Any, path: tuple, value: Any) -> Any:
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return data


def bad_for(value: Any) -> st.SearchStrategy:
    """Values the format must refuse where ``value`` (a number or boolean) stood."""
    nonfinite = st.sampled_from([math.nan, math.inf, -math.inf])
    if isinstance(value, bool):
        return st.one_of(st.sampled_from(["yes", "off", "true", 1, 0, 1.0]), nonfinite)
    huge = st.sampled_from([10**30, -(10**30)])
    wrong = st.sampled_from([True, False, "10000", "0.7", "-5", [1, 2], {"x": 1}])
    return st.one_of(wrong, huge, nonfinite)


def field_name(path: tuple) -> str:
    """The last named part of a path (what the message must name)."""
    return str(next(p for p in reversed(path) if isinstance(p, str)))


def assert_refused(res, tmp_path: Path, inputs: set[str], *names: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    out = res.output
    assert out.startswith("error:") and "Traceback" not in out, out
    assert len(out) < 2000, "an error message is short (values are shortened)"
    for n in names:
        assert n in out, (n, out)
    written = {p.name for p in tmp_path.iterdir()} - inputs
    assert not written, f"nothing may be written, found {written}"


def _toml(data: dict) -> str:
    return tomli_w.dumps(data)


@pytest.mark.parametrize("preset", PRESETS)
@SETTINGS
@given(st.data())
def test_scenario_with_one_wrong_value_is_refused(tmp_path, preset, data):
    doc = _data(preset)
    path, value = data.draw(st.sampled_from(leaves(doc)), label="leaf")
    bad = data.draw(bad_for(value), label="bad value")
    put(doc, path, bad)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        f = tmp / "scenario.toml"
        f.write_text(_toml(doc))
        if (_presets_dir() / preset).is_dir():  # the preset's CSV files (start distributions), read beside it
            shutil.copytree(_presets_dir() / preset, tmp / preset)
        # small runs (-n/-t), except where the mutation is the size itself (the options would replace it)
        size = [] if path in (("scenario", "population"), ("scenario", "days")) else ["-n", "100", "-t", "2"]
        res = runner.invoke(app, ["run", str(f), "--out", str(tmp / "out"), *size, "--quiet", "--no-report"])
        assert_refused(res, tmp, {"scenario.toml", preset}, str(f))
        if not isinstance(bad, dict):  # a table where a number was: the message may name the table's key instead
            assert field_name(path) in res.output, (path, bad, res.output)


@pytest.mark.parametrize("preset", ["rr1", "sesame", "nosedive"])
@SETTINGS
@given(st.data())
def test_unknown_key_anywhere_lists_the_allowed_keys(tmp_path, preset, data):
    doc = _data(preset)
    where = data.draw(st.sampled_from([()] + tables(doc)), label="table")
    node = doc
    for p in where:
        node = node[p]
    key = data.draw(st.sampled_from(["bogus", "pointz", "Population", "x_y"]), label="key")
    node[key] = 1
    f = tmp_path / "scenario.toml"
    f.write_text(_toml(doc))
    res = runner.invoke(app, ["validate", str(f)])
    assert_refused(res, tmp_path, {"scenario.toml"}, str(f), key, "unknown key")
    assert "allowed:" in res.output


@SETTINGS
@given(depth=st.integers(min_value=40, max_value=800), where=st.sampled_from(["list", "table"]))
def test_deep_nesting_is_refused(tmp_path, depth, where):
    base = (_presets_dir() / "rr1.toml").read_text()
    nested = "[" * depth + "1" + "]" * depth if where == "list" else "{a = " * depth + "1" + "}" * depth
    f = tmp_path / "scenario.toml"
    f.write_text(base.replace("population = 670000", f"population = {nested}"))
    res = runner.invoke(app, ["validate", str(f)])
    assert_refused(res, tmp_path, {"scenario.toml"}, str(f))


@SETTINGS
@given(st.data())
def test_standalone_policy_with_one_wrong_value_is_refused(tmp_path, data):
    doc = _data("rr1")["policy"]
    path, value = data.draw(st.sampled_from(leaves(doc)), label="leaf")
    bad = data.draw(bad_for(value), label="bad value")
    put(doc, path, bad)
    f = tmp_path / "policy.toml"
    f.write_text(_toml(doc))
    res = runner.invoke(app, ["compliance", str(f), "--json", str(tmp_path / "c.json")])
    assert_refused(res, tmp_path, {"policy.toml"}, str(f))


SWEEP = {"base": "rr1", "population": 500, "days": 3, "replicates": 2, "seed": 1,
         "parameters": {"policy.rules[public_criticism].points": [-20, -10],
                        "sensors[camera].false_attribution.rate.rural": {"values": [0.0001, 0.001]},
                        "response.deterrence.factor": {"low": 0.5, "high": 1.0}},
         "random": {"n": 3, "seed": 2}}


@SETTINGS
@given(st.data())
def test_sweep_with_one_wrong_value_is_refused(tmp_path, data):
    import copy

    doc = copy.deepcopy(SWEEP)
    path, value = data.draw(st.sampled_from(leaves(doc)), label="leaf")
    bad = data.draw(bad_for(value), label="bad value")
    if path[0] == "parameters" and isinstance(bad, str) and len(path) > 2 and path[2] == "values" or \
            (path[0] == "parameters" and len(path) == 3 and isinstance(path[2], int) and isinstance(bad, str)):
        bad = True  # a string is a legal value of some parameter (a name); a boolean is not legal for these
    put(doc, path, bad)
    f = tmp_path / "sweep.toml"
    f.write_text(_toml(doc))
    res = runner.invoke(app, ["sweep", str(f), "--out", str(tmp_path / "out"), "--quiet", "--workers", "1"])
    assert_refused(res, tmp_path, {"sweep.toml"}, str(f))


def test_sweep_values_true_false_are_not_points(tmp_path):
    f = tmp_path / "sweep.toml"
    f.write_text('base = "rr1"\npopulation = 500\ndays = 3\n[parameters]\n"policy.rules[public_criticism].points" = [true, false]\n')
    res = runner.invoke(app, ["sweep", str(f), "--out", str(tmp_path / "out"), "--quiet"])
    assert_refused(res, tmp_path, {"sweep.toml"}, "policy.rules[4].points", "valid integer")


@pytest.mark.parametrize("points", [-3_000_000_000, 2**63 - 1, 1_000_000_000])
def test_points_that_int32_cannot_hold_are_refused_never_wrapped(tmp_path, points):
    text = (_presets_dir() / "rr1.toml").read_text().replace("points = -5\n", f"points = {points}\n", 1)
    f = tmp_path / "scenario.toml"
    f.write_text(text)
    res = runner.invoke(app, ["run", str(f), "--out", str(tmp_path / "out"), "-n", "100", "-t", "2", "--quiet"])
    assert_refused(res, tmp_path, {"scenario.toml"}, str(f), "policy")
    assert "1000000000" in res.output.replace(",", ""), "the message states the limit"


def test_long_values_are_shortened_in_messages(tmp_path):
    text = (_presets_dir() / "rr1.toml").read_text().replace("population = 670000", f'population = "{"9" * 34000}"')
    f = tmp_path / "scenario.toml"
    f.write_text(text)
    res = runner.invoke(app, ["validate", str(f)])
    assert_refused(res, tmp_path, {"scenario.toml"}, "scenario.population", "34,002 characters")


def test_model_errors_name_their_field_once(tmp_path):
    text = (_presets_dir() / "sesame.toml").read_text().replace("low = 350", "low = 1350", 1)
    f = tmp_path / "scenario.toml"
    f.write_text(text)
    res = runner.invoke(app, ["validate", str(f)])
    assert_refused(res, tmp_path, {"scenario.toml"}, "policy.composite")
    assert "policy.composite.policy" not in res.output


def test_out_of_range_options_blame_the_option(tmp_path):
    for opt, value in (("-n", "100000000000"), ("-t", "200000")):
        res = runner.invoke(app, ["run", "rr1", opt, value, "--out", str(tmp_path / "out"), "--quiet"])
        assert_refused(res, tmp_path, set(), "--population" if opt == "-n" else "--days")
        assert "presets" not in res.output


def test_ledger_option_takes_ascii_digits_only(tmp_path):
    res = runner.invoke(app, ["run", "rr1", "--ledger", "²", "--out", str(tmp_path / "out"), "--quiet"])
    assert_refused(res, tmp_path, set(), "--ledger")
