"""A lender: loans decided from the score (and the pooled records), outcomes that feed back into the score.

The lending loop of the fairness literature (Liu et al. 2018, "Delayed Impact of Fair Machine Learning";
ml-fairness-gym's lending environment, D'Amour et al. 2020), written as a mechanism. Each true event of the
``applies`` behaviour is a loan application (its rate is who applies, and every part of the behavioural
model acts on it: deterrence, learning, heterogeneity, effects of restrictions and privileges). The lender
approves an application iff the applicant's score at the start of the day is at or above the threshold of
their group, they are under none of the ``deny_under`` restrictions (a blacklist listing, a low grade) and
the pooled records hold no observed event of a ``records`` behaviour within its ``days`` before the day
(what a lender reading a pooled surveillance database sees: a recorded visit to a flagged place, a false
face match included, since the database cannot tell). A borrower repays with the probability the ``repay``
curve of their group gives at their score (piecewise linear between its points), and the score moves by
``repaid_points`` or ``default_points``; the policy's score range clips it (a ``score_range`` event)::

    [policy.lender]
    name = "bank"
    applies = "apply_for_loan"              # the behaviour whose true events are applications
    threshold = { white = 640, black = 600 } # approve iff score >= the group's threshold (or one number)
    repaid_points = 75
    default_points = -150
    profit = 1.0                            # the lender's utility per repaid loan ...
    loss = -4.0                             # ... and per default
    deny_under = ["blacklist_ban"]          # refused while under these restrictions (pooled records)
    recipient = "partner_lender"            # optional: the policy.governance.recipients entry it stands for
    records = [{ behaviour = "visit_flagged_location", days = 365 }]  # refused after such a recorded event

    [[policy.lender.repay]]                 # P(repay | score); one curve per group, or one without `group`
    group = "white"
    scores = [300, 600, 850]                # or csv = "white_repay.csv" (columns score,p_repay)
    p = [0.05, 0.8, 0.99]

Randomness: one uniform per application from a stream of its own per (shard, group), drawn whether the
application is approved or not, so a change of one group's threshold or curve leaves every other group's
events as they were, and within a group the same applicant meets the same luck under any threshold.

The lender's reads are data flows the simulation performs: score, the ``observed_<behaviour>`` records and
the ``restricted_<restriction>`` states. The compliance checks compare them with what its ``recipient``
declares (audit/checks.py ``transfers``).

Events: ``score`` of rule ``lender:<name>:repaid`` / ``lender:<name>:default`` (a loan's outcome, true by
construction: no sensor). Metrics: applications, loans, repaid, defaults, refused by score, refused by the
pooled records (a restriction or a recorded event), the lender's utility.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field, model_validator

from ..config.limits import SCORE_LIMIT
from ..config.strict import StrictModel, new_list
from ..engine.sampling import keep
from .base import Mechanism, Metric

_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")]
_Threshold = Annotated[int, Field(ge=-SCORE_LIMIT, le=SCORE_LIMIT)]
LENDER_KEY = 0x1E4D00  # + group index: the lender's stream per (shard, group)
NEVER = np.iinfo(np.int32).min // 2  # "no record" (far before any day minus any window)


class RepayCurve(StrictModel):
    """P(repay | score) for one group (or, without ``group``, for every group without its own curve)."""

    group: _Name | None = None
    scores: list[Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]] = Field(default_factory=new_list,
                                                                                       max_length=100_000)
    p: list[Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]] = Field(default_factory=new_list,
                                                                                 max_length=100_000)
    csv: str | None = Field(None, description="columns score,p_repay (read when the scenario is loaded)")

    @model_validator(mode="after")
    def _check(self) -> "RepayCurve":
        if not self.scores:
            raise ValueError("scores: give at least one point of the curve (or a csv)")
        if len(self.p) != len(self.scores):
            raise ValueError(f"p: {len(self.p)} probabilities for {len(self.scores)} scores; give one per score")
        if any(b <= a for a, b in zip(self.scores, self.scores[1:])):
            raise ValueError("scores: must be strictly increasing")
        return self


class PooledRecord(StrictModel):
    """An observed event the lender reads in the pooled records: refused after one within ``days``."""

    behaviour: _Name = Field(description="a scored behaviour: its observed events (false matches included)")
    days: int = Field(365, ge=1, le=20_000, description="refused if one was recorded within this many days")


class Lender(StrictModel):
    name: _Name = "lender"
    applies: _Name = Field(description="behaviour whose true events are loan applications")
    threshold: _Threshold | dict[str, _Threshold] = Field(description="approve iff score >= this (one number, or per group)")
    repay: list[RepayCurve] = Field(min_length=1, max_length=250)
    repaid_points: int = Field(75, ge=-100_000, le=100_000)
    default_points: int = Field(-150, ge=-100_000, le=100_000)
    profit: float = Field(1.0, ge=-1e6, le=1e6, allow_inf_nan=False, description="lender's utility per repaid loan")
    loss: float = Field(-4.0, ge=-1e6, le=1e6, allow_inf_nan=False, description="lender's utility per default")
    deny_under: list[_Name] = Field(default_factory=new_list, description="restrictions under which it refuses")
    records: list[PooledRecord] = Field(default_factory=new_list, max_length=120,
                                        description="observed events in the pooled records that make it refuse")
    recipient: _Name | None = Field(None, description="the policy.governance.recipients entry this lender is")
    description: str = ""


@dataclass(frozen=True)
class LenderTables:
    name: str
    applies: int  # behaviour index
    threshold: np.ndarray  # [G] int64
    curves: tuple[tuple[np.ndarray, np.ndarray], ...]  # [G] (scores, p)
    repaid: int
    default: int
    profit: float
    loss: float
    deny: tuple[int, ...]  # restriction indices
    records: tuple[tuple[int, int], ...] = ()  # (behaviour index, days)
    recipient: str | None = None
    reads: tuple[str, ...] = ()  # the citizen-record fields it reads (governance.SHAREABLE names)
    apply_rate: float = 0.0  # applications per citizen and day, at most (share-weighted candidate rate)


def reads(lender: Lender) -> tuple[str, ...]:
    """The citizen-record fields the lender reads to decide (config/governance.py SHAREABLE names): the data
    flow the simulation performs, which the compliance checks set against what its recipient declares."""
    fields = ("score",) + tuple(f"observed_{r.behaviour}" for r in lender.records) \
        + tuple(f"restricted_{r}" for r in lender.deny_under)
    return tuple(dict.fromkeys(fields))


def _apply_rate(sc, behaviour: str) -> float:
    """Applications per citizen and day (share-weighted base rate of the applying behaviour)."""
    rate = next(b.rate for b in sc.behaviours if b.name == behaviour)
    return float(sum(g.share * min(1.0, rate[g.name] if isinstance(rate, dict) else rate) for g in sc.groups))


def repay_probability(curve: tuple[np.ndarray, np.ndarray], score: np.ndarray) -> np.ndarray:
    """P(repay) at each score: linear between the curve's points, its end values beyond them."""
    xs, ps = curve
    return np.interp(np.asarray(score, dtype=np.float64), xs, ps)


def _blocks(grp: np.ndarray, G: int) -> list[slice] | None:
    """Each group's run of ``grp`` as a slice when ``grp`` is in ascending group blocks, else None."""
    if len(grp) > 1 and not (grp[1:] >= grp[:-1]).all():
        return None
    cuts = np.searchsorted(grp, np.arange(G + 1))
    return [slice(int(cuts[g]), int(cuts[g + 1])) for g in range(G)]


def _group_index(grp: np.ndarray, G: int) -> list:
    """Where each group's entries are: slices when ``grp`` is in group blocks, else their positions (the
    same entries in the same order)."""
    blocks = _blocks(grp, G)
    return blocks if blocks is not None else [np.flatnonzero(grp == g) for g in range(G)]


def _size(at) -> int:
    return at.stop - at.start if isinstance(at, slice) else len(at)


def _counts(mask: np.ndarray, blocks) -> np.ndarray:
    """How many of each group's entries ``mask`` holds (int64, one per group)."""
    return np.array([np.count_nonzero(mask[at]) for at in blocks], dtype=np.int64)


class Lending(Mechanism):
    name = "lending"
    config = "policy.lender"

    @staticmethod
    def check(sc) -> None:
        lender = sc.policy.lender
        if lender is None:
            return
        behaviours = {b.name for b in sc.behaviours}
        groups = [g.name for g in sc.groups]
        if lender.applies not in behaviours:
            raise ValueError(f"policy.lender.applies: unknown behaviour {lender.applies!r}; "
                             f"allowed: {', '.join(sorted(behaviours))}")
        if isinstance(lender.threshold, dict):
            for g in lender.threshold:
                if g not in groups:
                    raise ValueError(f"policy.lender.threshold: unknown group {g!r}; groups are {', '.join(groups)}")
            missing = [g for g in groups if g not in lender.threshold]
            if missing:
                raise ValueError(f"policy.lender.threshold: no threshold for group {missing[0]!r}; "
                                 f"give one per group ({', '.join(groups)}) or one number")
        seen: set[str | None] = set()
        for i, c in enumerate(lender.repay):
            if c.group is not None and c.group not in groups:
                raise ValueError(f"policy.lender.repay[{i}].group: unknown group {c.group!r}; "
                                 f"groups are {', '.join(groups)}")
            if c.group in seen:
                raise ValueError(f"policy.lender.repay[{i}].group: a second curve for "
                                 f"{'every group' if c.group is None else repr(c.group)}")
            seen.add(c.group)
        if None not in seen:
            missing = [g for g in groups if g not in seen]
            if missing:
                raise ValueError(f"policy.lender.repay: no curve for group {missing[0]!r}; give one per group "
                                 "or one without `group` for the rest")
        restrictions = {r.name for r in sc.policy.restrictions}
        for j, r in enumerate(lender.deny_under):
            if r not in restrictions:
                raise ValueError(f"policy.lender.deny_under[{j}]: unknown restriction {r!r}; "
                                 f"allowed: {', '.join(sorted(restrictions)) or 'none (the policy has no restrictions)'}")
        scored = {r.behaviour for r in sc.policy.rules}
        for j, rec in enumerate(lender.records):
            if rec.behaviour not in scored:
                raise ValueError(f"policy.lender.records[{j}].behaviour: {rec.behaviour!r} has no observed events "
                                 "(no rule scores it); allowed: " + (", ".join(sorted(scored)) or "none"))
        if lender.recipient is not None:
            gov = sc.policy.governance
            names = [r.name for r in gov.recipients] if gov is not None else []
            if lender.recipient not in names:
                raise ValueError(f"policy.lender.recipient: unknown recipient {lender.recipient!r}; allowed: "
                                 + (", ".join(names) or "none (policy.governance.recipients is empty)"))

    @staticmethod
    def compile(sc, params) -> LenderTables | None:
        lender = sc.policy.lender
        if lender is None:
            return None
        groups = [g.name for g in sc.groups]
        thr = lender.threshold
        threshold = np.array([thr[g] if isinstance(thr, dict) else thr for g in groups], dtype=np.int64)
        by_group = {c.group: (np.asarray(c.scores, dtype=np.float64), np.asarray(c.p, dtype=np.float64))
                    for c in lender.repay}
        curves = tuple(by_group.get(g, by_group.get(None)) for g in groups)
        restrictions = [r.name for r in sc.policy.restrictions]
        behaviours = list(params.behaviours)
        return LenderTables(lender.name, behaviours.index(lender.applies), threshold, curves,
                            lender.repaid_points, lender.default_points, lender.profit, lender.loss,
                            tuple(restrictions.index(r) for r in lender.deny_under),
                            tuple((behaviours.index(r.behaviour), r.days) for r in lender.records),
                            lender.recipient, reads(lender), _apply_rate(sc, lender.applies))

    @staticmethod
    def rules(c: LenderTables) -> list[str]:
        return [f"lender:{c.name}:repaid", f"lender:{c.name}:default"]

    @staticmethod
    def metrics(c: LenderTables, params) -> list[Metric]:
        n = c.name
        return [Metric(f"loan_applications_{n}", "count", "applications", f"loan applications to {n}"),
                Metric(f"loans_{n}", "count", "loans", f"loans {n} granted (score at or above the group's threshold)"),
                Metric(f"loans_repaid_{n}", "count", "loans", f"loans from {n} repaid (score + repaid_points)"),
                Metric(f"loans_defaulted_{n}", "count", "loans", f"loans from {n} defaulted (score + default_points)"),
                Metric(f"loans_refused_score_{n}", "count", "applications",
                       f"applications {n} refused because the score was below the group's threshold"),
                Metric(f"loans_refused_records_{n}", "count", "applications",
                       f"applications {n} refused because of the pooled records: a restriction (deny_under) "
                       "or a recorded event (records)"),
                Metric(f"lender_utility_{n}", "sum", "utility", f"{n}'s utility: profit per repaid loan, loss per default",
                       real=True)]

    @staticmethod
    def max_daily_points(c: LenderTables) -> int:
        return max(abs(c.repaid), abs(c.default))

    @staticmethod
    def extra_rows(c: LenderTables, penalty_rows: float) -> float:
        return c.apply_rate  # at most one outcome (a score event) per application

    @staticmethod
    def citizen_bytes(c: LenderTables) -> float:
        return 4.0 * len({b for b, _ in c.records})

    def __init__(self, c: LenderTables, S):
        super().__init__(c, S)
        self.streams = [S.rng(LENDER_KEY + g) for g in range(S.G)]
        self.rule_repaid = f"lender:{c.name}:repaid"
        self.rule_default = f"lender:{c.name}:default"
        self.today: tuple[np.ndarray, np.ndarray] | None = None
        # the pooled records: day of each citizen's last observed event of each behaviour the lender reads
        self.seen = {b: np.full(S.n, NEVER, dtype=np.int32) for b in dict.fromkeys(b for b, _ in c.records)}

    def pre_score(self, S, D) -> None:
        c, t, n = self.c, D.t, self.c.name
        ids, grp, _ = D.acted[c.applies]
        self.today = None
        if len(ids) == 0:
            return
        m = S.metrics
        # the applications come in group blocks (each group's candidates, then the next group's): each
        # group's are one slice, so per-group draws, thresholds, curves and counts work on slices
        blocks = _group_index(grp, S.G)
        m[f"loan_applications_{n}"][t] += np.array([_size(b) for b in blocks], dtype=np.int64)
        # one uniform per application, per group stream, whatever the decision
        u = np.empty(len(ids))
        score = S.score[ids]
        by_score = np.empty(len(ids), dtype=bool)
        for g, at in enumerate(blocks):
            if _size(at):
                u[at] = self.streams[g].random(_size(at))
                by_score[at] = score[at] >= c.threshold[g]
        ok = by_score.copy()
        for r in c.deny:
            ok &= ~S.restricted_at_start(r, ids, t)
        for b, days in c.records:  # recorded before today (end_day writes today's after the decisions)
            ok &= self.seen[b][ids] < t - days
        m[f"loans_refused_score_{n}"][t] += _counts(~by_score, blocks)
        m[f"loans_refused_records_{n}"][t] += _counts(by_score & ~ok, blocks)
        ids, grp, u, score = keep(ok, ids, grp, u, score)
        if not len(ids):
            return
        blocks = _group_index(grp, S.G)
        p = np.empty(len(ids))
        for g, at in enumerate(blocks):
            if _size(at):
                p[at] = repay_probability(c.curves[g], score[at])
        repaid = u < p
        m[f"loans_{n}"][t] += np.array([_size(b) for b in blocks], dtype=np.int64)
        good = _counts(repaid, blocks)
        bad = _counts(~repaid, blocks)
        m[f"loans_repaid_{n}"][t] += good
        m[f"loans_defaulted_{n}"][t] += bad
        m[f"lender_utility_{n}"][t] += good * c.profit + bad * c.loss
        self.today = (ids, repaid)
        D.extra.append(ids)

    def apply(self, S, D) -> None:
        if self.today is None:
            return
        ids, repaid = self.today
        S.score_change(D.t, ids[repaid], self.c.repaid, self.rule_repaid)
        S.score_change(D.t, ids[~repaid], self.c.default, self.rule_default)
        self.today = None

    def end_day(self, S, D) -> None:
        """Today's observations enter the pooled records (what scored, after due process and blocks)."""
        if not self.seen:
            return
        for b, ids, _false in D.obs:
            seen = self.seen.get(b)
            if seen is not None and len(ids):
                seen[ids] = D.t
