"""The `scorelab` command line (typer + rich).

User mistakes (bad files, fields, options) end with one line on stderr naming the file, the field and
what is allowed, and exit status 2 — never a traceback, never a half-written run directory.
"""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .config.loader import ConfigError
from .cli_common import (DEFAULT_SCENARIO, _SafeGroup, _build_with_status, _ledger_option, _output_file,  # noqa: F401
                         _positive, app, console, err, fail)


def default_out(name: str, population: int, days: int, seed: int) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{name}-n{population}-t{days}-s{seed}-{stamp}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def print_summary(run) -> None:
    from .mechsummary import summary_rows

    headline, rows = summary_rows(run)
    table = Table(title=f"{run.manifest['scenario']['scenario']['name']}: "
                        f"{run.manifest['population']:,} citizens, {run.manifest['days']} days, seed {run.manifest['seed']}")
    table.add_column("group")
    table.add_column("mean score", justify="right")
    table.add_column("restricted share", justify="right")
    table.add_column("penalties", justify="right")
    table.add_column("wrongful penalties", justify="right")
    table.add_column("criticism", justify="right")
    for group, row in headline:
        table.add_row(str(group), f"{row['mean_score']:.2f}", f"{row['restricted_share']:.2%}",
                      f"{int(row['penalties']):,}", f"{int(row['wrongful_penalties']):,}", f"{int(row['criticism']):,}")
    console.print(table)
    if rows:  # what the preset's mechanisms did (blocked purchases, money collected, fakeness, ...)
        mech = Table(title="mechanisms (all groups)")
        mech.add_column("metric")
        mech.add_column("value", justify="right")
        for label, value in rows:
            mech.add_row(label, value)
        console.print(mech)
    m = run.manifest
    console.print(f"{m.get('simulated_agent_days', m['population'] * m['days']):,} agent-days simulated in {m['wall_seconds']:.2f} s "
                  f"({m['agent_days_per_second'] / 1e6:,.1f} million agent-days/s); detail kept for {m['detail']['kept'] or 'no citizens'}")


@app.command()
def run(
    scenario: str = typer.Argument(DEFAULT_SCENARIO, help="preset name (see `scorelab presets`) or scenario TOML file"),
    population: Optional[int] = typer.Option(None, "--population", "-n", help="number of citizens"),
    days: Optional[int] = typer.Option(None, "--days", "-t", help="days to simulate"),
    seed: Optional[int] = typer.Option(None, "--seed", "-s", help="root seed (default: the scenario's)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run directory (default: a new one under ./runs/)"),
    force: bool = typer.Option(False, "--force", help="replace --out if it exists"),
    ledger: str = typer.Option("auto", "--ledger", help="per-citizen detail: all, none, auto, or a sample size"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="processes (default: all cores)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    no_report: bool = typer.Option(False, "--no-report", help="do not write report.html at the end"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="finish a killed run of this directory from its checkpoints"),
    backend: str = typer.Option("numpy", "--backend", help="numpy (sparse, CPU) or jax (dense, GPU; needs scorelab\\[gpu]; see docs/gpu.md)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="run the shards on this Dask cluster, e.g. tcp://host:8786 "
                                            "(same bytes as a local run; needs scorelab\\[sweep]; see docs/performance.md)"),
) -> None:
    """Simulate a scenario and write its run directory (default: the Rongcheng pilot, 670,000 citizens for a year; RR-1 by name)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .api import load, resume as resume_run, simulate

    _positive("--population", population)
    _positive("--days", days)
    _positive("--workers", workers)
    if seed is not None and seed < 0:
        fail(f"--seed: {seed} is not allowed; give a whole number of at least 0")
    detail = _ledger_option(ledger)
    if resume is not None:
        if any(v is not None for v in (population, days, seed, out)) or scenario != DEFAULT_SCENARIO or force:
            fail("--resume: give only the run directory (and --workers, --scheduler, --quiet, --no-report); "
                 "the scenario, size, seed and detail come from its checkpoint")
        try:
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("days"), TimeRemainingColumn(), console=err, disable=quiet, transient=True) as bar:
                task = bar.add_task(f"resuming {resume}", total=None)
                result = resume_run(resume, workers=workers, scheduler=scheduler,
                                    progress=lambda d, t: bar.update(task, completed=d, total=t))
        except ConfigError as e:
            fail(str(e))
            return
        console.print(f"resumed: {result.manifest['resumed_shards']} of {result.manifest['shards']} shards "
                      "came from checkpoints")
        print_summary(result)
        console.print(f"run directory: [bold]{result.path}[/]")
        if not no_report:
            _write_report(result.path)
        return
    try:
        sc = load(scenario, population=population, days=days)
        seed_ = sc.scenario.seed if seed is None else seed
        target = out or default_out(sc.scenario.name, sc.scenario.population, sc.scenario.days, seed_)
        if target.exists() and not force:
            fail(f"{target}: output directory exists; choose another --out or pass --force to replace it")
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("days"), TimeRemainingColumn(), console=err, disable=quiet, transient=True) as bar:
            task = bar.add_task(f"simulating {sc.scenario.name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = simulate(sc, seed=seed_, out=target, ledger=detail, workers=workers, force=force,
                              progress=progress, backend=backend, scheduler=scheduler)
    except ConfigError as e:
        fail(str(e))
        return
    except KeyboardInterrupt:
        from .engine.checkpoint import finished_shards, partial_dir

        done = len(finished_shards(partial_dir(target)))
        hint = (f"; {done} finished shard(s) are kept: finish with `scorelab run --resume {target}`" if done
                else "")
        err.print(f"interrupted: {target} was not written{hint}", highlight=False, markup=False)
        raise typer.Exit(130)
    print_summary(result)
    console.print(f"run directory: [bold]{result.path}[/]")
    if not no_report:
        _write_report(result.path)


@app.command()
def presets() -> None:
    """List the shipped scenarios."""
    from .config.loader import list_presets

    table = Table(show_header=True)
    table.add_column("preset")
    table.add_column("description")
    for p in list_presets():
        table.add_row(p.name, p.description)
    console.print(table)


@app.command()
def validate(scenario: str = typer.Argument(..., help="preset name or scenario TOML file")) -> None:
    """Check a scenario file without running it."""
    from .api import load

    try:
        sc = load(scenario)
    except ConfigError as e:
        fail(str(e))
        return
    console.print(f"{scenario}: valid scenario {sc.scenario.name!r} "
                  f"({len(sc.groups)} groups, {len(sc.behaviours)} behaviours, {len(sc.policy.rules)} rules)")

# ---------------------------------------------------------------- audit, compliance, report, explain


def _write_report(path: Path) -> None:
    from .audit.report import build_report

    try:
        page = _build_with_status(build_report, path)
    except ConfigError as e:
        fail(str(e))
        return
    console.print(f"report: [bold]{page}[/]  (open it in a browser; it needs no internet)")


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



# ---- experiments: compare, sweep, query (scorelab.experiments) ----


from . import cli_experiments  # noqa: F401,E402  (registers compare, sweep, query, lab after the commands above)
from . import cli_validity  # noqa: F401,E402  (registers replicate, calibrate)


def main() -> None:
    """The entry point: whatever goes wrong with a user's input or the machine ends in one line and exit 2
    (see `_SafeGroup`); Ctrl-C and SIGTERM end with 130."""
    from .engine.workers import terminate_as_interrupt

    terminate_as_interrupt()
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; nothing was written to the run directory")
        sys.exit(130)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"scorelab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Simulate social scoring systems over synthetic societies and measure what they do to people."""


if __name__ == "__main__":  # pragma: no cover
    main()
