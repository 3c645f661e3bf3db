"""The typed state of one shard, and the scratch of one day, that the stages (stages.py) read and write.

`ShardState` is a struct of arrays (one array per attribute, the smallest dtype that fits) plus the
incremental aggregates the metrics are read from, the shard's event log and its random streams. It is
built once per shard (`new_state`); every stage and every mechanism plugin receives it. `Day` holds what
one day's stages hand each other: the true events, the observations, the citizens touched, their state
before and after.

Within a shard, citizens are laid out in group blocks (all of group 0, then group 1, ...): a citizen's
group is its block, so it costs no memory, and sampling a group is sampling a range.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .events import EventLog
from .params import Params

LEGACY_KEY = 0x5EED  # the preset mechanisms' four shared streams (graph, due, peer, init), kept as before
LEGACY_STREAMS = ("graph", "due", "peer", "init")


@dataclass
class Day:
    """What one day's stages hand each other."""

    t: int
    true_ids: list[np.ndarray] = field(default_factory=list)  # [B] citizens who truly acted, per behaviour
    obs: list[tuple[int, np.ndarray, bool]] = field(default_factory=list)  # (behaviour, ids, false attribution?)
    extra: list[np.ndarray] = field(default_factory=list)  # citizens the mechanisms will change today
    touched: np.ndarray | None = None  # sorted distinct ids whose state may change today
    old_score: np.ndarray | None = None
    old_listed: list[np.ndarray] = field(default_factory=list)
    new_score: np.ndarray | None = None
    new_listed: list[np.ndarray] = field(default_factory=list)
    tg: np.ndarray | None = None  # group of each touched citizen
    g_old: np.ndarray | None = None  # grade of each touched citizen at the end of yesterday / today
    g_new: np.ndarray | None = None
    removed: dict[int, np.ndarray] = field(default_factory=dict)  # blacklist -> ids taken off today (not expiries)
    acted: list = field(default_factory=list)  # [B] (ids, groups, observation uniforms) of today's true events


@dataclass
class ShardState:
    P: Params
    index: int
    seed: int
    offset: int
    keep: int  # keep event/citizen detail for global ids divisible by this; 0 = keep none
    sizes: np.ndarray  # [G] citizens per group
    starts: np.ndarray  # [G] first local id of each group
    bounds: np.ndarray  # [G] one past the last local id of each group
    gens: dict  # the kernel's streams (kernel.shard_streams)
    score: np.ndarray  # [n]
    drawn: np.ndarray | None  # [n] day-0 scores drawn from start distributions (None: everyone at start_score)
    listed: list[np.ndarray]  # [L] x [n] listed while day < value
    deter: np.ndarray  # [D, n] uint8 deterrence counters
    misconduct: np.ndarray  # [n] uint8 true events of declared misconduct (ground truth)
    severity: np.ndarray | None  # [n] float32 summed severities, when some severity is not 1
    calendar: dict[int, list[np.ndarray]]  # day -> ids whose listing may end that day
    score_sum: np.ndarray  # [G]
    restricted_n: np.ndarray  # [R, G]
    restricted_any: np.ndarray  # [G]
    grade_n: np.ndarray  # [K, G]
    listed_n: np.ndarray  # [L, G]
    metrics: dict[str, np.ndarray]  # name -> [T, G]
    log: EventLog
    rule_code: dict[str, int]  # event-log rule code of each rule name
    target_code: dict[str, int]  # event-log target code of each mechanism target
    candidates: list = field(default_factory=list)  # [B] kernel._Batches: candidate events per behaviour
    false_candidates: list = field(default_factory=list)  # [F] kernel._Batches: false attributions per source
    het: dict = field(default_factory=dict)  # behaviour -> [n] float32 per-citizen propensity multiplier
    plugins: dict = field(default_factory=dict)  # name -> the shard's instance of each active mechanism
    hooks: dict = field(default_factory=dict)  # stage name -> the plugins' methods for it, in their order
    gates: dict = field(default_factory=dict)  # behaviour -> the plugins' gate methods for it
    propensity: dict = field(default_factory=dict)  # behaviour -> the plugins' propensity multipliers for it
    snap_days: np.ndarray | None = None  # days of the score-histogram snapshots
    hist: np.ndarray | None = None  # [S, G, H]
    hist_lo: int = 0
    _legacy: list | None = None

    @property
    def n(self) -> int:
        return len(self.score)

    @property
    def G(self) -> int:
        return len(self.sizes)

    @property
    def T(self) -> int:
        return self.P.days

    def group_of(self, ids: np.ndarray) -> np.ndarray:
        """Group of each local id (groups are contiguous blocks): a few comparisons beat a search."""
        G = self.G
        if G > 4:
            return np.searchsorted(self.bounds, ids, side="right")
        g = np.zeros(len(ids), dtype=np.intp)
        for k in range(G - 1):
            g += ids >= self.bounds[k]
        return g

    def sums_sorted(self, ids: np.ndarray, x: np.ndarray) -> np.ndarray:
        """[..., G] int64: per-group sums of whole numbers ``x`` (last axis along ``ids``) over ascending
        local ``ids``. The groups are contiguous runs of sorted ids, so each group's sum is one reduceat
        segment: exact, and 7x faster than a weighted bincount (which sums in floats) at 400,000 ids."""
        x = np.asarray(x)
        if x.dtype != np.int64:
            x = x.astype(np.int64)
        n, G = x.shape[-1], self.G
        if n == 0:
            return np.zeros(x.shape[:-1] + (G,), dtype=np.int64)
        starts = np.empty(G, dtype=np.intp)
        starts[0] = 0
        starts[1:] = np.searchsorted(ids, self.bounds[:-1])
        some = starts < np.r_[starts[1:], n]  # groups with ids (reduceat would give the others a value)
        if some.all():
            return np.add.reduceat(x, starts, axis=-1)
        out = np.zeros(x.shape[:-1] + (G,), dtype=np.int64)
        out[..., some] = np.add.reduceat(x, starts[some], axis=-1)  # a group's run ends where the next begins
        return out

    def count(self, ids: np.ndarray, weights=None) -> np.ndarray:
        """Per-group count (or weighted sum) over ``ids``."""
        return np.bincount(self.group_of(ids), weights=weights, minlength=self.G)

    def rng(self, key: int) -> np.random.Generator:
        """A mechanism's own stream in this shard (``key``: a number the mechanism owns)."""
        ss = np.random.SeedSequence(self.seed, spawn_key=(self.index, 0x9106, key))
        return np.random.Generator(np.random.PCG64(ss))

    def legacy_stream(self, name: str) -> np.random.Generator:
        """One of the four streams the preset mechanisms share (graph, due, peer, init): each preset's
        figures are the same as before the mechanisms became plugins. New mechanisms use ``rng``."""
        if self._legacy is None:
            root = np.random.SeedSequence(self.seed, spawn_key=(self.index, LEGACY_KEY))
            self._legacy = [np.random.Generator(np.random.PCG64(s)) for s in root.spawn(len(LEGACY_STREAMS))]
        return self._legacy[LEGACY_STREAMS.index(name)]

    def declare(self, metric) -> None:
        """Allocate the [T, G] arrays of a declared metric (plugins/base.py Metric)."""
        if metric.kind == "mean":
            for part in ("num", "den"):
                self.metrics.setdefault(f"{metric.name}.{part}", np.zeros((self.T, self.G)))
        else:
            dtype = np.float64 if metric.real else np.int64
            self.metrics.setdefault(metric.name, np.zeros((self.T, self.G), dtype=dtype))

    def points_metrics(self, t: int, ids: np.ndarray, delta: np.ndarray) -> None:
        """Add a score change of ``ids`` by ``delta`` to the day's points awarded / deducted."""
        if len(ids) > 1 and (ids[1:] > ids[:-1]).all():  # sorted (a mechanism's day over the shard): runs
            d = self.sums_sorted(ids, delta)
            pos = self.sums_sorted(ids, np.maximum(delta, 0))
        else:
            d = self.count(ids, weights=delta.astype(np.float64)).astype(np.int64)
            pos = self.count(ids, weights=np.maximum(delta, 0).astype(np.float64)).astype(np.int64)
        self.metrics["points_awarded"][t] += pos
        self.metrics["points_deducted"][t] += pos - d

    def score_change(self, t: int, ids: np.ndarray, delta, rule: str, sensor: int | None = None,
                     false=False) -> None:
        """Add ``delta`` to the scores of ``ids``: a score event of ``rule``, and the points metrics."""
        if len(ids) == 0:
            return
        delta = np.broadcast_to(np.asarray(delta, dtype=np.int64), (len(ids),))
        self.score[ids] = (self.score[ids].astype(np.int64) + delta).astype(self.score.dtype)
        self.log.emit("score", t, ids, rule=self.rule_code[rule], points=delta, sensor=sensor, false=false)
        self.points_metrics(t, ids, delta)

    def restricted_at_start(self, r: int, ids: np.ndarray, t: int) -> np.ndarray:
        """Under restriction ``r`` at the start of day t (the end of day t-1): by grade, by an own listing,
        or through the household where the restriction reaches it (plugins/graphs.py)."""
        P = self.P
        out = np.zeros(len(ids), dtype=bool)
        if P.restriction_grades[r].any():
            out |= P.restriction_grades[r][P.grade_of(self.score[ids])]
        graphs = self.plugins.get("graphs")
        reached = graphs.reached(r, ids) if graphs is not None else None
        if reached is not None:
            out |= reached
        else:
            for k in np.flatnonzero(P.restriction_lists[r]):
                out |= self.listed_at_start(k, ids, t)
        return out

    def listed_at_start(self, k: int, ids: np.ndarray, t: int) -> np.ndarray:
        """On blacklist ``k`` at the end of day t-1 (t-1 < until)."""
        return self.listed[k][ids] >= t
