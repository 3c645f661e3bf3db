"""Sparse Bernoulli sampling: draw only the trials that succeed.

A run of independent Bernoulli(p) trials is the same, in distribution, as the gaps between its successes
being Geometric(p). So instead of one uniform number per citizen and day, we draw one geometric gap per
*event*: the cost follows what happens, not population x days. Heterogeneous rates are handled by the
caller with thinning: draw candidates at an upper-bound rate, keep each with probability p_i / p_max.
"""

from __future__ import annotations

import math

import numpy as np


def bernoulli_positions(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Sorted positions in [0, n) of the successes of n independent Bernoulli(p) trials (int64)."""
    if n <= 0 or p <= 0.0:
        return np.empty(0, dtype=np.int64)
    if p >= 1.0:
        return np.arange(n, dtype=np.int64)
    if p > 0.25:  # dense is cheaper than skipping when most trials succeed
        return np.flatnonzero(rng.random(n) < p).astype(np.int64)
    if p < 1e-9:  # geometric gaps would overflow int64: draw the count, then distinct positions
        k = int(rng.binomial(n, p))
        return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64) if k else np.empty(0, dtype=np.int64)
    mean = n * p
    parts = []
    end = -1  # position of the last success drawn so far
    while True:
        size = int(mean + 6.0 * math.sqrt(mean * (1 - p)) + 16)
        gaps = rng.geometric(p, size=size)
        pos = np.cumsum(gaps, dtype=np.int64)
        pos += end
        if pos[-1] >= n:
            parts.append(pos[: np.searchsorted(pos, n)])
            break
        parts.append(pos)
        end = int(pos[-1])
        mean = (n - 1 - end) * p
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
