"""What the lab computes: the unchanged and the changed policy on the same synthetic people, side by side.

Both runs use one seed, population and number of days, so the same citizens draw the same candidate events
(common random numbers, docs/experiments.md): what differs comes from the knobs. Every run is an ordinary
run directory written by `scorelab.simulate` (in the lab's working folder, removed when it stops), read back
through the public `Run` API; compliance is `scorelab.audit.compliance.compliance` on each run directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..api import Run, load, simulate
from ..atomic import write_text_atomic
from ..config.loader import ConfigError, list_presets
from ..config.models import Scenario
from .knobs import LabError, changes_for, check_size, knob_json

DEFAULT_POPULATION = 20_000
DEFAULT_DAYS = 90
CACHE_RUNS = 24  # run directories kept in the working folder (a few MB each at the default size)


def _per_1000(x: float, n: float) -> float:
    return 1000.0 * x / n if n else 0.0


def group_table(run: Run) -> list[dict[str, Any]]:
    """Per group (and `all`): who is sanctioned, and wrongly; speech; last day's score and restrictions."""
    m = run.metrics
    last = m[m["day"] == m["day"].max()].set_index("group")
    tot = m.groupby("group", observed=True)[["penalties", "wrongful_penalties", "criticism"]].sum()
    mean_r = m.groupby("group", observed=True)["restricted_share"].mean()
    rows = []
    for g in last.index.astype(str):
        n = float(last.loc[g, "population"])
        rows.append({
            "group": g, "population": int(n),
            "penalties": int(tot.loc[g, "penalties"]),
            "wrongful_penalties": int(tot.loc[g, "wrongful_penalties"]),
            "penalties_per_1000": _per_1000(tot.loc[g, "penalties"], n),
            "wrongful_per_1000": _per_1000(tot.loc[g, "wrongful_penalties"], n),
            "restricted_share": float(last.loc[g, "restricted_share"]),
            "restricted_mean_share": float(mean_r.loc[g]),
            "criticism": int(tot.loc[g, "criticism"]),
            "criticism_per_1000": _per_1000(tot.loc[g, "criticism"], n),
            "mean_score": float(last.loc[g, "mean_score"]),
        })
    return rows


def criticism_curve(run: Run) -> dict[str, list[float]]:
    """Criticism events per day for all citizens (the chilling of speech over time)."""
    m = run.metrics
    a = m[m["group"].astype(str) == "all"].sort_values("day")
    return {"day": a["day"].astype(int).tolist(), "criticism": a["criticism"].astype(float).tolist()}


def distribution(run: Run) -> dict[str, Any]:
    """Last day's score histogram (10-point bins) per group, as shares of the group's citizens."""
    d = run.distribution
    d = d[d["day"] == d["day"].max()]
    out: dict[str, Any] = {"day": int(d["day"].max()) if len(d) else 0, "groups": {}}
    lo_min = np.iinfo(np.int32).min
    for g, part in d.groupby(d["group"].astype(str), sort=False):
        total = float(part["citizens"].sum()) or 1.0
        out["groups"][g] = {
            "lo": [int(x) if x != lo_min else None for x in part["score_lo"]],
            "hi": [int(x) for x in part["score_hi"]],
            "share": (part["citizens"] / total).astype(float).tolist(),
            "citizens": part["citizens"].astype(int).tolist(),
        }
    return out


def compliance_rows(run_dir: Path) -> list[dict[str, str]]:
    from ..audit.compliance import compliance

    df = compliance(run_dir)
    return [{"id": r["id"], "source": r["source"], "principle": r["principle"], "verdict": r["verdict"],
             "cause": r["cause"]} for _, r in df.iterrows()]


def flips(base: list[dict[str, str]], changed: list[dict[str, str]]) -> list[dict[str, str]]:
    """The principles whose verdict differs between the two runs."""
    by_id = {r["id"]: r for r in base}
    out = []
    for r in changed:
        b = by_id.get(r["id"])
        if b is not None and b["verdict"] != r["verdict"]:
            out.append({"id": r["id"], "source": r["source"], "principle": r["principle"],
                        "baseline": b["verdict"], "changed": r["verdict"], "cause_baseline": b["cause"],
                        "cause_changed": r["cause"]})
    return out


def _key(sc: Scenario, seed: int) -> str:
    blob = json.dumps({"scenario": sc.model_dump(mode="json"), "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def command(toml: str, population: int, days: int, seed: int, out: str) -> str:
    import shlex

    return (f"scorelab run {shlex.quote(toml)} --population {population} --days {days} --seed {seed} "
            f"--out {shlex.quote(out)}")


class Lab:
    """The lab's state: a working folder of cached runs. Thread-safe (one simulation at a time)."""

    def __init__(self, workdir: Path | None = None):
        self._own = workdir is None
        self._workdir = Path(workdir) if workdir is not None else None
        self._runs: OrderedDict[str, tuple[Path, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.presets = [p.name for p in list_presets()]

    @property
    def workdir(self) -> Path:
        """The folder of cached runs, made at the first simulation (removed by close() if the lab made it)."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="scorelab-lab-"))
        return self._workdir

    def close(self) -> None:
        if self._own and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._runs.clear()

    # ---------------------------------------------------------------- requests

    def preset_list(self) -> list[dict[str, str]]:
        return [{"name": p.name, "description": p.description} for p in list_presets()]

    def scenario(self, preset: Any, population: int, days: int) -> Scenario:
        if not isinstance(preset, str) or preset not in self.presets:
            raise LabError("preset", f"{preset!r} is not a preset", ", ".join(self.presets))
        return load(preset, population=population, days=days)

    def knobs(self, preset: Any) -> dict[str, Any]:
        sc = self.scenario(preset, DEFAULT_POPULATION, DEFAULT_DAYS)
        return {"preset": preset, "description": sc.scenario.description.strip().split("\n")[0],
                "groups": [g.name for g in sc.groups], "knobs": knob_json(sc),
                "defaults": {"population": DEFAULT_POPULATION, "days": DEFAULT_DAYS, "seed": sc.scenario.seed}}

    def parse(self, body: Any) -> tuple[str, Scenario, Scenario, dict[str, Any], int]:
        if not isinstance(body, dict):
            raise LabError("body", "not a JSON object", '{"preset": ..., "population": ..., "days": ..., "seed": ..., "changes": {...}}')
        unknown = sorted(set(body) - {"preset", "population", "days", "seed", "changes", "out"})
        if unknown:
            raise LabError(unknown[0], "unknown field", "preset, population, days, seed, changes (and out to save)")
        preset = body.get("preset")
        population, days, seed = check_size(body.get("population", DEFAULT_POPULATION),
                                            body.get("days", DEFAULT_DAYS), body.get("seed", 0))
        base = self.scenario(preset, population, days)
        changes = changes_for(base, body.get("changes"))
        try:
            changed = base.with_changes(changes)
        except ConfigError as e:
            raise LabError(e.field or "changes", e.message, "values that make a valid scenario (docs/format.md)") from None
        return preset, base, changed, changes, seed

    def _run(self, sc: Scenario, seed: int) -> tuple[Path, dict[str, Any], bool]:
        """The run directory of ``sc`` with ``seed`` and its figures (cached); whether it was cached."""
        key = _key(sc, seed)
        if key in self._runs:
            self._runs.move_to_end(key)
            return (*self._runs[key], True)
        out = self.workdir / key
        if out.exists():
            shutil.rmtree(out)
        run = simulate(sc, seed=seed, out=out, workers=1)
        figures = {"groups": group_table(run), "criticism": criticism_curve(run), "distribution": distribution(run),
                   "compliance": compliance_rows(out)}
        self._runs[key] = (out, figures)
        while len(self._runs) > CACHE_RUNS:
            _, (old, _) = self._runs.popitem(last=False)
            shutil.rmtree(old, ignore_errors=True)
        return out, figures, False

    def view(self, body: Any) -> dict[str, Any]:
        preset, base, changed, changes, seed = self.parse(body)
        t0 = time.perf_counter()
        with self._lock:
            _, fb, cached_b = self._run(base, seed)
            _, fc, cached_c = self._run(changed, seed)
        seconds = time.perf_counter() - t0
        n, t = base.scenario.population, base.scenario.days
        return {
            "preset": preset, "population": n, "days": t, "seed": seed, "changes": changes,
            "groups": [g.name for g in base.groups],
            "speech_behaviours": [b.name for b in base.behaviours if b.speech],
            "baseline": fb, "changed": fc,
            "flips": flips(fb["compliance"], fc["compliance"]),
            "seconds": round(seconds, 3), "cached": [cached_b, cached_c],
            "command_preview": command("FILE.toml", n, t, seed, "runs/OUT"),
            "baseline_command": command(preset, n, t, seed, "runs/OUT"),
        }

    def save(self, body: Any) -> dict[str, Any]:
        """Write the changed view as a normal run directory ``out`` with the scenario beside it as TOML."""
        out = body.get("out") if isinstance(body, dict) else None
        if not isinstance(out, str) or not out.strip():
            raise LabError("out", "missing", "a directory path that does not exist yet, e.g. runs/lab-1")
        preset, base, changed, changes, seed = self.parse(body)
        target = Path(out).expanduser()
        toml_path = target.with_name(target.name + ".toml")
        for p in (target, toml_path):
            if p.exists():
                raise LabError("out", f"{p} exists", "a path that does not exist yet")
        n, t = base.scenario.population, base.scenario.days
        where = ", ".join(f"{k} = {v!r}" for k, v in changes.items()) or "no knob moved"
        again = command(str(toml_path), n, t, seed, str(target) + "-rerun")
        header = (f"Saved from `scorelab lab`: preset {preset} with {where}.\n"
                  f"The run directory {target} holds this scenario's run; reproduce it with:\n{again}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:  # the run first: a failed run leaves no scenario file behind
                simulate(changed, seed=seed, out=target, workers=1)
            write_text_atomic(toml_path, _with_header(changed, header))
        except OSError as e:
            raise LabError("out", f"cannot write there ({e.strerror})", "a writable directory path") from None
        except ConfigError as e:
            raise LabError(e.field or "out", e.message, "a path that does not exist yet and a size this machine can hold") from None
        return {"out": str(target.resolve()), "toml": str(toml_path.resolve()),
                "command": again,
                "baseline_command": command(preset, n, t, seed, str(target) + "-baseline")}


def _with_header(sc: Scenario, header: str) -> str:
    from ..config.writer import scenario_toml

    return scenario_toml(sc, header=header)
