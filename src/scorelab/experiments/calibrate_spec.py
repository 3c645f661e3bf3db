"""The calibration's targets file: its models (free parameters, targets, search), reading and checking it,
and the plan a calibration directory records (calibrate.py runs it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .._version import __version__
from ..config.loader import ConfigError, explain, load_scenario, parse_toml, resolve_source, scenario_from_dict
from ..config.strict import StrictModel, new_dict
from . import paths
from .execute import replicate_seed
from .sweep import Parameter, Scalar, column_name

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
    fixed: dict[str, Scalar] = Field(default_factory=new_dict, description="dotted paths set before the search "
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
