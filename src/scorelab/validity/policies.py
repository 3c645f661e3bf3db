"""The lender's policies of Liu et al. (2018) on a score table, and the one-step expectations they give.

For a group with scores s_i (whole FICO scores), shares pi_i and repayment probabilities rho_i, a threshold
at the table's score s_j lends to everyone at or above it:

    selection rate  beta(j)   = sum_{i>=j} pi_i
    true positive   tpr(j)    = sum_{i>=j} pi_i rho_i / sum_i pi_i rho_i
    lender utility  u(j)      = sum_{i>=j} pi_i (rho_i * profit + (1 - rho_i) * loss)
    mean change     dmu(j)    = sum_{i>=j} pi_i (rho_i * up_i + (1 - rho_i) * down_i)

with up_i = min(s_i + repaid, 850) - s_i and down_i = max(s_i + default, 300) - s_i (the clip to the
score range). The policies maximise the total utility sum_g w_g u_g(j_g) (w_g: the group's share):

* ``max_profit``: each group's own best threshold, no constraint;
* ``demographic_parity``: equal selection rates; ``equal_opportunity``: equal true positive rates.

Thresholds are deterministic and sit at the table's scores (no randomised threshold), so a constrained
policy can make the rates equal only as closely as the table allows: every pair of thresholds whose rates
are nearest to each other (for each threshold of either group, the other group's nearest) is a candidate,
and the one of highest total utility is chosen. The gap left is reported (``rate_gap``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fico import FICO_HIGH, FICO_LOW, GroupTable

POLICIES = ("max_profit", "demographic_parity", "equal_opportunity")
NO_LOANS = FICO_HIGH + 1  # a threshold above every score: lend to no one


@dataclass(frozen=True)
class Curve:
    """Per candidate threshold of one group (the table's scores, then NO_LOANS): what it gives."""

    threshold: np.ndarray  # [m+1] int64
    selection: np.ndarray
    tpr: np.ndarray
    utility: np.ndarray  # per member of the group
    delta_mu: np.ndarray  # expected mean score change over the group's members
    second: np.ndarray  # expected mean squared change (for the Monte-Carlo error of a simulated delta_mu)


def _tail(v: np.ndarray) -> np.ndarray:
    """sum_{i>=j} v_i for j = 0..m (the last: the empty sum)."""
    return np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]])


def curve(t: GroupTable, loss: float, profit: float = 1.0, repaid: int = 75, default: int = -150,
          low: int = FICO_LOW, high: int = FICO_HIGH) -> Curve:
    s = t.scores.astype(np.float64)
    up = np.minimum(s + repaid, high) - s
    down = np.maximum(s + default, low) - s
    pi, rho = t.pmf, t.repay
    change = rho * up + (1 - rho) * down
    sq = rho * up ** 2 + (1 - rho) * down ** 2
    thr = np.concatenate([t.scores, [NO_LOANS]]).astype(np.int64)
    return Curve(thr, _tail(pi), _tail(pi * rho) / float((pi * rho).sum()), _tail(pi * (rho * profit + (1 - rho) * loss)),
                 _tail(pi * change), _tail(pi * sq))


@dataclass(frozen=True)
class Choice:
    policy: str
    index: dict[str, int]  # group -> index into its Curve
    threshold: dict[str, int]
    rate_gap: float  # largest difference of the constrained rate between groups (0 for max_profit)


def choose(curves: dict[str, Curve], shares: dict[str, float], policy: str) -> Choice:
    """The thresholds of ``policy`` for two groups (the constrained policies are defined for two)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; allowed: {', '.join(POLICIES)}")
    groups = list(curves)
    if policy == "max_profit":
        idx = {g: int(np.argmax(curves[g].utility)) for g in groups}
        return Choice(policy, idx, {g: int(curves[g].threshold[idx[g]]) for g in groups}, 0.0)
    if len(groups) != 2:
        raise ValueError(f"{policy} is written here for two groups; got {len(groups)}")
    a, b = groups
    rate = "selection" if policy == "demographic_parity" else "tpr"
    ra, rb = getattr(curves[a], rate), getattr(curves[b], rate)
    pairs = set()
    for i, r in enumerate(ra):
        pairs.add((i, int(np.argmin(np.abs(rb - r)))))
    for j, r in enumerate(rb):
        pairs.add((int(np.argmin(np.abs(ra - r))), j))
    best = max(sorted(pairs), key=lambda p: (shares[a] * curves[a].utility[p[0]] + shares[b] * curves[b].utility[p[1]],
                                             -abs(ra[p[0]] - rb[p[1]])))
    idx = {a: best[0], b: best[1]}
    return Choice(policy, idx, {g: int(curves[g].threshold[idx[g]]) for g in groups}, float(abs(ra[best[0]] - rb[best[1]])))
