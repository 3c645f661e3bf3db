"""The event log's blocks: typed columns in emission order, the kept stride, values owned by the log."""

import numpy as np

from scorelab.engine.events import COLUMNS, DTYPES, KIND, EventLog


def test_blocks_become_typed_columns_in_emission_order_and_keep_their_values():
    log = EventLog(keep=2, offset=10, no_sensor=7)
    points = np.array([-5, -6, -7, -8], dtype=np.int64)
    log.emit("score", 3, np.array([0, 1, 2, 3]), rule=4, points=points, sensor=1, false=np.array([1, 0, 1, 0], bool))
    points[:] = 0  # the caller reuses its array: the log kept its own copy
    log.emit("restrict_on", 5, np.array([2, 4, 5]), target=0)
    log.extend(6, np.array([12, 16]), np.array([KIND["list_expire"]] * 2, np.int8), np.int16(-1), 0, np.int16(7),
               False, np.array([1, 1], np.int16), -1)
    out = log.arrays()
    assert list(out) == list(COLUMNS) and all(out[c].dtype == DTYPES[c] for c in COLUMNS)
    # global ids 10, 12, 14, 15, 16, ... : only the even ones are kept (keep = 2)
    assert out["citizen"].tolist() == [10, 12, 12, 14, 12, 16]
    assert out["day"].tolist() == [3, 3, 5, 5, 6, 6]
    assert out["points"].tolist() == [-5, -7, 0, 0, 0, 0]
    assert out["false"].tolist() == [True, True, False, False, False, False]
    assert out["sensor"].tolist() == [1, 1, 7, 7, 7, 7]
    assert out["kind"].tolist() == [KIND["score"]] * 2 + [KIND["restrict_on"]] * 2 + [KIND["list_expire"]] * 2
    assert out["target"].tolist() == [-1, -1, 0, 0, 1, 1] and len(log) == 6


def test_an_empty_log_has_typed_empty_columns():
    out = EventLog(keep=1, offset=0, no_sensor=0).arrays()
    assert all(len(out[c]) == 0 and out[c].dtype == DTYPES[c] for c in COLUMNS)
