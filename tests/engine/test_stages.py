"""Each stage of the day (engine/stages.py), on its own, over a hand-set shard state."""

import numpy as np

from scorelab.engine import stages
from scorelab.engine.kernel import ShardSpec, attach_plugins, new_state, simulate_shard
from scorelab.engine.params import compile_params
from scorelab.engine.state import Day

from scenario_builders import make


def _state(population=10, days=5, **parts):
    sc = make(scenario={"population": population, "days": days}, **parts)
    P = compile_params(sc)
    S = new_state(P, ShardSpec(0, 0, population, 1, 1))
    attach_plugins(S)
    return P, S


LITTER = dict(behaviours=[{"name": "littering", "rate": 0.0}, {"name": "volunteering", "rate": 0.0}],
              policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": -50},
                                {"behaviour": "volunteering", "sensor": "court", "points": 5}],
                      "blacklists": [{"name": "litterers", "trigger": "littering", "duration_days": 3}],
                      "restrictions": [{"name": "ban", "blacklists": ["litterers"]}]})


def test_the_day_is_the_listed_stages_in_order():
    names = [s.__name__ for s in stages.DAY]
    assert names == ["behave", "observe", "mechanisms_observe", "mechanisms_pre_score", "touch", "score", "sanction",
                     "respond", "mechanisms_apply", "clip", "grade_and_restrict", "mechanisms_end_day", "record",
                     "snapshot"]


def test_score_adds_points_counts_penalties_and_logs_each_event():
    P, S = _state(**LITTER)
    D = Day(0, obs=[(0, np.array([1, 7]), False), (0, np.array([3]), True), (1, np.array([7]), False)])
    stages.score(S, D)
    assert S.score[[1, 3, 7]].tolist() == [950, 950, 955]
    assert S.metrics["penalties"][0].sum() == 3 and S.metrics["wrongful_penalties"][0].sum() == 1
    assert S.metrics["points_deducted"][0].sum() == 150 and S.metrics["points_awarded"][0].sum() == 5
    ev = S.log.arrays()
    assert sorted(zip(ev["citizen"].tolist(), ev["points"].tolist(), ev["false"].tolist())) == \
        [(1, -50, False), (3, -50, True), (7, -50, False), (7, 5, False)]


def test_sanction_lists_for_the_duration_and_a_renewal_is_not_a_new_listing():
    P, S = _state(**LITTER)
    stages.sanction(S, Day(0, obs=[(0, np.array([2]), False)]))
    assert S.listed[0][2] == 3 and 3 in S.calendar
    stages.sanction(S, Day(2, obs=[(0, np.array([2]), False)]))
    assert S.listed[0][2] == 5
    kinds = S.log.arrays()["kind"].tolist()
    from scorelab.engine.events import KIND
    assert kinds == [KIND["list_start"], KIND["list_extend"]]


def test_touch_then_grade_and_restrict_move_the_aggregates_by_the_changes():
    P, S = _state(**LITTER)
    before = S.restricted_any.sum()
    D = Day(0, obs=[(0, np.array([4]), False)])
    stages.touch(S, D)
    stages.score(S, D)
    stages.sanction(S, D)
    stages.clip(S, D)
    stages.grade_and_restrict(S, D)
    assert before == 0 and S.restricted_any.sum() == 1 and S.listed_n.sum() == 1
    assert S.score_sum.sum() == 10 * 1000 - 50
    # the listing expires on day 3: the calendar touches the citizen, who leaves the list
    D3 = Day(3)
    stages.touch(S, D3)
    assert D3.touched.tolist() == [4]
    stages.clip(S, D3)
    stages.grade_and_restrict(S, D3)
    assert S.restricted_any.sum() == 0 and S.listed_n.sum() == 0


def test_respond_lowers_the_propensity_from_the_next_day():
    P, S = _state(behaviours=[{"name": "littering", "rate": 0.0}],
                  policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": -5}]},
                  response={"deterrence": {"factor": 0.5, "behaviours": ["littering"]}})
    stages.respond(S, Day(0, obs=[(0, np.array([5, 6]), False), (0, np.array([6]), True)]))
    slot = P.deter_slot[0]
    assert S.deter[slot, [5, 6, 7]].tolist() == [1, 2, 0]


def test_clip_brings_scores_back_into_range_as_a_score_event():
    P, S = _state(behaviours=[{"name": "littering", "rate": 0.0}],
                  policy={"score_min": 900, "rules": [{"behaviour": "littering", "sensor": "court", "points": -300}]})
    D = Day(0, obs=[(0, np.array([0]), False)])
    stages.touch(S, D)
    stages.score(S, D)
    stages.clip(S, D)
    assert S.score[0] == 900
    ev = S.log.arrays()
    assert ev["points"].tolist() == [-300, 200] and ev["rule"].tolist()[1] == P.n_behaviours


def test_behave_thins_by_propensity_and_observe_applies_detection():
    P, S = _state(population=20000, days=2,
                  groups=[{"name": "urban", "share": 0.5}, {"name": "rural", "share": 0.5}],
                  behaviours=[{"name": "littering", "rate": 0.1}],
                  sensors=[{"name": "court", "coverage": {"urban": 1.0, "rural": 0.0}}],
                  policy={"rules": [{"behaviour": "littering", "sensor": "court", "points": -5}]})
    D = Day(0)
    stages.behave(S, D)
    stages.observe(S, D)
    true = S.metrics["true_littering"][0]
    seen = S.metrics["observed_littering"][0]
    assert 800 < true[0] < 1200 and 800 < true[1] < 1200  # 10,000 x 0.1 each
    assert seen[0] == true[0] and seen[1] == 0  # no rural coverage
    assert S.misconduct.sum() == true.sum()


def test_stages_run_by_the_kernel_equal_the_stages_run_by_hand():
    sc = make(scenario={"population": 3000, "days": 20}, **LITTER).with_changes(
        {"behaviours[littering].rate": 0.01, "behaviours[volunteering].rate": 0.02})
    P = compile_params(sc)
    a = simulate_shard(P, ShardSpec(0, 0, 3000, 5, 1))
    S = new_state(P, ShardSpec(0, 0, 3000, 5, 1))
    attach_plugins(S)
    for t in range(P.days):
        D = Day(t)
        for stage in stages.DAY:
            stage(S, D)
    for k, v in a.metrics.items():
        np.testing.assert_array_equal(v, S.metrics[k], err_msg=k)


def test_grade_of_is_the_count_of_band_minimums_reached():
    """The lookup table (bands close together) and the search (far apart, or scores not whole numbers)
    give every score the grade a search of the cuts gives, whatever the score dtype and wherever the cuts
    lie (inside, beyond or across the dtype's range)."""
    from dataclasses import replace

    P = compile_params(make(scenario={"population": 100, "days": 2}, **LITTER))
    for cuts in ([600, 850, 960, 1030, 1050], [], [7], [-40000, 0, 40000], [-5, 1 << 20], [33000, 34000],
                 [-33000, -32768, 32767]):
        Q = replace(P, grade_cuts=np.array(cuts, dtype=np.int64))
        for dtype in (np.int16, np.int32, np.int64, np.uint8, np.float64):
            if np.dtype(dtype).kind == "f":
                scores = np.linspace(-50000, 50000, 2001)
            else:
                info = np.iinfo(dtype)
                c = np.array(cuts, dtype=np.int64)
                scores = np.unique(np.clip(np.r_[np.arange(-1100, 1100), c, c - 1, np.arange(-41000, 41000, 97)],
                                           max(info.min, -2**62), min(info.max, 2**62))).astype(dtype)
                scores = np.r_[scores, np.array([info.min, info.max], dtype=dtype)]
            want = np.searchsorted(Q.grade_cuts, scores, side="right").astype(np.int8)
            got = Q.grade_of(scores)
            assert got.dtype == np.int8 and np.array_equal(got, want), (cuts, dtype)


def test_the_last_days_stocks_recount_the_final_citizens(tmp_path):
    """Grades and restrictions are kept as running counts moved by each day's changes; on the last day they
    are what counting the final citizens gives, group by group (nosedive moves most of a shard every day;
    sesame restricts by grade; national-blacklist by listing)."""
    import duckdb

    from scorelab.api import load, simulate

    for preset, n, days in (("nosedive", 4000, 40), ("sesame", 3000, 30), ("national-blacklist", 3000, 60)):
        run = simulate(load(preset, population=n, days=days), seed=2, out=tmp_path / preset)
        cit = duckdb.sql(f"select * from '{run.path / 'citizens.parquet'}'").df()
        last = duckdb.sql(f"select * from '{run.path / 'metrics.parquet'}' where day = {days - 1}").df()
        restrictions = [c[len("restricted_"):] for c in cit.columns if c.startswith("restricted_")]
        for _, row in last[last.group != "all"].iterrows():
            mine = cit[cit.group == row.group]
            assert row.population == len(mine)
            for gname in run.params.grade_names:
                assert row[f"grade_{gname}"] == (mine.grade == gname).sum(), (preset, gname)
            assert np.isclose(row.restricted_share, mine.restricted.mean())
            for r in restrictions:
                assert np.isclose(row[f"restricted_{r}_share"], mine[f"restricted_{r}"].mean()), (preset, r)
