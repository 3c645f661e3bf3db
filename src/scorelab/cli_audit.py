"""`scorelab audit`, `compliance`, `report` and `explain`: what a run did to people, read from its event log
(scorelab.audit), printed with rich."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .cli_common import _build_with_status, _output_file, _positive, app, console, err, fail
from .config.loader import ConfigError


def _audit_options(counterfactual: str, cf_population: Optional[int]) -> dict:
    if counterfactual not in ("fast", "full"):
        fail(f"--counterfactual: {counterfactual!r} is not allowed; use fast or full")
    _positive("--counterfactual-population", cf_population)
    if cf_population is not None:
        counterfactual = "full"
    return {"counterfactual": counterfactual, "counterfactual_population": cf_population}


LABELS = {"restricted_final_share": "restricted at end", "restricted_mean_share": "restricted (mean)",
          "ever_restricted_share": "ever restricted", "disparate_impact": "disparate impact",
          "restricted_days_mean": "days restricted", "false_positive_rate": "FPR (no misconduct)",
          "false_negative_rate": "FNR (misconduct free)", "innocent_among_restricted": "innocent among restricted",
          "false_attributions_all_citizens": "false attrib. (all)", "citizens_falsely_attributed": "citizens hit (kept)",
          "bought_share_of_points_awarded": "bought share", "events_induced_by_gaming": "induced events"}


def _rich_table(title: str, df, index: str = "group", pct: tuple[str, ...] = (), columns: Optional[list[str]] = None) -> Table:
    import math

    from rich.markup import escape

    t = Table(title=title, title_justify="left")
    t.add_column(index)
    cols = columns or [c for c in df.columns if not c.endswith(("_ci_low", "_ci_high"))]
    for c in cols:
        t.add_column(LABELS.get(c, c.replace("_", " ")), justify="right", overflow="fold")
    for idx, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, str):
                cells.append(escape(v))
            elif isinstance(v, bool) or type(v).__name__ == "bool_":
                cells.append("yes" if v else "no")
            elif isinstance(v, float) and math.isinf(v):
                cells.append("∞" if v > 0 else "-∞")
            elif v is None or (isinstance(v, float) and not math.isfinite(v)):
                cells.append("-")
            else:
                s = f"{v:.2%}" if c in pct else (f"{int(v):,}" if float(v).is_integer() else f"{v:.4g}")
                lo, hi = f"{_ci_name(c)}_ci_low", f"{_ci_name(c)}_ci_high"
                if lo in row.index and isinstance(row[lo], float) and math.isfinite(row[lo]):
                    s += f"\n[dim]\\[{row[lo]:.2%}, {row[hi]:.2%}][/]" if c in pct else f"\n[dim]\\[{row[lo]:.3g}, {row[hi]:.3g}][/]"
                cells.append(s)
        t.add_row(escape(str(idx)), *cells)
    return t


def _ci_name(col: str) -> str:
    from .audit.metrics import _ci_base

    return _ci_base(col)


@app.command()
def audit(
    run_dir: Path = typer.Argument(..., help="a run directory (as printed by `scorelab run`)"),
    counterfactual: str = typer.Option("fast", "--counterfactual",
                                       help="fast: re-draw the run's own random streams; full: re-simulate without the policy"),
    counterfactual_population: Optional[int] = typer.Option(
        None, "--counterfactual-population", help="re-simulate the counterfactual with fewer citizens (implies full)"),
) -> None:
    """Audit a run: sanctions by group, wrongful sanctions, chilling effect, gaming, inequality, privacy.

    Writes audit.parquet, audit.json and chilling.parquet into the run directory.
    """
    from .audit.metrics import write_audit

    opts = _audit_options(counterfactual, counterfactual_population)
    try:
        res = write_audit(run_dir, **opts)
    except ConfigError as e:
        fail(str(e))
        return
    t = res["tables"]
    pct_s = ("restricted_final_share", "restricted_mean_share", "ever_restricted_share", "false_positive_rate",
             "false_negative_rate", "innocent_among_restricted")
    def present(df, cols):
        return [c for c in cols if c in df.columns]

    console.print(_rich_table("Sanctions by group (95% bootstrap intervals below)", t["sanctions"], pct=pct_s,
                              columns=present(t["sanctions"], ["restricted_final_share", "restricted_mean_share",
                                                               "ever_restricted_share", "disparate_impact",
                                                               "restricted_days_mean", *pct_s[3:]])))
    console.print(_rich_table("Wrongful sanctions (false attributions alone)", t["wrongful"],
                              columns=present(t["wrongful"], ["false_attributions_all_citizens", "citizens_falsely_attributed",
                                                              "final_score_changed", "grade_changed", "listing_changed",
                                                              "wrongly_restricted", "wrongful_restriction_days"])))
    console.print(_rich_table("Chilling effect (true speech vs the counterfactual without the policy)", t["chilling"],
                              pct=("speech_fall_share",),
                              columns=["speech_run", "speech_counterfactual", "speech_fall", "speech_fall_share"]))
    console.print(_rich_table("Gaming", t["gaming"], pct=("bought_share_of_points_awarded",),
                              columns=["bought_behaviours", "points_bought", "points_earned_by_conduct",
                                       "bought_share_of_points_awarded", "events_induced_by_gaming", "money_collected"]))
    if "inequality" not in t:
        _print_notes(res, run_dir)
        return
    console.print(_rich_table("Inequality and mobility", t["inequality"],
                              pct=("bottom_share_final", "ever_bottom_share", "stuck_in_bottom_share"),
                              columns=["gini", "score_p10", "score_p50", "score_p90", "bottom_share_final",
                                       "ever_bottom_share", "stuck_in_bottom_share"]))
    console.print(_rich_table("Grade transitions (start -> end, kept citizens)", t["transitions"], index="from"))
    console.print(_rich_table("Privacy exposure", t["privacy"], index="metric"))
    _print_notes(res, run_dir)


def _print_notes(res: dict, run_dir: Path) -> None:
    from rich.markup import escape

    for k, v in res["notes"].items():
        console.print(f"[dim]{k}: {escape(v)}[/]", highlight=False)
    console.print(f"written: {run_dir / 'audit.parquet'}, {run_dir / 'audit.json'}, {run_dir / 'chilling.parquet'}")


@app.command()
def compliance(
    target: str = typer.Argument(..., help="a run directory, a scenario (preset or file), or a standalone policy TOML"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the table as JSON to this file"),
) -> None:
    """Check a policy (and a run's outcomes) against the UN data-protection principles, GDPR and the EU AI Act."""
    from rich.markup import escape

    from .audit.compliance import compliance as check

    if json_out is not None:
        _output_file("--json", json_out)
    try:
        df = check(target)
    except ConfigError as e:
        fail(str(e))
        return
    colour = {"pass": "green", "warn": "yellow", "fail": "red"}
    t = Table(title=f"Compliance of {target}", title_justify="left", show_lines=True)
    for c in ("source", "principle", "verdict", "why", "text judged against"):
        t.add_column(c, overflow="fold")
    for _, r in df.iterrows():
        why = escape(r["cause"]) + (f"\n[dim]evidence: {escape(r['evidence'])}[/]" if r["evidence"] else "") + (
            f"\n[dim]needs a run: {escape(r['needs_run'])}[/]" if r["needs_run"] else "")
        t.add_row(escape(r["source"]), escape(r["principle"]), f"[bold {colour[r['verdict']]}]{r['verdict']}[/]",
                  why, escape(r["text"]))
    console.print(t)
    counts = df["verdict"].value_counts()
    console.print(f"{counts.get('fail', 0)} fail, {counts.get('warn', 0)} warn, {counts.get('pass', 0)} pass")
    if json_out is not None:
        from .atomic import write_atomic

        write_atomic(json_out, lambda p: df.to_json(p, orient="records", indent=1))
        console.print(f"written: {json_out}")
    if counts.get("fail", 0):  # a status a CI can use: 1 when any check fails (0 with warnings alone)
        raise typer.Exit(1)


@app.command()
def report(
    directory: Path = typer.Argument(..., help="a run directory, a sweep directory or a comparison directory"),
    counterfactual: str = typer.Option("fast", "--counterfactual", help="fast or full (see `scorelab audit`; runs only)"),
    counterfactual_population: Optional[int] = typer.Option(None, "--counterfactual-population"),
) -> None:
    """(Re)write DIR/report.html: one self-contained page (no internet needed).

    For a run: the headline harms, a card per group, plots, the audit and compliance. For a sweep
    (sweep.json): the headline harms against each swept parameter. For a comparison (compare.json): the
    metrics that moved. Nothing is simulated again."""
    from .audit.report import build_report

    try:
        if (directory / "sweep.json").is_file():
            from .experiments.sweep_report import build_sweep_report

            page = _build_with_status(build_sweep_report, directory)
        elif (directory / "compare.json").is_file():
            from .experiments.compare import reanalyse

            with err.status("report: re-reading the comparison's runs", spinner="dots"):
                page = reanalyse(directory).root / "report.html"
        else:
            opts = _audit_options(counterfactual, counterfactual_population)
            page = _build_with_status(build_report, directory, **opts)
    except ConfigError as e:
        fail(str(e))
        return
    console.print(f"report: [bold]{page}[/]")


@app.command()
def explain(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    citizen: int = typer.Option(..., "--citizen", "-c", help="the citizen's id"),
) -> None:
    """One citizen's record: every score change, grade and listing history, sanctions, and what an appeal would change."""
    from .audit.explain import explain_citizen
    from .audit.metrics import open_run

    try:
        x = explain_citizen(open_run(run_dir), citizen)
    except ConfigError as e:
        fail(str(e))
        return
    p = x["profile"]
    console.print(f"[bold]citizen {p['citizen']}[/] ({p['group']}): score {p['start_score']} -> {p['final_score']}, "
                  f"grade {p['final_grade']}, {'restricted' if p['restricted_at_end'] else 'not restricted'} at the end; "
                  f"{p['true_misconduct_events']} true event(s) of declared misconduct (recorded or not); "
                  f"{p['recorded_events']} ledger row(s), {p['recorded_penalties']} of them penalties, "
                  f"{p['false_attributions']} false attribution(s)", highlight=False)
    ev = Table(title="Score changes", title_justify="left")
    for c in ("day", "rule", "points", "sensor", "false attribution", "score after", "grade after"):
        ev.add_column(c)
    for _, r in x["events"].iterrows():
        ev.add_row(str(r["day"]), r["rule"], f"{int(r['points']):+d}", r["sensor"],
                   "[bold red]FALSE[/]" if r["false_attribution"] else "", str(r["score_after"]), r["grade_after"])
    console.print(ev if len(x["events"]) else "no recorded score change")
    for name, title in (("grade_history", "Grade history"), ("listings", "Listings"), ("sanctions", "Sanctions suffered")):
        df = x[name]
        if len(df):
            t = Table(title=title, title_justify="left")
            for c in df.columns:
                t.add_column(str(c))
            for _, r in df.iterrows():
                t.add_row(*[str(v) for v in r])
            console.print(t)
        else:
            console.print(f"{title}: " + ({"grade_history": f"no change (grade {p['final_grade']} throughout)",
                                           "listings": "never listed", "sanctions": "never restricted"}[name]))
    console.print(f"[bold]If the false attributions were successfully appealed:[/] {x['appeal']['summary']}", highlight=False)
    for c in x.get("caveats", []):
        console.print(f"[yellow]Caution:[/] {c}", highlight=False)
