"""The scenario and policy formats, as pydantic models.

A *scenario* describes a synthetic society (groups, behaviours, sensors, how people respond to being
scored) and names the *policy* that scores it (rules, grades, blacklists, restrictions). Both are data:
every model forbids unknown keys, is frozen once validated, and cross-references (a rule naming a
behaviour, a restriction naming a grade) are checked here, so the kernel never meets a dangling name.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator
from .strict import Lax, StrictModel, new_list
from .limits import POINTS_LIMIT, SCORE_LIMIT, check_score_range

from .governance import Governance
from ..plugins.lending import Lender
from ..plugins.redlist import RedList
from .start import StartScores
from .response import Response  # how people respond (config/response.py)
from .extensions import Composite, DueProcess, Effect, Graph, PeerRating, Privilege, check_scenario

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")]


Strict = StrictModel  # config/strict.py: strict types, finite floats, no unknown keys


class Sensitive(str, Enum):
    """Special categories of personal data (GDPR Art. 9, UN Principles): a rule that uses one is tagged."""

    political_opinion = "political_opinion"
    religion = "religion"
    ethnicity = "ethnicity"
    health = "health"
    biometrics = "biometrics"
    sexual_orientation = "sexual_orientation"
    union_membership = "union_membership"
    genetic = "genetic"


# A per-group value is either one number for every group or a table {group: number}.
PerGroup = Union[float, dict[str, float]]


class Group(Strict):
    name: Name
    share: Probability
    start: StartScores | None = Field(None, description="this group's start scores on day 0 (default: the policy's start_score)")
    description: str = ""


class Behaviour(Strict):
    name: Name
    rate: PerGroup = Field(description="daily probability per citizen, per group")
    misconduct: bool = Field(description="ground truth: is doing this wrongdoing? Declared, never inferred from points; "
                             "the audit measures sanctions against it")
    severity: float = Field(1.0, ge=0.0, le=1000.0, allow_inf_nan=False,
                            description="weight of one true event of misconduct (audit: misconduct_severity)")
    speech: bool = Field(False, description="political expression: counted as `criticism`, the chilling-effect metric")
    requires_listed: Name | None = Field(None, description="only citizens on this blacklist can do it (repay a debt)")
    requires_privilege: Name | None = Field(None, description="only holders of this privilege can do it (default on credit)")
    heterogeneity: float = Field(0.0, ge=0.0, le=3.0, allow_inf_nan=False,
                                 description="spread (log-sd) of a per-citizen propensity multiplier of mean 1")
    heterogeneity_cap: float = Field(5.0, ge=1.0, le=50.0, allow_inf_nan=False,
                                     description="largest per-citizen multiplier (candidates are drawn at rate x cap)")
    description: str = ""


class FalseAttribution(Strict):
    """A sensor that invents events: each citizen independently, each day, with a per-group probability."""

    behaviour: Name
    rate: PerGroup


class Targeting(Strict):
    """Surveillance that targets: the sensor sees more of what citizens under a restriction do."""

    restriction: Name
    factor: float = Field(gt=0.0, le=1000.0, allow_inf_nan=False,
                          description="coverage multiplier for citizens under the restriction (capped at 1)")


class Sensor(Strict):
    name: Name
    coverage: PerGroup = Field(description="probability that a true event is observed, per group")
    false_attribution: FalseAttribution | None = None
    targeting: list[Targeting] = Field(default_factory=new_list, description="coverage rises for restricted citizens")
    description: str = ""


class Rule(Strict):
    behaviour: Name
    sensor: Name
    points: int = Field(ge=-POINTS_LIMIT, le=POINTS_LIMIT, description="added to the score per observed event")
    cap_score: int | None = Field(None, ge=-SCORE_LIMIT, le=SCORE_LIMIT,
                                  description="then the score becomes min(score, cap_score)")
    cap_days: int = Field(0, ge=0, le=20_000, description="with cap_score: the cap holds for this many days from "
                          "the event (gains while it holds are forfeited); 0 = the event's day only")
    money: float = Field(0.0, ge=0.0, le=1e12, description="money collected per observed event (metric money_collected)")
    subscore: Name | None = Field(None, description="with [policy.composite]: points go to this sub-score")
    sensitive: list[Annotated[Sensitive, Lax]] = Field(default_factory=new_list)
    description: str = ""


class Grade(Strict):
    name: Name
    min: int | None = Field(None, ge=-SCORE_LIMIT, le=SCORE_LIMIT, description="lowest score in the band; omitted for the lowest band")
    max: int | None = Field(None, ge=-SCORE_LIMIT, le=SCORE_LIMIT, description="highest score in the band; omitted for the highest band")

    @model_validator(mode="after")
    def _ordered(self) -> "Grade":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"grade {self.name}: min {self.min} is above max {self.max}")
        return self


class Blacklist(Strict):
    name: Name
    trigger: Name = Field(description="behaviour whose observation lists the citizen")
    duration_days: int = Field(gt=0, le=20000)
    removed_by: list[Name] = Field(default_factory=new_list, description="behaviours that end the listing that day")
    extended_by: list[Name] = Field(default_factory=new_list, description="behaviours that extend a running listing")
    extension_days: int = Field(0, ge=0, le=20000)
    initial_share: PerGroup = Field(0.0, description="share listed on day 0 (one number, or one per group), "
                                    "remaining time uniform")
    description: str = ""


class Restriction(Strict):
    name: Name
    description: str = ""
    grades: list[Name] = Field(default_factory=new_list)
    blacklists: list[Name] = Field(default_factory=new_list)
    blocks: list[Name] = Field(default_factory=new_list, description="attempted behaviours refused (counted as blocked)")
    reach: Literal["self", "household"] = Field("self", description="household: a listing restricts the household")
    effects: list[Effect] = Field(default_factory=new_list, description="propensities it changes while it holds")

    @model_validator(mode="after")
    def _something(self) -> "Restriction":
        if not self.grades and not self.blacklists:
            raise ValueError(f"restriction {self.name} names no grade and no blacklist, so it restricts nobody")
        return self


class Policy(Strict):
    name: Name = "policy"
    description: str = ""
    start_score: int = Field(1000, ge=-30000, le=30000)
    score_min: int | None = Field(None, ge=-SCORE_LIMIT, le=SCORE_LIMIT)
    score_max: int | None = Field(None, ge=-SCORE_LIMIT, le=SCORE_LIMIT)
    rules: list[Rule] = Field(default_factory=new_list)
    grades: list[Grade] = Field(default_factory=new_list)
    blacklists: list[Blacklist] = Field(default_factory=new_list)
    restrictions: list[Restriction] = Field(default_factory=new_list)
    governance: Governance = Field(default_factory=Governance, description="data-protection declarations (audit only)")
    privileges: list[Privilege] = Field(default_factory=new_list)
    due_process: DueProcess | None = None
    composite: Composite | None = None
    red_lists: list[RedList] = Field(default_factory=new_list, description="lists for good deeds, with rewards (plugins/redlist.py)")
    lender: Lender | None = Field(None, description="loans decided from the score, outcomes that feed back (plugins/lending.py)")

    @model_validator(mode="after")
    def _check(self) -> "Policy":
        if self.score_min is not None and self.score_max is not None and self.score_min >= self.score_max:
            raise ValueError(f"score_min {self.score_min} must be below score_max {self.score_max}")
        _unique("rules", [(r.behaviour) for r in self.rules], what="behaviour (one rule per behaviour)")
        _unique("grades", [g.name for g in self.grades])
        _unique("blacklists", [b.name for b in self.blacklists])
        _unique("restrictions", [r.name for r in self.restrictions])
        _check_bands(self.grades)
        self.governance.check_names(None)
        names = {g.name for g in self.grades}
        lists = {b.name for b in self.blacklists}
        for i, r in enumerate(self.restrictions):
            for g in r.grades:
                if g not in names:
                    raise ValueError(f"restrictions[{i}].grades: unknown grade {g!r}; grades are {sorted(names)}")
            for b in r.blacklists:
                if b not in lists:
                    raise ValueError(
                        f"restrictions[{i}].blacklists: unknown blacklist {b!r}; blacklists are {sorted(lists)}"
                    )
        return self

    def check_governance(self) -> None:
        """Names in the governance declarations must refer to this policy's rules and restrictions.

        Called after the rules themselves were checked against the scenario, so that a misspelt rule is
        reported at the rule, not at a declaration that names it correctly."""
        try:
            self.governance.check_names({r.behaviour for r in self.rules}, {r.name for r in self.restrictions})
        except ValueError as e:
            raise ValueError(f"policy.{e}") from None


def _unique(field: str, names: list[str], what: str = "name") -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{field}: {what} {n!r} appears twice")
        seen.add(n)


def _check_bands(grades: list[Grade]) -> None:
    """Grade bands must tile the integers: no overlap, no gap, one open-ended band at each end."""
    if not grades:
        return
    lo = [g for g in grades if g.min is None]
    hi = [g for g in grades if g.max is None]
    if len(lo) != 1 or len(hi) != 1:
        raise ValueError(
            "grades: exactly one band must have no `min` (the lowest) and exactly one no `max` (the highest); "
            f"found {len(lo)} without min and {len(hi)} without max"
        )
    order = sorted(grades, key=lambda g: -math.inf if g.min is None else g.min)
    for below, above in zip(order, order[1:]):
        if below.max is None or above.min is None:
            raise ValueError(f"grades: bands {below.name} and {above.name} overlap")
        if above.min <= below.max:
            raise ValueError(
                f"grades: bands {below.name} (up to {below.max}) and {above.name} (from {above.min}) overlap"
            )
        if above.min != below.max + 1:
            raise ValueError(
                f"grades: gap between {below.name} (up to {below.max}) and {above.name} (from {above.min}); "
                f"scores {below.max + 1}..{above.min - 1} have no grade"
            )


class ScenarioMeta(Strict):
    name: Name
    description: str = ""
    population: int = Field(670_000, gt=0, le=10_000_000_000)
    days: int = Field(365, gt=0, le=20_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)


class Scenario(Strict):
    scenario: ScenarioMeta
    groups: list[Group] = Field(min_length=1, max_length=250)
    behaviours: list[Behaviour] = Field(min_length=1, max_length=120)
    sensors: list[Sensor] = Field(default_factory=new_list)
    policy: Policy
    response: Response = Field(default_factory=Response)  # (a factory: no validator built at import)
    graph: Graph | None = None
    peer: PeerRating | None = None

    @model_validator(mode="after")
    def _check(self) -> "Scenario":
        groups = [g.name for g in self.groups]
        _unique("groups", groups)
        _unique("behaviours", [b.name for b in self.behaviours])
        _unique("sensors", [s.name for s in self.sensors])
        total = sum(g.share for g in self.groups)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"groups: shares must add up to 1, they add up to {total:g}")
        behaviours = {b.name for b in self.behaviours}
        sensors = {s.name for s in self.sensors}
        for i, b in enumerate(self.behaviours):
            _per_group(f"behaviours[{i}].rate", b.rate, groups)
        pol = self.policy
        for i, bl in enumerate(pol.blacklists):
            _per_group(f"policy.blacklists[{i}].initial_share", bl.initial_share, groups)
        for i, g in enumerate(self.groups):
            if g.start is None:
                continue
            lo, hi = g.start.support()
            if (pol.score_min is not None and lo < pol.score_min) or (pol.score_max is not None and hi > pol.score_max):
                raise ValueError(f"groups[{i}].start: start scores {lo}..{hi} reach outside the policy's score range "
                                 f"{pol.score_min}..{pol.score_max}; keep them inside (set low/high)")
        for i, s in enumerate(self.sensors):
            _per_group(f"sensors[{i}].coverage", s.coverage, groups)
            if s.false_attribution is not None:
                fa = s.false_attribution
                _per_group(f"sensors[{i}].false_attribution.rate", fa.rate, groups)
                _known(f"sensors[{i}].false_attribution.behaviour", fa.behaviour, behaviours, "behaviour")
                rule = next((r for r in self.policy.rules if r.behaviour == fa.behaviour), None)
                if rule is None or rule.sensor != s.name:
                    raise ValueError(
                        f"sensors[{i}].false_attribution: sensor {s.name!r} invents {fa.behaviour!r} events, "
                        f"so the policy needs a rule scoring {fa.behaviour!r} from sensor {s.name!r}"
                    )
        for i, r in enumerate(self.policy.rules):
            _known(f"policy.rules[{i}].behaviour", r.behaviour, behaviours, "behaviour")
            _known(f"policy.rules[{i}].sensor", r.sensor, sensors, "sensor")
        self.policy.check_governance()
        for i, bl in enumerate(self.policy.blacklists):
            _known(f"policy.blacklists[{i}].trigger", bl.trigger, behaviours, "behaviour")
        det = self.response.deterrence.behaviours or []
        for j, name in enumerate(det):
            _known(f"response.deterrence.behaviours[{j}]", name, behaviours, "behaviour")
        for j, gm in enumerate(self.response.gaming):
            _known(f"response.gaming[{j}].behaviour", gm.behaviour, behaviours, "behaviour")
        for j, sc in enumerate(self.response.score_curves):
            _known(f"response.score_curves[{j}].behaviour", sc.behaviour, behaviours, "behaviour")
        for j, ch in enumerate(self.response.chilling):
            _known(f"response.chilling[{j}].behaviour", ch.behaviour, behaviours, "behaviour")
            if not any(r.behaviour == ch.behaviour for r in self.policy.rules):
                raise ValueError(f"response.chilling[{j}].behaviour: {ch.behaviour!r} has no policy rule, so no one is "
                                 "watched for it; chilling needs a rule (its sensor and points are the threat)")
        restrictions = {r.name for r in self.policy.restrictions}
        for i, sen in enumerate(self.sensors):
            for j, tg in enumerate(sen.targeting):
                _known(f"sensors[{i}].targeting[{j}].restriction", tg.restriction, restrictions, "restriction")
        for i, res in enumerate(self.policy.restrictions):
            for j, ef in enumerate(res.effects):
                _known(f"policy.restrictions[{i}].effects[{j}].behaviour", ef.behaviour, behaviours, "behaviour")
        for i, priv in enumerate(self.policy.privileges):
            for j, ef in enumerate(priv.effects):
                _known(f"policy.privileges[{i}].effects[{j}].behaviour", ef.behaviour, behaviours, "behaviour")
        blocked = {b for r in self.policy.restrictions for b in r.blocks}
        for j, ln in enumerate(self.response.learning):
            _known(f"response.learning[{j}].behaviour", ln.behaviour, behaviours, "behaviour")
            if ln.behaviour not in blocked:
                raise ValueError(f"response.learning[{j}].behaviour: {ln.behaviour!r} is not blocked by any restriction "
                                 f"(policy.restrictions[].blocks); allowed: {', '.join(sorted(blocked)) or 'none'}")
        check_scenario(self)
        from ..plugins import check_all as check_plugins

        check_plugins(self)
        check_score_range(self)
        return self

    def start_support(self) -> tuple[int, int]:
        """Lowest and highest start score any citizen can have."""
        lo = hi = self.policy.start_score
        for g in self.groups:
            if g.start is not None:
                a, b = g.start.support()
                lo, hi = min(lo, a), max(hi, b)
        return lo, hi

    def with_changes(self, changes: dict[str, Any]) -> "Scenario":
        """A new, validated scenario with each value named by a dotted path set, e.g.
        ``sc.with_changes({"policy.rules[public_criticism].points": -200, "response.deterrence.factor": 0.9})``.

        The paths are those of sweeps (scorelab.experiments.paths, docs/experiments.md): list items by
        ``[name]`` or ``[index]``, a group's share of a per-group value by ``.group``. An optional block can be
        removed with None (``{"policy.due_process": None}``). Scenarios are frozen, so this is how to edit one.
        Raises ConfigError naming the path and what is allowed."""
        from ..experiments import paths
        from .loader import ConfigError, scenario_from_dict

        if not isinstance(changes, dict):
            raise ConfigError("with_changes", None, "give a dict of {dotted path: value}")
        data = self.model_dump(mode="json")
        for path, value in changes.items():
            try:
                paths.check(data, path)
            except paths.PathError as e:
                # a whole table or list may be replaced (or removed with None); anything else is an error
                if value is not None and not isinstance(value, (dict, list)):
                    raise ConfigError("with_changes", str(path), str(e)) from None
                try:
                    paths.apply(data, {path: value})
                except paths.PathError:
                    raise ConfigError("with_changes", str(path), str(e)) from None
        return scenario_from_dict(paths.apply(data, changes), source="with_changes")

    def to_toml(self) -> str:
        """The scenario as a TOML scenario file (`scorelab run FILE.toml` runs it; loading it gives it back)."""
        from .writer import scenario_toml

        return scenario_toml(self)

    def per_group(self, value: PerGroup) -> list[float]:
        """A per-group value as a list in group order."""
        if isinstance(value, dict):
            return [float(value[g.name]) for g in self.groups]
        return [float(value)] * len(self.groups)


def _known(field: str, name: str, allowed: set[str], what: str) -> None:
    if name not in allowed:
        raise ValueError(f"{field}: unknown {what} {name!r}; allowed: {', '.join(sorted(allowed))}")


def _per_group(field: str, value: PerGroup, groups: list[str]) -> None:
    if isinstance(value, dict):
        missing = [g for g in groups if g not in value]
        extra = [k for k in value if k not in groups]
        if extra:
            raise ValueError(f"{field}: unknown group {extra[0]!r}; groups are {', '.join(groups)}")
        if missing:
            raise ValueError(f"{field}: no value for group {missing[0]!r}; give one per group ({', '.join(groups)})")
        items = [(f"{field}.{k}", v) for k, v in value.items()]
    else:
        items = [(field, value)]
    for where, v in items:
        if not (0.0 <= float(v) <= 1.0) or math.isnan(float(v)):
            raise ValueError(f"{where}: {v:g} is not a probability; allowed: a number from 0 to 1")
