"""The audit of a run: who was sanctioned, who wrongly, what speech was chilled, who gamed, how unequal,
how exposed.

Modelled on group → bias → fairness audits (Aequitas) and per-group metrics with intervals (Fairlearn's
MetricFrame), but over a system's whole history and against ground truth: each citizen's true misconduct
and each ledger row's false-attribution flag are known, so errors are measured, not estimated.

Sources of each figure:
* all citizens: metrics.parquet (per day and group) — restricted shares, penalties, events.
* the kept citizens (all, or a systematic sample): citizens.parquet and a replay of ledger.parquet
  (audit/replay.py) — per-citizen restriction days, grade histories, wrongful sanctions, k-anonymity.
* the counterfactual without the policy (audit/counterfactual.py) — chilling effect and gaming.

Intervals: 95% percentile bootstrap over the kept citizens, resampled within each group (stratified),
`BOOTSTRAP` resamples seeded with the run's seed. Because every statistic here is a mean of a discrete
per-citizen value (or a ratio of such means), a resample is drawn exactly as a multinomial over the
distinct values, which costs the same for 1,000 or 1,000,000 citizens.

`audit_run(run_dir)` returns the tables as DataFrames; `audit_summary(run_dir)` the headline scalars;
`write_audit(run_dir)` also stores them as audit.parquet (long form), audit.json and chilling.parquet.
"""

from __future__ import annotations

import json
import math
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
from .counterfactual import counterfactual_events
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


def _boot_means(values: np.ndarray, rng: np.random.Generator, b: int = BOOTSTRAP) -> np.ndarray:
    """[b] bootstrap means of ``values`` (resampled with replacement), drawn as multinomials over distinct values."""
    n = len(values)
    if n == 0:
        return np.full(b, np.nan)
    uniq, counts = np.unique(values, return_counts=True)
    draws = rng.multinomial(n, counts / n, size=b)
    return draws @ uniq.astype(np.float64) / n


def _boot_cells(cells: np.ndarray, rng: np.random.Generator, b: int = BOOTSTRAP) -> np.ndarray:
    """[b, C] bootstrap counts of C cells (a resample of the citizens counted in ``cells``)."""
    n = int(cells.sum())
    if n == 0:
        return np.zeros((b, len(cells)))
    return rng.multinomial(n, cells / n, size=b).astype(np.float64)


def _ci(draws: np.ndarray) -> tuple[float, float]:
    d = draws[np.isfinite(draws)]
    if len(d) == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi)


def _di(a, b):
    """Disparate impact a / b of restriction rates: +inf when only the reference group is never restricted
    (the largest disparity, not a missing value), 1 when neither group is."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(b > 0, a / np.where(b > 0, b, 1), np.where(a > 0, np.inf, np.where(a == 0, 1.0, np.nan)))
    return out


def _di_flag(v: float) -> bool:
    return bool(not np.isnan(v) and (v < DI_LOW or v > DI_HIGH))


def _ratio(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(b) > 0, np.asarray(a, dtype=np.float64) / np.where(np.asarray(b) > 0, b, 1), np.nan)


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal; 1: one has everything)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() <= 0:
        return 0.0 if n else math.nan
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum.sum() / cum[-1])) / n)


def _group_rows(run: RunData) -> list[tuple[str, np.ndarray]]:
    """(label, bool mask over kept citizens) for each group and `all`."""
    g = run.group_code
    return [(name, g == i) for i, name in enumerate(run.groups)] + [("all", np.ones(len(g), dtype=bool))]


def _last_day(run: RunData) -> pd.DataFrame:
    m = run.metrics
    return m[m["day"] == m["day"].max()].assign(group=lambda d: d["group"].astype(str)).set_index("group")


def _metric_sum(run: RunData, col: str) -> pd.Series:
    m = run.metrics
    if col not in m.columns:
        return pd.Series(0.0, index=run.groups + ["all"])
    return m.assign(group=m["group"].astype(str)).groupby("group")[col].sum()


# ---------------------------------------------------------------- tables


def sanctions_table(run: RunData) -> pd.DataFrame:
    """Restriction by group, disparate impact against the most favoured group, errors against ground truth."""
    _require_detail(run, "the sanctions audit")
    rng = np.random.default_rng([run.seed, 1])
    rp = run.history
    ever = rp.restricted_days > 0
    guilty = run.citizens["true_misconduct"].to_numpy() > 0
    a = run.ledger_arrays
    penalised = np.zeros(len(ever), dtype=bool)
    penalised[a["pos"][a["points"] < 0]] = True
    m = run.metrics.assign(group=lambda d: d["group"].astype(str))
    mean_share = m.groupby("group")["restricted_share"].mean()
    last = _last_day(run)

    rows, draws = [], {}
    for name, mask in _group_rows(run):
        # cells: (restricted & innocent, free & innocent, restricted & guilty, free & guilty)
        cells = np.array([(ever & ~guilty & mask).sum(), (~ever & ~guilty & mask).sum(),
                          (ever & guilty & mask).sum(), (~ever & guilty & mask).sum()], dtype=np.float64)
        bc = _boot_cells(cells, rng)
        n = cells.sum()
        rate = (cells[0] + cells[2]) / n if n else math.nan
        rate_d = (bc[:, 0] + bc[:, 2]) / max(n, 1)
        fpr_d = _ratio(bc[:, 0], bc[:, 0] + bc[:, 1])
        fnr_d = _ratio(bc[:, 3], bc[:, 2] + bc[:, 3])
        fdr_d = _ratio(bc[:, 0], bc[:, 0] + bc[:, 2])
        draws[name] = rate_d
        days = rp.restricted_days[mask]
        days_d = _boot_means(days, rng)
        pcells = np.array([(penalised & ~guilty & mask).sum(), (~penalised & ~guilty & mask).sum(),
                           (penalised & guilty & mask).sum(), (~penalised & guilty & mask).sum()], dtype=np.float64)
        rows.append({
            "group": name,
            "citizens": int(run.manifest["population"] if name == "all" else run.manifest["group_sizes"].get(name, 0)),
            "kept": int(n),
            "restricted_final_share": float(last.loc[name, "restricted_share"]),
            "restricted_mean_share": float(mean_share.get(name, math.nan)),
            "ever_restricted_share": rate, "ever_restricted_ci_low": _ci(rate_d)[0], "ever_restricted_ci_high": _ci(rate_d)[1],
            "restricted_days_mean": float(days.mean()) if len(days) else math.nan,
            "restricted_days_ci_low": _ci(days_d)[0], "restricted_days_ci_high": _ci(days_d)[1],
            "misconduct_share": float((guilty & mask).sum() / n) if n else math.nan,
            "false_positive_rate": float(_ratio(cells[0], cells[0] + cells[1])),
            "false_positive_ci_low": _ci(fpr_d)[0], "false_positive_ci_high": _ci(fpr_d)[1],
            "false_negative_rate": float(_ratio(cells[3], cells[2] + cells[3])),
            "false_negative_ci_low": _ci(fnr_d)[0], "false_negative_ci_high": _ci(fnr_d)[1],
            "innocent_among_restricted": float(_ratio(cells[0], cells[0] + cells[2])),
            "innocent_among_restricted_ci_low": _ci(fdr_d)[0], "innocent_among_restricted_ci_high": _ci(fdr_d)[1],
            "penalty_false_positive_rate": float(_ratio(pcells[0], pcells[0] + pcells[1])),
            "penalty_false_negative_rate": float(_ratio(pcells[3], pcells[2] + pcells[3])),
        })
    df = pd.DataFrame(rows).set_index("group")
    groups = run.groups
    rates = df.loc[groups, "ever_restricted_share"]
    ref = rates.idxmin() if rates.notna().any() else groups[0]
    df["reference_group"] = ref
    di = _di(df["ever_restricted_share"].to_numpy(), df.loc[ref, "ever_restricted_share"])
    df["disparate_impact"] = di
    for name in df.index:
        d = _di(draws[name], draws[ref])
        d = d[~np.isnan(d)]  # +inf draws (a resample without restricted reference citizens) are kept
        lo, hi = (1.0, 1.0) if name == ref else ((math.nan, math.nan) if len(d) == 0 else
                                                  tuple(float(x) for x in np.quantile(d, [0.025, 0.975], method="inverted_cdf")))
        df.loc[name, "disparate_impact_ci_low"] = lo
        df.loc[name, "disparate_impact_ci_high"] = hi
    tshare = df.loc[groups, "restricted_mean_share"]
    tref = tshare.idxmin()
    df["disparate_impact_time"] = _di(df["restricted_mean_share"].to_numpy(), df.loc[tref, "restricted_mean_share"])
    df["disparate_impact_flag"] = [
        (name != "all") and _di_flag(v) for name, v in zip(df.index, df["disparate_impact"])
    ]
    df.loc["all", ["disparate_impact", "disparate_impact_ci_low", "disparate_impact_ci_high", "disparate_impact_time"]] = np.nan
    return df


def sanctions_aggregate(run: RunData) -> pd.DataFrame:
    """The sanctions table from metrics.parquet alone (runs kept without per-citizen detail).

    Without citizens there is no ever-restricted share and no ground truth per citizen: disparate impact
    is then the ratio of the groups' mean restricted shares over the run (the share of citizen-days).
    """
    m = run.metrics.assign(group=lambda d: d["group"].astype(str))
    mean_share = m.groupby("group")["restricted_share"].mean()
    last = _last_day(run)
    groups = run.groups
    ref = mean_share[groups].idxmin()
    rows = []
    for name in groups + ["all"]:
        di = float(_di(mean_share[name], mean_share[ref])) if name != "all" else np.nan
        rows.append({"group": name,
                     "citizens": int(run.manifest["population"] if name == "all" else run.manifest["group_sizes"].get(name, 0)),
                     "kept": 0, "restricted_final_share": float(last.loc[name, "restricted_share"]),
                     "restricted_mean_share": float(mean_share[name]), "reference_group": ref,
                     "disparate_impact": float(di), "disparate_impact_time": float(di),
                     "disparate_impact_flag": bool(name != "all" and _di_flag(di))})
    return pd.DataFrame(rows).set_index("group")


def wrongful_aggregate(run: RunData) -> pd.DataFrame:
    pen_all = _metric_sum(run, "wrongful_penalties")
    return pd.DataFrame([{"group": g, "kept": 0, "false_attributions_all_citizens": int(pen_all.get(g, 0))}
                         for g in run.groups + ["all"]]).set_index("group")


def wrongful_table(run: RunData) -> pd.DataFrame:
    """Citizens whose score, grade, listing or restrictions were changed by false attributions alone."""
    _require_detail(run, "the wrongful-sanctions audit")
    rng = np.random.default_rng([run.seed, 2])
    a = run.ledger_arrays
    n = len(run.citizens)
    fmask = a["false"]
    n_false = np.bincount(a["pos"][fmask], minlength=n)
    false_pts = np.bincount(a["pos"][fmask], weights=a["points"][fmask], minlength=n).astype(np.int64)
    rp, cf = run.replay, run.replay_without_false
    grade_changed = (rp.grade_days != cf.grade_days).any(axis=1)
    listing_changed = (rp.listed_days != cf.listed_days).any(axis=1) if rp.listed_days.shape[1] else np.zeros(n, bool)
    extra_days = rp.restricted_days - cf.restricted_days
    wrongly = extra_days > 0
    pen_all = _metric_sum(run, "wrongful_penalties")
    rows = []
    for name, mask in _group_rows(run):
        k = mask.sum()
        d = _boot_means(wrongly[mask].astype(np.int8), rng)
        dd = _boot_means(extra_days[mask], rng)
        rows.append({
            "group": name, "kept": int(k),
            "false_attributions_all_citizens": int(pen_all.get(name, 0)),
            "citizens_falsely_attributed": int((n_false[mask] > 0).sum()),
            "falsely_attributed_share": float((n_false[mask] > 0).mean()) if k else math.nan,
            "false_points": int(false_pts[mask].sum()),
            "final_score_changed": int((false_pts[mask] != 0).sum()),
            "grade_changed": int(grade_changed[mask].sum()),
            "listing_changed": int(listing_changed[mask].sum()),
            "wrongly_restricted": int(wrongly[mask].sum()),
            "wrongly_restricted_share": float(wrongly[mask].mean()) if k else math.nan,
            "wrongly_restricted_ci_low": _ci(d)[0], "wrongly_restricted_ci_high": _ci(d)[1],
            "wrongful_restriction_days": int(extra_days[mask].sum()),
            "wrongful_restriction_days_per_citizen": float(extra_days[mask].mean()) if k else math.nan,
            "wrongful_restriction_days_ci_low": _ci(dd)[0], "wrongful_restriction_days_ci_high": _ci(dd)[1],
            "wrongful_restriction_days_per_victim": float(extra_days[mask & wrongly].mean()) if (mask & wrongly).any() else 0.0,
        })
    return pd.DataFrame(rows).set_index("group")


def _speech_behaviours(run: RunData) -> list[str]:
    return [b for b, s in zip(run.params.behaviours, run.params.speech) if s]


def _prices(run: RunData) -> dict[str, float]:
    """Money paid per observed event: governance ``prices``, else a rule's ``money`` (e.g. Rongcheng's
    500-yuan donation), which the engine also counts in metrics' ``money_collected``."""
    out = {r.behaviour: float(r.money) for r in run.scenario.policy.rules if getattr(r, "money", 0.0)}
    out.update({k: float(v) for k, v in run.scenario.policy.governance.prices.items()})
    return out


def _bought_behaviours(run: RunData) -> list[str]:
    """Behaviours whose points are bought, not earned: priced (governance price or a rule's money), or
    the target of gaming."""
    sc = run.scenario
    names = set(_prices(run)) | {g.behaviour for g in sc.response.gaming}
    return [b for b in run.params.behaviours if b in names and run.params.points[run.params.behaviours.index(b)] > 0]


def counterfactual(run: RunData) -> dict[str, Any]:
    """Counterfactual true events (cached on the RunData) for speech and bought behaviours."""
    if "_cf" not in run.options:
        wanted = list(dict.fromkeys(_speech_behaviours(run) + _bought_behaviours(run)))
        mode = run.options.get("counterfactual", "fast")
        pop = run.options.get("counterfactual_population")
        if pop is not None and pop > run.manifest["population"]:  # a smaller re-simulation, never a larger one
            raise ConfigError("--counterfactual-population", None,
                              f"{pop:,} is above the run's population ({run.manifest['population']:,}); "
                              "give a number from 1 to the run's population")
        run.options["_cf"] = counterfactual_events(run.scenario, run.seed, wanted, mode=mode, population=pop)
    return run.options["_cf"]


def chilling_curve(run: RunData) -> pd.DataFrame:
    """Per day and group: true speech events in the run and in the counterfactual without the policy."""
    speech = _speech_behaviours(run)
    cf = counterfactual(run)
    m = run.metrics.assign(group=lambda d: d["group"].astype(str))
    cur = m[["day", "group", "criticism", "population"]].rename(columns={"criticism": "run"})
    t = cf["table"]
    t = t[t["behaviour"].isin(speech)].groupby(["day", "group"], as_index=False)["events"].sum()
    t = t.rename(columns={"events": "counterfactual"})
    out = cur.merge(t, on=["day", "group"], how="left").fillna({"counterfactual": 0})
    if not cf["common_random_numbers"]:  # a smaller counterfactual population: scale its counts to the run's
        sizes = dict(cf["group_sizes"] or {})
        sizes["all"] = sum(sizes.values())
        pop = out.groupby("group")["population"].first()
        scale = {g: pop[g] / sizes[g] if sizes.get(g) else 0.0 for g in pop.index}
        out["counterfactual"] = out["counterfactual"] * out["group"].map(scale)
    out["counterfactual"] = out["counterfactual"].astype(np.float64)
    return out[["day", "group", "run", "counterfactual", "population"]]


def chilling_table(run: RunData) -> pd.DataFrame:
    curve = chilling_curve(run)
    cf = counterfactual(run)
    tot = curve.groupby("group")[["run", "counterfactual"]].sum()
    pop = curve.groupby("group")["population"].first()
    days = run.params.days
    rows = []
    for name in run.groups + ["all"]:
        r, c = float(tot.loc[name, "run"]), float(tot.loc[name, "counterfactual"])
        cd = pop[name] * days
        rows.append({"group": name, "speech_run": r, "speech_counterfactual": c, "speech_fall": c - r,
                     "speech_fall_share": (c - r) / c if c > 0 else 0.0,
                     "per_1000_citizen_days_run": 1000 * r / cd if cd else math.nan,
                     "per_1000_citizen_days_counterfactual": 1000 * c / cd if cd else math.nan,
                     "method": cf["method"]})
    if not _speech_behaviours(run):
        for row in rows:
            row["method"] = "no behaviour is marked speech = true in this scenario: nothing to chill"
    return pd.DataFrame(rows).set_index("group")


def gaming_table(run: RunData) -> pd.DataFrame:
    """Points bought (priced or gamed behaviours) versus points earned by conduct, and money collected."""
    P = run.params
    bought = _bought_behaviours(run)
    prices = _prices(run)
    obs = {b: _metric_sum(run, f"observed_{b}") for b in P.behaviours}
    true = {b: _metric_sum(run, f"true_{b}") for b in P.behaviours}
    wrong_rewards = _metric_sum(run, "wrongful_rewards")
    awarded = _metric_sum(run, "points_awarded")
    cf = counterfactual(run)["table"] if bought else None
    rows = []
    for name in run.groups + ["all"]:
        pts_bought = sum(float(obs[b].get(name, 0)) * int(P.points[P.behaviours.index(b)]) for b in bought)
        money = sum(float(obs[b].get(name, 0)) * float(prices.get(b, 0.0)) for b in bought)
        induced = 0.0
        for b in bought:
            c = float(cf[(cf["behaviour"] == b) & (cf["group"] == name)]["events"].sum())
            induced += float(true[b].get(name, 0)) - c
        total_pos = float(awarded.get(name, 0))
        rows.append({"group": name, "bought_behaviours": ", ".join(bought) or "none",
                     "points_bought": pts_bought, "points_earned_by_conduct": total_pos - pts_bought,
                     "bought_share_of_points_awarded": pts_bought / total_pos if total_pos else 0.0,
                     "events_induced_by_gaming": induced, "money_collected": money,
                     "price_declared": bool(bought) and all(b in prices for b in bought),
                     "wrongful_rewards": float(wrong_rewards.get(name, 0))})
    return pd.DataFrame(rows).set_index("group")


def _bottom_grades(P: Params) -> list[int]:
    """Grades that some restriction names (the sanctioned bands); else the lowest two."""
    K = len(P.grade_names)
    if not K:
        return []
    named = [k for k in range(K) if P.restriction_grades[:, k].any()] if len(P.restriction_names) else []
    return named or list(range(min(2, K)))


def inequality_table(run: RunData) -> pd.DataFrame:
    _require_detail(run, "the inequality audit")
    P = run.params
    rp = run.history
    score = run.citizens["score"].to_numpy().astype(np.float64)
    shift = min(0.0, float(P.score_min) if P.score_min is not None else float(score.min(initial=0)))
    bottom = _bottom_grades(P)
    bdays = rp.grade_days[:, bottom].sum(axis=1) if bottom else np.zeros(len(score))
    ever_bottom = bdays > 0
    end_bottom = np.isin(rp.final_grade, bottom)
    graph = _spillover(run)
    rows = []
    for name, mask in _group_rows(run):
        s = score[mask]
        rows.append({"group": name, "gini": gini(s - shift) if len(s) else math.nan,
                     "score_mean": float(s.mean()) if len(s) else math.nan,
                     "score_p10": float(np.percentile(s, 10)) if len(s) else math.nan,
                     "score_p50": float(np.percentile(s, 50)) if len(s) else math.nan,
                     "score_p90": float(np.percentile(s, 90)) if len(s) else math.nan,
                     "bottom_grades": ", ".join(P.grade_names[k] for k in bottom),
                     "bottom_share_final": float(end_bottom[mask].mean()) if mask.any() else math.nan,
                     "ever_bottom_share": float(ever_bottom[mask].mean()) if mask.any() else math.nan,
                     "stuck_in_bottom_share": float(end_bottom[mask & ever_bottom].mean()) if (mask & ever_bottom).any() else 0.0,
                     "bottom_days_mean": float(bdays[mask].mean()) if mask.any() else math.nan,
                     "grade_changes_per_citizen": float(rp.grade_changes[mask].mean()) if mask.any() else math.nan,
                     "contacts_of_restricted_share": graph.get(name, math.nan)})
    return pd.DataFrame(rows).set_index("group")


def _spillover(run: RunData) -> dict[str, float]:
    """Share of unrestricted kept citizens with a restricted contact, from graph.parquet (citizen, contact).

    Runs without a social graph have no spill-over channel: the values are NaN and the notes say so.
    """
    path = run.path / "graph.parquet"
    if not path.is_file():
        return _household_spillover(run)
    edges = pd.read_parquet(path)
    ids = run.citizens["citizen"].to_numpy()
    restricted = run.history.restricted_days > 0
    src = np.searchsorted(ids, edges["citizen"].to_numpy())
    dst = np.searchsorted(ids, edges["contact"].to_numpy())
    ok = (src < len(ids)) & (dst < len(ids))
    ok &= (ids[np.minimum(src, len(ids) - 1)] == edges["citizen"].to_numpy()) & (ids[np.minimum(dst, len(ids) - 1)] == edges["contact"].to_numpy())
    exposed = np.zeros(len(ids), dtype=bool)
    exposed[src[ok][restricted[dst[ok]]]] = True
    out = {}
    for name, mask in _group_rows(run):
        free = mask & ~restricted
        out[name] = float(exposed[free].mean()) if free.any() else math.nan
    return out


def _household_spillover(run: RunData) -> dict[str, float]:
    """Share of citizens free at the end who live with a member restricted at the end (the engine's final
    states in citizens.parquet, households from its `household` column). Needs every citizen kept: a
    sample splits households. Empty without households."""
    c = run.citizens
    if "household" not in c.columns or len(c) != int(run.manifest["population"]) or len(c) == 0:
        return {}
    hh = pd.factorize(c["household"].to_numpy())[0]
    restricted = c["restricted"].to_numpy(dtype=bool)
    n_restricted = np.bincount(hh, weights=restricted, minlength=int(hh.max()) + 1)
    exposed = (n_restricted[hh] - restricted) > 0
    out = {}
    for name, mask in _group_rows(run):
        free = mask & ~restricted
        out[name] = float(exposed[free].mean()) if free.any() else math.nan
    return out


def _spillover_note(run: RunData) -> str:
    if (run.path / "graph.parquet").is_file():
        return "share of unrestricted citizens with a restricted contact, from graph.parquet"
    c = run.citizens
    if "household" in c.columns:
        if len(c) != int(run.manifest["population"]):
            return ("households are known but only a sample of citizens was kept, which splits households: "
                    "not measured (rerun with --ledger all)")
        reached = [col for col in run.metrics.columns if col.startswith("reached_")]
        m = run.metrics
        last = m[(m["day"] == m["day"].max()) & (m["group"].astype(str) == "all")]
        extra = "".join(f"; the engine counts {int(last[col].iloc[0]):,} household members reached by "
                        f"{col[len('reached_'):]} on the last day" for col in reached)
        return ("through households: share of citizens free at the end who live with a citizen restricted at the "
                "end (the engine's final states)" + extra + ". Contact networks are not stored, so spill-over "
                "through contacts is not measured")
    return "this run has no households or social graph, so no spill-over channel exists: not measured"


def transitions_table(run: RunData, kind: str = "start_end") -> pd.DataFrame:
    """Grade-to-grade matrix: `start_end` (grade at the start vs at the end, kept citizens) or
    `changes` (every grade change during the run). Rows: from; columns: to; highest grade first."""
    _require_detail(run, "the grade-transition audit")
    P = run.params
    names = list(P.grade_names)[::-1]
    K = len(P.grade_names)
    if K == 0:
        return pd.DataFrame(index=pd.Index([], name="from"))
    if kind == "changes":
        mat = run.history.transitions
    else:
        mat = np.zeros((K, K), dtype=np.int64)
        np.add.at(mat, (run.history.start_grade, run.history.final_grade), 1)
    mat = mat[::-1, ::-1]
    df = pd.DataFrame(mat, index=pd.Index(names, name="from"), columns=names)
    return df


def privacy_table(run: RunData) -> pd.DataFrame:
    """Data fused per citizen, records held, recipients, retention, and k-anonymity of what is shared."""
    _require_detail(run, "the privacy audit")
    gov = run.scenario.policy.governance
    a = run.ledger_arrays
    n = len(run.citizens)
    real = a["real_sensor"]
    seen = np.zeros((n, max(1, a["n_sensors"])), dtype=bool)
    seen[a["pos"][real], a["sensor"][real]] = True
    sources = seen.sum(axis=1)
    records = np.bincount(a["pos"], minlength=n)
    rows = [
        ("sensors", len(run.params.sensors), "data sources the policy reads: " + ", ".join(run.params.sensors)),
        ("sources_per_citizen_mean", float(sources.mean()) if n else math.nan, "distinct sensors with a record on the citizen"),
        ("sources_per_citizen_max", int(sources.max(initial=0)), ""),
        ("fused_share", float((sources >= 2).mean()) if n else math.nan, "share of citizens with records from 2 or more sources"),
        ("records_per_citizen_mean", float(records.mean()) if n else math.nan, "ledger rows held per citizen"),
        ("records_per_citizen_max", int(records.max(initial=0)), ""),
        ("records_held", int(records.sum()), f"ledger rows for {run.kept_note}"),
        ("retention_days", math.nan if gov.retention_days is None else gov.retention_days,
         "no retention limit declared: records are kept indefinitely" if gov.retention_days is None else "declared retention"),
        ("recipients", len(gov.recipients), ", ".join(f"{r.name} ({r.kind})" for r in gov.recipients) or "none declared"),
    ]
    shared = list(dict.fromkeys(f for r in gov.recipients for f in r.fields))
    for label, fields in [("all_recipients", shared)] + [(r.name, list(r.fields)) for r in gov.recipients]:
        res = k_anonymity(run.citizens, fields)
        if not fields:
            what = "no recipient is declared, so nothing is measured as shared (a published list the policy does not declare is not counted)"
        elif not res["fields"]:
            what = f"not measurable: the shared fields ({', '.join(res['missing'])}) are not in this run's tables"
        else:
            what = f"share of citizens unique on {', '.join(res['fields'])}" + (
                f" (not in this run's tables: {', '.join(res['missing'])})" if res["missing"] else "")
        rows.append((f"unique_share[{label}]", res["unique_share"], what))
        rows.append((f"below_k{K_ANON}_share[{label}]", res["below_k_share"], f"share in a class of fewer than {K_ANON} citizens"))
        rows.append((f"min_k[{label}]", res["min_k"], "size of the smallest class"))
    return pd.DataFrame(rows, columns=["metric", "value", "note"]).set_index("metric")


def k_anonymity(citizens: pd.DataFrame, fields: list[str]) -> dict[str, Any]:
    """Sizes of the classes of citizens that share the same values of ``fields`` (quasi-identifiers)."""
    have = [f for f in fields if f in citizens.columns]
    missing = [f for f in fields if f not in citizens.columns]
    n = len(citizens)
    if not have or n == 0:  # nothing shared that the run's tables hold: not measurable, not "safe"
        return {"fields": have, "missing": missing, "unique_share": math.nan, "below_k_share": math.nan,
                "min_k": math.nan, "classes": 0}
    codes = [pd.factorize(citizens[f])[0].astype(np.int64) for f in have]
    key = codes[0]
    for c in codes[1:]:
        key = key * (int(c.max()) + 1) + c
        key = pd.factorize(key)[0].astype(np.int64)
    size = np.bincount(key)
    k = size[key]
    return {"fields": have, "missing": missing, "unique_share": float((k == 1).mean()),
            "below_k_share": float((k < K_ANON).mean()), "min_k": int(k.min()), "classes": int(len(size))}


# ---------------------------------------------------------------- the whole audit


def _open(run_dir: str | Path | RunData, **options: Any) -> RunData:
    run = run_dir if isinstance(run_dir, RunData) else open_run(run_dir)
    run.options.update({k: v for k, v in options.items() if v is not None})
    return run


def audit_run(run_dir: str | Path | RunData, **options: Any) -> dict[str, pd.DataFrame]:
    """Every audit table of a run. Options: counterfactual="fast"|"full", counterfactual_population=int."""
    run = _open(run_dir, **options)
    if len(run.citizens) == 0:  # aggregate metrics only: what needs citizens is left out, and notes say so
        return {"sanctions": sanctions_aggregate(run), "wrongful": wrongful_aggregate(run),
                "chilling": chilling_table(run), "chilling_curve": chilling_curve(run), "gaming": gaming_table(run)}
    return {
        "sanctions": sanctions_table(run),
        "wrongful": wrongful_table(run),
        "chilling": chilling_table(run),
        "chilling_curve": chilling_curve(run),
        "gaming": gaming_table(run),
        "inequality": inequality_table(run),
        "transitions": transitions_table(run, "start_end"),
        "grade_changes": transitions_table(run, "changes"),
        "privacy": privacy_table(run),
    }


SUMMARY_COLUMNS = {
    "sanctions": ["restricted_final_share", "restricted_mean_share", "ever_restricted_share", "disparate_impact",
                  "disparate_impact_flag",
                  "restricted_days_mean", "false_positive_rate", "false_negative_rate", "innocent_among_restricted"],
    "wrongful": ["falsely_attributed_share", "wrongly_restricted", "wrongly_restricted_share",
                 "wrongful_restriction_days", "grade_changed", "listing_changed"],
    "chilling": ["speech_run", "speech_counterfactual", "speech_fall", "speech_fall_share"],
    "gaming": ["points_bought", "points_earned_by_conduct", "bought_share_of_points_awarded", "events_induced_by_gaming",
               "money_collected"],
    "inequality": ["gini", "bottom_share_final", "ever_bottom_share", "stuck_in_bottom_share", "grade_changes_per_citizen",
                   "contacts_of_restricted_share"],
}
RENAME = {"wrongly_restricted_share": "wrongful_sanctioned_share", "wrongly_restricted": "wrongful_sanctioned",
          "restricted_final_share": "restricted_share"}


def summary_from_tables(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    out: dict[str, float] = {}
    for table, cols in SUMMARY_COLUMNS.items():
        df = tables.get(table)
        if df is None:
            continue
        for col in cols:
            if col not in df.columns:
                continue
            key = RENAME.get(col, col)
            for group, v in df[col].items():
                if isinstance(v, (bool, np.bool_)):
                    v = float(v)
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(v):
                    out[f"{key}[{group}]"] = v
    if "inequality" not in tables:
        return out
    priv = tables["privacy"]["value"]
    for metric in ("sources_per_citizen_mean", "fused_share", "records_per_citizen_mean", "unique_share[all_recipients]",
                   f"below_k{K_ANON}_share[all_recipients]"):
        if metric in priv.index:
            out[metric.replace("[all_recipients]", "") + "[all]"] = float(priv[metric])
    return out


def audit_summary(run_dir: str | Path | RunData, **options: Any) -> dict[str, float]:
    """Flat headline scalars, e.g. "restricted_share[rural]", "disparate_impact[rural]", "gini[all]"."""
    return summary_from_tables(audit_run(run_dir, **options))


def _long(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All tables in one long frame: table, group, metric, value, ci_low, ci_high, text."""
    rows = []
    for name, df in tables.items():
        if name == "chilling_curve":
            continue
        if name in ("transitions", "grade_changes"):
            for frm, row in df.iterrows():
                for to, v in row.items():
                    rows.append((name, str(frm), f"to_{to}", float(v), math.nan, math.nan, ""))
            continue
        if name == "privacy":
            for metric, row in df.iterrows():
                rows.append((name, "all", metric, float(row["value"]), math.nan, math.nan, str(row["note"])))
            continue
        for group, row in df.iterrows():
            for col, v in row.items():
                if col.endswith(("_ci_low", "_ci_high")):
                    continue
                lo = row.get(f"{_ci_base(col)}_ci_low", math.nan)
                hi = row.get(f"{_ci_base(col)}_ci_high", math.nan)
                if isinstance(v, str):
                    rows.append((name, str(group), col, math.nan, math.nan, math.nan, v))
                else:
                    rows.append((name, str(group), col, float(v), float(lo), float(hi), ""))
    return pd.DataFrame(rows, columns=["table", "group", "metric", "value", "ci_low", "ci_high", "text"])


def _ci_base(col: str) -> str:
    return {"ever_restricted_share": "ever_restricted", "restricted_days_mean": "restricted_days",
            "false_positive_rate": "false_positive", "false_negative_rate": "false_negative",
            "wrongly_restricted_share": "wrongly_restricted",
            "wrongful_restriction_days_per_citizen": "wrongful_restriction_days"}.get(col, col)


def event_log_check(run: RunData) -> dict[str, Any]:
    """The per-citizen histories (read from the event log) against the engine's own totals.

    With every citizen kept, the citizens' restricted, listed and household-reached days summed over
    citizens must equal metrics.parquet's daily counts summed over days, and each final state must equal
    the citizens table's; both numbers are reported, so a reader can see they agree.
    """
    out: dict[str, Any] = {"checked": False}
    if len(run.citizens) == 0:
        return out
    h = run.history
    c = run.citizens
    out["final_score_agrees"] = float((h.final_score == c["score"].to_numpy()).mean())
    out["final_restricted_agrees"] = float((h.final_restricted == c["restricted"].to_numpy(dtype=bool)).mean())
    pairs = []
    if len(c) == int(run.manifest["population"]):
        m = run.metrics
        a = m[m["group"].astype(str) == "all"]
        out["checked"] = True
        out["restricted_days_engine"] = int(round(float((a["restricted_share"] * a["population"]).sum())))
        out["restricted_days_events"] = int(h.restricted_days.sum())
        pairs.append(("restricted_days_engine", "restricted_days_events"))
        for k, name in enumerate(run.params.bl_names):
            if f"listed_{name}" in a.columns:
                out[f"listed_days_engine[{name}]"] = int(a[f"listed_{name}"].sum())
                out[f"listed_days_events[{name}]"] = int(h.listed_days[:, k].sum())
                pairs.append((f"listed_days_engine[{name}]", f"listed_days_events[{name}]"))
        for r, name in enumerate(run.params.restriction_names):
            if f"reached_{name}" in a.columns:
                out[f"reached_days_engine[{name}]"] = int(a[f"reached_{name}"].sum())
                out[f"reached_days_events[{name}]"] = int(h.reach_days[:, r].sum())
                pairs.append((f"reached_days_engine[{name}]", f"reached_days_events[{name}]"))
        for decl in run.params.plugin_metrics:  # a plugin's declared stock and its enter/leave events
            if decl.kind == "stock" and decl.target in h.plugin_days and decl.name in a.columns:
                out[f"{decl.name}_days_engine"] = int(a[decl.name].sum())
                out[f"{decl.name}_days_events"] = int(h.plugin_days[decl.target].sum())
                pairs.append((f"{decl.name}_days_engine", f"{decl.name}_days_events"))
    out["exact"] = bool(out["final_score_agrees"] == 1.0 and out["final_restricted_agrees"] == 1.0
                        and all(out[x] == out[y] for x, y in pairs))
    return out


def _fidelity_note(f: dict[str, Any]) -> str:
    if f.get("checked"):
        head = (f"read from the event log; restricted citizen-days: events {f['restricted_days_events']:,}, "
                f"engine {f['restricted_days_engine']:,}")
    else:
        head = "read from the event log of the kept citizens (a sample: the engine's totals cover everyone)"
    if not f.get("exact") and "final_restricted_agrees" in f:
        head += (f". MISMATCH: final states agree for {f['final_restricted_agrees']:.2%} of kept citizens; "
                 "this is a bug, please report it")
    return head


def _truth_note(run: RunData) -> str:
    P = run.params
    bad = [b for b, m in zip(P.behaviours, P.misconduct) if m]
    text = ("true misconduct = at least one true event (observed or not) of a behaviour the scenario declares "
            f"misconduct ({', '.join(bad) or 'none'}); points play no part; restricted = restricted on at least one day")
    sp = [b for b, s, m in zip(P.behaviours, P.speech, P.misconduct) if s and m]
    if sp:
        text += (f". Caution: this scenario declares speech ({', '.join(sp)}) misconduct, so a citizen whose only "
                 "'misconduct' was speaking counts as guilty here")
    return text


def notes(run: RunData, tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    cf = counterfactual(run)
    kept = (f"per-citizen figures use {run.kept_note}" if len(run.citizens) else
            "this run kept no per-citizen detail (--ledger none): ever-restricted shares, errors against ground truth, "
            "wrongful sanctions, inequality, transitions and privacy need a run with --ledger all or a sample size; "
            "disparate impact here compares the groups' mean restricted shares")
    out = {
        "population": f"{run.manifest['population']:,} citizens, {run.params.days} days, seed {run.seed}",
        "kept": kept,
        "intervals": (f"95% percentile bootstrap over the kept citizens, stratified by group, {BOOTSTRAP} resamples, "
                      f"seeded with the run's seed ({run.seed})"),
        "ground_truth": _truth_note(run),
        "wrongful": ("wrongful effects compare each citizen's replayed history with the same history without its false "
                     "attributions, holding the citizen's other recorded events fixed (first order: it ignores that a "
                     "false penalty also deters later behaviour)"),
        "counterfactual": cf["method"],
        "spillover": _spillover_note(run) if len(run.citizens) else "needs per-citizen detail",
        "disparate_impact": (f"{'ever-restricted' if len(run.citizens) else 'mean restricted'} share of each group over that of the least restricted group "
                             f"({tables['sanctions']['reference_group'].iloc[0]}); flagged outside {DI_LOW}-{DI_HIGH}"),
    }
    if len(run.citizens):
        out["history"] = _fidelity_note(event_log_check(run))
    return out


def write_audit(run_dir: str | Path | RunData, **options: Any) -> dict[str, Any]:
    """Compute the audit and store audit.parquet, audit.json and chilling.parquet in the run directory."""
    run = _open(run_dir, **options)
    tables = audit_run(run)
    summary = summary_from_tables(tables)
    note = notes(run, tables)
    from ..store import write_parquet
    import pyarrow as pa

    long = _long(tables)
    _atomic(run.path / "audit.parquet", lambda p: write_parquet(pa.Table.from_pandas(long, preserve_index=False), p))
    curve = tables["chilling_curve"]
    _atomic(run.path / "chilling.parquet", lambda p: write_parquet(pa.Table.from_pandas(curve, preserve_index=False), p))
    doc = {"summary": _clean(summary), "notes": note, "event_log_check": _clean(event_log_check(run)),
           "tables": {k: _records(v) for k, v in tables.items() if k != "chilling_curve"}}
    _atomic(run.path / "audit.json", lambda p: p.write_text(json.dumps(doc, indent=1, default=str) + "\n"))
    return {"run": run, "tables": tables, "summary": summary, "notes": note}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    d = df.reset_index()
    return [{k: _clean(v) for k, v in row.items()} for row in d.to_dict(orient="records")]


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


def _atomic(path: Path, write) -> None:
    from ..atomic import write_atomic

    write_atomic(path, write)
