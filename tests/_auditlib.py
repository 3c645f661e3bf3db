"""Small runs shared by the audit tests (built once per session, in a temporary directory)."""

from __future__ import annotations

import copy
from pathlib import Path

import scorelab
from scorelab.config.loader import scenario_from_dict


def rr1_dict(population: int = 20_000, days: int = 60) -> dict:
    data = scorelab.load("rr1", population=population, days=days).model_dump(mode="json")
    return copy.deepcopy(data)


def simulate_dict(data: dict, out: Path, seed: int = 1, ledger: str | None = None):
    return scorelab.simulate(scenario_from_dict(data), seed=seed, out=out, workers=1, ledger=ledger)


def golden_dict() -> dict:
    """10 citizens, 5 days; a camera falsely names every citizen every day (-100 points each time).

    Nobody does anything; scores go 900, 800, 700, 600, 500; grade LOW (< 800, restricted) from day 2:
    every citizen is wrongly restricted for 3 days (days 2, 3, 4).
    """
    return {
        "scenario": {"name": "golden", "description": "hand-computed <b>outcome</b> & \"quotes\"", "population": 10,
                     "days": 5, "seed": 0},
        "groups": [{"name": "only", "share": 1.0}],
        "behaviours": [{"name": "offence", "rate": 0.0, "misconduct": True},
                       {"name": "speech", "rate": 0.0, "speech": True, "misconduct": False}],
        "sensors": [{"name": "cam", "coverage": 1.0,
                     "false_attribution": {"behaviour": "offence", "rate": 1.0}},
                    {"name": "web", "coverage": 1.0}],
        "policy": {"name": "golden", "start_score": 1000,
                   "rules": [{"behaviour": "offence", "sensor": "cam", "points": -100},
                             {"behaviour": "speech", "sensor": "web", "points": 0}],
                   "grades": [{"name": "OK", "min": 800}, {"name": "LOW", "max": 799}],
                   "restrictions": [{"name": "ban", "grades": ["LOW"]}]},
    }
