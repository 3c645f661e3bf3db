"""Declared outputs: every column of metrics.parquet is a `Metric` with a kind, a unit and a meaning.

The kernel declares its own (`core_metrics`), each mechanism plugin declares its (plugins/base.py), and
the store, the run summary, the report's glossary and the audit read the declarations — never name
prefixes. `declared(params)` lists them all in table order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["count", "stock", "sum", "mean", "share", "average"]


@dataclass(frozen=True)
class Metric:
    """One declared output column of metrics.parquet (per day and group, and `all`).

    kind: ``count`` events that day; ``stock`` citizens in a state at the end of the day (``target``: the
    event-log target whose events give each citizen's days in it); ``sum`` a quantity that day; ``mean`` a
    ratio of two sums (arrays ``<name>.num`` / ``<name>.den``); ``share`` a stock over the population;
    ``average`` a per-citizen quantity summed then divided by the population. ``source``: the kernel array
    it is read from, when not its own name. ``real``: a float quantity (money), not a count. ``weight``: for a
    mean, the count metric whose daily values weight it over days (else the last day's value stands)."""

    name: str
    kind: Kind
    unit: str
    meaning: str
    target: str | None = None
    source: str | None = None
    real: bool = False
    weight: str | None = None

    @property
    def array(self) -> str:
        return self.source or self.name


def core_metrics(P) -> list[Metric]:
    """The kernel's outputs, in table order."""
    out = [Metric("mean_score", "average", "points", "mean score at the end of the day", source="score_sum"),
           Metric("restricted_share", "share", "share of citizens", "share under any restriction at the end of the day",
                  source="restricted"),
           Metric("penalties", "count", "events", "observed events of rules with negative points (penalties)"),
           Metric("wrongful_penalties", "count", "events", "penalties for events a sensor invented (false attributions)"),
           Metric("criticism", "count", "events", "true events of speech behaviours (criticism, petitioning)"),
           Metric("wrongful_rewards", "count", "events", "rewards for events a sensor invented"),
           Metric("points_awarded", "sum", "points", "points added to scores that day"),
           Metric("points_deducted", "sum", "points", "points taken from scores that day")]
    if len(P.restriction_names) > 1:
        out += [Metric(f"restricted_{r}_share", "share", "share of citizens", f"share under the restriction {r}",
                       target=r, source=f"restricted_{r}") for r in P.restriction_names]
    out += [Metric(f"grade_{g}", "stock", "citizens", f"citizens in grade {g} at the end of the day")
            for g in P.grade_names]
    out += [Metric(f"listed_{b}", "stock", "citizens", f"citizens on the blacklist {b} at the end of the day", target=b)
            for b in P.bl_names]
    out += [Metric(f"listings_{b}", "count", "citizens", f"citizens newly put on the blacklist {b} that day (not "
                   "renewals; a listing from before the run is not counted)") for b in P.bl_names]
    out += [Metric(f"true_{b}", "count", "events", f"true events of {b} (what people did)") for b in P.behaviours]
    out += [Metric(f"observed_{b}", "count", "events", f"events of {b} a sensor saw") for b in P.behaviours]
    out += [Metric(f"false_{P.behaviours[f.behaviour]}", "count", "events",
                   f"events of {P.behaviours[f.behaviour]} a sensor invented (false attributions)")
            for f in P.false_sources]
    return list({m.name: m for m in out}.values())


def declared(P) -> list[Metric]:
    """Every output column of a run of ``P``: the kernel's, then each active plugin's, in registry order."""
    return core_metrics(P) + list(P.plugin_metrics)
