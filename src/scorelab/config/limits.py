"""How large a number a scenario may hold, and the worst-case scores a policy can reach.

Scores live in int16 or int32 arrays (engine/params.py picks the narrower that holds every reachable
score), the event log and the citizens table store them as int32, and the per-day sums of a shard are
taken through float64 weights, exact up to 2**53. `SCORE_LIMIT` keeps all three exact: 10**9 per
citizen times a shard of 4,194,304 citizens is below 2**53, and 10**9 is below int32's 2,147,483,647.

`score_range` is the worst case over a whole run, not a guess: the widest start score, then every
rewarding rule observed (and falsely attributed) once a day, every day, plus what the mechanism
plugins can add in a day. A policy with `score_min`/`score_max` clips at the end of each day, so its
scores stay in the range, but within a day they can go one day's worth of points past it.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

SCORE_LIMIT = 1_000_000_000
POINTS_LIMIT = SCORE_LIMIT
INT16_SAFE = 32_000  # int16 scores when every reachable score lies strictly inside ±INT16_SAFE


def daily_swing(sc) -> tuple[int, int]:
    """Most points one citizen can gain and lose in one day (rules, false attributions, plugins)."""
    from ..plugins import compile_all

    pts = [r.points for r in sc.policy.rules]
    false_sources = sum(1 for s in sc.sensors if s.false_attribution is not None)
    bands = sorted(sc.policy.grades, key=lambda g: -math.inf if g.min is None else g.min)
    names = SimpleNamespace(behaviours=tuple(b.name for b in sc.behaviours), groups=tuple(g.name for g in sc.groups),
                            sensors=tuple(s.name for s in sc.sensors), grade_names=tuple(g.name for g in bands),
                            bl_names=tuple(b.name for b in sc.policy.blacklists),
                            restriction_names=tuple(r.name for r in sc.policy.restrictions))
    plugin = sum(int(p.max_daily_points(c)) for p, c in compile_all(sc, names))
    gain = sum(p for p in pts if p > 0) + plugin
    loss = sum(-p for p in pts if p < 0) * (1 + false_sources) + plugin
    return gain, loss


def score_range(sc) -> tuple[int, int]:
    """Lowest and highest score any citizen can hold at any moment of the run (Python ints: no overflow)."""
    gain, loss = daily_swing(sc)
    T = sc.scenario.days
    s_lo, s_hi = sc.start_support()
    pol = sc.policy
    lo = s_lo - loss * T if pol.score_min is None else min(pol.score_min, s_lo) - loss
    hi = s_hi + gain * T if pol.score_max is None else max(pol.score_max, s_hi) + gain
    return lo, hi


def check_score_range(sc) -> None:
    """ValueError naming the limit when some reachable score would not be stored exactly."""
    lo, hi = score_range(sc)
    if lo < -SCORE_LIMIT or hi > SCORE_LIMIT:
        T = sc.scenario.days
        raise ValueError(
            f"policy: over {T:,} days this policy can take a score to {lo:,}..{hi:,} (every rule observed "
            f"each day, false attributions included); scores must stay within ±{SCORE_LIMIT:,}. "
            "Lower the rules' points, or bound the score with score_min and score_max")

