"""Red lists: citizens listed for good deeds, with rewards (points on entry, named perks while listed).

Real cities publish such lists ("red lists" of trustworthy citizens and firms, beside the blacklists):
an observed good deed (a heroic act, a blood donation) puts a citizen on the list for a while, and being
on it brings points and perks such as priority in public services. Written in a policy as::

    [[policy.red_lists]]
    name = "honour_roll"
    trigger = "heroic_act"        # an observed event of this behaviour lists the citizen
    duration_days = 365           # a new trigger while listed renews the listing from that day
    reward_points = 50            # added to the score on entry (a score event of rule red_list:honour_roll)
    min_score = 1000              # optional: only citizens at or above this score are listed
    perks = ["priority_permits"]  # named rewards held while listed (recorded, counted as red_listed_<name>)

Events: ``enter`` / ``renew`` / ``leave`` with target = the list's name; metrics: entries, renewals,
listed citizens at the end of each day, reward points. False attributions list people too, and the audit
sees it: the score event and the entry carry the observation's false-attribution flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..config.strict import StrictModel, new_list
from ..engine.sampling import distinct
from .base import Mechanism, Metric

Name = str


class RedList(StrictModel):

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")
    trigger: str = Field(description="behaviour whose observation lists the citizen")
    duration_days: int = Field(gt=0, le=20000)
    reward_points: int = Field(0, ge=-100_000, le=100_000, description="points added to the score on entry")
    min_score: int | None = Field(None, ge=-1_000_000, le=1_000_000, description="only citizens at or above it are listed")
    perks: list[str] = Field(default_factory=new_list, max_length=50, description="named rewards held while listed")
    description: str = ""


@dataclass(frozen=True)
class RedListTables:
    names: tuple[str, ...]
    trigger: np.ndarray  # [K] behaviour index
    duration: np.ndarray  # [K]
    reward: np.ndarray  # [K]
    min_score: tuple[int | None, ...]
    perks: tuple[tuple[str, ...], ...]


class RedLists(Mechanism):
    name = "red_lists"
    config = "policy.red_lists"

    @staticmethod
    def check(sc) -> None:
        behaviours = {b.name for b in sc.behaviours}
        seen: set[str] = set()
        for i, rl in enumerate(sc.policy.red_lists):
            if rl.trigger not in behaviours:
                raise ValueError(f"policy.red_lists[{i}].trigger: unknown behaviour {rl.trigger!r}; "
                                 f"allowed: {', '.join(sorted(behaviours))}")
            if rl.name in seen:
                raise ValueError(f"policy.red_lists[{i}].name: {rl.name!r} appears twice")
            if rl.name in {b.name for b in sc.policy.blacklists}:
                raise ValueError(f"policy.red_lists[{i}].name: {rl.name!r} is also a blacklist; give another name")
            seen.add(rl.name)
            if not any(r.behaviour == rl.trigger for r in sc.policy.rules):
                raise ValueError(f"policy.red_lists[{i}].trigger: {rl.trigger!r} is observed only through a rule; "
                                 f"add a policy rule for it (points may be 0)")

    @staticmethod
    def compile(sc, params) -> RedListTables | None:
        lists = sc.policy.red_lists
        if not lists:
            return None
        bidx = {b: i for i, b in enumerate(params.behaviours)}
        return RedListTables(tuple(r.name for r in lists), np.array([bidx[r.trigger] for r in lists]),
                             np.array([r.duration_days for r in lists]), np.array([r.reward_points for r in lists]),
                             tuple(r.min_score for r in lists), tuple(tuple(r.perks) for r in lists))

    @staticmethod
    def rules(c: RedListTables) -> list[str]:
        return [f"red_list:{n}" for n in c.names]

    @staticmethod
    def targets(c: RedListTables) -> list[str]:
        return list(c.names)

    @staticmethod
    def metrics(c: RedListTables, params) -> list[Metric]:
        out = []
        for name, perks in zip(c.names, c.perks):
            held = f" (perks: {', '.join(perks)})" if perks else ""
            out += [Metric(f"red_listed_{name}", "stock", "citizens", f"citizens on the red list {name} at the end of the day{held}",
                           target=name),
                    Metric(f"red_list_entries_{name}", "count", "citizens", f"citizens put on the red list {name} that day"),
                    Metric(f"red_list_renewals_{name}", "count", "citizens", f"listings on {name} renewed by a new good deed"),
                    Metric(f"red_list_points_{name}", "sum", "points", f"reward points given on entry to {name}")]
        return out

    @staticmethod
    def max_daily_points(c: RedListTables) -> int:
        return int(np.abs(c.reward).sum())

    @staticmethod
    def citizen_bytes(c: RedListTables) -> float:
        return 4.0 * len(c.names)

    def __init__(self, compiled: RedListTables, S):
        super().__init__(compiled, S)
        self.until = np.full((len(compiled.names), S.n), -1, dtype=np.int32)  # on the list while day < until
        self.calendar: list[dict[int, list[np.ndarray]]] = [{} for _ in compiled.names]
        self.code = [S.target_code[name] for name in compiled.names]

    def apply(self, S, D) -> None:
        c, t = self.c, D.t
        for k, name in enumerate(c.names):
            stock = S.metrics[f"red_listed_{name}"]
            end = t + int(c.duration[k])
            for b, ids, false in D.obs:
                if b != c.trigger[k] or len(ids) == 0:
                    continue
                if c.min_score[k] is not None:
                    ids = ids[S.score[ids] >= c.min_score[k]]
                ids = distinct(ids)
                if len(ids) == 0:
                    continue
                on = self.until[k, ids] >= t  # listed at the end of yesterday: a renewal, not a new entry
                new, again = ids[~on], ids[on]
                self.until[k, ids] = end
                self.calendar[k].setdefault(end, []).append(ids)
                if len(again):
                    S.log.emit("renew", t, again, rule=int(b), false=false, target=self.code[k], until=end)
                    S.metrics[f"red_list_renewals_{name}"][t] += S.count(again).astype(np.int64)
                if len(new):
                    S.log.emit("enter", t, new, rule=int(b), false=false, target=self.code[k], until=end)
                    got = S.count(new).astype(np.int64)
                    S.metrics[f"red_list_entries_{name}"][t] += got
                    stock[t:] += got
                    if c.reward[k]:
                        S.score_change(t, new, int(c.reward[k]), f"red_list:{name}")
                        S.metrics[f"red_list_points_{name}"][t] += got * int(c.reward[k])
            # expiries today, after today's renewals (a renewed listing has a later end)
            for ids in self.calendar[k].pop(t, []):
                gone = distinct(ids[self.until[k, ids] == t])
                if len(gone):
                    self.until[k, gone] = -1
                    S.log.emit("leave", t, gone, target=self.code[k])
                    stock[t:] -= S.count(gone).astype(np.int64)

    def citizens(self, ids: np.ndarray, S) -> dict[str, np.ndarray]:
        return {f"x_red_listed_until_{name}": self.until[k, ids] for k, name in enumerate(self.c.names)}
