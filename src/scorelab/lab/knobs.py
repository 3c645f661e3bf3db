"""The knobs of a scenario that the lab shows, and the checking of values posted for them.

A knob is one value of the scenario named by a dotted path (the paths of sweeps and of
`Scenario.with_changes`): a rule's points, a sensor's coverage or false-attribution rate for one group, a
blacklist's duration, the deterrence factor, a gaming factor, and due process on or off (where the preset
has it). Each knob has the range a slider offers; a posted value outside it is refused with the field and
what is allowed (HTTP 400), before anything is simulated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..config.models import Scenario

MAX_POPULATION = 2_000_000  # a view should answer in seconds; larger runs belong to `scorelab run`
MAX_DAYS = 3650


class LabError(ValueError):
    """A request the lab refuses: which field, and what is allowed (sent as HTTP 400)."""

    def __init__(self, field: str, message: str, allowed: str = ""):
        self.field, self.message, self.allowed = field, message, allowed
        super().__init__(f"{field}: {message}" + (f"; allowed: {allowed}" if allowed else ""))

    def as_json(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field, "message": self.message, "allowed": self.allowed}


@dataclass(frozen=True)
class Knob:
    path: str  # dotted path, as in sweeps and Scenario.with_changes
    section: str  # heading the page groups it under
    label: str
    kind: str  # "int" | "float" | "bool"
    value: Any  # the preset's value
    min: float = 0.0
    max: float = 1.0
    step: float = 1.0
    unit: str = ""  # "" | "share" (shown as %) | "rate" (shown per 100,000 a day) | "days" | "points"

    def allowed(self) -> str:
        if self.kind == "bool":
            return "true or false"
        what = "a whole number" if self.kind == "int" else "a number"
        return f"{what} from {_fmt(self.min)} to {_fmt(self.max)}"

    def check(self, value: Any) -> Any:
        """The value as the scenario needs it, or LabError."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise LabError(self.path, f"{value!r} is not allowed", self.allowed())
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise LabError(self.path, f"{value!r} is not allowed", self.allowed())
        if self.kind == "int":
            if float(value) != int(value):
                raise LabError(self.path, f"{value!r} is not allowed", self.allowed())
            value = int(value)
        else:
            value = float(value)
        if not self.min <= value <= self.max:
            raise LabError(self.path, f"{value!r} is out of range", self.allowed())
        return value

    def change(self, value: Any) -> dict[str, Any]:
        """The with_changes entries that set this knob to ``value`` (already checked)."""
        if self.kind == "bool":
            return {} if value == self.value else {self.path: None}  # due process off: the block removed
        return {self.path: value}


def _fmt(x: float) -> str:
    return f"{x:g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _nice_ceiling(x: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``x``."""
    if x <= 0:
        return 1.0
    p = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * p >= x * (1 - 1e-12):
            return float(m * p)
    return float(10 * p)  # pragma: no cover


def knobs(sc: Scenario) -> list[Knob]:
    """Every knob of ``sc``, in the order the page shows them."""
    groups = [g.name for g in sc.groups]
    out: list[Knob] = []
    for r in sc.policy.rules:
        span = max(50, 4 * abs(r.points))
        out.append(Knob(f"policy.rules[{r.behaviour}].points", "Points of each rule", r.behaviour.replace("_", " "),
                        "int", r.points, -span, span, 1, "points"))
    for s in sc.sensors:
        cov = sc.per_group(s.coverage)
        for g, v in zip(groups, cov):
            out.append(Knob(f"sensors[{s.name}].coverage.{g}", "Sensor coverage (share of true events seen)",
                            f"{s.name.replace('_', ' ')} · {g}", "float", v, 0.0, 1.0, 0.01, "share"))
    for s in sc.sensors:
        if s.false_attribution is None:
            continue
        rates = sc.per_group(s.false_attribution.rate)
        top = min(1.0, _nice_ceiling(max(rates) * 20)) if max(rates) > 0 else 1e-3
        for g, v in zip(groups, rates):
            out.append(Knob(f"sensors[{s.name}].false_attribution.rate.{g}",
                            "False attributions (invented events per citizen a day)",
                            f"{s.name.replace('_', ' ')} → {s.false_attribution.behaviour.replace('_', ' ')} · {g}",
                            "float", v, 0.0, top, top / 200, "rate"))
    for b in sc.policy.blacklists:
        out.append(Knob(f"policy.blacklists[{b.name}].duration_days", "Blacklists", f"{b.name.replace('_', ' ')}: days listed",
                        "int", b.duration_days, 1, max(3650, 2 * b.duration_days), 1, "days"))
    if sc.policy.due_process is not None:
        out.append(Knob("policy.due_process", "Due process", "notice, review, appeals, expiry (as the preset has them)",
                        "bool", True, 0, 1, 1))
    d = sc.response.deterrence
    out.append(Knob("response.deterrence.factor", "Behavioural response",
                    "deterrence factor (propensity × this after each penalty; 1 = no response)", "float", d.factor,
                    0.0, 1.0, 0.01, ""))
    for i, gm in enumerate(sc.response.gaming):
        out.append(Knob(f"response.gaming[{i}].factor", "Behavioural response",
                        f"gaming: {gm.behaviour.replace('_', ' ')} × this below score {gm.below_score}", "float",
                        gm.factor, 0.1, max(10.0, 2 * gm.factor), 0.1, ""))
    if sc.peer is not None:
        for name, lo, hi, what in (("status", 0.0, 4.0, "status bias: extra stars per star of the ratee's rating above 3"),
                                   ("politeness", -4.0, 4.0, "strategic politeness: stars added to every rating"),
                                   ("noise", 0.0, 4.0, "noise of one interaction's impression (stars)")):
            out.append(Knob(f"peer.{name}", "Peer rating", what, "float", getattr(sc.peer, name), lo, hi, 0.05, ""))
    return out


def knob_json(sc: Scenario) -> list[dict[str, Any]]:
    return [asdict(k) for k in knobs(sc)]


def check_size(population: Any, days: Any, seed: Any) -> tuple[int, int, int]:
    def whole(name: str, v: Any, lo: int, hi: int) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or int(v) != v or not lo <= v <= hi:
            raise LabError(name, f"{v!r} is not allowed", f"a whole number from {lo:,} to {hi:,}")
        return int(v)

    return (whole("population", population, 100, MAX_POPULATION), whole("days", days, 1, MAX_DAYS),
            whole("seed", seed, 0, 2**63 - 1))


def changes_for(sc: Scenario, posted: Any) -> dict[str, Any]:
    """The with_changes dict for the knob values posted ({path: value}); LabError for anything else."""
    if posted is None:
        return {}
    if not isinstance(posted, dict):
        raise LabError("changes", "not an object", "an object {knob path: value}")
    by_path = {k.path: k for k in knobs(sc)}
    out: dict[str, Any] = {}
    for path, value in posted.items():
        knob = by_path.get(path)
        if knob is None:
            raise LabError(path if isinstance(path, str) else "changes", "not a knob of this preset",
                           "the paths GET /api/knobs lists, e.g. " + ", ".join(list(by_path)[:3]))
        value = knob.check(value)
        if value != knob.value:
            out.update(knob.change(value))
    return out
