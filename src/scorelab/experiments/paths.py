"""Addressing one value inside a scenario by a dotted path.

Syntax: keys separated by dots; a list item is picked by ``[key]`` — the item whose ``name`` (groups,
behaviours, sensors, grades, blacklists, restrictions) or ``behaviour`` (policy rules, gaming, score
curves) equals ``key`` — or by ``[index]``::

    policy.rules[public_criticism].points
    sensors[camera].false_attribution.rate.rural
    behaviours[volunteering].rate.rural        # a single rate for every group is split per group
    response.deterrence.factor
    scenario.population

Paths are resolved against the *fully dumped* base scenario (every field present with its default), so
an optional field that the base file leaves out (``policy.score_min``) can be set, while a misspelt key
is an error that lists the keys that exist there.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)|\[([^\[\]]+)\]")


class PathError(ValueError):
    """A path that does not parse or does not name a value of the scenario."""


@dataclass(frozen=True)
class Select:
    """``[key]``: the list item named ``key`` (or the item at an integer index)."""

    key: str

    def __str__(self) -> str:
        return f"[{self.key}]"


Segment = str | Select


def parse(path: str) -> list[Segment]:
    if not isinstance(path, str) or not path.strip():
        raise PathError("empty path")
    out: list[Segment] = []
    pos = 0
    for part_no, part in enumerate(path.split(".")):
        if not part:
            raise PathError(f"empty key in {path!r} (two dots, or a dot at an end)")
        i = 0
        first = True
        while i < len(part):
            m = _TOKEN.match(part, i)
            if not m or (first is False and m.group(1)):
                raise PathError(f"cannot read {path!r} at {part[i:]!r}; write keys as a.b and list items as a[name] or a[0]")
            if m.group(1):
                out.append(m.group(1))
            else:
                if first and part_no == 0:
                    raise PathError(f"{path!r} starts with a list item; start with a key such as policy or sensors")
                out.append(Select(m.group(2).strip()))
            first = False
            i = m.end()
        pos += len(part) + 1
    return out


def _fmt(segments: list[Segment]) -> str:
    s = ""
    for seg in segments:
        s += str(seg) if isinstance(seg, Select) else (("." if s else "") + seg)
    return s


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _select(items: list[Any], key: str, where: str) -> int:
    if re.fullmatch(r"-?\d+", key):
        k = int(key)
        if not -len(items) <= k < len(items):
            raise PathError(f"{where}[{key}]: index out of range; {where} has {len(items)} items")
        return k % len(items)
    hits = [i for i, it in enumerate(items)
            if isinstance(it, dict) and key in (it.get("name"), it.get("behaviour"))]
    if not hits:
        names = [str(it.get("name", it.get("behaviour"))) for it in items if isinstance(it, dict)]
        raise PathError(f"{where}[{key}]: no item named {key!r}; items are: {', '.join(names) or '(none)'}")
    if len(hits) > 1:
        raise PathError(f"{where}[{key}]: {len(hits)} items are named {key!r}; pick one by index, e.g. {where}[{hits[0]}]")
    return hits[0]


def _walk(data: dict[str, Any], segments: list[Segment], groups: list[str], expand: bool) -> tuple[Any, Segment]:
    """The container holding the addressed value and the key/index in it. ``expand`` splits a single
    per-group number into a table when the next key is a group name (only on a copy that is changed)."""
    node: Any = data
    for i, seg in enumerate(segments):
        where = _fmt(segments[:i]) or "the scenario"
        last = i == len(segments) - 1
        if isinstance(seg, Select):
            if not isinstance(node, list):
                raise PathError(f"{where} is not a list, so {seg} cannot pick an item from it")
            k = _select(node, seg.key, where)
            if last:
                return node, k
            node = node[k]
            continue
        if isinstance(node, list):
            raise PathError(f"{where} is a list; pick an item with {where}[name] before .{seg}")
        if not isinstance(node, dict):
            raise PathError(f"{where} is a value ({node!r}), it has no key {seg!r}")
        if seg not in node:
            keys = ", ".join(sorted(node))
            raise PathError(f"{where} has no key {seg!r}; keys are: {keys}")
        child = node[seg]
        if not last and _is_number(child) and isinstance(segments[i + 1], str) and segments[i + 1] in groups:
            # a per-group value given as one number: address one group of it
            if expand:
                child = {g: child for g in groups}
                node[seg] = child
            elif i + 1 == len(segments) - 1:
                return None, segments[i + 1]  # valid; nothing to read in the unexpanded base
        if last:
            return node, seg
        node = child
    raise PathError("empty path")  # pragma: no cover - parse() rejects it


def check(data: dict[str, Any], path: str) -> Any:
    """Raise PathError unless ``path`` names a single value (not a table or list); return that value."""
    segments = parse(path)
    groups = [g["name"] for g in data.get("groups", []) if isinstance(g, dict)]
    container, key = _walk(data, segments, groups, expand=False)
    if container is None:  # a group's share of a single per-group number
        parent, pkey = _walk(data, segments[:-1], groups, expand=False)
        return parent[pkey]
    value = container[key]
    if isinstance(value, (dict, list)):
        kind = "table" if isinstance(value, dict) else "list"
        inside = ", ".join(sorted(value)) if isinstance(value, dict) else f"{len(value)} items"
        raise PathError(f"{path} is a {kind} ({inside}); address one value inside it")
    return value


def apply(data: dict[str, Any], assignments: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``data`` with each path set to its value."""
    out = copy.deepcopy(data)
    groups = [g["name"] for g in out.get("groups", []) if isinstance(g, dict)]
    for path, value in assignments.items():
        container, key = _walk(out, parse(path), groups, expand=True)
        container[key] = value
    return out


def value(data: dict[str, Any], path: str) -> Any:
    """The value at ``path``: a number, or a table (a per-group value given per group); a single per-group
    number addressed by group reads as that number."""
    segments = parse(path)
    groups = [g["name"] for g in data.get("groups", []) if isinstance(g, dict)]
    container, key = _walk(data, segments, groups, expand=False)
    if container is None:
        parent, pkey = _walk(data, segments[:-1], groups, expand=False)
        return parent[pkey]
    return container[key]


def scale(data: dict[str, Any], path: str, factor: float) -> dict[str, Any]:
    """A deep copy of ``data`` with the number at ``path`` (or every number of the table there, such as a
    per-group rate) multiplied by ``factor``; a whole number stays whole (rounded)."""
    out = copy.deepcopy(data)
    groups = [g["name"] for g in out.get("groups", []) if isinstance(g, dict)]
    container, key = _walk(out, parse(path), groups, expand=True)

    def times(v: Any) -> Any:
        if not _is_number(v):
            raise PathError(f"{path} holds {v!r}, not a number to scale")
        x = v * factor
        return int(round(x)) if isinstance(v, int) else float(x)

    current = container[key]
    container[key] = {k: times(v) for k, v in current.items()} if isinstance(current, dict) else times(current)
    return out
