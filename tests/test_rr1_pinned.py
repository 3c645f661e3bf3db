"""RR-1 must not drift: these figures were computed from the core kernel (commit 8aebb24) before any
preset mechanism was added. Same scenario, same seed -> the same numbers, exactly."""

import scorelab


def test_rr1_small_run_is_pinned(tmp_path):
    run = scorelab.simulate("rr1", seed=3, population=5000, days=50, out=tmp_path / "r", workers=1)
    m = run.metrics
    a = m[m.group == "all"]
    assert float(a.mean_score.iloc[-1]) == 999.671
    assert int(a.penalties.sum()) == 873
    assert int(a.wrongful_penalties.sum()) == 11
    assert int(a.criticism.sum()) == 419
    assert float(a.restricted_share.iloc[-1]) == 0.023
    assert int(a.points_awarded.sum()) == 11000
    assert int(a.points_deducted.sum()) == 12645
    assert len(run.ledger) == 2605
    assert int(run.citizens.score.sum()) == 4998355
    r = m[m.group == "rural"]
    assert abs(float(r.mean_score.iloc[-1]) - 999.8469891411648) < 1e-9
    assert int(r.observed_volunteering.sum()) == 479
