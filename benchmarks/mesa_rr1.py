"""RR-1 written the way Mesa's own examples are written: one Agent per citizen, each with its own step.

This is the comparison point for scorelab's throughput (benchmarks/rr1.py) and an independent second
implementation of /work/shared/reference/rr1.md (shared/reference/rr1.md in the project) for the
statistical cross-check (tests/engine/test_mesa_crosscheck.py). It follows the text literally:

- each citizen is `urban` with probability 0.6, else `rural`; score starts at 1000, not listed (-1),
  one propensity multiplier per behaviour starting at 1.0;
- every day, for every citizen and every behaviour, one independent draw with probability
  p(behaviour, group) * multiplier (donation x3 while the score is below 1000), then one independent draw
  of the behaviour's sensor; one independent draw of a false `traffic_violation` attribution;
- after the day's observations: score += points of every observed (true or false) event; an observed
  `loan_default` lists the citizen until t + 730; grade from the score; restricted when t < listed_until
  or the grade is C or D;
- deterrence takes effect from the next day: each observed penalty (false attributions included)
  multiplies that behaviour's multiplier by 0.7.

All draws come from the model's seeded RNG (`model.random`, Mesa's per-model `random.Random`).
Per-day, per-group metrics are gathered with Mesa's `DataCollector`: each citizen adds its day's events,
end-of-day score and restriction to the model's tallies in its own step, and the model reporters read
those tallies once a day.

Usage::

    from mesa_rr1 import run_mesa_rr1
    df = run_mesa_rr1(population=3000, days=120, seed=1)   # pandas DataFrame like metrics.parquet's
"""

from __future__ import annotations

import time

import mesa
import pandas as pd

GROUPS = ("urban", "rural")
METRICS = ("mean_score", "restricted_share", "penalties", "wrongful_penalties", "criticism")

# behaviour: (p urban, p rural, points, p observed | urban, p observed | rural)  -- rr1.md, "Behaviours"
BEHAVIOURS = {
    "traffic_violation": (0.004, 0.002, -5, 0.8, 0.3),
    "volunteering": (0.010, 0.010, 5, 0.5, 0.5),
    "donation": (0.002, 0.001, 10, 1.0, 1.0),
    "loan_default": (0.0003, 0.0005, -50, 1.0, 1.0),
    "public_criticism": (0.002, 0.001, -20, 0.6, 0.2),
}
FALSE_TRAFFIC = (0.00002, 0.00008)  # false traffic_violation per citizen-day, urban / rural
START_SCORE = 1000
BLACKLIST_DAYS = 730
DETERRENCE = 0.7
GAMING_BELOW, GAMING_FACTOR = 1000, 3.0
# grade bands, highest first: (name, lowest score)
GRADES = (("AAA", 1050), ("AA", 1030), ("A", 960), ("B", 850), ("C", 600), ("D", None))
RESTRICTED_GRADES = frozenset({"C", "D"})


def grade_of(score: int) -> str:
    for name, lo in GRADES:
        if lo is None or score >= lo:
            return name
    raise AssertionError("unreachable")


class Citizen(mesa.Agent):
    """One citizen of RR-1: its own group, score, listing and propensity multipliers."""

    def __init__(self, model: "RR1Model"):
        super().__init__(model)
        self.group = 0 if self.random.random() < 0.6 else 1  # 0 = urban, 1 = rural
        self.score = START_SCORE
        self.blacklisted_until = -1
        self.multiplier = {b: 1.0 for b in BEHAVIOURS}
        self.grade = grade_of(self.score)
        self.restricted = False

    def step(self) -> None:
        model = self.model
        t = model.day
        g = self.group
        rnd = self.random.random
        tally = model.tally[g]
        points = 0
        penalised: list[str] = []  # one entry per observed penalty (for deterrence)

        # behave -> observe: one independent draw per behaviour, then one for its sensor
        for name, (p_u, p_r, pts, o_u, o_r) in BEHAVIOURS.items():
            p = (p_u if g == 0 else p_r) * self.multiplier[name]
            if name == "donation" and self.score < GAMING_BELOW:
                p *= GAMING_FACTOR
            if rnd() >= p:
                continue
            if name == "public_criticism":
                tally["criticism"] += 1
            if rnd() >= (o_u if g == 0 else o_r):
                continue
            points += pts
            if pts < 0:
                tally["penalties"] += 1
                penalised.append(name)
            if name == "loan_default":
                self.blacklisted_until = t + BLACKLIST_DAYS
        # sensor error: a camera names this citizen for a traffic violation they did not commit
        if rnd() < FALSE_TRAFFIC[g]:
            points += BEHAVIOURS["traffic_violation"][2]
            tally["penalties"] += 1
            tally["wrongful_penalties"] += 1
            penalised.append("traffic_violation")

        # score -> grade -> restriction (blacklist set above)
        self.score += points
        self.grade = grade_of(self.score)
        self.restricted = t < self.blacklisted_until or self.grade in RESTRICTED_GRADES

        # respond: deterrence from the next day on
        for name in penalised:
            self.multiplier[name] *= model.deterrence

        tally["score_sum"] += self.score
        tally["restricted"] += self.restricted


def _reporter(metric: str, group: int | None):
    def report(model: "RR1Model") -> float:
        tallies = model.tally if group is None else [model.tally[group]]
        n = sum(model.group_size) if group is None else model.group_size[group]
        if metric in ("mean_score", "restricted_share"):
            key = "score_sum" if metric == "mean_score" else "restricted"
            return sum(t[key] for t in tallies) / n if n else 0.0
        return sum(t[metric] for t in tallies)
    return report


class RR1Model(mesa.Model):
    """RR-1 over `population` citizens; `step()` simulates one day."""

    def __init__(self, population: int = 1000, seed: int | None = None, deterrence: float = DETERRENCE):
        super().__init__(seed=seed)
        self.day = 0
        self.deterrence = deterrence
        Citizen.create_agents(self, population)
        self.group_size = [0, 0]
        for a in self.agents:
            self.group_size[a.group] += 1
        labels = list(GROUPS) + ["all"]
        self.datacollector = mesa.DataCollector(model_reporters={
            f"{m}|{label}": _reporter(m, None if label == "all" else k)
            for m in METRICS for k, label in enumerate(labels)
        })
        self.tally = self._fresh_tally()

    @staticmethod
    def _fresh_tally() -> list[dict[str, int]]:
        keys = ("score_sum", "restricted", "penalties", "wrongful_penalties", "criticism")
        return [dict.fromkeys(keys, 0) for _ in GROUPS]

    def step(self) -> None:
        self.tally = self._fresh_tally()
        self.agents.shuffle_do("step")
        self.datacollector.collect(self)
        self.day += 1


def metrics_frame(model: RR1Model) -> pd.DataFrame:
    """The collected metrics as scorelab's metrics.parquet shapes them: one row per day and group."""
    wide = model.datacollector.get_model_vars_dataframe()
    labels = list(GROUPS) + ["all"]
    sizes = model.group_size + [sum(model.group_size)]
    rows = []
    for day, rec in enumerate(wide.to_dict("records")):
        for k, label in enumerate(labels):
            row = {"day": day, "group": label, "population": sizes[k]}
            row.update({m: rec[f"{m}|{label}"] for m in METRICS})
            rows.append(row)
    df = pd.DataFrame(rows)
    df["group"] = pd.Categorical(df["group"], categories=labels)
    for m in ("penalties", "wrongful_penalties", "criticism"):
        df[m] = df[m].astype("int64")
    return df


def run_mesa_rr1(population: int = 1000, days: int = 365, seed: int = 0,
                 deterrence: float = DETERRENCE) -> pd.DataFrame:
    """Run RR-1 in Mesa and return its per-day, per-group metrics (columns as in metrics.parquet)."""
    model = RR1Model(population, seed=seed, deterrence=deterrence)
    for _ in range(days):
        model.step()
    return metrics_frame(model)


def timed_run(population: int, days: int, seed: int = 0) -> tuple[pd.DataFrame, float]:
    """`run_mesa_rr1` and its wall seconds (model construction included)."""
    t0 = time.perf_counter()
    df = run_mesa_rr1(population, days, seed)
    return df, time.perf_counter() - t0


if __name__ == "__main__":  # pragma: no cover - quick manual check
    import argparse

    ap = argparse.ArgumentParser(description="Run RR-1 in Mesa and print the last day and the totals")
    ap.add_argument("--population", "-n", type=int, default=10_000)
    ap.add_argument("--days", "-t", type=int, default=365)
    ap.add_argument("--seed", "-s", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON line of figures instead of the tables")
    a = ap.parse_args()
    cpu0 = time.process_time()
    df, wall = timed_run(a.population, a.days, a.seed)
    cpu = time.process_time() - cpu0
    if a.json:
        import json

        print(json.dumps({"population": a.population, "days": a.days, "seed": a.seed, "model_seconds": wall,
                          "model_cpu_seconds": cpu,
                          "mesa": mesa.__version__}))
        raise SystemExit(0)
    last = df[df.day == df.day.max()].set_index("group")[["mean_score", "restricted_share"]]
    tot = df.groupby("group", observed=True)[["penalties", "wrongful_penalties", "criticism"]].sum()
    print(last.join(tot).to_string())
    print(f"{a.population * a.days:,} agent-days in {wall:.2f} s: {a.population * a.days / wall / 1e6:.3f} M agent-days/s")
