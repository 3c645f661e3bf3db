"""HTML pieces of the reports: escaping, numbers in words, the page shell, tables with CSV downloads,
the compliance table and the stylesheet. Every user string goes through `e` (html.escape)."""

from __future__ import annotations

import html
import json
import math
from typing import Any

import numpy as np
import pandas as pd




PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(v: Any, pct: bool = False, digits: int = 3) -> str:
    if v is None or isinstance(v, str):
        return e(v if v is not None else "")
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return e(v)
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if not math.isfinite(f):
        return "–"
    if pct:
        return f"{f:.2%}"
    if f.is_integer() and abs(f) < 1e15:
        return f"{int(f):,}"
    return f"{f:,.{digits}g}" if abs(f) < 1000 else f"{f:,.0f}"


def _safe_json(obj: Any) -> str:
    from plotly.utils import PlotlyJSONEncoder

    s = json.dumps(obj, cls=PlotlyJSONEncoder)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Page:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures: list[tuple[str, str]] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def figure(self, fig, caption: str) -> None:
        fid = f"plot-{len(self.figures) + 1}"
        fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), height=fig.layout.height or 380)
        self.figures.append((fid, _safe_json(fig.to_plotly_json())))
        self.add(f'<figure><div id="{fid}" class="plot"></div><figcaption>{caption}</figcaption></figure>')


# ------------------------------------------------------------------ words




def csv_link(df: pd.DataFrame, name: str) -> str:
    """A link that saves ``df`` (every column, full precision) as NAME.csv: a data: URI, so it works offline."""
    from urllib.parse import quote

    text = df.to_csv(index=df.index.name is not None or not isinstance(df.index, pd.RangeIndex))
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "table"
    return (f"<a class='csv' download='{safe}.csv' href='data:text/csv;charset=utf-8,{quote(text, safe='')}'>"
            f"download {e(safe)}.csv</a>")


def html_table(df: pd.DataFrame, columns: list[tuple[str, str]] | None = None, pct: set[str] = frozenset(),
               ci: dict[str, tuple[str, str]] | None = None, index_name: str = "group", csv: str | None = None) -> str:
    ci = ci or {}
    cols = [(c, label) for c, label in columns if c in df.columns] if columns else [(c, c.replace("_", " ")) for c in df.columns]
    head = f"<tr><th>{e(index_name)}</th>" + "".join(f"<th>{e(label)}</th>" for _, label in cols) + "</tr>"
    body = []
    for idx, row in df.iterrows():
        cells = [f"<td>{e(idx)}</td>"]
        for c, _ in cols:
            v = row.get(c)
            s = _num(v, pct=c in pct)
            if c in ci and isinstance(v, (int, float, np.floating)) and math.isfinite(float(v)):
                lo, hi = row.get(ci[c][0]), row.get(ci[c][1])
                if lo is not None and hi is not None and math.isfinite(float(lo)):
                    s += f" <span class='ci'>[{_num(lo, pct=c in pct)}, {_num(hi, pct=c in pct)}]</span>"
            flag = " class='flag'" if c == "disparate_impact" and bool(row.get("disparate_impact_flag", False)) else ""
            cells.append(f"<td{flag}>{s}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='t'>{head}{''.join(body)}</table>" + (csv_link(df, csv) if csv else "")


def compliance_table(df: pd.DataFrame) -> str:
    rows = []
    for _, r in df.iterrows():
        rows.append(
            f"<tr class='{e(r['verdict'])}'><td>{e(r['framework'])}<br><b>{e(r['article'])}</b></td><td>{e(r['principle'])}</td>"
            f"<td class='v'>{e(r['verdict'])}</td><td>{'<br>'.join(e(c) for c in r['cause'].split(chr(10)))}"
            + (f"<div class='ev'>Evidence: {e(r['evidence'])}</div>" if r["evidence"] else "")
            + (f"<div class='ev'>Needs a run: {e(r['needs_run'])}</div>" if r["needs_run"] else "")
            + f"</td><td><details><summary>{'quoted' if r['quoted'] else 'paraphrased'}</summary>"
              f"<blockquote>{e(r['text'])}</blockquote></details></td></tr>")
    return ("<table class='t compliance'><tr><th>source</th><th>principle</th><th>verdict</th><th>why</th>"
            f"<th>text judged against</th></tr>{''.join(rows)}</table>" + csv_link(df, "compliance"))


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #eee;padding-bottom:.2em;margin-top:2em}
table.t{border-collapse:collapse;margin:.8em 0;font-size:.9em} table.t td,table.t th{border:1px solid #ddd;padding:.3em .5em;vertical-align:top}
table.t th{background:#f6f6f6;text-align:left} td.flag{background:#fde0dc;font-weight:bold}
.ci{color:#777;font-size:.85em} .note{color:#555;font-size:.9em} figure{margin:1em 0} figcaption{color:#555;font-size:.9em}
tr.fail td.v{background:#d62728;color:#fff;font-weight:bold} tr.warn td.v{background:#ffbf47;font-weight:bold}
tr.pass td.v{background:#2ca02c;color:#fff;font-weight:bold} .ev{color:#555;font-size:.9em;margin-top:.3em}
blockquote{margin:.3em 0;font-style:italic;color:#333} .kpi{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:.5em .8em;margin:.3em}
.kpi b{display:block;font-size:1.4em}
.warnbox{background:#fff4d6;border-left:4px solid #ffbf47;padding:.5em .8em;font-size:.9em}
.headline{background:#f4f8fc;border-left:5px solid #1f77b4;padding:.3em 1.2em .6em;margin-top:1.2em}
.headline h2{border:0;margin-top:.6em} .headline li{margin:.5em 0;font-size:1.08em;line-height:1.4}
.driver{color:#444;font-size:.92em} .headline li.none{list-style:none;color:#555;font-size:.95em} .cards{display:flex;flex-wrap:wrap;gap:.8em}
.card{border:1px solid #ddd;border-radius:8px;padding:.4em .9em;flex:0 1 270px}
.card.flagged{border-color:#d62728;box-shadow:0 0 0 1px #d62728 inset} .card h3{margin:.3em 0}
.card dl{display:grid;grid-template-columns:1fr auto;gap:.15em .8em;margin:.3em 0;font-size:.9em}
.card dt{color:#555} .card dd{margin:0;text-align:right;font-weight:600}
a.csv{font-size:.8em;color:#1f77b4;display:inline-block;margin:-.4em 0 .8em}
dl.glossary{display:grid;grid-template-columns:minmax(180px,max-content) 1fr;gap:.25em 1em;font-size:.9em}
dl.glossary dt{font-weight:600} dl.glossary dd{margin:0;color:#333}
"""
