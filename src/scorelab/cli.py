"""The `scorelab` command line (typer + rich).

User mistakes (bad files, fields, options) end with one line on stderr naming the file, the field and
what is allowed, and exit status 2 — never a traceback, never a half-written run directory.
"""
from __future__ import annotations

import gc

# Start-up builds ~10^5 objects (modules, classes, models) that live as long as the process; the cyclic
# collector walking them again and again while they are made cost ~30 ms of every command (a tenth of
# `scorelab run`'s start). It is paused until the commands are registered, and what start-up built is
# then frozen out of later collections (gc.freeze, which also keeps forked workers' pages shared).
_GC_WAS_ON = gc.isenabled()
gc.disable()

import os  # noqa: E402
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .config.loader import ConfigError
from .cli_common import (DEFAULT_SCENARIO, _SafeGroup, _build_with_status, _ledger_option, _output_file,  # noqa: F401
                         _positive, app, console, err, fail, start_up)


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
    ctx: typer.Context,
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
    kernel: Optional[str] = typer.Option(None, "--kernel", help="auto (default), numpy, numba (the same bytes) or walk (the "
                                         "per-citizen walk: the same model on other random streams); sets SCORELAB_KERNEL; "
                                         "see docs/performance.md"),
) -> None:
    """Simulate a scenario and write its run directory (default: the Rongcheng pilot, 670,000 citizens for a year; RR-1 by name)."""
    with start_up():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from .api import load, resume as resume_run, simulate
        from .engine.workers import simulating_process
    simulating_process()  # this process simulates and exits (its pool workers inherit the mark)

    _positive("--population", population)
    _positive("--days", days)
    _positive("--workers", workers)
    if seed is not None and seed < 0:
        fail(f"--seed: {seed} is not allowed; give a whole number of at least 0")
    detail = _ledger_option(ledger)
    if kernel is not None:
        from .engine.compiled import KERNELS

        if kernel.strip().lower() not in KERNELS:
            fail(f"--kernel: {kernel!r} is not allowed; give one of {', '.join(KERNELS)}")
        before = os.environ.get("SCORELAB_KERNEL")
        os.environ["SCORELAB_KERNEL"] = kernel.strip().lower()  # read by the run (and inherited by its workers)
        ctx.call_on_close(lambda: os.environ.pop("SCORELAB_KERNEL", None) if before is None
                          else os.environ.__setitem__("SCORELAB_KERNEL", before))  # for callers in this process
    if resume is not None:
        if any(v is not None for v in (population, days, seed, out)) or scenario != DEFAULT_SCENARIO or force:
            fail("--resume: give only the run directory (and --workers, --scheduler, --kernel, --quiet, --no-report); "
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
    except OSError as e:  # the run directory was written; only its report could not be
        from .atomic import describe_os_error  # (write_atomic names the file that failed)

        fail(f"{describe_os_error(e)}; the run directory {path} is complete: write its report later with "
             f"`scorelab report {path}`")
        return
    console.print(f"report: [bold]{page}[/]  (open it in a browser; it needs no internet)")


# ---- what a run did to people: audit, compliance, report, explain (cli_audit.py) ----


from . import cli_audit  # noqa: F401,E402  (registers audit, compliance, report, explain after run, presets, validate)


# ---- experiments: compare, sweep, query (scorelab.experiments) ----


from . import cli_experiments  # noqa: F401,E402  (registers compare, sweep, query, lab after the commands above)
from . import cli_validity  # noqa: F401,E402  (registers replicate, calibrate)

gc.freeze()
if _GC_WAS_ON:
    gc.enable()


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
