"""Money paid with a rule's event: donations that buy points, fines collected.

Config: ``policy.rules[].money`` (yuan per observed event). Counted on the events that score (after review,
notice and contest). Metrics: ``money_collected``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Mechanism, Metric


@dataclass(frozen=True)
class MoneyTables:
    money: np.ndarray  # [B] float64 per observed event


class Money(Mechanism):
    name = "money"
    config = "policy.rules[].money"

    @staticmethod
    def compile(sc, params) -> MoneyTables | None:
        behaviours = list(params.behaviours)
        money = np.zeros(len(behaviours))
        for r in sc.policy.rules:
            money[behaviours.index(r.behaviour)] = r.money
        return MoneyTables(money) if money.any() else None

    @staticmethod
    def metrics(c: MoneyTables, params) -> list[Metric]:
        return [Metric("money_collected", "sum", "yuan", "money paid with scored events (donations, fines)", real=True)]

    def pre_score(self, S, D) -> None:
        for b, ids, false in D.obs:
            if self.c.money[b] and len(ids):
                S.metrics["money_collected"][D.t] += S.count(ids) * self.c.money[b]
