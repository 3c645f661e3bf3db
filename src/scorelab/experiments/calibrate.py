"""Calibration: fit free scenario parameters to published figures with Optuna, over the sweep machinery.

A targets file (TOML) names the published figures, the free parameters and the search::

    population = 1400000         # optional overrides of the scenario
    days = 1096
    replicates = 3               # runs per trial (common random numbers: replicate r has one seed everywhere)
    seed = 0
    scale_to = 1400000000        # the population the figures describe: counts are multiplied by scale_to / population

    [fixed]                      # set before the search
    "policy.blacklists[dishonest_defaulters].initial_share.urban" = 0.0026

    [search]
    trials = 40
    sampler = "tpe"              # tpe (Optuna's default), cmaes (CMA-ES: continuous parameters) or random
    seed = 0

    [parameters]
    "behaviours[judgment_default].rate" = { low = 0.2, high = 5.0, log = true, scale = true }  # x the base rates
    "behaviours[repay_debt].rate" = { low = 0.0002, high = 0.005, log = true }

    [[targets]]
    name = "listed_end_2017"
    metric = "listed_dishonest_defaulters"   # a column of metrics.parquet (docs/format.md)
    day = 729                                # the value at the end of that day, or window = [a, b] (inclusive)
    value = 9.59e6
    uncertainty = 0.5e6
    fit = true                               # false: a hold-out figure, reported but not fitted

The targets file's models and the plan are in calibrate_spec.py. The objective is the mean of ((simulated - value) / uncertainty)^2 over the fitted targets, where
"simulated" is the mean over the trial's replicates. Trials live in an Optuna journal in the output
directory (``optuna.journal``), each trial's runs under ``runs/trial=N/replicate=R/``: ``--resume`` finishes
the trials that were cut off (their finished runs are kept) and goes on to the number asked.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..config.loader import ConfigError, scenario_from_dict
from ..store import check_writable
from . import paths
from .calibrate_spec import TargetsSpec, assign, build_plan  # the targets file and the plan (calibrate_spec.py)
from .execute import Listener, RunTask, check_scheduler, execute, read_manifest, replicate_seed, write_json

__all__ = ["build_plan", "replicate_seed", "start", "resume", "run", "load_plan", "trial_tasks"]

MANIFEST = "calibration.json"
JOURNAL = "optuna.journal"
TRIAL_VALUES = "targets.json"  # each trial's simulated targets per replicate, beside its runs


def _study(out: Path, plan: dict[str, Any]):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = plan["spec"]["search"]
    if search["sampler"] == "random":
        sampler = optuna.samplers.RandomSampler(seed=search["seed"])
    elif search["sampler"] == "cmaes":
        # categorical parameters (lists of values) are drawn independently by TPE beside the CMA-ES search
        sampler = optuna.samplers.CmaEsSampler(
            seed=search["seed"], n_startup_trials=0, warn_independent_sampling=False,
            independent_sampler=optuna.samplers.TPESampler(seed=search["seed"]))
    else:
        sampler = optuna.samplers.TPESampler(seed=search["seed"], constant_liar=True, n_startup_trials=10)
    storage = JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    return optuna.create_study(study_name="calibration", storage=storage, sampler=sampler, direction="minimize",
                               load_if_exists=True)


def _distributions(plan: dict[str, Any]):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    base = plan["base_scenario"]
    for col, path in plan["parameters"].items():
        p = plan["spec"]["parameters"][path]
        if p["values"] is not None:
            out[col] = CategoricalDistribution(p["values"])
            continue
        current = paths.value(base, path)
        integral = (not p["scale"] and isinstance(current, int) and not isinstance(current, bool)
                    and float(p["low"]).is_integer() and float(p["high"]).is_integer())
        if integral:
            out[col] = IntDistribution(int(p["low"]), int(p["high"]), log=p["log"])
        else:
            out[col] = FloatDistribution(float(p["low"]), float(p["high"]), log=p["log"])
    return out


def trial_tasks(plan: dict[str, Any], number: int, point: dict[str, Any]) -> list[RunTask]:
    spec = TargetsSpec.model_validate(plan["spec"])
    scenario = assign(plan["base_scenario"], spec, point, plan["parameters"])
    return [RunTask(f"runs/trial={number}/replicate={r}", {"trial": number, "replicate": r}, seed, scenario,
                    spec.ledger) for r, seed in enumerate(plan["seeds"])]


def read_targets(run_dir: Path, targets: list[dict[str, Any]]) -> dict[str, float]:
    """Each target's simulated value in one run (metrics.parquet read once): the metric for its group on its day
    or over its window, scaled and offset as the plan says."""
    import pyarrow.parquet as pq

    columns = ["day", "group", *dict.fromkeys(t["metric"] for t in targets)]
    table = pq.read_table(run_dir / "metrics.parquet", columns=columns).to_pandas()
    group = table["group"].astype(str)
    out = {}
    for t in targets:
        rows = table[group == t["group"]]
        if t["day"] is not None:
            v = float(rows.loc[rows["day"] == t["day"], t["metric"]].iloc[0])
        else:
            a, b = t["window"]
            sel = rows.loc[(rows["day"] >= a) & (rows["day"] <= b), t["metric"]].to_numpy(dtype=np.float64)
            v = float(sel.sum() if t["stat"] == "sum" else sel.mean())
        out[t["name"]] = v * float(t["factor"]) + float(t["offset"])
    return out


def objective(values: dict[str, float], targets: list[dict[str, Any]]) -> float:
    """Mean squared standardised error over the fitted targets."""
    z = [((values[t["name"]] - t["value"]) / t["uncertainty"]) ** 2 for t in targets if t["fit"]]
    return float(np.mean(z))


def _evaluate(out: Path, plan: dict[str, Any], number: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    per_rep: dict[str, list[float]] = {t["name"]: [] for t in plan["targets"]}
    for r in range(len(plan["seeds"])):
        values = read_targets(out / f"runs/trial={number}/replicate={r}", plan["targets"])
        for name, v in values.items():
            per_rep[name].append(v)
    return {k: float(np.mean(v)) for k, v in per_rep.items()}, per_rep


def check_optimiser(sampler: str, where: str) -> None:
    """The search's libraries are an extra (`pip install 'scorelab[calibrate]'`): say so before anything is written."""
    import importlib.util

    need = ["optuna"] + (["cmaes"] if sampler == "cmaes" else [])
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(where, "search.sampler" if missing == ["cmaes"] else None,
                          f"calibration needs {' and '.join(missing)}, which is not installed; "
                          f"install it with: pip install 'scorelab[calibrate]'")


def start(scenario_src: str, targets_file: Path, out: Path, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if (out / MANIFEST).is_file():
            raise ConfigError(str(out), None, f"a calibration already lives here; continue it with "
                                              f"`scorelab calibrate --resume {out}`")
        raise ConfigError(str(out), None, "directory exists and is not empty; choose another --out")
    plan = build_plan(scenario_src, targets_file)
    check_optimiser(plan["spec"]["search"]["sampler"], str(targets_file))
    check_writable(out)
    check_scheduler(kw.get("scheduler"))
    out.mkdir(parents=True, exist_ok=True)
    plan["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(out / MANIFEST, plan)
    return plan, run(out, plan, **kw)


def load_plan(out: Path) -> dict[str, Any]:
    return read_manifest(out, MANIFEST, "calibration", "scorelab calibrate SCENARIO TARGETS.toml --out DIR")


def resume(out: Path, trials: int | None = None, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    plan = load_plan(out)
    check_optimiser(plan["spec"]["search"]["sampler"], str(out))
    if trials is not None:
        plan["spec"]["search"]["trials"] = int(trials)
        write_json(Path(out) / MANIFEST, plan)
    return plan, run(Path(out), plan, **kw)


def run(out: Path, plan: dict[str, Any], *, workers: int = 1, scheduler: str | None = None,
        listener: Listener | None = None, on_trial=None) -> dict[str, Any]:
    """Ask Optuna for trials in batches of ``workers`` (each trial: ``replicates`` runs), run them on the local
    pool or a Dask cluster, tell the objective, until ``trials`` trials are complete. Returns a summary."""
    from optuna.trial import TrialState

    out = Path(out).resolve()
    study = _study(out, plan)
    dists = _distributions(plan)
    goal = int(plan["spec"]["search"]["trials"])
    failed_runs = 0
    t0 = time.perf_counter()

    def finish(trials: list[tuple[int, dict[str, Any]]]) -> None:
        nonlocal failed_runs
        tasks = [task for number, point in trials for task in trial_tasks(plan, number, point)]
        report = execute(out, tasks, workers=workers, scheduler=scheduler, listener=listener)
        bad = {o.keys["trial"] for o in report.failed}
        failed_runs += len(report.failed)
        for number, point in trials:
            if number in bad:
                study.tell(number, state=TrialState.FAIL)
                continue
            means, per_rep = _evaluate(out, plan, number)
            value = objective(means, plan["targets"])
            write_json(out / f"runs/trial={number}/{TRIAL_VALUES}", per_rep)
            study.tell(number, value)
            if on_trial is not None:
                on_trial(number, value, point)

    # trials cut off by an interruption: their parameters are in the journal, their finished runs on disk
    stale = [(t.number, dict(t.params)) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if stale:
        finish(stale)
    while True:
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if complete >= goal:
            break
        batch = []
        for _ in range(max(1, min(workers, goal - complete))):
            trial = study.ask(dists)
            batch.append((trial.number, dict(trial.params)))
        finish(batch)
        fails = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if fails and len(fails) == len(study.get_trials(deepcopy=False)):  # nothing has ever worked: stop at once
            first = json.loads((out / "failures.json").read_text())[0] if (out / "failures.json").is_file() else {}
            raise ConfigError(str(out), None, f"every run of the first {len(fails)} trial(s) failed: "
                                              f"{first.get('error', 'see failures.json')}")
        if len(fails) > max(5, goal):
            raise ConfigError(str(out), None, f"{fails} trials failed (see {out / 'failures.json'}); "
                                              "the scenario fails inside the parameter bounds")
    write_results(out, plan, study)
    best = study.best_trial
    return {"trials": goal, "best_trial": best.number, "best_objective": best.value,
            "best_parameters": dict(best.params), "failed_runs": failed_runs,
            "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------
# results: every trial as a table, the best scenario as TOML, the fit report


def trial_values(out: Path, number: int) -> dict[str, list[float]] | None:
    path = Path(out) / f"runs/trial={number}/{TRIAL_VALUES}"
    return json.loads(path.read_text()) if path.is_file() else None


def trials_frame(out: Path, plan: dict[str, Any], study):
    import pandas as pd
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name,
                               "objective": t.value if t.state == TrialState.COMPLETE else math.nan}
        row.update({c: t.params.get(c) for c in plan["parameters"]})
        reps = trial_values(out, t.number)
        for tg in plan["targets"]:
            row[tg["name"]] = float(np.mean(reps[tg["name"]])) if reps else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def fit_frame(plan: dict[str, Any], per_rep: dict[str, list[float]]):
    import pandas as pd

    from .stats import mean_ci

    rows = []
    for t in plan["targets"]:
        mean, lo, hi, n = mean_ci(np.asarray(per_rep[t["name"]]))
        when = f"day {t['day']}" if t["day"] is not None else f"days {t['window'][0]}-{t['window'][1]} ({t['stat']})"
        rows.append({"target": t["name"], "role": "fitted" if t["fit"] else "hold-out", "metric": t["metric"],
                     "group": t["group"], "when": when, "published": t["value"], "uncertainty": t["uncertainty"],
                     "simulated": mean, "ci_low": lo, "ci_high": hi, "replicates": n,
                     "z": (mean - t["value"]) / t["uncertainty"], "source": t["source"]})
    return pd.DataFrame(rows)


def write_results(out: Path, plan: dict[str, Any], study) -> None:
    from ..atomic import write_atomic, write_text_atomic

    frame = trials_frame(out, plan, study)
    write_atomic(out / "trials.parquet", lambda p: frame.to_parquet(p, index=False))
    write_atomic(out / "trials.csv", lambda p: frame.to_csv(p, index=False))
    best = study.best_trial
    per_rep = trial_values(out, best.number)
    fit = fit_frame(plan, per_rep)
    write_atomic(out / "fit.csv", lambda p: fit.to_csv(p, index=False))
    spec = TargetsSpec.model_validate(plan["spec"])
    scenario = scenario_from_dict(assign(plan["base_scenario"], spec, dict(best.params), plan["parameters"]),
                                  source=str(out / "best.toml"))
    write_text_atomic(out / "best.toml", _best_header(plan, best) + scenario.to_toml())
    from .calibrate_report import build_report

    write_text_atomic(out / "fit.md", build_report(plan, fit, frame, best, markdown=True))
    write_text_atomic(out / "fit.html", build_report(plan, fit, frame, best, markdown=False))


def _best_header(plan: dict[str, Any], best) -> str:
    lines = [f"# Calibrated by scorelab {__version__}: trial {best.number} of {plan['targets_file']}",
             f"# objective (mean squared standardised error over fitted targets): {best.value:.4g}"]
    for col, path in plan["parameters"].items():
        p = plan["spec"]["parameters"][path]
        how = "x base" if p["scale"] else "="
        lines.append(f"#   {path} {how} {best.params[col]:.6g}" if isinstance(best.params[col], float)
                     else f"#   {path} {how} {best.params[col]!r}")
    return "\n".join(lines) + "\n\n"
