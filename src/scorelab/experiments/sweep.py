"""Parameter sweeps: a grid or random draws over scenario values addressed by dotted path, replicated.

A sweep file (TOML) names a base scenario, the parameters and their values, and the replicates::

    base = "rr1"              # preset name or scenario file (relative to this file)
    population = 20000        # optional overrides of the base scenario
    days = 90
    replicates = 3
    seed = 0                  # root of the replicate seeds

    [parameters]
    "sensors[camera].false_attribution.rate.rural" = [0.00008, 0.00024, 0.0008]
    "policy.rules[public_criticism].points" = { values = [-20, -10], name = "criticism_points" }

With ``[random] n = 20, seed = 1`` the sweep draws ``n`` points instead of a grid; a parameter is then
a list to choose from or a range ``{ low = .., high = .., log = false }``.

Every path is checked against the base scenario and every point is validated as a scenario before any
run starts. Runs are written to ``DIR/runs/<name>=<value>/.../replicate=<r>/`` (Hive partitioning);
``DIR/sweep.json`` records the plan, so ``--resume DIR`` re-runs exactly the runs that are missing.
Replicate ``r`` uses the same seed at every point (common random numbers).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ..config.strict import StrictModel, new_dict

from .._version import __version__
from ..config.loader import ConfigError, explain, load_scenario, parse_toml, resolve_source, scenario_from_dict
from . import paths
from ..store import check_writable
from .execute import Listener, check_scheduler, read_manifest, Report, RunTask, execute, partition_dir, replicate_seed, write_json

MANIFEST = "sweep.json"
MAX_RUNS = 10_000  # a sweep of more runs needs --yes (`start(..., max_runs=None)`)
Scalar = Union[bool, int, float, str]
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
RESERVED = {"replicate", "day", "group", "citizen", "policy"}


_Strict = StrictModel  # config/strict.py: strict types, finite floats, no unknown keys


class Parameter(_Strict):
    """One swept value: a list of ``values`` (grid or random choice) or a ``low``..``high`` range (random)."""

    name: str | None = Field(None, description="column name in results; default: the path with _ for punctuation")
    values: list[Scalar] | None = Field(None, min_length=1)
    low: float | None = None
    high: float | None = None
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> "Parameter":
        has_range = self.low is not None or self.high is not None
        if self.values is None and not has_range:
            raise ValueError("give `values = [...]` or a range `low`, `high`")
        if self.values is not None and has_range:
            raise ValueError("give either `values` or `low`/`high`, not both")
        if has_range:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both `low` and `high`")
            if not self.low <= self.high:
                raise ValueError(f"`low` ({self.low}) must not exceed `high` ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs `low` above 0")
        if self.values is not None and len({repr(v) for v in self.values}) != len(self.values):
            raise ValueError("`values` lists a value twice")
        if self.name is not None and (not _COLUMN.match(self.name) or self.name in RESERVED):
            raise ValueError(f"`name` {self.name!r} must be a SQL-friendly name (letters, digits, _) and not one of "
                             f"{', '.join(sorted(RESERVED))}")
        return self


class RandomDraws(_Strict):
    n: int = Field(gt=0, le=100_000, description="points to draw")
    seed: int = Field(0, ge=0, le=2**63 - 1)


class SweepSpec(_Strict):
    base: str = Field("rr1", description="preset name or scenario file, relative to the sweep file")
    population: int | None = Field(None, gt=0, le=10_000_000_000)
    days: int | None = Field(None, gt=0, le=20_000)
    replicates: int = Field(1, gt=0, le=10_000)
    seed: int = Field(0, ge=0, le=2**63 - 1, description="root seed; replicate r uses a SeedSequence child of it")
    ledger: str = Field("auto", description="per-citizen detail of each run: auto, all, none, or a sample size")
    random: RandomDraws | None = None
    parameters: dict[str, Parameter] = Field(default_factory=new_dict)

    @field_validator("parameters", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for k, p in v.items():
                if isinstance(p, list):
                    p = {"values": p}
                elif not isinstance(p, dict):
                    raise ValueError(f"{k}: give a list of values or a table such as {{ low = 0.1, high = 0.9 }} "
                                     f"(got {p!r})")
                out[k] = p
            return out
        return v

    @field_validator("ledger")
    @classmethod
    def _ledger(cls, v: str) -> str:
        v2 = v.strip().lower().replace("_", "").replace(",", "")
        if v2 in ("auto", "all", "none") or (v2.isdigit() and int(v2) > 0):
            return v2
        raise ValueError(f"{v!r} is not allowed; use all, none, auto, or a number of citizens")


def column_name(path: str, p: Parameter) -> str:
    if p.name:
        return p.name
    name = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")
    if name and name[0].isdigit():
        name = "p_" + name
    return name


def read_spec(path: Path) -> SweepSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), None, f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text") from None
    data = parse_toml(text, str(path))
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as e:
        raise explain(str(path), e, SweepSpec) from None


def _base_source(spec: SweepSpec, sweep_file: Path) -> str:
    rel = sweep_file.parent / spec.base
    if spec.base.endswith(".toml") or "/" in spec.base or rel.exists():
        return str(rel)
    return spec.base


def _integer_like(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def plan_points(spec: SweepSpec, base: dict[str, Any], source: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The parameter points (column name -> value, in file order) and each column's dotted path."""
    columns: dict[str, str] = {}
    kinds: dict[str, Any] = {}
    for path, p in spec.parameters.items():
        try:
            current = paths.check(base, path)
        except paths.PathError as e:
            raise ConfigError(source, f"parameters.{path}", str(e)) from None
        col = column_name(path, p)
        if not _COLUMN.match(col) or col in RESERVED:
            raise ConfigError(source, f"parameters.{path}",
                              f"its column name {col!r} is not usable; give the parameter a `name`")
        if col in columns:
            raise ConfigError(source, f"parameters.{path}",
                              f"its column name {col!r} is also that of {columns[col]!r}; give one a `name`")
        if spec.random is None and p.values is None:
            raise ConfigError(source, f"parameters.{path}",
                              "a range (low/high) needs random draws: add [random] with n and seed, or give values")
        columns[col] = path
        kinds[col] = current
    if spec.random is None:
        lists = [spec.parameters[path].values for path in columns.values()]
        grid = [dict(zip(columns, combo)) for combo in _product(lists)]
        return grid, columns
    rng = np.random.Generator(np.random.PCG64(spec.random.seed))
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(spec.random.n):
        point = {}
        for col, path in columns.items():
            p = spec.parameters[path]
            if p.values is not None:
                point[col] = p.values[int(rng.integers(len(p.values)))]
            elif _integer_like(kinds[col]) and float(p.low).is_integer() and float(p.high).is_integer() and not p.log:
                point[col] = int(rng.integers(int(p.low), int(p.high), endpoint=True))
            else:
                if p.log:
                    x = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
                else:
                    x = rng.uniform(p.low, p.high)
                x = float(f"{x:.6g}")  # readable directory names; 6 significant digits
                point[col] = int(round(x)) if _integer_like(kinds[col]) else x
        key = partition_dir(point)
        if key not in seen:  # two equal draws would be one run directory
            seen.add(key)
            points.append(point)
    return points, columns


def _product(lists: list[list[Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [()]
    for values in lists:
        out = [prev + (v,) for prev in out for v in values]
    return out


def count_runs(spec: SweepSpec) -> int:
    """How many runs a sweep file asks for (points x replicates), before any point is built."""
    if spec.random is not None:
        points = spec.random.n
    else:
        points = math.prod(len(p.values or [None]) for p in spec.parameters.values())
    return points * spec.replicates


def build_plan(sweep_file: Path, max_runs: int | None = MAX_RUNS) -> dict[str, Any]:
    """Read and check a sweep file: every path, every point. Returns the plan (what sweep.json records).

    The number of runs is counted first: past ``max_runs`` the sweep is refused before any work."""
    sweep_file = Path(sweep_file)
    spec = read_spec(sweep_file)
    n = count_runs(spec)
    if max_runs is not None and n > max_runs:
        raise ConfigError(str(sweep_file), "parameters",
                          f"this sweep is {n:,} runs (points x replicates), more than the {max_runs:,} allowed "
                          "without confirmation; shrink the grid, use [random] draws, or pass --yes to run it")
    src = _base_source(spec, sweep_file)
    try:
        resolve_source(src)
    except ConfigError as e:
        raise ConfigError(str(sweep_file), "base", e.message) from None
    base_sc = load_scenario(src, population=spec.population, days=spec.days)
    base = base_sc.model_dump(mode="json")
    points, columns = plan_points(spec, base, str(sweep_file))
    for point in points:
        data = paths.apply(base, {columns[c]: v for c, v in point.items()})
        try:
            scenario_from_dict(data, source=str(sweep_file))
        except ConfigError as e:
            where = ", ".join(f"{columns[c]} = {v!r}" for c, v in point.items())
            raise ConfigError(str(sweep_file), "parameters",
                              f"the point {where} gives an invalid scenario: {e.field or ''}: {e.message}") from None
    types = {c: _sql_type([p[c] for p in points]) for c in columns}
    types["replicate"] = "INTEGER"
    return {
        "kind": "sweep",
        "scorelab": __version__,
        "sweep_file": str(sweep_file.resolve()),
        "spec": spec.model_dump(mode="json"),
        "base_scenario": base,
        "parameters": columns,
        "partitions": types,
        "points": points,
        "replicates": spec.replicates,
        "seeds": [replicate_seed(spec.seed, r) for r in range(spec.replicates)],
        "ledger": spec.ledger,
    }


def _sql_type(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOLEAN"
    if all(_integer_like(v) for v in values):
        return "BIGINT"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "DOUBLE"
    return "VARCHAR"


def tasks_of(plan: dict[str, Any]) -> list[RunTask]:
    """Every run of a plan, in order: points (outer) x replicates (inner)."""
    base, columns = plan["base_scenario"], plan["parameters"]
    out = []
    for point in plan["points"]:
        scenario = paths.apply(base, {columns[c]: v for c, v in point.items()})
        for r, seed in enumerate(plan["seeds"]):
            keys = {**point, "replicate": r}
            out.append(RunTask(partition_dir(keys), keys, seed, scenario, plan["ledger"]))
    return out


def start(sweep_file: Path, out: Path, *, max_runs: int | None = MAX_RUNS, **kw: Any) -> tuple[dict[str, Any], Report]:
    """Plan a sweep into a new directory ``out`` and run it (refused past ``max_runs`` runs; None: no limit)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if (out / MANIFEST).is_file():
            raise ConfigError(str(out), None, f"a sweep already lives here; continue it with `scorelab sweep --resume {out}`")
        raise ConfigError(str(out), None, "directory exists and is not empty; choose another --out")
    plan = build_plan(sweep_file, max_runs=max_runs)
    check_writable(out)
    check_scheduler(kw.get("scheduler"))  # before anything is written: a bad address leaves nothing behind
    out.mkdir(parents=True, exist_ok=True)
    plan["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(out / MANIFEST, plan)
    return plan, run_plan(out, plan, **kw)


def load_plan(out: Path) -> dict[str, Any]:
    return read_manifest(out, MANIFEST, "sweep", "scorelab sweep FILE")


def resume(out: Path, **kw: Any) -> tuple[dict[str, Any], Report]:
    """Run what a sweep directory's plan has not finished (nothing, if it is complete)."""
    plan = load_plan(out)
    return plan, run_plan(Path(out), plan, **kw)


def run_plan(out: Path, plan: dict[str, Any], *, workers: int = 1, scheduler: str | None = None,
             listener: Listener | None = None) -> Report:
    tasks = tasks_of(plan)
    report = execute(out, tasks, workers=workers, scheduler=scheduler, listener=listener)
    write_summaries(out, tasks)
    return report


def write_summaries(out: Path, tasks: list[RunTask]) -> None:
    """``summaries.parquet``: every summary metric of every finished run, with its parameters (long table)."""
    from .execute import is_done
    from .summary import checked_run, summaries_frame, summarise

    done = [t for t in tasks if is_done(out, t.rel)]
    for t in done:
        checked_run(out, out / t.rel)
    rows = [({**t.keys, "seed": t.seed}, summarise(out / t.rel)) for t in done]
    if not rows:
        return
    from ..atomic import write_atomic

    frame = summaries_frame(rows)
    write_atomic(out / "summaries.parquet", lambda p: frame.to_parquet(p, index=False))
