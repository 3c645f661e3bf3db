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

The objective is the mean of ((simulated - value) / uncertainty)^2 over the fitted targets, where
"simulated" is the mean over the trial's replicates. Trials live in an Optuna journal in the output
directory (``optuna.journal``), each trial's runs under ``runs/trial=N/replicate=R/``: ``--resume`` finishes
the trials that were cut off (their finished runs are kept) and goes on to the number asked.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from .._version import __version__
from ..config.loader import ConfigError, explain, load_scenario, parse_toml, resolve_source, scenario_from_dict
from ..config.strict import StrictModel
from ..store import check_writable
from . import paths
from .execute import Listener, RunTask, check_scheduler, execute, read_manifest, replicate_seed, write_json
from .sweep import Parameter, Scalar, column_name

MANIFEST = "calibration.json"
JOURNAL = "optuna.journal"
TRIAL_VALUES = "targets.json"  # each trial's simulated targets per replicate, beside its runs
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
SCALED_KINDS = ("count", "stock", "sum")  # counts of people or events: multiplied up to the published population


class FreeParameter(Parameter):
    """A free parameter: a range (``low``/``high``, ``log``) or a list of ``values``; ``scale = true`` multiplies
    the scenario's value there (one number, or a table such as per-group rates) by the drawn factor."""

    scale: bool = False


class Target(StrictModel):
    name: str = Field(description="a short name (letters, digits, _)")
    metric: str = Field(description="a column of metrics.parquet")
    group: str = Field("all", description="a group of the scenario, or all")
    day: int | None = Field(None, ge=0, description="the metric at the end of this day (0 is the first)")
    window: list[int] | None = Field(None, min_length=2, max_length=2, description="[first, last] day, inclusive")
    stat: Literal["sum", "mean"] | None = Field(None, description="over a window; default sum for counts, else mean")
    value: float = Field(description="the published figure")
    uncertainty: float = Field(gt=0, description="its standard error (or a stated tolerance), same unit")
    scale: bool | None = Field(None, description="multiply the simulated value up to scale_to (default: counts yes)")
    offset: float = Field(0.0, description="added to the (scaled) simulated value, e.g. a count from before the run")
    fit: bool = Field(True, description="false: a hold-out figure, reported beside the fit but not fitted")
    source: str = Field("", description="where the figure is published")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r} is not allowed; use letters, digits and _ (not starting with a digit)")
        return v

    @model_validator(mode="after")
    def _when(self) -> "Target":
        if (self.day is None) == (self.window is None):
            raise ValueError("give either `day` (the value at the end of that day) or `window = [first, last]`")
        if self.window is not None and not 0 <= self.window[0] <= self.window[1]:
            raise ValueError(f"window {list(self.window)} must be [first, last] with 0 <= first <= last")
        if self.stat is not None and self.window is None:
            raise ValueError("`stat` applies to a window; a `day` target reads that day's value")
        return self


class Search(StrictModel):
    trials: int = Field(40, gt=0, le=100_000, description="completed trials to reach")
    sampler: Literal["tpe", "cmaes", "random"] = Field("tpe", description="tpe: Optuna's default; cmaes: CMA-ES "
        "(the `cmaes` package), best when every free parameter is a number and the targets pin them down; random")
    seed: int = Field(0, ge=0, le=2**32 - 1)


class TargetsSpec(StrictModel):
    population: int | None = Field(None, gt=0, le=10_000_000_000)
    days: int | None = Field(None, gt=0, le=20_000)
    replicates: int = Field(3, gt=0, le=1000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    scale_to: float | None = Field(None, gt=0, description="the population the published figures describe")
    ledger: Literal["none", "auto", "all"] = "none"
    fixed: dict[str, Scalar] = Field(default_factory=dict, description="dotted paths set before the search "
                                     "(e.g. a stock that a published figure fixes at the start)")
    search: Search = Field(default_factory=Search)
    parameters: dict[str, FreeParameter] = Field(min_length=1)
    targets: list[Target] = Field(min_length=1)

    @field_validator("parameters", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"values": p} if isinstance(p, list) else p) for k, p in v.items()}
        return v

    @model_validator(mode="after")
    def _unique(self) -> "TargetsSpec":
        names = [t.name for t in self.targets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"targets: the name(s) {', '.join(twice)} appear twice")
        if not any(t.fit for t in self.targets):
            raise ValueError("targets: at least one target must have fit = true")
        return self


def read_spec(path: Path) -> TargetsSpec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), None, f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None
    try:
        return TargetsSpec.model_validate(parse_toml(text, str(path)))
    except ValidationError as e:
        raise explain(str(path), e, TargetsSpec) from None


# --------------------------------------------------------------------------------------------------
# planning: every path, target and bound checked before any run


def _check_parameter(base: dict[str, Any], path: str, p: FreeParameter, where: str) -> None:
    try:
        current = paths.value(base, path)
    except paths.PathError as e:
        raise ConfigError(where, f"parameters.{path}", str(e)) from None
    if p.scale:
        if p.values is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p.values):
            raise ConfigError(where, f"parameters.{path}", "scale = true multiplies by a number: give numeric values")
        numbers = list(current.values()) if isinstance(current, dict) else [current]
        if not numbers or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            raise ConfigError(where, f"parameters.{path}",
                              f"scale = true needs a number or a table of numbers there (found {current!r})")
    elif isinstance(current, (dict, list)):
        raise ConfigError(where, f"parameters.{path}",
                          f"it is a table ({', '.join(map(str, current))}); address one value inside it, or add "
                          "scale = true to multiply all of them by one factor")


def assign(base: dict[str, Any], spec: TargetsSpec, point: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """The scenario dict of one trial: each free parameter set (or, with scale, its base value multiplied)."""
    data = base
    for col, path in columns.items():
        p = spec.parameters[path]
        if p.scale:
            data = paths.scale(data, path, float(point[col]))
        else:
            data = paths.apply(data, {path: point[col]})
    return data


def _metric_kinds(scenario) -> dict[str, str]:
    from ..engine.outputs import declared
    from ..engine.params import compile_params

    return {m.name: m.kind for m in declared(compile_params(scenario))}


def build_plan(scenario_src: str, targets_file: Path) -> dict[str, Any]:
    targets_file = Path(targets_file)
    spec = read_spec(targets_file)
    where = str(targets_file)
    resolve_source(scenario_src)
    sc = load_scenario(scenario_src, population=spec.population, days=spec.days)
    base = sc.model_dump(mode="json")
    for path, v in spec.fixed.items():
        try:
            current = paths.check(base, path)
        except paths.PathError as e:
            raise ConfigError(where, f"fixed.{path}", str(e)) from None
        if isinstance(current, bool) != isinstance(v, bool) or (isinstance(current, str) != isinstance(v, str)):
            raise ConfigError(where, f"fixed.{path}", f"{v!r} is not of the kind of value there ({current!r})")
        base = paths.apply(base, {path: v})
    if spec.fixed:
        try:
            sc = scenario_from_dict(base, source=where)
        except ConfigError as e:
            raise ConfigError(where, "fixed", f"gives an invalid scenario: {e.field or ''}: {e.message}") from None
        base = sc.model_dump(mode="json")
    columns: dict[str, str] = {}
    for path, p in spec.parameters.items():
        _check_parameter(base, path, p, where)
        col = column_name(path, p)
        if col in columns or col in {t.name for t in spec.targets} or col in ("trial", "objective", "state"):
            raise ConfigError(where, f"parameters.{path}", f"its column name {col!r} is taken; give it a `name`")
        columns[col] = path
    kinds = _metric_kinds(sc)
    groups = [g.name for g in sc.groups]
    scale = (spec.scale_to / sc.scenario.population) if spec.scale_to else 1.0
    targets = []
    for i, t in enumerate(spec.targets):
        field = f"targets[{i}]"
        if t.metric not in kinds:
            near = [m for m in kinds if t.metric.split("_")[0] in m][:8] or list(kinds)[:8]
            raise ConfigError(where, f"{field}.metric", f"{t.metric!r} is not a metric of this scenario; "
                                                       f"metrics include: {', '.join(near)}")
        if t.group != "all" and t.group not in groups:
            raise ConfigError(where, f"{field}.group", f"{t.group!r} is not a group; use all or one of {', '.join(groups)}")
        last = t.day if t.day is not None else t.window[1]  # type: ignore[index]
        if last >= sc.scenario.days:
            raise ConfigError(where, f"{field}", f"day {last} is past the run's last day ({sc.scenario.days - 1}); "
                                                 "lengthen `days` or move the target")
        kind = kinds[t.metric]
        scaled = t.scale if t.scale is not None else kind in SCALED_KINDS
        stat = t.stat or ("sum" if kind in ("count", "sum") else "mean")
        targets.append({**t.model_dump(mode="json"), "kind": kind, "stat": stat if t.window else "day",
                        "factor": scale if scaled else 1.0})
    # every corner of the box must give a valid scenario (a rate pushed past 1, a share past its bound)
    for corner in _corners(spec, columns):
        try:
            scenario_from_dict(assign(base, spec, corner, columns), source=where)
        except ConfigError as e:
            at = ", ".join(f"{columns[c]} = {v!r}" for c, v in corner.items())
            raise ConfigError(where, "parameters", f"the bounds give an invalid scenario at {at}: "
                                                   f"{e.field or ''}: {e.message}") from None
    return {
        "kind": "calibration", "scorelab": __version__, "scenario_source": scenario_src,
        "targets_file": str(targets_file.resolve()), "spec": spec.model_dump(mode="json"),
        "base_scenario": base, "parameters": columns, "targets": targets, "scale": scale,
        "seeds": [replicate_seed(spec.seed, r) for r in range(spec.replicates)],
    }


def _corners(spec: TargetsSpec, columns: dict[str, str]) -> list[dict[str, Any]]:
    ends = []
    for col, path in columns.items():
        p = spec.parameters[path]
        ends.append([p.low, p.high] if p.values is None else list(p.values))
    out: list[dict[str, Any]] = [{}]
    for col, vals in zip(columns, ends):
        out = [{**o, col: v} for o in out for v in vals]
        if len(out) > 256:  # many parameters: the two extreme corners and the rest unchecked until drawn
            break
    return out[:256]


# --------------------------------------------------------------------------------------------------
# the study


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
