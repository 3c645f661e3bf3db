"""`scorelab replicate` (published results reproduced through the engine) and `scorelab calibrate` (free
parameters fitted to published figures): docs/validity.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .cli_common import _positive, app, console, err, fail
from .config.loader import ConfigError

STUDIES = ("liu2018",)


@app.command()
def replicate(
    study: str = typer.Argument(..., help=f"the published study: {', '.join(STUDIES)}"),
    out: Path = typer.Option(..., "--out", "-o", help="directory for outcomes.csv, the curve, the dynamics and figures.html"),
    loss: float = typer.Option(-4.0, "--loss", help="the lender's utility per default (+1 per repaid loan); the paper uses -4 and -10"),
    population: int = typer.Option(1_000_000, "--population", "-n", help="citizens simulated per policy"),
    steps: int = typer.Option(20, "--steps", help="loan cycles of the dynamics (0: the one-step setting only)"),
    seed: int = typer.Option(0, "--seed", help="root seed (the same for every policy: common random numbers)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="local worker processes (default: all cores)"),
    force: bool = typer.Option(False, "--force", help="replace --out if it is an earlier replication directory"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
) -> None:
    """Reproduce a published result through the engine: `liu2018` is Liu et al. (ICML 2018), "Delayed Impact
    of Fair Machine Learning", on the FICO tables: max profit, demographic parity and equal opportunity."""
    import math

    from .store import check_replaceable, check_writable, commit_dir, staging_dir

    if study not in STUDIES:
        fail(f"study: {study!r} is not known; allowed: {', '.join(STUDIES)}")
    if not math.isfinite(loss) or not (-1e6 <= loss < 0):
        fail(f"--loss: {loss:g} is not allowed; give the utility of a default as a negative number (e.g. -4 or -10)")
    _positive("--population", population)
    _positive("--workers", workers)
    if population < 1000:
        fail(f"--population: {population:,} is too few for the figures to mean anything; give at least 1000")
    if not 0 <= steps <= 1000:
        fail(f"--steps: {steps} is not allowed; give 0 (one step only) to 1000 loan cycles")
    if not 0 <= seed <= 2**63 - 1:
        fail(f"--seed: {seed} is not allowed; give a whole number from 0 to 2**63-1")
    if out.exists() and not force:
        fail(f"{out}: output directory exists; choose another --out or pass --force to replace it")
    try:
        if force:
            check_replaceable(out, ("replication",))
        check_writable(out)
    except ConfigError as e:
        fail(str(e))
    from .validity import liu2018

    def say(words: str) -> None:
        if not quiet:
            err.print(words)

    say(f"one step: 3 policies x {population:,} citizens through the engine (loss {loss:g})")
    outcomes, curves, choices = liu2018.one_step(loss, population, seed, workers,
                                                 progress=lambda k, n: say(f"  policy {k}/{n} done"))
    dyn = None
    if steps:
        say(f"dynamics: 3 policies x {steps} loan cycles")
        dyn = liu2018.dynamics(choices, steps, loss, population, seed, workers,
                               progress=lambda k, n: say(f"  policy {k}/{n} done"))
    meta = {"study": "liu2018", "loss": loss, "population": population, "steps": steps, "seed": seed,
            "note": "Scores: FICO TransRisk tables (Hardt, Price & Srebro 2016) on the FICO scale as Liu et al. map "
                    "them, whole scores; every citizen applies; repaid +75, default -150, clipped to 300..850; "
                    "deterministic thresholds at the table's scores; one engine run per policy, same seed."}
    tmp = staging_dir(out)
    try:
        liu2018.write(tmp, outcomes, curves, dyn, meta)
        from ._version import __version__

        (tmp / "replication.json").write_text(json.dumps({**meta, "kind": "replication", "scorelab": __version__,
                                                           "disagreements": liu2018.check_agreement(outcomes)}, indent=2))
        commit_dir(tmp, out, force, ("replication",))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    t = Table(title=f"Liu et al. 2018 through the engine (loss {loss:g}, {population:,} citizens)")
    for c in ("policy", "group", "threshold", "selection rate", "expected", "delta_mu (95%)", "expected"):
        t.add_column(c, justify="left" if c in ("policy", "group") else "right")
    for o in outcomes:
        t.add_row(o.policy, o.group, str(o.threshold), f"{o.selection_rate:.4f}", f"{o.selection_rate_expected:.4f}",
                  f"{o.delta_mu:+.2f} ± {1.96 * o.delta_mu_se:.2f}", f"{o.delta_mu_expected:+.2f}")
    console.print(t)
    bad = liu2018.check_agreement(outcomes)
    if bad:
        err.print("[yellow]engine and expectation differ by more than 5 standard errors:[/] " + "; ".join(bad))
    summary = (out / "summary.md").read_text()
    console.print(summary[summary.find("For the black group"):].strip())
    console.print(f"written: [bold]{out}[/] (outcomes.csv, outcome_curve.csv"
                  f"{', dynamics.csv, credit_gap.csv' if dyn else ''}, figures.html, summary.md)")


@app.command()
def calibrate(
    scenario: Optional[str] = typer.Argument(None, help="preset name or scenario TOML file"),
    targets: Optional[Path] = typer.Argument(None, help="targets TOML: published figures, free parameters, search (docs/validity.md)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="calibration directory (new, or empty)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the calibration in this directory"),
    trials: Optional[int] = typer.Option(None, "--trials", help="with --resume: complete trials to reach (default: the file's)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="local worker processes (default: all cores)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://host:8786"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Fit free scenario parameters to published figures (Optuna); resumable; writes best.toml, trials.parquet,
    fit.csv and the fit report (fit.html, fit.md)."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .engine.runner import default_workers
    from .experiments import calibrate as cal

    _positive("--workers", workers)
    _positive("--trials", trials)
    if resume is None and (scenario is None or targets is None or out is None):
        fail("give SCENARIO TARGETS.toml --out DIR to start a calibration, or --resume DIR to continue one")
    if resume is not None and (scenario is not None or targets is not None or out is not None):
        fail("--resume DIR continues a calibration from its directory: give no SCENARIO, TARGETS or --out with it")
    if trials is not None and resume is None:
        fail("--trials: set the number of trials in the targets file ([search] trials); --trials applies to --resume")
    where = resume if resume is not None else out
    bar = Progress(TextColumn("[bold]calibrate[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("runs · {task.fields[best]}"),
                   TimeElapsedColumn(), console=err, disable=quiet, transient=False)
    state: dict = {"task": None, "best": None}

    def listener(event: str, payload) -> None:
        if state["task"] is None:
            return
        if event in ("done", "failed"):
            bar.advance(state["task"])
        if event == "failed":
            err.print(f"[red]run failed[/] ({escape(payload.describe())}): {escape(payload.error)}", highlight=False,
                      soft_wrap=True)

    def on_trial(number: int, value: float, point: dict) -> None:
        if state["best"] is None or value < state["best"]:
            state["best"] = value
            bar.update(state["task"], best=f"best objective {value:.4g} (trial {number})")

    try:
        plan = cal.load_plan(resume) if resume is not None else cal.build_plan(scenario, targets)  # type: ignore[arg-type]
        goal = trials or plan["spec"]["search"]["trials"]
        state["task"] = bar.add_task("calibrate", total=goal * len(plan["seeds"]), best="")
        kw = dict(workers=workers or default_workers(), scheduler=scheduler, listener=listener, on_trial=on_trial)
        with bar:
            if resume is not None:
                plan, result = cal.resume(resume, trials=trials, **kw)
            else:
                plan, result = cal.start(scenario, targets, out, **kw)  # type: ignore[arg-type]
    except ConfigError as e:
        fail(str(e))
        return
    except KeyboardInterrupt:
        err.print(f"interrupted: finished trials and runs are kept; continue with `scorelab calibrate --resume {where}`")
        raise typer.Exit(130)
    import pandas as pd

    fit = pd.read_csv(Path(where) / "fit.csv")
    t = Table(title=f"best trial {result['best_trial']}: objective {result['best_objective']:.4g}")
    for c in ("target", "role", "published", "simulated", "95% CI", "z"):
        t.add_column(c, justify="left" if c in ("target", "role") else "right")
    for r in fit.itertuples():
        ci = f"{r.ci_low:,.4g} – {r.ci_high:,.4g}" if pd.notna(r.ci_low) else "–"
        t.add_row(r.target, r.role, f"{r.published:,.4g}", f"{r.simulated:,.4g}", ci, f"{r.z:+.2f}")
    console.print(t)
    for path, v in zip(plan["parameters"].values(), result["best_parameters"].values()):
        how = "x base" if plan["spec"]["parameters"][path]["scale"] else "="
        console.print(escape(f"  {path} {how} {v:.6g}" if isinstance(v, float) else f"  {path} {how} {v!r}"))
    console.print(f"written: [bold]{where}[/] (best.toml, trials.parquet, trials.csv, fit.csv, fit.html, fit.md)")
    if result["failed_runs"]:
        err.print(f"{result['failed_runs']} run(s) failed; see {Path(where) / 'failures.json'}")
