"""The one event log: every change of a kept citizen's state, as it happens in the engine.

Each row is (day, citizen, kind, rule, points, sensor, false attribution, target, until). Kinds:

| kind | what changed | rule | target | until |
|---|---|---|---|---|
| score | the score, by ``points`` | the rule (behaviour, cap, score range, expiry, appeal, ...) | - | - |
| list_start | listed on a blacklist (end of this day) | the trigger behaviour, or initial_listing | blacklist | listed while day < until |
| list_extend | a running listing lengthened | the behaviour that extended or renewed it | blacklist | the new end |
| list_remove | taken off a blacklist (repayment) | the behaviour | blacklist | - |
| list_expire | a listing ran out | - | blacklist | - |
| restrict_on / restrict_off | under a restriction (own grade or own listing) | - | restriction | - |
| reach_on / reach_off | restricted through the household (a member is listed) | - | restriction | - |
| privilege_on / privilege_off | a privilege granted or revoked (grade) | - | privilege | - |
| blocked | an attempt refused by a restriction | the behaviour attempted | restriction | - |
| notice | notice of a coming penalty | the behaviour | - | the day it scores |
| review_drop / contest_drop | a false attribution dropped by human review / a contested notice | the behaviour | - | - |
| appeal | an appeal filed against a false attribution | the behaviour | - | the day it is reversed |
| enter / renew / leave | on or off a list or state a mechanism plugin declares (a red list) | the behaviour | its name | the end |

States are those at the end of a day, as in metrics.parquet: a state that starts and ends on the same
day lasts no day. Initial states (start score's grade, initial listings) are events of day 0. So every
per-citizen figure (days restricted, listed, privileged, reached) is read from this log, never re-derived.
"""

from __future__ import annotations

import numpy as np

KINDS = ("score", "list_start", "list_extend", "list_remove", "list_expire", "restrict_on", "restrict_off",
         "reach_on", "reach_off", "privilege_on", "privilege_off", "blocked", "notice", "review_drop",
         "contest_drop", "appeal", "enter", "renew", "leave")
KIND = {name: i for i, name in enumerate(KINDS)}
RULE_NONE = -1  # a state change no single rule made (a restriction following a grade, an expiry)
RULE_INITIAL = -2  # drawn at the start (initial listings)
NO_TARGET = -1
COLUMNS = ("day", "citizen", "kind", "rule", "points", "sensor", "false", "target", "until")


DTYPES = {"day": np.int32, "citizen": np.int64, "kind": np.int8, "rule": np.int16, "points": np.int64,
          "sensor": np.int16, "false": bool, "target": np.int16, "until": np.int32}


class EventLog:
    """Collects events of the kept citizens of one shard (global ids divisible by ``keep``).

    Each emit keeps one block: the kept citizens' ids and, per column, either one value for the block or
    one per citizen. The typed columns are built once, in `arrays` (a block costs a few slice assignments
    there instead of nine arrays at every emit: mechanisms emit thousands of small blocks a shard)."""

    def __init__(self, keep: int, offset: int, no_sensor: int):
        self.keep, self.offset, self.no_sensor = keep, offset, no_sensor
        self.blocks: list[tuple] = []  # (n, day, citizen, kind, rule, points, sensor, false, target, until)
        self.rows = 0  # events in blocks (a LedgerWriter empties them as it encodes: engine/tables.py)

    def kept(self, ids: np.ndarray) -> np.ndarray:
        """Bool mask of the ids whose events are kept."""
        if self.keep == 1:
            return np.ones(len(ids), dtype=bool)
        return (ids + self.offset) % self.keep == 0

    def emit(self, kind: str, t: int, ids: np.ndarray, rule: int = RULE_NONE, points=0, sensor: int | None = None,
             false=False, target: int = NO_TARGET, until=-1) -> None:
        """Events of one kind for local ``ids`` on day ``t``; points/false/until may be per id."""
        if not self.keep or len(ids) == 0:
            return
        sel = None if self.keep == 1 else self.kept(ids)
        k = len(ids) if sel is None else int(sel.sum())
        if k == 0:
            return

        def col(v):
            if np.ndim(v) == 0:
                return v
            return np.array(v) if sel is None else np.asarray(v)[sel]  # a copy: callers may reuse their arrays

        citizen = (ids if sel is None else ids[sel]).astype(np.int64) + self.offset
        self.rows += k
        self.blocks.append((k, t, citizen, KIND[kind], rule, col(points),
                            self.no_sensor if sensor is None else sensor, col(false), target, col(until)))

    def extend(self, t: int, citizen: np.ndarray, kind, rule, points, sensor, false, target, until) -> None:
        """A block of events already selected and typed per column (global citizen ids; engine/compiled.py)."""
        if len(citizen):
            self.rows += len(citizen)
            self.blocks.append((len(citizen), t, citizen, kind, rule, points, sensor, false, target, until))

    def transitions(self, t: int, ids: np.ndarray, before: np.ndarray, after: np.ndarray, on: str, off: str,
                    target: int) -> None:
        """Emit ``on`` for ids whose bool state went False -> True, ``off`` for True -> False."""
        if not self.keep or len(ids) == 0:
            return
        up = after & ~before
        down = before & ~after
        if up.any():
            self.emit(on, t, ids[up], target=target)
        if down.any():
            self.emit(off, t, ids[down], target=target)

    def __len__(self) -> int:
        return self.rows

    def arrays(self) -> dict[str, np.ndarray]:
        """The typed columns, in emission order."""
        total = self.rows
        out = {c: np.empty(total, dtype=DTYPES[c]) for c in COLUMNS}
        cols = [out[c] for c in COLUMNS]
        at = 0
        for block in self.blocks:
            n = block[0]
            for a, v in zip(cols, block[1:]):
                a[at:at + n] = v
            at += n
        return out
