"""A validated scenario turned into arrays, once, before the first day.

`Params` is frozen and holds only numbers and names: the kernel never looks at the pydantic models, and
no rule is evaluated as Python per citizen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ..config.models import Scenario

CLIP_RULE = "score_range"  # ledger name of the adjustment that keeps a score inside [score_min, score_max]
NO_SENSOR = "none"
MAX_COUNT = 255  # per-citizen counters are uint8 and saturate here (0.7**255 is 1e-40: no visible effect)


@dataclass(frozen=True)
class FalseSource:
    sensor: int
    behaviour: int
    rate: np.ndarray  # [G]


@dataclass(frozen=True)
class Params:
    population: int
    days: int
    groups: tuple[str, ...]
    shares: np.ndarray  # [G]
    behaviours: tuple[str, ...]
    sensors: tuple[str, ...]
    rate: np.ndarray  # [B, G] daily probability before modifiers
    speech: np.ndarray  # [B] bool
    scored: np.ndarray  # [B] bool: a rule scores it
    points: np.ndarray  # [B] int64 (0 where unscored)
    sensor_of: np.ndarray  # [B] int (-1 where unscored)
    detect: np.ndarray  # [B, G] probability a true event is observed (0 where unscored)
    penalised: np.ndarray  # [B] bool: negative points
    misconduct: np.ndarray  # [B] bool: declared ground truth (behaviours[].misconduct), never the points' sign
    severity: np.ndarray  # [B] float64: weight of one true event of misconduct
    sensitive: tuple[tuple[str, ...], ...]  # [B] categories the rule uses
    false_sources: tuple[FalseSource, ...]
    # behavioural response
    deter_slot: np.ndarray  # [B] row in the deterrence counter, -1 for none
    deter_table: np.ndarray  # [slots, 256] float: multiplier after k observed penalties
    gaming: tuple[tuple[tuple[int, float], ...], ...]  # [B] of (below_score, factor)
    curves: tuple[tuple[tuple[np.ndarray, np.ndarray], ...], ...]  # [B] of (scores, factors)
    mmax: np.ndarray  # [B] upper bound of the propensity multiplier (for thinning)
    pmax: np.ndarray  # [B, G] candidate probability: min(1, rate * mmax)
    # policy
    start_score: int
    start: tuple  # [G] each group's start distribution (config/start.py), or None for start_score
    score_min: int | None
    score_max: int | None
    score_dtype: np.dtype
    grade_names: tuple[str, ...]  # ascending: lowest band first
    grade_cuts: np.ndarray  # [K-1] lowest score of each band but the first, ascending
    bl_names: tuple[str, ...]
    bl_trigger: np.ndarray  # [L] behaviour index
    bl_duration: np.ndarray  # [L]
    day_dtype: np.dtype
    restriction_names: tuple[str, ...]
    restriction_grades: np.ndarray  # [R, K] bool
    restriction_lists: np.ndarray  # [R, L] bool
    chill: np.ndarray | None = None  # [B, G] general-deterrence multiplier (response.chilling); None: none
    het: np.ndarray | None = None  # [B] log-sd of the per-citizen propensity multiplier (0: none); None: none
    het_cap: np.ndarray | None = None  # [B] its largest value
    targeting: tuple | None = None  # [B] ((restriction, coverage factor), ...) of the rule's sensor; None: none
    deter_step: np.ndarray | None = None  # [B] deterrence steps per observed penalty (response.deterrence.points_unit)
    plugins: tuple = ()  # ((plugin class, compiled tables), ...) of the active mechanism plugins (plugins/)

    @property
    def rule_names(self) -> list[str]:
        """Names of the event log's rule codes: behaviours, the score range, the mechanisms' rules."""
        return list(self.behaviours) + [CLIP_RULE] + [r for p, c in self.plugins for r in p.rules(c)]

    def plugin(self, name: str):
        """The compiled tables of the active mechanism ``name`` (plugins/), or None when it is not used."""
        for p, c in self.plugins:
            if p.name == name:
                return c
        return None

    @property
    def plugin_names(self) -> list[str]:
        return [p.name for p, _ in self.plugins]

    @property
    def plugin_targets(self) -> list[str]:
        return [x for p, c in self.plugins for x in p.targets(c)]

    @property
    def plugin_metrics(self) -> list:
        return [m for p, c in self.plugins for m in p.metrics(c, self)]

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_behaviours(self) -> int:
        return len(self.behaviours)

    def chills(self, b: int) -> bool:
        """Whether general deterrence lowers behaviour ``b`` in some group (a multiplier below 1)."""
        return self.chill is not None and bool((self.chill[b] < 1).any())

    def detection_kind(self, b: int) -> int:
        """How behaviour ``b``'s sensor decides what it sees: 1 a draw per event (some coverage strictly
        between 0 and 1), 2 by group alone (coverage 0 in some group, 1 in the rest), 0 everything."""
        det = self.detect[b]
        if ((det > 0) & (det < 1)).any():
            return 1
        return 2 if not (det > 0).all() else 0

    def grade_of(self, score: np.ndarray) -> np.ndarray:
        """Grade of each score: how many band minimums (grade_cuts) it reaches, as int8."""
        lo, table = self._grade_table
        score = np.asarray(score)
        if table is not None and score.dtype.kind in "iu":
            # every score below the first cut has grade 0 and every score from the last cut on the last
            # grade, so clipping to [first cut - 1, last cut] and looking up gives each score's grade (15x
            # faster than a search of int64 cuts for int16 scores: no conversion, no search)
            info = np.iinfo(score.dtype)
            a, b = max(lo, info.min), min(lo + len(table) - 1, info.max)
            if a <= b:
                at = np.clip(score, a, b).astype(np.intp)
                at -= lo
                return table.take(at)
        return np.searchsorted(self.grade_cuts, score, side="right").astype(np.int8)

    def grade_counts(self, grade: np.ndarray, group: np.ndarray, G: int) -> np.ndarray:
        """[K, G] int64: how many of these citizens hold each grade, per group (one bincount of (grade,
        group); np.add.at over the pairs was 4x slower)."""
        K = len(self.grade_names)
        return np.bincount(np.asarray(grade).astype(np.intp) * G + group, minlength=K * G).reshape(K, G)

    @cached_property
    def _grade_table(self) -> tuple[int, np.ndarray | None]:
        cuts = self.grade_cuts
        if len(cuts) == 0:
            return 0, np.zeros(1, dtype=np.int8)
        lo, hi = int(cuts[0]) - 1, int(cuts[-1])
        if hi - lo > 1 << 16:
            return 0, None
        return lo, np.searchsorted(cuts, np.arange(lo, hi + 1, dtype=np.int64), side="right").astype(np.int8)

    def restricted(self, score: np.ndarray, listed_until: list[np.ndarray], day: int,
                   grade: np.ndarray | None = None) -> np.ndarray:
        """[R, n] bool: who is under each restriction at the end of ``day`` (``grade``: grade_of(score), if known)."""
        n = len(score)
        out = np.zeros((len(self.restriction_names), n), dtype=bool)
        if n == 0 or not self.restriction_names:
            return out
        if grade is None and len(self.grade_names):
            grade = self.grade_of(score)
        at = None if grade is None else grade.astype(np.intp)  # once, not per restriction (2x a gather by int8)
        listed = [day < bl for bl in listed_until]
        for r in range(len(self.restriction_names)):
            if at is not None and self.restriction_grades[r].any():
                np.take(self.restriction_grades[r], at, out=out[r])  # the first term: written, not or-ed in
            for k in np.flatnonzero(self.restriction_lists[r]):
                out[r] |= listed[k]
        return out

    def expected_events_per_citizen_day(self) -> float:
        """Upper bound of observed events (ledger rows) per citizen and day, for memory estimates."""
        obs = (self.shares[None, :] * self.pmax * self.detect).sum()
        fal = sum((self.shares * f.rate).sum() for f in self.false_sources)
        return float(obs + fal)

    def expected_candidates_per_citizen_day(self) -> float:
        return float((self.shares[None, :] * self.pmax).sum() + sum((self.shares * f.rate).sum() for f in self.false_sources))


def compile_params(sc: Scenario) -> Params:
    groups = tuple(g.name for g in sc.groups)
    behaviours = tuple(b.name for b in sc.behaviours)
    sensors = tuple(s.name for s in sc.sensors)
    bidx = {b: i for i, b in enumerate(behaviours)}
    sidx = {s: i for i, s in enumerate(sensors)}
    B, G = len(behaviours), len(groups)
    pol, resp = sc.policy, sc.response

    rate = np.array([sc.per_group(b.rate) for b in sc.behaviours], dtype=np.float64).reshape(B, G)
    speech = np.array([b.speech for b in sc.behaviours], dtype=bool)
    points = np.zeros(B, dtype=np.int64)
    sensor_of = np.full(B, -1, dtype=np.int64)
    detect = np.zeros((B, G), dtype=np.float64)
    sensitive: list[tuple[str, ...]] = [() for _ in range(B)]
    for r in pol.rules:
        b = bidx[r.behaviour]
        points[b] = r.points
        sensor_of[b] = sidx[r.sensor]
        detect[b] = sc.per_group(sc.sensors[sidx[r.sensor]].coverage)
        sensitive[b] = tuple(c.value for c in r.sensitive)
    scored = sensor_of >= 0
    penalised = points < 0
    misconduct = np.array([b.misconduct for b in sc.behaviours], dtype=bool)
    severity = np.array([b.severity if b.misconduct else 0.0 for b in sc.behaviours], dtype=np.float64)

    false_sources = tuple(
        FalseSource(sidx[s.name], bidx[s.false_attribution.behaviour], np.array(sc.per_group(s.false_attribution.rate)))
        for s in sc.sensors
        if s.false_attribution is not None
    )

    deter_names = resp.deterrence.behaviours
    deter = [b for b in range(B) if (penalised[b] if deter_names is None else behaviours[b] in deter_names)]
    if resp.deterrence.factor == 1.0:
        deter = []
    deter_slot = np.full(B, -1, dtype=np.int64)
    for k, b in enumerate(deter):
        deter_slot[b] = k
    table = resp.deterrence.factor ** np.arange(MAX_COUNT + 1, dtype=np.float64)
    deter_table = np.tile(table, (len(deter), 1))
    deter_step = None
    if resp.deterrence.points_unit is not None:
        unit = resp.deterrence.points_unit
        deter_step = np.maximum(1, np.minimum(MAX_COUNT, -(-np.abs(points) // unit))).astype(np.int64)

    # general deterrence: perceived monitoring (the rule's detection in the group) x the sanction's severity
    chill = None
    if resp.chilling:
        chill = np.ones((B, G))
        for ch in resp.chilling:
            b = bidx[ch.behaviour]
            sanction = abs(int(points[b])) + ch.listing_points * int(sum(bl.trigger == ch.behaviour for bl in pol.blacklists))
            chill[b] *= 1.0 / (1.0 + ch.elasticity * detect[b] * sanction / ch.points_unit)
    het = np.array([b.heterogeneity for b in sc.behaviours], dtype=np.float64)
    het_cap = np.array([b.heterogeneity_cap if b.heterogeneity > 0 else 1.0 for b in sc.behaviours], dtype=np.float64)
    if not het.any():
        het = het_cap = None

    gaming = [[] for _ in range(B)]
    for gm in resp.gaming:
        gaming[bidx[gm.behaviour]].append((gm.below_score, gm.factor))
    curves = [[] for _ in range(B)]
    for cv in resp.score_curves:
        xs = np.array([p[0] for p in cv.points], dtype=np.float64)
        ys = np.array([p[1] for p in cv.points], dtype=np.float64)
        curves[bidx[cv.behaviour]].append((xs, ys))
    mmax = np.ones(B) if het_cap is None else het_cap.copy()  # a citizen's own multiplier is at most its cap
    for b in range(B):
        for _, f in gaming[b]:
            mmax[b] *= max(1.0, f)
        for _, ys in curves[b]:
            mmax[b] *= max(1.0, float(ys.max()))
    pmax = np.minimum(1.0, rate * mmax[:, None])

    # grades, ascending
    bands = sorted(pol.grades, key=lambda g: -np.inf if g.min is None else g.min)
    grade_names = tuple(g.name for g in bands)
    grade_cuts = np.array([g.min for g in bands[1:]], dtype=np.int64)

    bl_names = tuple(b.name for b in pol.blacklists)
    bl_trigger = np.array([bidx[b.trigger] for b in pol.blacklists], dtype=np.int64)
    bl_duration = np.array([b.duration_days for b in pol.blacklists], dtype=np.int64)
    R, K, L = len(pol.restrictions), len(grade_names), len(bl_names)
    rg = np.zeros((R, K), dtype=bool)
    rl = np.zeros((R, L), dtype=bool)
    for r, res in enumerate(pol.restrictions):
        for g in res.grades:
            rg[r, grade_names.index(g)] = True
        for b in res.blacklists:
            rl[r, bl_names.index(b)] = True

    T = sc.scenario.days
    from types import SimpleNamespace

    from ..config.limits import INT16_SAFE, SCORE_LIMIT, score_range
    from ..plugins import compile_all

    plugins = compile_all(sc, SimpleNamespace(behaviours=behaviours, groups=groups, sensors=sensors,
                                              grade_names=grade_names, bl_names=bl_names,
                                              restriction_names=tuple(r.name for r in pol.restrictions)))
    for plug, comp in plugins:  # a mechanism may raise a propensity (a privilege that encourages use)
        mmax *= np.array([plug.max_multiplier(comp, b) for b in range(B)])
    pmax = np.minimum(1.0, rate * mmax[:, None])
    rnames = [r.name for r in pol.restrictions]
    targeting = tuple(tuple((rnames.index(tg.restriction), tg.factor) for tg in sc.sensors[sensor_of[b]].targeting)
                      if sensor_of[b] >= 0 else () for b in range(B))
    if not any(targeting):
        targeting = None
    lo, hi = score_range(sc)  # every score reachable at any moment (config/limits.py)
    if lo < -SCORE_LIMIT or hi > SCORE_LIMIT:  # the scenario's validator refuses these; never wrap silently
        raise ValueError(f"scores can reach {lo:,}..{hi:,}; the limit is ±{SCORE_LIMIT:,}")
    score_dtype = np.dtype(np.int16) if -INT16_SAFE < lo and hi < INT16_SAFE else np.dtype(np.int32)
    day_dtype = np.dtype(np.int16) if T + int(bl_duration.max(initial=0)) < 32000 else np.dtype(np.int32)

    params = Params(
        population=sc.scenario.population,
        days=T,
        groups=groups,
        shares=np.array([g.share for g in sc.groups], dtype=np.float64),
        behaviours=behaviours,
        sensors=sensors,
        rate=rate,
        speech=speech,
        scored=scored,
        points=points,
        sensor_of=sensor_of,
        detect=detect,
        penalised=penalised,
        misconduct=misconduct,
        severity=severity,
        sensitive=tuple(sensitive),
        false_sources=false_sources,
        deter_slot=deter_slot,
        deter_table=deter_table,
        gaming=tuple(tuple(x) for x in gaming),
        curves=tuple(tuple(x) for x in curves),
        mmax=mmax,
        pmax=pmax,
        start_score=pol.start_score,
        start=tuple(g.start for g in sc.groups),
        score_min=pol.score_min,
        score_max=pol.score_max,
        score_dtype=score_dtype,
        grade_names=grade_names,
        grade_cuts=grade_cuts,
        bl_names=bl_names,
        bl_trigger=bl_trigger,
        bl_duration=bl_duration,
        day_dtype=day_dtype,
        restriction_names=tuple(r.name for r in pol.restrictions),
        restriction_grades=rg,
        restriction_lists=rl,
        chill=chill,
        het=het,
        het_cap=het_cap,
        deter_step=deter_step,
        targeting=targeting,
    )
    return replace(params, plugins=plugins)
