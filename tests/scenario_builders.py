"""Small scenarios for mechanism tests: a two-group society with one court sensor and grades A-D."""

import copy

from scorelab.config.loader import scenario_from_dict

BASE = {
    "scenario": {"name": "t", "population": 2000, "days": 30, "seed": 1},
    "groups": [{"name": "urban", "share": 0.5}, {"name": "rural", "share": 0.5}],
    "behaviours": [],
    "sensors": [{"name": "court", "coverage": 1.0}],
    "policy": {
        "start_score": 1000,
        "rules": [],
        "grades": [
            {"name": "A", "min": 960}, {"name": "B", "min": 850, "max": 959},
            {"name": "C", "min": 600, "max": 849}, {"name": "D", "max": 599},
        ],
    },
}


def make(**parts):
    """A small scenario: BASE with top-level parts replaced and policy keys merged."""
    data = copy.deepcopy(BASE)
    policy = parts.pop("policy", {})
    for k, v in parts.items():
        if k == "scenario":
            data["scenario"].update(v)
        else:
            data[k] = v
    data["policy"].update(policy)
    return scenario_from_dict(data, "test")
