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

DEFAULT_SCENARIO = "rongcheng"


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
    from .mechsummary import mechanism_rows

    rows = mechanism_rows(run)
    if rows:  # what the preset's mechanisms did (blocked purchases, money collected, fakeness, ...)
        mech = Table(title="mechanisms (all groups)")
        mech.add_column("metric")
        mech.add_column("value", justify="right")
        for label, value in rows:
            mech.add_row(label, value)
        console.print(mech)
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
    """Simulate a scenario and write its run directory (default: the Rongcheng pilot, 670,000 citizens for a year; RR-1 by name)."""
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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; nothing was written to the run directory")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
