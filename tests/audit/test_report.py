"""The HTML report: self-contained, escaped, and rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _auditlib import golden_dict, rr1_dict, simulate_dict
from scorelab.audit.report import build_report
from scorelab.cli import app

ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts"
EVIL = "<script>alert('pwned')</script> & <img src=x onerror=alert(1)>"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
# Captures every uncaught error and console.error into the DOM, so --dump-dom reports them.
CATCHER = """<script>window.__errs=[];window.addEventListener('error',function(e){window.__errs.push('error: '+e.message)});
var __ce=console.error;console.error=function(){window.__errs.push('console.error: '+Array.prototype.join.call(arguments,' '));__ce.apply(console,arguments)};
window.addEventListener('load',function(){setTimeout(function(){var d=document.createElement('pre');d.id='__errs';
d.textContent=JSON.stringify(window.__errs);document.body.appendChild(d)},0)});</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (.ci/run installs Debian's `chromium` package)")


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory):
    data = rr1_dict(5_000, 40)
    data["scenario"]["description"] = EVIL
    data["policy"]["description"] = EVIL
    data["policy"]["governance"]["recipients"][0]["purpose"] = "</script><script>alert(2)</script>"
    data["policy"]["governance"]["purpose"] = EVIL
    return simulate_dict(data, tmp_path_factory.mktemp("evil") / "run", seed=2)


@pytest.fixture(scope="module")
def page(evil_run) -> Path:
    return build_report(evil_run.path)


def test_self_contained_and_escaped(page):
    text = page.read_text(encoding="utf-8")
    assert "alert('pwned')" not in text and "<img src=x" not in text and "alert(2)</script>" not in text
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in text
    assert not re.search(r"<script[^>]+src=", text) and not re.search(r"<link[^>]+href=", text)  # nothing fetched
    assert text.count("Plotly.newPlot(") == 6 and text.count('class="plot"') == 6
    for section in ("The scenario", "Who was sanctioned", "Wrongful penalties", "The chilling effect",
                    "Grade transitions", "Compliance", "Privacy exposure", "Gaming"):
        assert section in text
    assert (page.parent / "audit.json").is_file() and (page.parent / "compliance.json").is_file()


def test_renders_in_headless_chromium(page, tmp_path):
    exe = chromium()
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + CATCHER, 1), encoding="utf-8")
    flags = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
                              "--enable-logging=stderr", "--v=0"]
    r = subprocess.run([exe, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    dom = r.stdout
    assert "</html>" in dom, f"chromium printed no DOM (exit {r.returncode}): {r.stderr[-2000:]}"
    plots = re.findall(r'<div id="(plot-\d+)" class="plot[^"]*"[^>]*>(.*?)</figure>', dom, flags=re.S)
    assert len(plots) == 6
    for pid, inner in plots:
        assert "main-svg" in inner, f"{pid} did not render"
    errs = re.search(r'<pre id="__errs">(.*?)</pre>', dom, flags=re.S)
    assert errs is not None, "the error catcher did not run"
    assert json.loads(errs.group(1).replace("&quot;", '"')) == []
    console_errors = [line for line in r.stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
    assert console_errors == []
    # keep a screenshot as a test artefact
    ARTEFACTS.mkdir(exist_ok=True)
    shot = ARTEFACTS / "report.png"
    r = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--virtual-time-budget=15000",
                        "--window-size=1280,7000", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 50_000, r.stderr[-2000:]


def test_golden_report_builds(tmp_path):
    run = simulate_dict(golden_dict(), tmp_path / "run")
    page = build_report(run.path)
    text = page.read_text(encoding="utf-8")
    assert "hand-computed &lt;b&gt;outcome&lt;/b&gt; &amp; &quot;quotes&quot;" in text


def test_run_writes_the_report_and_prints_its_path(tmp_path):
    out = tmp_path / "r1"
    r = CliRunner().invoke(app, ["run", "rr1", "-n", "3000", "-t", "20", "--out", str(out), "-q", "-w", "1"])
    assert r.exit_code == 0, r.output
    assert (out / "report.html").is_file()
    assert "report.html" in r.output.replace("\n", "")
    out2 = tmp_path / "r2"
    r = CliRunner().invoke(app, ["run", "rr1", "-n", "3000", "-t", "20", "--out", str(out2), "-q", "-w", "1", "--no-report"])
    assert r.exit_code == 0, r.output
    assert not (out2 / "report.html").exists() and (out2 / "run.json").is_file()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such run directory" in r.output
    r = CliRunner().invoke(app, ["report", str(out2)])
    assert r.exit_code == 0 and (out2 / "report.html").is_file()
