"""One run reduced to scalar metrics, the unit that comparisons and sweeps reason about.

`run_summary(run_dir)` reads ``metrics.parquet`` and ``citizens.parquet`` and returns a flat
``{"metric.group": value}`` dict for every group and ``all``. More providers can be plugged in with
`register_provider`; `summarise` merges them (the first provider to name a key wins). If the audit
package provides ``scorelab.audit.metrics.audit_summary(run_dir)``, it is used as well.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..store import read_manifest

Provider = Callable[[Path], dict[str, float]]

# what each summary metric means, for reports (the suffix after the dot is the group)
DESCRIPTIONS = {
    "final_mean_score": "mean score on the last day",
    "final_restricted_share": "share restricted on the last day",
    "mean_restricted_share": "share restricted, averaged over days",
    "penalties": "observed penalties (false attributions included), total",
    "wrongful_penalties": "false attributions scored as penalties, total",
    "criticism": "true political-speech events, total (the chilling-effect measure)",
    "wrongful_rewards": "false attributions scored as rewards, total",
    "penalties_per_1000": "penalties per 1,000 citizens",
    "wrongful_penalties_per_100k": "wrongful penalties per 100,000 citizens",
    "criticism_per_1000": "political-speech events per 1,000 citizens",
    "points_deducted": "points deducted, total",
    "points_awarded": "points awarded, total",
    "share_wrongfully_penalised": "share of citizens with at least one wrongful penalty",
    "share_restricted_without_misconduct": "share restricted on the last day with no true misconduct",
    "mean_score_of_wrongfully_penalised": "mean final score of citizens with a wrongful penalty",
    # from the audit (scorelab.audit.metrics.audit_summary; per-citizen figures use the kept citizens)
    "restricted_share": "share restricted on the last day (audit)",
    "restricted_mean_share": "share restricted, averaged over days (audit)",
    "ever_restricted_share": "share restricted on at least one day",
    "disparate_impact": "ever-restricted share over that of the least restricted group (flag outside 0.8-1.25)",
    "restricted_days_mean": "days restricted per citizen",
    "false_positive_rate": "share of citizens without true misconduct who were restricted",
    "false_negative_rate": "share of citizens with true misconduct never restricted",
    "innocent_among_restricted": "share of the restricted with no true misconduct",
    "falsely_attributed_share": "share of citizens with at least one false attribution",
    "wrongful_sanctioned": "citizens restricted only because of false attributions",
    "wrongful_sanctioned_share": "share of citizens restricted only because of false attributions",
    "wrongful_restriction_days": "days of restriction caused by false attributions alone",
    "grade_changed": "citizens whose grade history false attributions changed",
    "listing_changed": "citizens whose blacklist history false attributions changed",
    "speech_run": "true speech events with the policy",
    "speech_counterfactual": "true speech events without the policy (same seeds)",
    "speech_fall": "speech events lost to the policy (chilling effect)",
    "speech_fall_share": "share of speech lost to the policy (chilling effect)",
    "points_bought": "points bought (donations, purchases)",
    "points_earned_by_conduct": "points awarded for conduct, not bought",
    "bought_share_of_points_awarded": "bought share of all points awarded",
    "events_induced_by_gaming": "bought events beyond what citizens would do without the policy",
    "money_collected": "money paid for bought points",
    "gini": "Gini coefficient of final scores",
    "bottom_share_final": "share in the sanctioned (bottom) grades at the end",
    "ever_bottom_share": "share ever in the bottom grades",
    "stuck_in_bottom_share": "of those ever in the bottom grades, share still there at the end",
    "grade_changes_per_citizen": "grade changes per citizen",
    "contacts_of_restricted_share": "share of free citizens living with (or in contact with) a restricted citizen",
    "sources_per_citizen_mean": "distinct data sources with a record per citizen",
    "fused_share": "share of citizens with records from two or more sources",
    "records_per_citizen_mean": "records held per citizen",
    "unique_share": "share of citizens unique on the fields shared with recipients",
    "below_k5_share": "share of citizens in a class of fewer than 5 on the shared fields",
}

HEADLINE = ["final_mean_score", "final_restricted_share", "penalties", "wrongful_penalties", "criticism",
            "share_wrongfully_penalised",
            # the audit's: who is restricted more, who without misconduct, who by error alone, what speech is lost
            "disparate_impact", "false_positive_rate", "wrongful_sanctioned_share", "speech_fall"]


def run_summary(run_dir: str | Path) -> dict[str, float]:
    """Scalar metrics of one run directory, per group (``metric.group``) and for ``all``."""
    run_dir = Path(run_dir)
    m = pq.read_table(run_dir / "metrics.parquet").to_pandas()
    m["group"] = m["group"].astype(str)
    out: dict[str, float] = {}
    last = m[m["day"] == m["day"].max()].set_index("group")
    totals = m.groupby("group")[[c for c in ("penalties", "wrongful_penalties", "criticism", "wrongful_rewards",
                                              "points_deducted", "points_awarded") if c in m.columns]].sum()
    mean_restricted = m.groupby("group")["restricted_share"].mean()
    listed = [c for c in m.columns if c.startswith("listed_")]
    for g, row in last.iterrows():
        size = float(row["population"])
        per = (lambda x, k: float(x) * k / size) if size > 0 else (lambda x, k: float("nan"))
        out[f"final_mean_score.{g}"] = float(row["mean_score"])
        out[f"final_restricted_share.{g}"] = float(row["restricted_share"])
        out[f"mean_restricted_share.{g}"] = float(mean_restricted[g])
        for c in totals.columns:
            out[f"{c}.{g}"] = float(totals.loc[g, c])
        out[f"penalties_per_1000.{g}"] = per(totals.loc[g, "penalties"], 1000)
        out[f"wrongful_penalties_per_100k.{g}"] = per(totals.loc[g, "wrongful_penalties"], 100_000)
        out[f"criticism_per_1000.{g}"] = per(totals.loc[g, "criticism"], 1000)
        for c in listed:
            out[f"final_{c}_share.{g}"] = float(row[c]) / size if size > 0 else float("nan")
    for k, v in _declared_totals(m, last, _outputs(run_dir)).items():
        out.setdefault(k, v)  # the figures above keep their own names
    out.update(_citizen_metrics(run_dir))
    return out


def _citizen_metrics(run_dir: Path) -> dict[str, float]:
    """Shares over citizens kept in detail (all of them, or a systematic sample; none: no keys)."""
    path = run_dir / "citizens.parquet"
    if not path.is_file():
        return {}
    cols = set(pq.read_schema(path).names)
    need = {"group", "score", "restricted", "wrongful_penalties", "true_misconduct"}
    if not need <= cols:
        return {}
    c = pq.read_table(path, columns=sorted(need)).to_pandas()
    if c.empty:
        return {}
    c["group"] = c["group"].astype(str)
    wronged = c["wrongful_penalties"].to_numpy() > 0
    innocent_restricted = c["restricted"].to_numpy() & (c["true_misconduct"].to_numpy() == 0)
    out: dict[str, float] = {}
    frames = [(g, idx) for g, idx in c.groupby("group").indices.items()] + [("all", np.arange(len(c)))]
    score = c["score"].to_numpy()
    for g, idx in frames:
        out[f"share_wrongfully_penalised.{g}"] = float(wronged[idx].mean())
        out[f"share_restricted_without_misconduct.{g}"] = float(innocent_restricted[idx].mean())
        w = idx[wronged[idx]]
        out[f"mean_score_of_wrongfully_penalised.{g}"] = float(score[w].mean()) if len(w) else float("nan")
    return out


def _outputs(run_dir: Path) -> list[dict]:
    """The run's declared outputs (run.json ``outputs``), or none where the manifest cannot be read."""
    try:
        return list(read_manifest(run_dir).get("outputs", []))
    except (OSError, ValueError):
        return []


# declared outputs summarised by run_summary under their own names (or not summed: shares, averages)
_HANDLED = {"mean_score", "restricted_share", "population"}


def _declared_totals(m: pd.DataFrame, last: pd.DataFrame, outputs: list[dict]) -> dict[str, float]:
    """Every other declared output of the run (the kernel's and the mechanisms'), read from the declarations,
    never from name prefixes: counts and sums totalled over the run (``loans_partner.all``), stocks on the last
    day (``final_grade_C.all``). Loan outcomes, blocked attempts, privileges held and red-list entries reach
    comparisons and sweeps this way."""
    kinds = {d["name"]: d["kind"] for d in outputs
             if d.get("kind") in ("count", "sum", "stock") and d["name"] not in _HANDLED and d["name"] in m.columns}
    totals = m.groupby("group", observed=True)[[n for n, k in kinds.items() if k != "stock"]].sum()
    out: dict[str, float] = {}
    for n, kind in kinds.items():
        src, key = (last, f"final_{n}") if kind == "stock" else (totals, n)
        for g, v in src[n].items():
            out[f"{key}.{g}"] = float(v)
    return out


def zero_when_absent(run_dir: str | Path) -> set[str]:
    """Summary metrics that mean 0 in a run whose policy does not have them: totals of declared counts and sums
    (a policy without a lender made no loans). Comparisons fill these; anything else missing stays missing."""
    return {d["name"] for d in _outputs(Path(run_dir)) if d.get("kind") in ("count", "sum")}


_PROVIDERS: list[Provider] = [run_summary]


def register_provider(fn: Provider) -> None:
    """Add a metric provider (``run_dir -> {name: float}``) used by every comparison from now on."""
    if fn not in _PROVIDERS:
        _PROVIDERS.append(fn)


def providers() -> list[Provider]:
    out = list(_PROVIDERS)
    try:  # the audit package's metrics, where that package is present
        from ..audit.metrics import audit_summary  # type: ignore[import-not-found]
    except ImportError:
        return out
    if audit_summary not in out:
        out.append(audit_summary)
    return out


def checked_run(root: Path, run_dir: Path) -> None:
    """A run of a sweep or comparison is whole (rundir.check_run), else a ConfigError saying how to redo it."""
    from ..config.loader import ConfigError
    from ..rundir import check_run

    try:
        check_run(run_dir)
    except ConfigError as e:
        how = f"scorelab sweep --resume {root}" if (root / "sweep.json").is_file() else "the comparison again"
        raise ConfigError(e.source, e.field, f"{e.message.split('; ')[0]}; delete {run_dir} and run {how} to "
                                             "simulate that run again") from None


def summarise(run_dir: str | Path) -> dict[str, float]:
    """Every provider's metrics for one run, merged (the first provider to name a key wins)."""
    merged: dict[str, float] = {}
    for fn in providers():
        for k, v in fn(Path(run_dir)).items():
            k = _dotted(k)
            if k not in merged:
                try:
                    merged[k] = float(v)
                except (TypeError, ValueError):
                    continue  # non-scalar values are not compared
    return merged


_BRACKETED = re.compile(r"^(?P<metric>[^\[\]]+)\[(?P<group>[^\[\]]+)\]$")


def _dotted(key: str) -> str:
    """The audit names its metrics ``metric[group]``; comparisons and sweeps use ``metric.group``, so one
    metric of every provider is read, ordered and queried the same way (``disparate_impact.rural``)."""
    m = _BRACKETED.match(key)
    return f"{m['metric']}.{m['group']}" if m else key


def summaries_frame(rows: list[tuple[dict[str, object], dict[str, float]]]) -> pd.DataFrame:
    """Long table: partition keys, metric, group, value (one row per run and metric)."""
    recs = []
    for keys, summ in rows:
        for name, value in summ.items():
            metric, _, group = name.rpartition(".")
            recs.append({**keys, "metric": metric or name, "group": group if metric else "", "value": value})
    return pd.DataFrame.from_records(recs)
