"""`scorelab replicate liu2018`: Liu et al. (ICML 2018), "Delayed Impact of Fair Machine Learning", through
the engine.

The paper's one-step setting: the `lending` preset (FICO TransRisk tables on the FICO scale, groups white and
black) with the bank's thresholds set by each policy (validity/policies.py) and one loan cycle; every citizen
applies; a repaid loan is +75, a default -150, clipped to 300..850. Each policy is one engine run (same seed:
the same citizens meet the same luck under every policy), and its figures are read from the run's metrics:
selection rate = loans / members, delta_mu = the net points of the day / members. Beside each simulated
figure, the exact expectation of the same model (policies.curve) and the Monte-Carlo standard error.

Then the dynamics (ml-fairness-gym's lending environment, D'Amour et al. 2020): the same loop for many cycles,
thresholds held at each policy's one-step values, every cycle's mean score per group read from the run.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import fico
from .policies import POLICIES, Choice, Curve, choose, curve

GROUPS = ("white", "black")


@dataclass(frozen=True)
class Outcome:
    policy: str
    group: str
    threshold: int
    selection_rate: float
    delta_mu: float
    delta_mu_se: float
    selection_rate_expected: float
    delta_mu_expected: float
    tpr_expected: float
    utility_expected: float
    members: int
    loans: int
    rate_gap: float


def model(loss: float) -> tuple[dict[str, fico.GroupTable], dict[str, Curve], dict[str, Choice]]:
    tables = fico.load(GROUPS)
    curves = {g: curve(tables[g], loss) for g in GROUPS}
    shares = {g: tables[g].share for g in GROUPS}
    return tables, curves, {p: choose(curves, shares, p) for p in POLICIES}


def scenario(thresholds: dict[str, int], population: int, days: int, loss: float, seed: int):
    """The `lending` preset with the policy's thresholds, the population, cycles and the loss set."""
    from ..config.loader import load_scenario

    sc = load_scenario("lending", population=population, days=days, seed=seed)
    return sc.with_changes({"policy.lender.threshold": dict(thresholds), "policy.lender.loss": float(loss)})


def run_policy(choice: Choice, population: int, days: int, loss: float, seed: int, workers: int | None):
    """One engine run of a policy: the run's metrics table (in memory; no per-citizen detail)."""
    from ..api import simulate

    run = simulate(scenario(choice.threshold, population, days, loss, seed), ledger="none", workers=workers)
    return run.metrics


def one_step(loss: float = -4.0, population: int = 1_000_000, seed: int = 0, workers: int | None = None,
             progress=None) -> tuple[list[Outcome], dict[str, Curve], dict[str, Choice]]:
    _, curves, choices = model(loss)
    out = []
    for k, policy in enumerate(POLICIES):
        ch = choices[policy]
        m = run_policy(ch, population, 1, loss, seed, workers)
        for g in GROUPS:
            row = m[(m["day"] == 0) & (m["group"] == g)].iloc[0]
            n = int(row["population"])
            loans = int(row["loans_bank"])
            net = int(row["points_awarded"]) - int(row["points_deducted"])
            c, i = curves[g], ch.index[g]
            var = max(float(c.second[i] - c.delta_mu[i] ** 2), 0.0)
            out.append(Outcome(policy, g, ch.threshold[g], loans / n, net / n, math.sqrt(var / n),
                               float(c.selection[i]), float(c.delta_mu[i]), float(c.tpr[i]), float(c.utility[i]),
                               n, loans, ch.rate_gap))
        if progress:
            progress(k + 1, len(POLICIES))
    return out, curves, choices


def dynamics(choices: dict[str, Choice], steps: int, loss: float, population: int, seed: int,
             workers: int | None = None, progress=None) -> list[dict]:
    """Mean score per group after each cycle (step 0: before the first), for each policy's thresholds."""
    tables = fico.load(GROUPS)
    start = {g: float((tables[g].pmf * tables[g].scores).sum()) for g in GROUPS}
    rows = []
    for k, policy in enumerate(POLICIES):
        m = run_policy(choices[policy], population, steps, loss, seed, workers)
        for g in GROUPS:
            rows.append({"policy": policy, "step": 0, "group": g, "mean_score": start[g], "selection_rate": math.nan})
            mg = m[m["group"] == g].sort_values("day")
            for _, r in mg.iterrows():
                rows.append({"policy": policy, "step": int(r["day"]) + 1, "group": g, "mean_score": float(r["mean_score"]),
                             "selection_rate": float(r["loans_bank"]) / float(r["population"])})
        if progress:
            progress(k + 1, len(POLICIES))
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def outcome_rows(outcomes: list[Outcome]) -> list[dict]:
    return [{"policy": o.policy, "group": o.group, "threshold": o.threshold, "selection_rate": o.selection_rate,
             "delta_mu": o.delta_mu, "delta_mu_se": o.delta_mu_se, "selection_rate_expected": o.selection_rate_expected,
             "delta_mu_expected": o.delta_mu_expected, "tpr_expected": o.tpr_expected,
             "utility_expected": o.utility_expected, "members": o.members, "loans": o.loans, "rate_gap": o.rate_gap}
            for o in outcomes]


def curve_rows(curves: dict[str, Curve]) -> list[dict]:
    rows = []
    for g, c in curves.items():
        for i in range(len(c.threshold)):
            rows.append({"group": g, "threshold": int(c.threshold[i]), "selection_rate": float(c.selection[i]),
                         "delta_mu": float(c.delta_mu[i]), "tpr": float(c.tpr[i]), "utility": float(c.utility[i])})
    return rows


def gap_rows(dyn: list[dict]) -> list[dict]:
    """The credit gap (white minus black mean score) per policy and step."""
    by = {(r["policy"], r["step"], r["group"]): r["mean_score"] for r in dyn}
    steps = sorted({(r["policy"], r["step"]) for r in dyn})
    return [{"policy": p, "step": s, "gap": by[(p, s, "white")] - by[(p, s, "black")]} for p, s in steps]


def write(out: Path, outcomes: list[Outcome], curves: dict[str, Curve], dyn: list[dict] | None, meta: dict) -> list[Path]:
    """outcomes.csv, outcome_curve.csv, dynamics.csv, credit_gap.csv, figures.html, summary.md into ``out``."""
    from .liu2018_report import figures_html, summary_md

    files = []
    _write_csv(out / "outcomes.csv", outcome_rows(outcomes))
    files.append(out / "outcomes.csv")
    _write_csv(out / "outcome_curve.csv", curve_rows(curves))
    files.append(out / "outcome_curve.csv")
    if dyn:
        _write_csv(out / "dynamics.csv", dyn)
        _write_csv(out / "credit_gap.csv", gap_rows(dyn))
        files += [out / "dynamics.csv", out / "credit_gap.csv"]
    (out / "figures.html").write_text(figures_html(outcomes, curves, dyn, meta), encoding="utf-8")
    (out / "summary.md").write_text(summary_md(outcomes, dyn, meta), encoding="utf-8")
    return files + [out / "figures.html", out / "summary.md"]


def check_agreement(outcomes: list[Outcome], z: float = 5.0) -> list[str]:
    """Simulated against expected: the figures that differ by more than z standard errors (an empty list: all agree)."""
    bad = []
    for o in outcomes:
        if abs(o.delta_mu - o.delta_mu_expected) > z * max(o.delta_mu_se, 1e-9):
            bad.append(f"{o.policy}/{o.group}: delta_mu {o.delta_mu:.3f} vs expected {o.delta_mu_expected:.3f} "
                       f"(se {o.delta_mu_se:.3f})")
        se_rate = math.sqrt(max(o.selection_rate_expected * (1 - o.selection_rate_expected), 1e-12) / o.members)
        if abs(o.selection_rate - o.selection_rate_expected) > z * se_rate:
            bad.append(f"{o.policy}/{o.group}: selection rate {o.selection_rate:.4f} vs expected "
                       f"{o.selection_rate_expected:.4f}")
    return bad


def tables_for_preset() -> dict[str, dict[str, np.ndarray]]:
    """What the `lending` preset's CSV files must hold (tests compare): per group, scores, weights, P(repay)."""
    t = fico.load(GROUPS)
    return {g: {"score": t[g].scores, "weight": t[g].pmf, "p_repay": t[g].repay} for g in GROUPS}
