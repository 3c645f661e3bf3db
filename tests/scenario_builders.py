"""Small scenarios for mechanism tests: a two-group society with one court sensor and grades A-D."""

import copy

import scorelab
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


# ground truth of the behaviours these tests use (a scenario declares it; points never decide it)
MISCONDUCT = {"drunk_driving", "judgment_default", "hide_assets", "littering", "arrears", "late_repayment",
              "offence", "default", "evade_enforcement", "traffic_violation", "loan_default", "public_incident"}


def declare(behaviours: list[dict]) -> list[dict]:
    """Behaviours with ``misconduct`` declared (from MISCONDUCT) where the test did not say."""
    return [{**b, "misconduct": b.get("misconduct", b["name"] in MISCONDUCT)} for b in behaviours]


def make(**parts):
    """A small scenario: BASE with top-level parts replaced and policy keys merged."""
    data = copy.deepcopy(BASE)
    if "behaviours" in parts:
        parts["behaviours"] = declare(parts["behaviours"])
    policy = parts.pop("policy", {})
    for k, v in parts.items():
        if k == "scenario":
            data["scenario"].update(v)
        else:
            data[k] = v
    data["policy"].update(policy)
    return scenario_from_dict(data, "test")


# helpers of the mechanism tests (tests/plugins/)
def run(sc, tmp_path, name="r", **kw):
    return scorelab.simulate(sc, out=tmp_path / name, workers=1, **kw)


def all_rows(m):
    return m[m.group == "all"].reset_index(drop=True)


def ledger_holds(r):
    c, led = r.citizens, r.ledger
    # each citizen's own start score (drawn from the group's start distribution, or the policy's start_score)
    start = c.start_score.to_numpy() if "start_score" in c else r.manifest["scenario"]["policy"]["start_score"]
    total = led.groupby("citizen").points.sum().reindex(c.citizen, fill_value=0).to_numpy()
    return bool((start + total == c.score.to_numpy()).all())
