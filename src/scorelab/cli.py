"""The `scorelab` command line (typer + rich).

User mistakes (bad files, fields, options) end with one line on stderr naming the file, the field and
what is allowed, and exit status 2 — never a traceback, never a half-written run directory.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .config.loader import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simulate social scoring systems over synthetic societies and measure what they do to people.")
console = Console()
err = Console(stderr=True)

DEFAULT_SCENARIO = "rr1"


def fail(message: str) -> None:
    """Report a user's mistake and exit 2."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(2)


def _positive(name: str, value: Optional[int]) -> None:
    if value is not None and value <= 0:
        fail(f"{name}: {value} is not allowed; give a whole number of at least 1")


def _ledger_option(value: str) -> str:
    v = value.strip().lower().replace("_", "").replace(",", "")
    if v in ("auto", "all", "none"):
        return v
    if v.isdigit() and int(v) > 0:
        return v
    fail(f"--ledger: {value!r} is not allowed; use all, none, auto, or a number of citizens to sample (e.g. 1000000)")
    return v


def default_out(name: str, population: int, days: int, seed: int) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{name}-n{population}-t{days}-s{seed}-{stamp}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def print_summary(run) -> None:
    s = run.summary()
    table = Table(title=f"{run.manifest['scenario']['scenario']['name']}: "
                        f"{run.manifest['population']:,} citizens, {run.manifest['days']} days, seed {run.manifest['seed']}")
    table.add_column("group")
    table.add_column("mean score", justify="right")
    table.add_column("restricted share", justify="right")
    table.add_column("penalties", justify="right")
    table.add_column("wrongful penalties", justify="right")
    table.add_column("criticism", justify="right")
    for group, row in s.iterrows():
        table.add_row(str(group), f"{row.mean_score:.2f}", f"{row.restricted_share:.2%}", f"{int(row.penalties):,}",
                      f"{int(row.wrongful_penalties):,}", f"{int(row.criticism):,}")
    console.print(table)
    m = run.manifest
    console.print(f"{m['population'] * m['days']:,} agent-days in {m['wall_seconds']:.2f} s "
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
) -> None:
    """Simulate a scenario and write its run directory (default: RR-1 at 670,000 citizens for a year)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .api import load, simulate

    _positive("--population", population)
    _positive("--days", days)
    _positive("--workers", workers)
    if seed is not None and seed < 0:
        fail(f"--seed: {seed} is not allowed; give a whole number of at least 0")
    detail = _ledger_option(ledger)
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
                              progress=progress)
    except ConfigError as e:
        fail(str(e))
        return
    print_summary(result)
    console.print(f"run directory: [bold]{result.path}[/]")


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


# ---- experiments: compare, sweep, query (scorelab.experiments) ----

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
    scenario: str = typer.Option(DEFAULT_SCENARIO, "--scenario", help="base scenario for policy files"),
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
                plan, report = sweep_mod.start(sweep_file, target, **kw)  # type: ignore[arg-type]
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
    try:
        df = run_query(directory, sql)
    except ConfigError as e:
        fail(str(e))
        return
    console.print(render(df, max_rows))
    if out is not None:
        if out.suffix == ".csv":
            df.to_csv(out, index=False)
        else:
            df.to_parquet(out, index=False)
        console.print(f"{len(df):,} rows written to {out}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; nothing was written to the run directory")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
