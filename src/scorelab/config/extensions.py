"""Scenario-format extensions for the presets' mechanisms (issue 3).

Each block here is data, validated like the core format (unknown keys are errors, models are frozen):

- ``[[policy.privileges]]``: rewards held by grade (who holds each privilege, per day and group, is a metric).
- ``[policy.due_process]``: notice before penalty, human review of automated evidence, appeals, expiry.
- ``[policy.composite]``: a score composed of weighted sub-scores (Sesame Credit), one of which may follow the
  scores of a citizen's contacts.
- ``[graph]``: households (contiguous blocks inside a group) and contact networks (friends, coworkers).
- ``[peer]``: peer rating after interactions on a contact network (Nosedive).

Rule, behaviour, blacklist and restriction fields added for the same issue live on the core models
(``cap_score``, ``money``, ``subscore``, ``requires_listed``, ``removed_by``, ``extended_by``, ``blocks``,
``reach``, ``initial_share``); `check_scenario` cross-checks every name these blocks use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator
from .strict import StrictModel, new_list
from .limits import SCORE_LIMIT

if TYPE_CHECKING:  # pragma: no cover
    from .models import Scenario

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")]
Level = Union[float, dict[str, float]]  # a number per group, or one for all groups (not a probability)


_Strict = StrictModel  # config/strict.py: strict types, finite floats, no unknown keys


class Effect(_Strict):
    """A consequence that acts: while it holds, a citizen's propensity for `behaviour` is multiplied by `factor`
    (slowed internet lowers online speech; a loan privilege raises borrowing)."""

    behaviour: Name
    factor: float = Field(ge=0.0, le=10.0, allow_inf_nan=False)


class Privilege(_Strict):
    """A reward held by every citizen whose grade is one of `grades`."""

    name: Name
    grades: list[Name] = Field(min_length=1)
    effects: list[Effect] = Field(default_factory=new_list, description="propensities it changes while held")
    description: str = ""


class DueProcess(_Strict):
    """Safeguards of a rights-respecting scheme; every number is a probability or a number of days."""

    notice_days: int = Field(0, ge=0, le=3650, description="a penalty takes effect this many days after notice")
    contest: Probability = Field(0.0, description="share of notified citizens who contest the penalty")
    contest_success: Probability = Field(0.0, description="a contested false attribution is dropped with this probability")
    review: Probability = Field(0.0, description="human review catches a false attribution before it scores")
    appeal: Probability = Field(0.0, description="a false attribution that scored is reversed on appeal")
    appeal_days: int = Field(60, ge=1, le=3650)
    expiry_days: int | None = Field(None, ge=1, le=20000, description="negative records are reversed after this")

    @model_validator(mode="after")
    def _check(self) -> "DueProcess":
        if self.contest and not self.notice_days:
            raise ValueError("contest: citizens contest a penalty during its notice period; set notice_days >= 1 "
                             "(or contest = 0)")
        if self.appeal and self.expiry_days and self.appeal_days >= self.expiry_days:
            raise ValueError(f"appeal_days: {self.appeal_days} is not before expiry_days {self.expiry_days}, so no "
                             "appeal would ever be decided; make appeal_days shorter or drop appeal")
        return self

    @property
    def active(self) -> bool:
        return bool(self.notice_days or self.review or self.appeal or self.expiry_days)


class SubScore(_Strict):
    name: Name
    weight: float = Field(gt=0.0, le=1.0)
    initial: Level = Field(50.0, description="mean starting value on a 0-100 scale, per group")
    spread: float = Field(10.0, ge=0.0, le=100.0, description="standard deviation of the starting value")
    contacts: Name | None = Field(None, description="network: the sub-score is the mean of the contacts' scores")
    description: str = ""


class Composite(_Strict):
    """score = low + (high - low) * sum(weight * subscore / 100), recomputed every `update_every` days."""

    low: int = Field(350, ge=-SCORE_LIMIT, le=SCORE_LIMIT)
    high: int = Field(950, ge=-SCORE_LIMIT, le=SCORE_LIMIT)
    update_every: int = Field(30, ge=1, le=3650)
    subscores: list[SubScore] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _check(self) -> "Composite":
        if self.low >= self.high:
            raise ValueError(f"policy.composite: low {self.low} must be below high {self.high}")
        total = sum(s.weight for s in self.subscores)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"policy.composite.subscores: weights must add up to 1, they add up to {total:g}")
        names = [s.name for s in self.subscores]
        if len(set(names)) != len(names):
            raise ValueError("policy.composite.subscores: a sub-score name appears twice")
        return self


class Households(_Strict):
    mean_size: float = Field(2.8, ge=1.0, le=20.0, description="mean household size (1 + Poisson)")
    max_size: int = Field(12, ge=1, le=255)

    @model_validator(mode="after")
    def _check(self) -> "Households":
        if self.max_size < self.mean_size:
            raise ValueError(f"max_size: {self.max_size} is below mean_size {self.mean_size:g}; the mean could not "
                             "be reached")
        return self


class Network(_Strict):
    name: Name
    mean_degree: float = Field(gt=0.0, le=1000.0)
    same_group: Probability = Field(0.8, description="share of contacts drawn from the citizen's own group")
    local: Probability = Field(0.5, description="share of contacts drawn from nearby ids (clustered circles)")


class Graph(_Strict):
    households: Households | None = None
    networks: list[Network] = Field(default_factory=new_list)


class Incident(_Strict):
    behaviour: Name
    days: int = Field(1, ge=1, le=3650, description="how long the penalty lasts")
    factor: float = Field(2.0, ge=1.0, le=100.0, description="weight multiplier on stars received meanwhile")
    opinion_drop: float = Field(1.0, ge=0.0, le=4.0, description="honest opinion of the citizen drops by this")


class Association(_Strict):
    below: float = Field(3.0, ge=1.0, le=5.0, description="a contact rated below this is costly to meet")
    star: float = Field(1.0, ge=1.0, le=5.0, description="onlookers' star for whoever meets them")
    weight: float = Field(1.0, gt=0.0, le=10.0)


class PeerRating(_Strict):
    """Nosedive: citizens rate each other after interactions; score = 100 x rater-weighted mean of stars."""

    network: Name | list[Name] = Field(description="network(s) whose contacts one meets (their union)")
    interactions: Probability = Field(description="daily probability that a citizen starts an interaction")
    start_rating: float = Field(4.0, ge=1.0, le=5.0)
    prior_weight: float = Field(20.0, gt=0.0, le=1e6, description="weight of the start rating in the mean")
    memory_days: float = Field(90.0, gt=0.0, le=1e5, description="received stars fade with this time constant")
    behaviour_mean: Level = Field(3.8, description="mean true behaviour (honest star) of a group's members")
    behaviour_spread: float = Field(0.6, ge=0.0, le=4.0)
    noise: float = Field(0.5, ge=0.0, le=4.0, description="spread of one interaction's impression")
    status: float = Field(0.5, ge=0.0, le=4.0, description="extra stars per star of the ratee's rating above 3")
    politeness: float = Field(0.5, ge=-4.0, le=4.0, description="strategic politeness: stars added to every rating")
    deference: float = Field(0.0, ge=-4.0, le=4.0, allow_inf_nan=False,
                             description="stars added per star the ratee's rating is above the rater's own (upward deference, downward disdain)")
    avoidance: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False,
                             description="chance that a citizen skips an encounter with a contact rated below avoid_below")
    avoid_below: float = Field(3.0, ge=1.0, le=5.0, allow_inf_nan=False)
    rater_weighting: bool = Field(True, description="weigh each star by the rater's own rating (false: every star weighs 1)")
    incident: Incident | None = None
    association: Association | None = None


def check_scenario(sc: "Scenario") -> None:
    """Cross-check the names the extension blocks use (raises ValueError naming the field)."""
    behaviours = {b.name for b in sc.behaviours}
    pol = sc.policy
    grades = {g.name for g in pol.grades}
    lists = {b.name for b in pol.blacklists}
    networks = {n.name for n in sc.graph.networks} if sc.graph else set()

    def known(field: str, name: str, allowed: set[str], what: str) -> None:
        if name not in allowed:
            raise ValueError(f"{field}: unknown {what} {name!r}; allowed: {', '.join(sorted(allowed)) or '(none defined)'}")

    for i, b in enumerate(sc.behaviours):
        if b.requires_listed is not None:
            known(f"behaviours[{i}].requires_listed", b.requires_listed, lists, "blacklist")
        if b.requires_privilege is not None:
            known(f"behaviours[{i}].requires_privilege", b.requires_privilege, {p.name for p in pol.privileges},
                  "privilege")
    subs = {s.name for s in pol.composite.subscores} if pol.composite else set()
    for i, r in enumerate(pol.rules):
        if r.subscore is not None:
            known(f"policy.rules[{i}].subscore", r.subscore, subs, "sub-score")
        if r.cap_score is not None and r.subscore is not None:
            raise ValueError(f"policy.rules[{i}]: cap_score and subscore cannot be combined")
        if r.cap_days and r.cap_score is None:
            raise ValueError(f"policy.rules[{i}].cap_days: holds a cap; give cap_score too")
        price = pol.governance.prices.get(r.behaviour)
        if r.money and price is not None and price != r.money:
            raise ValueError(f"policy.governance.prices: {r.behaviour} = {price:g} differs from the money the rule "
                             f"collects (policy.rules[{i}].money = {r.money:g}); give the same amount")
    for i, bl in enumerate(pol.blacklists):
        for j, name in enumerate(bl.removed_by):
            known(f"policy.blacklists[{i}].removed_by[{j}]", name, behaviours, "behaviour")
        for j, name in enumerate(bl.extended_by):
            known(f"policy.blacklists[{i}].extended_by[{j}]", name, behaviours, "behaviour")
        if bl.extended_by and bl.extension_days <= 0:
            raise ValueError(f"policy.blacklists[{i}].extension_days: give the days a listing is extended by (>= 1)")
    for i, r in enumerate(pol.restrictions):
        for j, name in enumerate(r.blocks):
            known(f"policy.restrictions[{i}].blocks[{j}]", name, behaviours, "behaviour")
        if r.reach == "household" and not (sc.graph and sc.graph.households):
            raise ValueError(f"policy.restrictions[{i}].reach: 'household' needs a [graph.households] table")
    for i, p in enumerate(pol.privileges):
        for g in p.grades:
            known(f"policy.privileges[{i}].grades", g, grades, "grade")
    if len({p.name for p in pol.privileges}) != len(pol.privileges):
        raise ValueError("policy.privileges: a privilege name appears twice")
    if pol.composite:
        for i, s in enumerate(pol.composite.subscores):
            if s.contacts is not None:
                known(f"policy.composite.subscores[{i}].contacts", s.contacts, networks, "network")
            _levels(f"policy.composite.subscores[{i}].initial", s.initial, sc, 0.0, 100.0)
        if any(r.subscore is None and r.points for r in pol.rules):
            bad = next(r.behaviour for r in pol.rules if r.subscore is None and r.points)
            raise ValueError(f"policy.rules: rule {bad!r} gives points directly, but a composite score changes only "
                             "through sub-scores; set `subscore` or points = 0")
    if sc.graph:
        if len(networks) != len(sc.graph.networks):
            raise ValueError("graph.networks: a network name appears twice")
    if sc.peer:
        pr = sc.peer
        for name in [pr.network] if isinstance(pr.network, str) else pr.network:
            known("peer.network", name, networks, "network")
        _levels("peer.behaviour_mean", pr.behaviour_mean, sc, 1.0, 5.0)
        if pr.incident:
            known("peer.incident.behaviour", pr.incident.behaviour, behaviours, "behaviour")
        if pol.rules and any(r.points for r in pol.rules):
            raise ValueError("policy.rules: with [peer] the score is the peer rating; rules must give 0 points")
        if pol.composite:
            raise ValueError("peer: a peer-rated score cannot also be a composite; remove one")
        if pol.start_score != round(100 * pr.start_rating):
            raise ValueError(f"policy.start_score: with [peer] it must be 100 x peer.start_rating = "
                             f"{round(100 * pr.start_rating)}")


def _levels(field: str, value: Level, sc: "Scenario", lo: float, hi: float) -> None:
    groups = [g.name for g in sc.groups]
    if isinstance(value, dict):
        extra = [k for k in value if k not in groups]
        if extra:
            raise ValueError(f"{field}: unknown group {extra[0]!r}; groups are {', '.join(groups)}")
        missing = [g for g in groups if g not in value]
        if missing:
            raise ValueError(f"{field}: no value for group {missing[0]!r}; give one per group ({', '.join(groups)})")
        vals = [(f"{field}.{k}", v) for k, v in value.items()]
    else:
        vals = [(field, value)]
    for where, v in vals:
        if not lo <= float(v) <= hi:
            raise ValueError(f"{where}: {v:g} is out of range; allowed: {lo:g} to {hi:g}")


def per_group_level(sc: "Scenario", value: Level) -> list[float]:
    if isinstance(value, dict):
        return [float(value[g.name]) for g in sc.groups]
    return [float(value)] * len(sc.groups)
