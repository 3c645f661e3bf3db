"""The reports tell the story: a headline that agrees with audit.json, a card per group, a glossary of every
label shown, CSV downloads, honest axes, only the comparison metrics that moved, and a sweep report."""

from __future__ import annotations

import html
import io
import json
import math
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import scorelab
from scorelab.audit.metrics import audit_run, open_run
from scorelab.audit.report import build_report, restriction_threshold
from scorelab.audit.story import fmt_rate, fmt_ratio, harms, headline
from scorelab.cli import app
from scorelab.glossary import TERMS, labels_on, metric_label
from scorelab.experiments import compare
from scorelab.experiments.report import moved
from scorelab.experiments.stats import mean_ci
from scorelab.experiments.summary import DESCRIPTIONS

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ["surveillance", "rongcheng", "national-blacklist"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("story")
    out = {}
    for p in PRESETS:
        run = scorelab.simulate(p, seed=0, out=root / p, population=20_000, days=120, workers=1)
        out[p] = (run.path, build_report(run.path))
    return out


def _audit_value(doc: dict, table: str, column: str, group: str) -> float:
    row = next(r for r in doc["tables"][table] if r["group"] == group)
    return row[column]


def _from_audit(doc: dict, h) -> dict[str, float]:
    """Each group's figure of a harm, recomputed from audit.json alone (the harm's declared source)."""
    groups = [r["group"] for r in doc["tables"]["sanctions"]]
    out = {}
    for g in groups:
        if h.key == "false_penalties":
            out[g] = 1000 * _audit_value(doc, "wrongful", "false_attributions_all_citizens", g) / \
                _audit_value(doc, "sanctions", "citizens", g)
        else:
            table, column = h.source["value"].split(".")
            v = _audit_value(doc, table, column, g)
            if v is not None:
                out[g] = 1000 * v
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_headline_agrees_with_audit_json(runs, preset):
    path, page = runs[preset]
    doc = json.loads((path / "audit.json").read_text())
    run = open_run(path)
    top = headline(run, audit_run(run))
    assert 1 <= len(top) <= 3
    text = page.read_text(encoding="utf-8")
    section = text[text.index("What this policy did"):text.index("Each group")]
    sizes = []
    for h in top:
        want = _from_audit(doc, h)
        groups = [g for g in want if g != "all"]
        for g, v in want.items():
            assert h.per_1000[g] == pytest.approx(v, rel=1e-9, abs=1e-12), (h.key, g)
        if h.key != "unequal_restriction":  # the most and least affected groups
            assert h.worst == max(groups, key=lambda g: want[g])
            assert h.best == min((g for g in groups if g != h.worst), key=lambda g: want[g])
        else:  # against the audit's own reference group, with its disparate impact
            assert h.best == doc["tables"]["sanctions"][0]["reference_group"]
            di = _audit_value(doc, "sanctions", "disparate_impact", h.worst)
            assert h.ratio == pytest.approx(di, rel=1e-9)
        assert want[h.worst] > 0
        # the sentence states the figures, and the page shows the sentence
        words = h.sentence
        size = fmt_rate(want[h.worst] / 10) + "%" if h.key == "speech_lost" else fmt_rate(want[h.worst])
        assert size in words and h.worst in words and h.best in words, words
        if h.key != "speech_lost" and want[h.best] > 0:
            assert fmt_ratio(want[h.worst] / want[h.best]) in words
        assert html.escape(words) in section
        sizes.append(h.size)
    assert sizes == sorted(sizes, reverse=True)
    # a harm left out of the headline is no larger than the last one in it
    rest = harms(run, audit_run(run))[len(top):]
    assert all(h.size <= top[-1].size for h in rest)


def test_false_penalties_name_the_sensor_of_the_event_log(runs):
    path, _ = runs["surveillance"]
    run = open_run(path)
    h = next(h for h in harms(run, audit_run(run)) if h.key == "false_penalties")
    ev = pd.read_parquet(path / "events.parquet")
    c = pd.read_parquet(path / "citizens.parquet")
    ids = set(c.loc[c["group"].astype(str) == h.worst, "citizen"])
    f = ev[ev["false_attribution"] & ev["citizen"].isin(ids) & (ev["kind"].astype(str) == "score")]
    top_sensor = f["sensor"].astype(str).value_counts().index[0]
    assert f"the {top_sensor} sensor" in h.driver
    # and the per-group false-match rates it quotes are the scenario's
    rate = dict(zip([g.name for g in run.scenario.groups],
                    run.scenario.per_group(next(s for s in run.scenario.sensors if s.name == top_sensor).false_attribution.rate)))
    assert f"1 in {1 / rate[h.worst]:,.0f}" in h.driver


@pytest.mark.parametrize("preset", PRESETS)
def test_every_label_has_a_glossary_entry_and_every_group_a_card(runs, preset):
    path, page = runs[preset]
    text = page.read_text(encoding="utf-8")
    body, gloss = text.split("id='glossary'", 1)
    entries = {html.unescape(t) for t in re.findall(r"<dt>(.*?)</dt>", gloss)}
    shown = labels_on(body)
    assert len(shown) > 40
    assert shown - entries == set(), f"labels without a glossary entry: {sorted(shown - entries)}"
    cards = re.findall(r"<div class='card[^']*'><h3>(.*?)</h3>", body)
    assert cards == [g.name for g in open_run(path).scenario.groups] + ["everyone"]


def test_tables_download_as_csv_with_the_audit_figures(runs):
    path, page = runs["surveillance"]
    text = page.read_text(encoding="utf-8")
    links = dict(re.findall(r"download='([^']+)' href='data:text/csv;charset=utf-8,([^']*)'", text))
    assert {"sanctions.csv", "wrongful.csv", "chilling.csv", "gaming.csv", "inequality.csv", "privacy.csv",
            "compliance.csv"} <= set(links)
    sanctions = pd.read_csv(io.StringIO(unquote(links["sanctions.csv"]))).set_index("group")
    doc = json.loads((path / "audit.json").read_text())
    for row in doc["tables"]["sanctions"]:
        assert sanctions.loc[row["group"], "ever_restricted_share"] == pytest.approx(row["ever_restricted_share"])
        assert sanctions.loc[row["group"], "citizens"] == row["citizens"]
    assert "<a " not in unquote(links["sanctions.csv"])  # the payload is data, not markup


def _figures(text: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"var F\d+ = (\{.*?\});\n", text)]


def test_axes_do_not_exaggerate(runs):
    path, page = runs["surveillance"]
    text = page.read_text(encoding="utf-8")
    figs = _figures(text)
    mean = next(f for f in figs if "Mean score" in json.dumps(f["layout"].get("title", "")))
    lo, hi = mean["layout"]["yaxis"]["range"]
    thr = restriction_threshold(open_run(path))
    assert thr is not None and lo <= thr < 1000 <= hi  # reaches down to where restrictions start
    dist = next(f for f in figs if "distribution" in json.dumps(f["layout"].get("title", "")))
    ticks = [dist["layout"][k].get("ticktext") for k in dist["layout"] if k.startswith("yaxis")]
    assert all(t and "100%" in t and "0.01%" in t for t in ticks)
    assert "µ" not in json.dumps(figs)
    for f in figs:  # counts and shares start at zero
        t = json.dumps(f["layout"].get("title", ""))
        if "Restricted share" in t or "cumulative" in t:
            assert f["layout"]["yaxis"]["rangemode"] == "tozero"


def test_exactness_names_the_approximate_figures(runs):
    _, page = runs["rongcheng"]
    text = page.read_text(encoding="utf-8")
    part = text[text.index("What is exact, and what is not"):text.index("<h2>The scenario")]
    assert "Every citizen is kept" in part and "counted, not estimated" in part
    assert "Approximate: <b>wrongly restricted</b>" in part and "APPROXIMATE" not in text


def test_report_progress_names_each_stage(tmp_path, runs):
    path, _ = runs["rongcheng"]
    steps = []
    build_report(path, out=tmp_path / "r.html", progress=steps.append)
    assert steps[0] == "opening the run" and steps[-1] == "writing the page" and len(steps) >= 5
    r = CliRunner().invoke(app, ["report", str(path)])
    assert r.exit_code == 0 and "report written in" in r.output


def test_every_summary_metric_has_a_label_and_meaning():
    from scorelab.glossary import METRIC_LABELS

    for metric in DESCRIPTIONS:
        label, meaning = metric_label(metric)
        assert metric in METRIC_LABELS and label == METRIC_LABELS[metric], metric
        assert meaning and meaning != "a metric a plugin or provider declared", metric
    assert metric_label("final_listed_court_share")[0] == "on court at the end"
    assert all(k.strip() == k and v for k, v in TERMS.items())


def test_comparison_shows_only_what_moved_with_labels(tmp_path):
    c = compare.run(["rongcheng", "fair-baseline"], tmp_path / "cmp", workers=1, replicates=2, population=3000,
                    days=30, seed=3)
    text = (c.root / "report.html").read_text(encoding="utf-8")
    res = c.results["fair-baseline"]
    body, gloss = text.split("id='glossary'", 1)
    table = body[body.index("what moved</h2>"):]
    shown_metrics = set(re.findall(r"<code class=muted>([^<]+)</code>", table))
    moved_metrics = {k.rpartition(".")[0] for k, p in res.items() if moved(p)}
    assert shown_metrics == moved_metrics and len(moved_metrics) >= 3
    for k, p in res.items():
        if moved(p):
            assert p.excludes_zero
    entries = {html.unescape(t) for t in re.findall(r"<dt>(.*?)</dt>", gloss)}
    assert labels_on(body) - entries == set()
    for m in moved_metrics:
        assert html.escape(metric_label(m)[0]) in table
    # the difference plot has a panel for each headline metric that moved and none for one that did not
    from scorelab.experiments.summary import HEADLINE

    titles = set(re.findall(r'"text":"([^"]+)"', text))
    for m in HEADLINE:
        if m in {k.rpartition(".")[0] for k in res}:
            assert (metric_label(m)[0] in titles) == (m in moved_metrics), m
    assert "download fair-baseline-minus-rongcheng.csv" in text


def test_moved_with_one_replicate_uses_the_stated_threshold():
    from scorelab.experiments.stats import paired

    assert moved(paired(np.array([100.0]), np.array([102.0])))
    assert not moved(paired(np.array([100.0]), np.array([100.5])))
    assert not moved(paired(np.array([1.0, 2.0]), np.array([1.0, 2.0])))
    assert moved(paired(np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.1, 4.0])))
    m, lo, hi, n = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert (m, n) == (2.0, 3) and lo == pytest.approx(2 - 4.302652729 / math.sqrt(3)) and hi > m


def test_sweep_report(tmp_path):
    sweep = tmp_path / "face<b>.toml"
    sweep.write_text('base = "rr1"\npopulation = 4000\ndays = 40\nreplicates = 3\n[parameters]\n'
                     '"sensors[camera].false_attribution.rate.rural" = { values = [0.00008, 0.002], name = "rural_false_match" }\n')
    r = CliRunner().invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "sw"), "-q", "-w", "1"])
    assert r.exit_code == 0, r.output
    page = tmp_path / "sw" / "report.html"
    assert page.is_file() and "report.html" in r.output.replace("\n", "")
    text = page.read_text(encoding="utf-8")
    assert "face&lt;b&gt;.toml" in text and "face<b>" not in text
    assert "<script src" not in text and text.count("Plotly.newPlot(") == 1
    summ = pd.read_parquet(tmp_path / "sw" / "summaries.parquet")
    s = summ[(summ["metric"] == "wrongful_penalties_per_100k") & (summ["group"] == "rural")]
    for value, d in s.groupby("rural_false_match"):
        mean, lo, hi, n = mean_ci(d["value"].to_numpy())
        assert n == 3
        assert f"{mean:,.1f}" in text or f"{mean:.3f}" in text  # the table shows the mean over the runs
    fig = json.loads(re.search(r"var S0 = (\{.*?\});\n", text).group(1))
    names = {t["name"] for t in fig["data"]}
    assert {"urban", "rural", "all"} <= names
    assert all("error_y" in t for t in fig["data"])
    body, gloss = text.split("id='glossary'", 1)
    entries = {html.unescape(t) for t in re.findall(r"<dt>(.*?)</dt>", gloss)}
    assert labels_on(body) - entries == set()
    # `scorelab report SWEEPDIR` rebuilds it
    page.unlink()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "sw")])
    assert r.exit_code == 0 and page.is_file()


def _render(page: Path, tmp_path: Path) -> str:
    import subprocess

    from test_report import CATCHER, CHROMIUM_FLAGS, chromium

    exe = chromium()
    tmp_path.mkdir(parents=True, exist_ok=True)
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + CATCHER, 1), encoding="utf-8")
    r = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                        "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    assert "</html>" in r.stdout, r.stderr[-2000:]
    errs = re.search(r'<pre id="__errs">(.*?)</pre>', r.stdout, flags=re.S)
    assert errs is not None and json.loads(errs.group(1).replace("&quot;", '"')) == []
    return r.stdout


def test_sweep_and_comparison_pages_render_in_chromium(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('base = "rr1"\npopulation = 3000\ndays = 30\nreplicates = 2\n[parameters]\n'
                     '"sensors[camera].false_attribution.rate.rural" = [0.00008, 0.004]\n')
    from scorelab.experiments import sweep as sweep_mod
    from scorelab.experiments.sweep_report import build_sweep_report

    sweep_mod.start(sweep, tmp_path / "sw", workers=1)
    dom = _render(build_sweep_report(tmp_path / "sw"), tmp_path / "a")
    plots = re.findall(r"<div id=\"sweep-plot-\d+\" class=\"plot[^\"]*\"[^>]*>(.*?)</div>\s*<p", dom, flags=re.S)
    assert plots and all("main-svg" in p for p in plots)
    c = compare.run(["rr1", str(ROOT / "examples/policies/rr1-criticism-halved.toml")], tmp_path / "cmp", workers=1,
                    replicates=2, population=2000, days=20, seed=7)
    dom = _render(c.root / "report.html", tmp_path / "b")
    assert dom.count("plotly-graph-div") >= 1 and dom.count("main-svg") >= dom.count("plotly-graph-div")
