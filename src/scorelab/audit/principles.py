"""The frame of the compliance checks: the principles' texts (audit/data/principles.toml), what a check
knows (`Context`), what it returns (`Finding`), the registry the checks join (`check`), and what the
simulated policy really does about due process (`Simulated`)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

import pandas as pd

from ..config.models import Policy, Scenario


ORDER = {"pass": 0, "warn": 1, "fail": 2}
SIGNIFICANT_DAYS = 365  # one event restricting a citizen for a year or more is judged disproportionate


@dataclass
class Context:
    policy: Policy
    scenario: Scenario | None = None
    tables: dict[str, pd.DataFrame] | None = None
    source: str = ""

    @property
    def gov(self):
        return self.policy.governance

    def row(self, table: str, group: str = "all") -> "_Row":
        """A table's row as a dict whose missing entries read NaN (runs without per-citizen detail lack some)."""
        if self.tables is None or table not in self.tables:
            return _Row()
        return _Row(self.tables[table].loc[group].to_dict())

    def privacy(self) -> "_Row":
        if self.tables is None or "privacy" not in self.tables:
            return _Row()
        return _Row(self.tables["privacy"]["value"].to_dict())

    def ctx_of(self, name: str) -> str:
        return self.gov.contexts.get(name, name)


class _Row(dict):
    def __missing__(self, key: str) -> float:
        return math.nan


def _ok(*xs: Any) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(float(x)) for x in xs)


@dataclass
class Finding:
    verdict: str
    cause: str
    evidence: str = ""


@dataclass
class Principle:
    id: str
    framework: str
    article: str
    title: str
    text: str
    quoted: bool
    check: str


def principles() -> list[Principle]:
    path = resources.files("scorelab.audit") / "data" / "principles.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [Principle(**p) for p in data["principle"]]


CHECKS: dict[str, Callable[[Context], tuple[list[Finding], str]]] = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def _fmt(x: float, pct: bool = False) -> str:
    return f"{x:.2%}" if pct else f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:.3g}"


def _declared(ctx: Context, name: str, findings: list[Finding], what: str, bad: str = "warn", good: str = "") -> Any:
    v = getattr(ctx.gov, name)
    if v is None:
        findings.append(Finding("warn", f"policy.governance.{name} is not declared, so it is not shown that {good}"))
    elif v is False:
        findings.append(Finding(bad, f"policy.governance.{name} = false: {what}"))
    return v


@dataclass
class Simulated:
    """What the simulated policy really does about due process (policy.due_process), whatever it declares."""

    review: float = 0.0
    appeal: float = 0.0
    expiry_days: int = 0
    notice_days: int = 0


def _simulated(ctx: Context) -> Simulated:
    dp = ctx.policy.due_process
    if dp is None or not dp.active:
        return Simulated()
    return Simulated(dp.review, dp.appeal, dp.expiry_days or 0, dp.notice_days)


def _contradiction(name: str, declared: str, simulated: str) -> Finding:
    """A declaration the simulation contradicts is itself a finding."""
    return Finding("fail", f"policy.governance.{name} declares {declared}, but the simulated policy {simulated}: the "
                           "declaration is contradicted by what the system does")


def _speech_rules(ctx: Context) -> list[str]:
    """Rules scoring a behaviour the scenario marks as speech, or tagged political_opinion."""
    out = [r.behaviour for r in ctx.policy.rules if any(s.value == "political_opinion" for s in r.sensitive) and r.points != 0]
    if ctx.scenario is not None:
        speech = {b.name for b in ctx.scenario.behaviours if b.speech}
        out += [r.behaviour for r in ctx.policy.rules if r.behaviour in speech and r.points != 0 and r.behaviour not in out]
    return out


def _rule(ctx: Context, behaviour: str):
    return next(r for r in ctx.policy.rules if r.behaviour == behaviour)
