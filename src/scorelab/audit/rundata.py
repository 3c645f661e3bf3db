"""Loading a run for the audit: its manifest, scenario, compiled params, tables and per-citizen history
(`RunData`, `open_run`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from ..config.loader import ConfigError
from ..rundir import read_table
from ..config.models import Scenario
from ..engine.params import Params, compile_params
from .history import History, build_history
from .replay import Replay, replay
BOOTSTRAP = 1000
DI_LOW, DI_HIGH = 0.8, 1.25  # the four-fifths rule, and its reciprocal for an adverse outcome
K_ANON = 5  # a shared record is "rare" when fewer than this many citizens share its quasi-identifiers




# ---------------------------------------------------------------- loading a run


@dataclass
class RunData:
    path: Path
    manifest: dict[str, Any]
    scenario: Scenario
    params: Params
    options: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return read_table(self.path / "metrics.parquet")

    @cached_property
    def citizens(self) -> pd.DataFrame:
        c = read_table(self.path / "citizens.parquet")
        return c.sort_values("citizen", kind="stable").reset_index(drop=True)

    @cached_property
    def events(self) -> pd.DataFrame:
        return read_table(self.path / "events.parquet")

    @cached_property
    def ledger(self) -> pd.DataFrame:
        """The score changes (events of kind ``score``), with the rule as ``behaviour``."""
        ev = self.events
        led = ev[ev["kind"].astype(str) == "score"].rename(columns={"rule": "behaviour"})
        return led[["day", "citizen", "behaviour", "points", "sensor", "false_attribution"]].reset_index(drop=True)

    @cached_property
    def start_scores(self) -> np.ndarray:
        c = self.citizens
        if "start_score" in c.columns:
            return c["start_score"].to_numpy().astype(np.int64)
        return np.full(len(c), self.params.start_score, dtype=np.int64)

    @cached_property
    def history(self) -> History:
        """Each kept citizen's exact history, read from the event log (audit/history.py)."""
        return build_history(self.params, self.events, self.citizens["citizen"].to_numpy(), self.start_scores)

    @property
    def groups(self) -> list[str]:
        return list(self.params.groups)

    @property
    def seed(self) -> int:
        return int(self.manifest.get("seed", 0))

    @cached_property
    def ledger_arrays(self) -> dict[str, np.ndarray]:
        led = self.ledger
        ids = self.citizens["citizen"].to_numpy()
        beh = led["behaviour"]
        names = list(beh.cat.categories)
        want = list(self.params.behaviours)
        # map the stored dictionary onto the params' behaviour order (clip rule = B)
        remap = np.array([want.index(n) if n in want else len(want) for n in names], dtype=np.int64)
        code = beh.cat.codes.to_numpy().astype(np.int64)
        sen = led["sensor"]
        real_sensor = np.array([c != "none" for c in sen.cat.categories], dtype=bool)
        scode = sen.cat.codes.to_numpy().astype(np.int64)
        is_cap = np.array([str(c).endswith(":cap") for c in names], dtype=bool)
        is_range = np.array([str(c) == "score_range" for c in names], dtype=bool)
        return {
            "cap_row": is_cap[code] if len(code) else np.zeros(0, dtype=bool),
            "range_row": is_range[code] if len(code) else np.zeros(0, dtype=bool),
            "pos": np.searchsorted(ids, led["citizen"].to_numpy()),
            "day": led["day"].to_numpy().astype(np.int64),
            "points": led["points"].to_numpy().astype(np.int64),
            "behaviour": remap[code] if len(code) else code,
            "false": led["false_attribution"].to_numpy(dtype=bool),
            "sensor": scode,  # dictionary code; "none" (score-range adjustments) is not a data source
            "real_sensor": real_sensor[scode] if len(scode) else np.zeros(0, dtype=bool),
            "n_sensors": len(real_sensor),
        }

    @cached_property
    def group_code(self) -> np.ndarray:
        return pd.Categorical(self.citizens["group"].astype(str), categories=self.groups).codes.astype(np.int64)

    @cached_property
    def replay(self) -> Replay:
        a = self.ledger_arrays
        return replay(self.params, len(self.citizens), a["pos"], a["day"], a["points"], a["behaviour"], self.start_scores)

    @cached_property
    def replay_without_false(self) -> Replay:
        """The same histories with every false attribution removed (as if each had been appealed).

        Rows whose points depend on the score at the time are recomputed from the new history: a rule's
        score cap (``<behaviour>:cap``; every observed event of a capped behaviour caps the score at the
        end of its day, whether or not the recorded history needed it) and the score range
        (``score_range``: clipped again where the recorded history was clipped)."""
        a = self.ledger_arrays
        P = self.params
        keep = ~a["false"] & ~a["cap_row"]
        pos, day, pts, beh = a["pos"][keep], a["day"][keep], a["points"][keep], a["behaviour"][keep]
        rng_row = a["range_row"][keep]
        M = P.plugin("caps")
        has_cap = np.append(M.has_cap, False) if M is not None else np.zeros(P.n_behaviours + 1, dtype=bool)
        if not has_cap.any() and not rng_row.any():
            return replay(P, len(self.citizens), pos, day, pts, beh, self.start_scores)
        capped = has_cap[beh]
        cap_val = np.full(len(pos) + int(capped.sum()), np.iinfo(np.int64).max, dtype=np.int64)
        if capped.any():
            cap_val[len(pos):] = np.append(M.cap, 0)[beh[capped]]
        # a cap row after each capped event, ordered after every row of its day
        pos = np.concatenate([pos, pos[capped]])
        day = np.concatenate([day, day[capped]])
        pts = np.concatenate([pts, np.zeros(int(capped.sum()), dtype=np.int64)])
        rng_row = np.concatenate([rng_row, np.zeros(int(capped.sum()), dtype=bool)])
        late = np.concatenate([np.zeros(len(beh), dtype=np.int64), np.ones(int(capped.sum()), dtype=np.int64)])
        beh = np.concatenate([beh, np.full(int(capped.sum()), P.n_behaviours, dtype=np.int64)])
        order = np.lexsort((late, day, pos))
        pos, day, pts, beh, rng_row, cap_val = pos[order], day[order], pts[order], beh[order], rng_row[order], cap_val[order]
        dep = (cap_val < np.iinfo(np.int64).max) | rng_row
        # the k-th score-dependent row of every citizen in round k: earlier rows are final by then
        seg0 = np.ones(len(pos), dtype=bool)
        seg0[1:] = pos[1:] != pos[:-1]
        rank = np.cumsum(dep) - np.maximum.accumulate(np.where(seg0, np.cumsum(dep) - dep, 0))
        pts = np.where(dep, 0, pts)
        lo = P.score_min if P.score_min is not None else np.iinfo(np.int64).min
        hi = P.score_max if P.score_max is not None else np.iinfo(np.int64).max
        for k in range(1, int(rank[dep].max(initial=0)) + 1):
            cs = np.cumsum(pts)
            head = np.maximum.accumulate(np.where(seg0, np.arange(len(pos)), 0))
            before = self.start_scores[pos] + cs - (cs - pts)[head] - pts  # the score just before each row
            at = dep & (rank == k)
            new = np.where(rng_row[at], np.clip(before[at], lo, hi), np.minimum(before[at], cap_val[at]))
            pts[at] = new - before[at]
        return replay(P, len(self.citizens), pos, day, pts, beh, self.start_scores)

    @property
    def kept_note(self) -> str:
        d = self.manifest.get("detail", {})
        return d.get("kept") or "no citizens"


def open_run(run_dir: str | Path) -> RunData:
    """Open a run directory for auditing; ConfigError if it is missing or incomplete."""
    from ..rundir import REQUIRED, check_run

    path = Path(run_dir)
    manifest = check_run(path, REQUIRED)  # the manifest's shape and every table, the damaged file named
    try:
        sc = Scenario.model_validate(manifest["scenario"])
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise ConfigError(str(path / "run.json"), f"scenario.{where}" if where else "scenario",
                          f"the stored scenario is not valid for this scorelab ({first.get('msg')}; "
                          f"{e.error_count()} problem(s)): was the run made by another version, or edited?") from None
    return RunData(path, manifest, sc, compile_params(sc))


def _require_detail(run: RunData, what: str) -> None:
    if len(run.citizens) == 0:
        raise ConfigError(str(run.path), None, f"{what} needs per-citizen detail, and this run kept none "
                          "(it was run with --ledger none); rerun with --ledger all or a sample size")


# ---------------------------------------------------------------- statistics
