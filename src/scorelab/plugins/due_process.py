"""Due process: human review of automated evidence, notice before a penalty, contest, appeal, expiry.

Config: ``[policy.due_process]`` (config/extensions.py, docs/mechanisms.md). Before a penalty scores, human
review may catch a false attribution; with notice, the penalty waits ``notice_days`` and a contested false
attribution may be dropped. A penalty that scores is reversed later: on appeal (some false attributions,
after ``appeal_days``) or on expiry (after ``expiry_days``).

Events: ``review_drop``, ``notice``, ``contest_drop``, ``appeal``, and score changes of rules ``expiry`` /
``appeal`` (the reversals). Metrics: review_caught, contest_dropped, reversed_appeal, reversed_expiry, notices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Mechanism, Metric


@dataclass(frozen=True)
class DueTables:
    notice_days: int
    contest: float
    contest_success: float
    review: float
    appeal: float
    appeal_days: int
    expiry_days: int  # 0 = never


class DueProcess(Mechanism):
    name = "due_process"
    config = "policy.due_process"

    @staticmethod
    def compile(sc, params) -> DueTables | None:
        dp = sc.policy.due_process
        if dp is None or not dp.active:
            return None
        c = DueTables(dp.notice_days, dp.contest, dp.contest_success, dp.review, dp.appeal, dp.appeal_days,
                      dp.expiry_days or 0)
        return c if (c.review > 0 or c.notice_days > 0 or c.appeal > 0 or c.expiry_days > 0) else None

    @staticmethod
    def rules(c: DueTables) -> list[str]:
        return (["expiry"] if c.expiry_days else []) + (["appeal"] if c.appeal else [])

    @staticmethod
    def metrics(c: DueTables, params) -> list[Metric]:
        return [Metric("review_caught", "count", "events", "false attributions human review caught before they scored"),
                Metric("contest_dropped", "count", "events", "false attributions dropped after the citizen contested the notice"),
                Metric("reversed_appeal", "count", "events", "penalties reversed on appeal"),
                Metric("reversed_expiry", "count", "events", "penalties reversed when the record expired"),
                Metric("notices", "count", "events", "notices of a coming penalty")]

    @staticmethod
    def extra_rows(c: DueTables, penalty_rows: float) -> float:
        return penalty_rows if (c.expiry_days or c.appeal) else 0.0

    def __init__(self, c: DueTables, S):
        super().__init__(c, S)
        self.rng = S.legacy_stream("due")
        self.notice_q: dict[int, list[tuple[int, np.ndarray, bool]]] = {}
        self.reversal_q: dict[int, list[tuple[np.ndarray, np.ndarray, str, bool]]] = {}
        self.today: list[tuple[np.ndarray, np.ndarray, str, bool]] = []

    def pre_score(self, S, D) -> None:
        c, P, rng, t, m = self.c, S.P, self.rng, D.t, S.metrics
        kept = []
        for b, ids, false in D.obs:
            if P.penalised[b] and false and c.review and len(ids):
                caught = rng.random(len(ids)) < c.review
                m["review_caught"][t] += S.count(ids[caught])
                S.log.emit("review_drop", t, ids[caught], rule=b, sensor=int(P.sensor_of[b]), false=True)
                ids = ids[~caught]
            if P.penalised[b] and c.notice_days and len(ids):
                self.notice_q.setdefault(t + c.notice_days, []).append((b, ids, false))
                m["notices"][t] += S.count(ids)
                S.log.emit("notice", t, ids, rule=b, sensor=int(P.sensor_of[b]), false=false, until=t + c.notice_days)
                continue
            kept.append((b, ids, false))
        for b, ids, false in self.notice_q.pop(t, []):
            if false and c.contest:
                dropped = rng.random(len(ids)) < c.contest * c.contest_success
                m["contest_dropped"][t] += S.count(ids[dropped])
                S.log.emit("contest_drop", t, ids[dropped], rule=b, sensor=int(P.sensor_of[b]), false=True)
                ids = ids[~dropped]
            kept.append((b, ids, false))
        D.obs[:] = kept
        # what will score today: schedule its reversal (appeal for some false attributions, else expiry)
        for b, ids, false in D.obs:
            if not P.penalised[b] or len(ids) == 0:
                continue
            pts = np.full(len(ids), -int(P.points[b]), dtype=np.int64)
            appealed = np.zeros(len(ids), dtype=bool)
            if false and c.appeal:
                appealed = rng.random(len(ids)) < c.appeal
                if c.expiry_days and c.appeal_days >= c.expiry_days:
                    appealed[:] = False  # expiry comes first
                if appealed.any():
                    self.reversal_q.setdefault(t + c.appeal_days, []).append((ids[appealed], pts[appealed], "appeal", True))
                    S.log.emit("appeal", t, ids[appealed], rule=b, sensor=int(P.sensor_of[b]), false=True,
                               until=t + c.appeal_days)
            if c.expiry_days and t + c.expiry_days < P.days:  # a reversal after the last day is never applied
                rest = ~appealed
                self.reversal_q.setdefault(t + c.expiry_days, []).append((ids[rest], pts[rest], "expiry", bool(false)))
        self.today = [x for x in self.reversal_q.pop(t, []) if len(x[0])]
        D.extra += [x[0] for x in self.today]

    def apply(self, S, D) -> None:
        for ids, pts, rule, false in self.today:
            S.score_change(D.t, ids, pts, rule, None, false)
            S.metrics["reversed_expiry" if rule == "expiry" else "reversed_appeal"][D.t] += S.count(ids)
        self.today = []
