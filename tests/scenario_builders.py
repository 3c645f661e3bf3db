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


def rich_core(population=20000, days=120):
    """Every feature the compiled day and the walk cover (no plugins, no targeting), at once: per-citizen
    heterogeneity, severity, chilling, deterrence in steps, gaming, a score curve, drawn start scores, a clipped range, grades, two
    blacklists (one that expires within the run), two restrictions, a false-attribution source and
    sensors of the three detection kinds (all, some, none in a group)."""
    return make(
        scenario={"population": population, "days": days},
        groups=[{"name": "urban", "share": 0.6, "start": {"kind": "normal", "mean": 980, "sd": 40, "low": 800, "high": 1100}},
                {"name": "rural", "share": 0.4}],
        behaviours=[
            {"name": "littering", "rate": 0.01, "heterogeneity": 0.8, "heterogeneity_cap": 10.0, "severity": 2.0},
            {"name": "traffic_violation", "rate": {"urban": 0.006, "rural": 0.003}},
            {"name": "volunteering", "rate": 0.01, "misconduct": False},
            {"name": "criticism", "rate": 0.004, "speech": True, "misconduct": False},
            {"name": "loan_default", "rate": 0.0005},
            {"name": "donation", "rate": 0.002, "misconduct": False},
        ],
        sensors=[{"name": "court", "coverage": 1.0},
                 {"name": "camera", "coverage": {"urban": 0.8, "rural": 0.3},
                  "false_attribution": {"behaviour": "traffic_violation", "rate": {"urban": 0.0005, "rural": 0.001}}},
                 {"name": "patrol", "coverage": {"urban": 1.0, "rural": 0.0}},
                 {"name": "informant", "coverage": 0.5}],
        policy={"score_min": 700, "score_max": 1100,
                "rules": [{"behaviour": "littering", "sensor": "patrol", "points": -30},
                          {"behaviour": "traffic_violation", "sensor": "camera", "points": -25},
                          {"behaviour": "volunteering", "sensor": "informant", "points": 15},
                          {"behaviour": "criticism", "sensor": "informant", "points": -40},
                          {"behaviour": "loan_default", "sensor": "court", "points": -120},
                          {"behaviour": "donation", "sensor": "court", "points": 20}],
                "blacklists": [{"name": "court_list", "trigger": "loan_default", "duration_days": 90},
                               {"name": "litter_list", "trigger": "littering", "duration_days": 20}],
                "restrictions": [{"name": "travel", "grades": ["C", "D"], "blacklists": ["court_list"]},
                                 {"name": "service", "blacklists": ["litter_list"]}]},
        response={"deterrence": {"factor": 0.8, "points_unit": 20},
                  "gaming": [{"behaviour": "donation", "below_score": 1000, "factor": 3.0}],
                  "score_curves": [{"behaviour": "volunteering", "points": [[800, 2.0], [1000, 1.0], [1100, 0.5]]}],
                  "chilling": [{"behaviour": "criticism", "elasticity": 1.0}]})
