"""Comparing policies on one synthetic population with common random numbers.

Each arm (a preset, a scenario file, or a policy file applied to a base scenario) is simulated for the
same replicates; replicate ``r`` uses the same seed in every arm, so the same citizens draw the same
candidate events (the kernel gives every behaviour its own random stream): differences between arms come
from the policy, not from luck. Every summary metric is compared as a paired difference (arm minus the
first arm, the baseline) over replicates, with a Student-t confidence interval.

Directory: ``compare.json`` (the plan), ``runs/policy=<label>/replicate=<r>/`` (one run directory
each), ``summaries.parquet`` (every metric of every run), ``comparison.json`` (the paired differences),
``report.html`` (offline).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..config.loader import ConfigError, load_policy, load_scenario, resolve_source, scenario_from_dict, parse_toml
from ..store import check_writable
from .execute import Listener, Report, RunTask, check_scheduler, execute, is_done, partition_dir, replicate_seed, write_json
from .stats import Paired, paired
from .summary import checked_run, summaries_frame, summarise, zero_when_absent

MANIFEST = "compare.json"


@dataclass(frozen=True)
class Arm:
    label: str
    source: str  # what the user named
    kind: str  # "preset" | "scenario" | "policy"
    scenario: dict[str, Any]


def _is_scenario_file(data: dict[str, Any]) -> bool:
    return "scenario" in data or "groups" in data or "behaviours" in data


def resolve_arm(spec: str, base: str, population: int | None, days: int | None) -> Arm:
    """A preset name or scenario file, or a policy file (a ``[policy]`` table or bare policy keys)
    applied to the ``base`` scenario."""
    path = Path(spec)
    if path.is_file() or spec.endswith(".toml"):
        if not path.is_file():
            raise ConfigError(spec, None, "no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(spec, None, f"cannot read: {e}") from None
        data = parse_toml(text, spec)
        label = path.stem
        if _is_scenario_file(data):
            sc = load_scenario(path, population=population, days=days)
            return Arm(label, spec, "scenario", sc.model_dump(mode="json"))
        policy = load_policy(path)
        base_sc = load_scenario(base, population=population, days=days)
        data2 = base_sc.model_dump(mode="json")
        data2["policy"] = policy.model_dump(mode="json")
        sc = scenario_from_dict(data2, source=f"{spec} (policy applied to scenario {base})")
        return Arm(label, spec, "policy", sc.model_dump(mode="json"))
    resolve_source(spec)  # a clear error for an unknown preset
    sc = load_scenario(spec, population=population, days=days)
    return Arm(spec, spec, "preset", sc.model_dump(mode="json"))


def _unique_labels(arms: list[Arm]) -> list[Arm]:
    seen: dict[str, int] = {}
    out = []
    for a in arms:
        label = re.sub(r"[^A-Za-z0-9_.\-]+", "_", a.label) or "arm"
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label}-{seen[label]}"
        out.append(Arm(label, a.source, a.kind, a.scenario))
    return out


def _check_same_population(arms: list[Arm]) -> None:
    first = arms[0]
    s0 = first.scenario["scenario"]
    g0 = [(g["name"], g["share"]) for g in first.scenario["groups"]]
    for a in arms[1:]:
        s = a.scenario["scenario"]
        if (s["population"], s["days"]) != (s0["population"], s0["days"]):
            raise ConfigError(a.source, "scenario.population",
                              f"{a.label} simulates {s['population']:,} citizens for {s['days']} days but {first.label} "
                              f"{s0['population']:,} for {s0['days']}; give --population and --days to use one for all")
        if a.scenario["behaviours"] != first.scenario["behaviours"]:
            b0 = {x["name"]: x for x in first.scenario["behaviours"]}
            b1 = {x["name"]: x for x in a.scenario["behaviours"]}
            diff = sorted(set(b0) ^ set(b1)) or sorted(n for n in b0 if b0[n] != b1.get(n))
            raise ConfigError(a.source, "behaviours",
                              f"{a.label}'s citizens behave differently from {first.label}'s (behaviours differ: "
                              f"{', '.join(diff)}): a comparison of policies needs one synthetic population; "
                              "change only the policy (a policy file applied to the base scenario), or use a sweep")
        g = [(x["name"], x["share"]) for x in a.scenario["groups"]]
        if g != g0:
            raise ConfigError(a.source, "groups",
                              f"{a.label}'s groups {g} differ from {first.label}'s {g0}: a comparison needs one "
                              "synthetic population; compare policies on one scenario instead")


def plan(specs: list[str], *, base: str = "rr1", replicates: int = 5, seed: int = 0,
         population: int | None = None, days: int | None = None, ledger: str = "auto") -> dict[str, Any]:
    if len(specs) < 2:
        raise ConfigError("compare", None, "name at least two policies or scenarios to compare")
    if replicates < 1:
        raise ConfigError("--replicates", None, f"{replicates} is not allowed; give at least 1")
    arms = _unique_labels([resolve_arm(s, base, population, days) for s in specs])
    _check_same_population(arms)
    return {
        "kind": "compare",
        "scorelab": __version__,
        "base": base,
        "arms": [asdict(a) for a in arms],
        "baseline": arms[0].label,
        "replicates": replicates,
        "root_seed": seed,
        "seeds": [replicate_seed(seed, r) for r in range(replicates)],
        "population": arms[0].scenario["scenario"]["population"],
        "days": arms[0].scenario["scenario"]["days"],
        "ledger": ledger,
        "partitions": {"policy": "VARCHAR", "replicate": "INTEGER"},
    }


def tasks_of(p: dict[str, Any]) -> list[RunTask]:
    """Replicates (outer) x arms (inner): the arms of one replicate finish close together."""
    out = []
    for r, s in enumerate(p["seeds"]):
        for a in p["arms"]:
            keys = {"policy": a["label"], "replicate": r}
            out.append(RunTask(partition_dir(keys), keys, s, a["scenario"], p["ledger"]))
    return out


@dataclass
class Comparison:
    root: Path
    plan: dict[str, Any]
    report: Report
    summaries: pd.DataFrame  # policy, replicate, seed, metric, group, value
    results: dict[str, dict[str, Paired]]  # arm label -> "metric.group" -> Paired vs baseline

    @property
    def labels(self) -> list[str]:
        return [a["label"] for a in self.plan["arms"]]


def run(specs: list[str], out: Path, *, workers: int = 1, scheduler: str | None = None,
        listener: Listener | None = None, confidence: float = 0.95, **plan_kw: Any) -> Comparison:
    p = plan(specs, **plan_kw)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(str(out), None, "directory exists and is not empty; choose another --out")
    check_writable(out)
    check_scheduler(scheduler)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    p["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(out / MANIFEST, p)
    rep = execute(out, tasks_of(p), workers=workers, scheduler=scheduler, listener=listener)
    return analyse(out, p, rep, confidence)


def analyse(out: Path, p: dict[str, Any], rep: Report, confidence: float = 0.95) -> Comparison:
    """Summaries of every finished run, paired differences against the baseline, files written."""
    rows = []
    per: dict[tuple[str, int], dict[str, float]] = {}
    counted: set[str] = set()
    for t in tasks_of(p):
        if is_done(out, t.rel):
            checked_run(out, out / t.rel)
            s = summarise(out / t.rel)
            per[(t.keys["policy"], t.keys["replicate"])] = s
            counted |= zero_when_absent(out / t.rel)
    all_keys = {k for s in per.values() for k in s}
    for s in per.values():  # an arm without a mechanism made none of its events: 0, not missing
        s.update({k: 0.0 for k in all_keys if k not in s and k.rpartition(".")[0] in counted})
    for t in tasks_of(p):
        s = per.get((t.keys["policy"], t.keys["replicate"]))
        if s is not None:
            rows.append(({"policy": t.keys["policy"], "replicate": t.keys["replicate"], "seed": t.seed}, s))
    frame = summaries_frame(rows)
    if not frame.empty:
        from ..atomic import write_atomic

        write_atomic(out / "summaries.parquet", lambda p: frame.to_parquet(p, index=False))
    labels = [a["label"] for a in p["arms"]]
    base = labels[0]
    R = p["replicates"]
    order = [g["name"] for g in p["arms"][0]["scenario"]["groups"]] + ["all"]
    keys = sorted({k for s in per.values() for k in s}, key=lambda k: _metric_order(k, order))
    results: dict[str, dict[str, Paired]] = {}
    for label in labels[1:]:
        res = {}
        for k in keys:
            a = np.array([per.get((base, r), {}).get(k, math.nan) for r in range(R)], dtype=np.float64)
            b = np.array([per.get((label, r), {}).get(k, math.nan) for r in range(R)], dtype=np.float64)
            res[k] = paired(a, b, confidence)
        results[label] = res
    cmp = Comparison(out, p, rep, frame, results)
    write_json(out / "comparison.json", {
        "baseline": base, "confidence": confidence, "replicates": R,
        "note": "paired differences (arm minus baseline) over replicates with common random numbers; "
                "Student-t interval; a CI needs at least 2 replicates",
        "failed_runs": [f.rel for f in rep.failed],
        "arms": {label: [{"metric": k, **_json_paired(v)} for k, v in res.items()] for label, res in results.items()},
    })
    from .report import write_report

    write_report(cmp, out / "report.html")
    return cmp


def reanalyse(out: Path, confidence: float | None = None) -> Comparison:
    """Recompute a finished comparison directory's tables and report from its runs (nothing is simulated)."""
    import json

    from .execute import FAILURES, Outcome

    out = Path(out)
    path = out / MANIFEST
    if not path.is_file():
        raise ConfigError(str(out), None, f"no {MANIFEST} here: not a comparison directory")
    p = json.loads(path.read_text())
    tasks = tasks_of(p)
    failed = []
    if (out / FAILURES).is_file():
        for f in json.loads((out / FAILURES).read_text()):
            failed.append(Outcome(f["run"], "failed", f.get("parameters", {}), f.get("seed", 0), error=f.get("error", "")))
    if confidence is None and (out / "comparison.json").is_file():
        confidence = json.loads((out / "comparison.json").read_text()).get("confidence")
    rep = Report(total=len(tasks), skipped=sum(is_done(out, t.rel) for t in tasks), failed=failed)
    return analyse(out, p, rep, confidence or 0.95)


def _json_paired(p: Paired) -> dict[str, Any]:
    d = asdict(p)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def _metric_order(key: str, groups: list[str]) -> tuple[int, str, int, str]:
    """Known metrics in DESCRIPTIONS order, then the rest by name; groups in scenario order, `all` last."""
    from .summary import DESCRIPTIONS

    metric, _, group = key.rpartition(".")
    names = list(DESCRIPTIONS)
    rank = groups.index(group) if group in groups else len(groups)
    return (names.index(metric) if metric in names else len(names), metric, rank, group)
