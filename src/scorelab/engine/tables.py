"""A shard's rows of the events and citizens tables, built where the shard ran.

A worker that finishes a shard turns its raw event log (engine/events.py: small codes in the kernel's
namespaces) and its kept citizens' records into the tables' final columns: the dictionary codes of
events.parquet and citizens.parquet, the per-citizen event counts, the final dtypes. The main process
then only lays the shards' columns end to end (store.py: one Arrow chunk per shard, the same Parquet
bytes as one concatenated column), so the conversion runs on every core at once, and no raw copy of a
large log is concatenated, converted and held there beside the table.

`prepare` is idempotent: a result already prepared, or one whose ledger is empty, is left as it is. A
result that was not prepared (the JAX backend's, a checkpoint written by an earlier version, a direct
call of `simulate_shard`) is prepared by store.py in the main process, with the same functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .events import KIND, KINDS
from .kernel import ShardResult
from .params import Params

EVENT_COLUMNS = ("day", "citizen", "kind", "rule", "points", "sensor", "false_attribution", "target", "until")
EVENT_DICTIONARIES = ("kind", "rule", "sensor", "target")  # int32 codes into `event_names`

_TARGET_KIND = {"list_start": "list", "list_extend": "list", "list_remove": "list", "list_expire": "list",
                "restrict_on": "restriction", "restrict_off": "restriction", "reach_on": "restriction",
                "reach_off": "restriction", "blocked": "restriction", "privilege_on": "plugin",
                "privilege_off": "plugin", "enter": "plugin", "renew": "plugin", "leave": "plugin"}


def rule_names(params: Params) -> list[str]:
    """Names of the event log's rule codes: behaviours, the score range, the mechanisms' and plugins' rules,
    then initial_listing and none (raw codes -2 and -1)."""
    return params.rule_names + ["initial_listing", "none"]


def target_names(params: Params) -> tuple[list[str], dict[str, int]]:
    """Distinct names of what an event acts on (blacklists, restrictions, the mechanisms' targets such as
    privileges and red lists), and the offset of each kind's codes in the raw ``target`` column's namespace."""
    L, R = len(params.bl_names), len(params.restriction_names)
    names = list(params.bl_names) + list(params.restriction_names) + params.plugin_targets
    return list(dict.fromkeys(names + ["none"])), {"list": 0, "restriction": L, "plugin": L + R}


def event_names(params: Params) -> dict[str, list[str]]:
    """The dictionaries of events.parquet's category columns, in code order."""
    from .params import NO_SENSOR

    return {"kind": list(KINDS), "rule": rule_names(params), "sensor": list(params.sensors) + [NO_SENSOR],
            "target": target_names(params)[0]}


def event_columns(params: Params, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A raw event log (engine/events.py) as events.parquet's columns: int32 codes into `event_names`,
    ``points`` int32 (int64 only when a value does not fit)."""
    n_rules = len(rule_names(params))
    tnames, offset = target_names(params)
    flat = list(params.bl_names) + list(params.restriction_names) + params.plugin_targets
    # raw target namespace -> code in tnames; the last entry is "none"
    to_name = np.array([tnames.index(x) for x in flat] + [tnames.index("none")], dtype=np.int32)
    base = np.zeros(len(KINDS), dtype=np.int32)
    has_target = np.zeros(len(KINDS), dtype=bool)
    for name, what in _TARGET_KIND.items():
        base[KIND[name]] = offset[what]
        has_target[KIND[name]] = True
    kind = raw["kind"]
    rule = raw["rule"].astype(np.int32)
    rule[rule < 0] += n_rules  # -1 none, -2 initial_listing: the last two names
    tgt = raw["target"].astype(np.int32)
    flat_at = base[kind] + tgt
    flat_at[~(has_target[kind] & (tgt >= 0))] = len(flat)
    pts = raw["points"]
    wide = len(pts) and (pts.max() > np.iinfo(np.int32).max or pts.min() < np.iinfo(np.int32).min)
    return {
        "day": raw["day"].astype(np.int32, copy=False),
        "citizen": raw["citizen"].astype(np.int64, copy=False),
        "kind": kind.astype(np.int32),
        "rule": rule,
        "points": pts.astype(np.int64 if wide else np.int32, copy=False),
        "sensor": raw["sensor"].astype(np.int32),
        "false_attribution": raw["false"].astype(bool, copy=False),
        "target": to_name[flat_at],
        "until": raw["until"].astype(np.int32, copy=False),
    }


def positions(ids: np.ndarray, citizen: np.ndarray) -> np.ndarray:
    """Row of each event's citizen among the kept (sorted) ``ids``. The kept ids are every stride-th global
    id, so the row is (citizen - first) // stride when the ids are evenly spaced; otherwise a binary search."""
    if len(ids) > 1:
        stride = int(ids[1] - ids[0])
        if stride > 0 and (np.diff(ids) == stride).all():
            off = citizen - ids[0]
            pos = off // stride
            if len(pos) == 0 or (pos.min() >= 0 and pos.max() < len(ids) and not (off % stride).any()):
                return pos
    return np.searchsorted(ids, citizen)


def citizen_dictionaries(params: Params) -> dict[str, list[str]]:
    """The dictionaries of citizens.parquet's category columns."""
    return {"group": list(params.groups), "grade": list(params.grade_names) or ["-"]}


def citizen_columns(params: Params, c: dict[str, np.ndarray], events: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The kept citizens' records (kernel.citizens) as citizens.parquet's columns, in the table's order,
    with their event counts read from ``events`` (`event_columns` of the same citizens' log)."""
    ids = c["citizen"].astype(np.int64, copy=False)
    keys = list(c)
    cols: dict[str, np.ndarray] = {
        "citizen": ids,
        "group": c["group"].astype(np.int32),
        "start_score": c["start_score"],
        "score": c["score"],
        "grade": c["grade"].astype(np.int32),
        "restricted": c["restricted"],
    }
    for k in keys:
        if k.startswith(("restricted_", "listed_until_")) or k == "blacklisted_until":
            cols[k] = c[k]
    # per-citizen event counts, from the score events (which cover exactly these citizens)
    sc = events["kind"] == KIND["score"]
    pos = positions(ids, events["citizen"][sc])
    beh = events["rule"][sc]
    false = events["false_attribution"][sc]
    pts = events["points"][sc]
    for b, name in enumerate(params.behaviours):
        if params.scored[b]:
            sel = (beh == b) & ~false
            cols[f"observed_{name}"] = np.bincount(pos[sel], minlength=len(ids)).astype(np.int32)
    cols["wrongful_penalties"] = np.bincount(pos[false & (pts < 0)], minlength=len(ids)).astype(np.int32)
    cols["true_misconduct"] = c["true_misconduct"].astype(np.int32)
    if "misconduct_severity" in c:
        cols["misconduct_severity"] = c["misconduct_severity"].astype(np.float32)
    for k in keys:
        if k.startswith("propensity_"):
            cols[k] = c[k]
        elif k.startswith("x_"):  # mechanism state (household, sub-scores, rating, ...)
            cols[k[2:]] = c[k]
    return cols


def prepare(params: Params, r: ShardResult) -> ShardResult:
    """Turn ``r``'s raw ledger and citizens into the tables' columns (in place; returns ``r``)."""
    if r.prepared or not r.citizens:
        return r
    events = event_columns(params, r.ledger) if r.ledger else event_columns(params, empty_raw())
    r.citizens = citizen_columns(params, r.citizens, events)
    r.ledger = events
    r.prepared = True
    return r


def empty_raw() -> dict[str, Any]:
    from .events import COLUMNS, DTYPES

    return {k: np.empty(0, dtype=DTYPES[k]) for k in COLUMNS}
