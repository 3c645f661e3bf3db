"""`scorelab lab` without a browser: the knobs, the JSON API (and its 400s), saving a view, the command."""

import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pandas as pd
import pytest
from typer.testing import CliRunner

import scorelab
from scorelab.cli import app
from scorelab.lab.knobs import knobs

SMALL = {"population": 3000, "days": 30, "seed": 3}


def call(url, path, body=None, ctype="application/json", raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path.lstrip("/"), data=data, headers={"Content-Type": ctype} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_knobs_cover_rules_sensors_blacklists_due_process_and_response():
    paths = {k.path for k in knobs(scorelab.load("rr1"))}
    assert {"policy.rules[public_criticism].points", "sensors[camera].coverage.rural",
            "sensors[camera].false_attribution.rate.rural", "policy.blacklists[court_defaulters].duration_days",
            "response.deterrence.factor", "response.gaming[0].factor"} <= paths
    assert "policy.due_process" not in paths
    assert "policy.due_process" in {k.path for k in knobs(scorelab.load("fair-baseline"))}
    for name in [p.name for p in scorelab.list_presets()]:  # every preset's knobs start at its own values
        sc = scorelab.load(name)
        for k in knobs(sc):
            assert k.kind == "bool" or k.min <= k.value <= k.max, (name, k.path)


def test_page_and_plotly_are_served_locally(lab_url):
    status, ctype, page = call(lab_url, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert b'src="/static/plotly.min.js"' in page and b"https://" not in page
    status, _, js = call(lab_url, "/static/plotly.min.js")
    assert status == 200 and len(js) > 1_000_000 and b"Plotly" in js[:5000]
    status, _, body = call(lab_url, "/api/presets")
    assert status == 200 and "rongcheng" in [p["name"] for p in json.loads(body)["presets"]]
    assert call(lab_url, "/nope")[0] == 404


def test_view_compares_the_changed_policy_with_the_unchanged_on_the_same_people(lab_url):
    body = {"preset": "rr1", **SMALL, "changes": {"sensors[camera].false_attribution.rate.rural": 0.002,
                                                   "policy.rules[public_criticism].points": 0}}
    status, _, raw = call(lab_url, "/api/view", body)
    assert status == 200, raw
    v = json.loads(raw)
    base = {r["group"]: r for r in v["baseline"]["groups"]}
    new = {r["group"]: r for r in v["changed"]["groups"]}
    assert new["rural"]["wrongful_penalties"] > 5 * max(1, base["rural"]["wrongful_penalties"])
    assert base["all"]["population"] == 3000 and set(base) == {"urban", "rural", "all"}
    assert len(v["baseline"]["criticism"]["day"]) == 30
    assert abs(sum(v["changed"]["distribution"]["groups"]["all"]["share"]) - 1) < 1e-9
    flipped = {f["principle"]: (f["baseline"], f["changed"]) for f in v["flips"]}
    assert flipped.get("Fair and legitimate processing") == ("fail", "pass")  # no more points for criticism
    assert v["command_preview"] == "scorelab run FILE.toml --population 3000 --days 30 --seed 3 --out runs/OUT"
    again = json.loads(call(lab_url, "/api/view", body)[2])
    assert again["cached"] == [True, True] and again["changed"] == v["changed"]
    unchanged = json.loads(call(lab_url, "/api/view", {**body, "changes": {}})[2])
    assert unchanged["changed"] == unchanged["baseline"] == v["baseline"] and unchanged["flips"] == []
    peer = json.loads(call(lab_url, "/api/view", {"preset": "nosedive", **SMALL, "changes": {"peer.status": 2.0}})[2])
    assert peer["changed"]["groups"] != peer["baseline"]["groups"]


@pytest.mark.parametrize("body, field, words", [
    ({"preset": "utopia"}, "preset", "rongcheng"),
    ({"preset": "rr1", "population": 10}, "population", "a whole number from 100"),
    ({"preset": "rr1", "days": 1.5}, "days", "a whole number"),
    ({"preset": "rr1", "changes": {"policy.rules[public_criticism].points": 10_000}}, "policy.rules[public_criticism].points",
     "a whole number from -80 to 80"),
    ({"preset": "rr1", "changes": {"sensors[camera].coverage.rural": "high"}}, "sensors[camera].coverage.rural",
     "a number from 0 to 1"),
    ({"preset": "rr1", "changes": {"scenario.population": 5}}, "scenario.population", "GET /api/knobs"),
    ({"preset": "rr1", "colour": "red"}, "colour", "preset, population"),
    ({"preset": "rr1", "changes": [1]}, "changes", "an object"),
])
def test_bad_requests_are_400_with_the_field_and_what_is_allowed(lab_url, body, field, words):
    status, ctype, raw = call(lab_url, "/api/view", {**SMALL, **body})
    assert status == 400 and ctype.startswith("application/json")
    err = json.loads(raw)
    assert err["field"] == field and words in err["allowed"], err
    assert "Traceback" not in err["error"]


def test_malformed_posts_are_refused(lab_url):
    assert call(lab_url, "/api/view", raw=b"{nope")[0] == 400
    assert call(lab_url, "/api/view", {"preset": "rr1"}, ctype="text/plain")[0] == 415
    assert call(lab_url, "/api/knobs?preset=utopia")[0] == 400


def test_save_writes_a_run_directory_and_the_printed_command_reproduces_it(lab_url, tmp_path):
    body = {"preset": "rr1", **SMALL, "changes": {"policy.rules[public_criticism].points": -60},
            "out": str(tmp_path / "view")}
    status, _, raw = call(lab_url, "/api/save", body)
    assert status == 200, raw
    saved = json.loads(raw)
    run = scorelab.Run(tmp_path / "view")
    assert run.manifest["seed"] == 3 and run.manifest["population"] == 3000
    toml = (tmp_path / "view.toml").read_text()
    assert saved["command"] in toml and "points = -60" in toml
    assert call(lab_url, "/api/save", body)[0] == 400  # it exists now
    cmd = saved["command"].split()
    assert cmd[:2] == ["scorelab", "run"]
    res = CliRunner().invoke(app, cmd[1:] + ["--quiet", "--no-report"])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(scorelab.Run(tmp_path / "view-rerun").metrics, run.metrics)


def test_cli_mistakes_exit_2():
    before = _lab_dirs()
    r = CliRunner().invoke(app, ["lab", "utopia", "--no-browser"])
    assert r.exit_code == 2 and "not a preset" in r.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(app, ["lab", "rr1", "--port", str(port), "--no-browser"])
    assert r.exit_code == 2 and f"port {port} is in use" in r.output
    assert CliRunner().invoke(app, ["lab", "--port", "70000", "--no-browser"]).exit_code == 2
    assert not _lab_dirs() - before  # nothing simulated, nothing left behind


def _lab_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "scorelab-lab-*")))


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_lab_command_serves_until_stopped_and_removes_its_runs(sig):
    """The real command in a subprocess: prints its address, answers, stops on Ctrl-C or kill without a
    traceback, and removes its working folder of runs."""
    import signal

    before = _lab_dirs()
    p = subprocess.Popen([sys.executable, "-m", "scorelab", "lab", "rr1", "--port", "0", "--no-browser"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        url = line.split()[2].split("?")[0]
        assert url.startswith("http://127.0.0.1:")
        assert call(url, "/api/view", {"preset": "rr1", "population": 500, "days": 5})[0] == 200
        assert len(_lab_dirs() - before) == 1
    finally:
        p.send_signal(getattr(signal, sig))
        out, err = p.communicate(timeout=20)
    assert "Traceback" not in err and p.returncode == 0
    assert _lab_dirs() == before
