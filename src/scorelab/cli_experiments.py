"""The experiment commands: `compare`, `sweep`, `query` and `lab` (registered on the shared app)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .config.loader import ConfigError
from .cli_common import DEFAULT_SCENARIO, _build_with_status, _ledger_option, _output_file, _positive, app, console, err, fail


def _experiment_out(kind: str, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(kind) / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:60]}-{stamp}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _print_failures(report, out: Path, then: str) -> None:
    """The closing line about failed runs (each was reported with its parameters and error as it failed)."""
    if report.failed:
        err.print(f"{len(report.failed)} run(s) failed (parameters and tracebacks in {out / 'failures.json'}); {then}",
                  highlight=False)


@app.command()
def compare(
    policies: list[str] = typer.Argument(..., help="two or more presets, scenario files, or policy files (applied to --scenario); the first is the baseline"),
    replicates: int = typer.Option(5, "--replicates", "-r", help="replicates per policy (same seeds for every policy)"),
    scenario: str = typer.Option("rr1", "--scenario", help="base scenario for policy files (default: the reference scenario rr1)"),
    population: Optional[int] = typer.Option(None, "--population", "-n", help="number of citizens (all arms)"),
    days: Optional[int] = typer.Option(None, "--days", "-t", help="days to simulate (all arms)"),
    seed: int = typer.Option(0, "--seed", "-s", help="root seed of the replicate seeds"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="comparison directory (default: a new one under ./comparisons/)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="local worker processes (default: all cores)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://host:8786"),
    ledger: str = typer.Option("auto", "--ledger", help="per-citizen detail of each run: all, none, auto, or a sample size"),
    confidence: float = typer.Option(0.95, "--confidence", help="confidence level of the intervals"),
    show_all: bool = typer.Option(False, "--all", help="print every metric, not only the headline ones"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Run policies on the same synthetic population (common random numbers); paired differences with CIs."""
    from .experiments import compare as cmp_mod
    from .experiments.execute import progress_listener
    from .experiments.summary import HEADLINE

    _positive("--replicates", replicates)
    _positive("--population", population)
    _positive("--days", days)
    _positive("--workers", workers)
    if seed < 0:
        fail(f"--seed: {seed} is not allowed; give a whole number of at least 0")
    if not 0.5 <= confidence < 1:
        fail(f"--confidence: {confidence} is not allowed; give a level from 0.5 to below 1, e.g. 0.95")
    detail = _ledger_option(ledger)
    from .engine.runner import default_workers

    target = out or _experiment_out("comparisons", "-vs-".join(Path(p).stem for p in policies))
    try:
        listener, bar = progress_listener(err, "comparing", quiet)
        with bar:
            c = cmp_mod.run(policies, target, workers=workers or default_workers(), scheduler=scheduler,
                            listener=listener, confidence=confidence, base=scenario, replicates=replicates,
                            seed=seed, population=population, days=days, ledger=detail)
    except ConfigError as e:
        fail(str(e))
        return
    base = c.labels[0]
    for label, res in c.results.items():
        table = Table(title=f"{label} − {base} (baseline): paired differences over {replicates} replicate(s)")
        for col, just in (("metric", "left"), ("group", "left"), ("baseline", "right"), ("arm", "right"),
                          ("difference", "right"), (f"{confidence:.0%} CI", "right"), ("n", "right")):
            table.add_column(col, justify=just, no_wrap=col == "metric")  # type: ignore[arg-type]
        for key, p in res.items():
            metric, _, group = key.rpartition(".")
            if not show_all and metric not in HEADLINE:
                continue
            ci = f"[{p.ci_low:.3g}, {p.ci_high:.3g}]" if p.has_ci else "–"
            mark = " *" if p.excludes_zero else ""
            table.add_row(metric, group, f"{p.baseline_mean:.4g}", f"{p.arm_mean:.4g}", f"{p.diff_mean:+.3g}{mark}", ci, str(p.n))
        console.print(table)
    if replicates < 2:
        console.print("One replicate: no confidence intervals; a CI needs ≥ 2 replicates (--replicates 2 or more).")
    console.print("* the interval excludes 0. Every metric: comparison.json, summaries.parquet, report.html (--all prints them)")
    _print_failures(c.report, target, "their replicates are left out of the paired differences")
    console.print(f"comparison directory: [bold]{target}[/]  report: [bold]{target / 'report.html'}[/]")
    if c.report.failed:
        raise typer.Exit(1)


@app.command()
def sweep(
    sweep_file: Optional[Path] = typer.Argument(None, help="sweep TOML file (see docs/experiments.md)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the sweep in this directory (runs only what is missing)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="sweep directory (default: a new one under ./sweeps/)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="local worker processes (default: all cores)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://host:8786"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    yes: bool = typer.Option(False, "--yes", help="run a sweep of more than 10,000 runs"),
) -> None:
    """Run a parameter sweep (grid or random draws, replicates); resumable after any kill."""
    from .engine.runner import default_workers
    from .experiments import sweep as sweep_mod
    from .experiments.execute import progress_listener

    _positive("--workers", workers)
    if (sweep_file is None) == (resume is None):
        fail("give a sweep file to start a sweep, or --resume DIR to continue one (not both)")
    target = resume if resume is not None else (out or _experiment_out("sweeps", sweep_file.stem))  # type: ignore[union-attr]
    try:
        listener, bar = progress_listener(err, "sweep", quiet)
        kw = dict(workers=workers or default_workers(), scheduler=scheduler, listener=listener)
        with bar:
            if resume is not None:
                plan, report = sweep_mod.resume(resume, **kw)
            else:
                plan, report = sweep_mod.start(sweep_file, target, max_runs=None if yes else sweep_mod.MAX_RUNS,
                                               **kw)  # type: ignore[arg-type]
    except ConfigError as e:
        fail(str(e))
        return
    except KeyboardInterrupt:
        err.print(f"interrupted: finished runs are kept; continue with `scorelab sweep --resume {target}`")
        raise typer.Exit(130)
    total = report.total
    finished = report.skipped + report.done
    rate = f", {report.runs_per_minute:,.1f} runs/minute on {report.workers} worker(s)" if report.done else ""
    console.print(f"{finished}/{total} runs finished ({report.done} now, {report.skipped} before){rate}")
    _print_failures(report, target, f"re-run them with `scorelab sweep --resume {target}` once the cause is fixed")
    if finished:
        from .experiments.sweep_report import build_sweep_report

        page = _build_with_status(build_sweep_report, target)
        console.print(f"report: [bold]{page}[/]  (offline; rebuild it with `scorelab report {target}`)")
    console.print(f"sweep directory: [bold]{target}[/]  query it: scorelab query {target} \"SELECT ...\"")
    if report.failed:
        raise typer.Exit(1)


@app.command()
def query(
    directory: Path = typer.Argument(..., help="a sweep or comparison directory"),
    sql: str = typer.Argument(..., help="SQL over the views metrics, citizens, ledger, distribution, runs (and summaries)"),
    max_rows: int = typer.Option(50, "--max-rows", help="rows to print"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also write the whole result (.csv or .parquet)"),
) -> None:
    """DuckDB SQL over every run's tables in a sweep or comparison directory."""
    from .experiments.query import query as run_query, render

    _positive("--max-rows", max_rows)
    if out is not None and out.suffix not in (".csv", ".parquet"):
        fail(f"--out: {out} is not allowed; name a .csv or .parquet file")
    if out is not None:
        _output_file("--out", out)
    try:
        df = run_query(directory, sql)
    except ConfigError as e:
        fail(str(e))
        return
    console.print(render(df, max_rows))
    if out is not None:
        from .atomic import write_atomic

        if out.suffix == ".csv":
            write_atomic(out, lambda p: df.to_csv(p, index=False))
        else:
            write_atomic(out, lambda p: df.to_parquet(p, index=False))
        console.print(f"{len(df):,} rows written to {out}")


# ---- the lab: a local web page of knobs (scorelab.lab, docs/lab.md) ----

@app.command()
def lab(
    preset: str = typer.Argument(DEFAULT_SCENARIO, help="the preset the page opens with (others can be picked on the page)"),
    port: int = typer.Option(8765, "--port", "-p", help="port on 127.0.0.1 (0: any free port)"),
    no_browser: bool = typer.Option(False, "--no-browser", help="do not open a browser; print the address only"),
    verbose: bool = typer.Option(False, "--verbose", help="log every request on stderr"),
) -> None:
    """A local web page: move a policy's knobs and see it beside the unchanged policy on the same people."""
    from .lab.server import make_server

    try:
        server = make_server(port, preset, verbose=verbose)
    except ConfigError as e:
        fail(str(e))
        return
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it like Ctrl-C: its runs are removed
    url = server.url + (f"?preset={preset}" if preset != DEFAULT_SCENARIO else "")
    console.print(f"scorelab lab: [bold]{url}[/]  (local only, no internet needed; Ctrl-C stops it)")
    if not no_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("lab stopped")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C or kill must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server.server_close()
        server.lab.close()
