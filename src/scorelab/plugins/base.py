"""The mechanism plugin interface: what a mechanism brings, and the stages it joins.

A mechanism is one class, registered once in ``plugins/__init__.py``. It brings

* its config (a pydantic model the policy or scenario holds; ``config`` names it) and ``check(scenario)``
  for cross-references;
* ``compile(scenario, params)`` -> its frozen tables (or None when the scenario does not use it);
* ``rules`` and ``targets`` it adds to the event log (rule names of its score changes, names of the lists
  or states its events act on);
* ``metrics``: the per-day, per-group outputs it declares (name, kind, unit, meaning) — the store, the run
  summary and the report read these declarations, never name prefixes;
* its per-shard state (built in ``__init__`` over the shard state) and the stages it joins, each a method
  of (state, day) that the kernel calls at its place in the day (engine/stages.py ``DAY``):
  ``gate`` (inside behave: drop true events the citizen's state does not allow), ``observe`` (filter
  today's observations), ``pre_score`` (before scores change; appends to ``day.extra`` the citizens it will
  change), ``apply`` (after the rules' points), ``end_day`` (after the aggregates), ``finish`` (after the
  last day), ``citizens`` (its per-citizen outputs).

A stage a class does not override is not called. The kernel calls each stage of the active mechanisms in
registry order. A mechanism draws from its own stream (``state.rng(key)``), so switching it on never
moves the behaviour streams; the preset mechanisms that predate this interface share four named legacy
streams (``state.legacy_stream``) so that every preset's figures stayed as they were.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..engine.outputs import Metric

if TYPE_CHECKING:
    from ..engine.state import Day, ShardState


class Mechanism:
    """Base class of a mechanism plugin: override what the mechanism needs."""

    name: ClassVar[str]

    # ---- declared once, from the scenario ----
    @staticmethod
    def check(sc) -> None:
        """Raise ValueError naming the field when the mechanism's config refers to unknown names."""

    @staticmethod
    def compile(sc, params) -> Any | None:
        """Frozen tables for the kernel, or None when the scenario does not use this mechanism."""
        return None

    @staticmethod
    def rules(compiled) -> list[str]:
        return []

    @staticmethod
    def targets(compiled) -> list[str]:
        return []

    @staticmethod
    def metrics(compiled, params) -> list[Metric]:
        return []

    @staticmethod
    def max_daily_points(compiled) -> int:
        """Largest score change per citizen and day the mechanism can make (sizes the score's dtype)."""
        return 0

    @staticmethod
    def citizen_bytes(compiled) -> float:
        """Resident bytes per citizen of the mechanism's shard state (memory estimates)."""
        return 0.0

    @staticmethod
    def extra_rows(compiled, penalty_rows: float) -> float:
        """Event-log rows the mechanism adds per citizen and day (memory estimates)."""
        return 0.0

    # ---- per shard ----
    def __init__(self, compiled, S: ShardState):
        self.c = compiled
        for m in self.metrics(compiled, S.P):
            S.declare(m)

    @classmethod
    def joins(cls, stage: str) -> bool:
        """Whether the class overrides ``stage`` (only those stages are called)."""
        return getattr(cls, stage) is not getattr(Mechanism, stage)

    def gated_behaviours(self) -> list[int]:
        """Behaviours whose true events ``gate`` filters."""
        return []

    def gate(self, b: int, ids: np.ndarray, grp: np.ndarray, u_obs: np.ndarray, S: ShardState, t: int):
        return ids, grp, u_obs

    def observe(self, S: ShardState, D: Day) -> None:
        pass

    def pre_score(self, S: ShardState, D: Day) -> None:
        pass

    def apply(self, S: ShardState, D: Day) -> None:
        pass

    def end_day(self, S: ShardState, D: Day) -> None:
        pass

    def finish(self, S: ShardState) -> None:
        pass

    def citizens(self, ids: np.ndarray, S: ShardState) -> dict[str, np.ndarray]:
        return {}
