"""Audits and experiments from Python, returning pandas DataFrames (for notebooks and scripts).

``scorelab.audit(run)``, ``scorelab.compare(...)`` and ``scorelab.sweep(...)`` wrap the functions behind
``scorelab audit``, ``scorelab compare`` and ``scorelab sweep``. Without ``out`` they work in a temporary
directory and remove it before returning; with ``out`` the directory is kept, exactly as the command writes it.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from .api import Run
from .config.loader import ConfigError
from .config.models import Scenario


@contextmanager
def _workdir(out: str | Path | None, prefix: str) -> Iterator[Path]:
    if out is not None:
        yield Path(out)
        return
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp / "out"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def audit(run: Run | str | Path, **options: Any) -> dict[str, pd.DataFrame]:
    """Every audit table of a run (what `scorelab audit` prints) as DataFrames indexed by group:
    ``sanctions``, ``wrongful``, ``chilling``, ``chilling_curve``, ``gaming`` and, with per-citizen detail,
    ``inequality``, ``transitions``, ``grade_changes``, ``privacy``. ``run``: a `Run` (also one held in
    memory) or a run directory. Options: ``counterfactual="fast"|"full"``, ``counterfactual_population=N``.
    Writes nothing into the run directory (`scorelab audit` does)."""
    from .audit.metrics import audit_run

    if isinstance(run, Run):
        with run.directory() as d:
            return audit_run(d, **options)
    return audit_run(run, **options)


def _arm_file(sc: Scenario, folder: Path, label: str) -> str:
    path = folder / f"{label}.toml"
    k = 1
    while path.exists():
        k += 1
        path = folder / f"{label}-{k}.toml"
    path.write_text(sc.to_toml())
    return str(path)


def compare(*arms: str | Path | Scenario | dict[str, str | Path | Scenario], base: str = "rr1", replicates: int = 5,
            seed: int = 0, population: int | None = None, days: int | None = None, out: str | Path | None = None,
            workers: int | None = None, confidence: float = 0.95, ledger: str = "auto") -> pd.DataFrame:
    """Policies on one synthetic population with common random numbers (`scorelab compare`).

    ``arms``: presets, scenario or policy files, or `Scenario` objects (e.g. from ``with_changes``), the
    first being the baseline; or one dict ``{label: arm}``. Returns one row per arm, metric and group:
    ``baseline``, ``value`` (the arm's mean), ``difference`` (arm minus baseline, paired over replicates),
    ``ci_low``, ``ci_high`` (NaN with one replicate), ``n``, ``excludes_zero``."""
    from .engine.runner import default_workers
    from .experiments import compare as cmp_mod

    if len(arms) == 1 and isinstance(arms[0], dict):
        labelled = list(arms[0].items())
    else:
        labelled = [(None, a) for a in arms]
    with tempfile.TemporaryDirectory(prefix="scorelab-arms-") as folder, _workdir(out, "scorelab-compare-") as target:
        specs = []
        for label, arm in labelled:
            if isinstance(arm, Scenario):
                specs.append(_arm_file(arm, Path(folder), label or arm.scenario.name))
            elif label is not None and label != str(arm):  # a preset or file under another name: a copy so named
                resolved = cmp_mod.resolve_arm(str(arm), base, None, None)
                specs.append(_arm_file(Scenario.model_validate(resolved.scenario), Path(folder), label))
            else:
                specs.append(str(arm))
        c = cmp_mod.run(specs, Path(target), workers=workers or default_workers(), confidence=confidence, base=base,
                        replicates=replicates, seed=seed, population=population, days=days, ledger=ledger)
    rows = []
    for label, res in c.results.items():
        for key, p in res.items():
            metric, _, group = key.rpartition(".")
            rows.append({"arm": label, "metric": metric, "group": group, "baseline": p.baseline_mean,
                         "value": p.arm_mean, "difference": p.diff_mean, "ci_low": p.ci_low, "ci_high": p.ci_high,
                         "n": p.n, "excludes_zero": p.excludes_zero})
    if c.report.failed:
        warnings.warn(f"{len(c.report.failed)} run(s) failed ({c.report.failed[0].error}); "
                      "their replicates are left out", stacklevel=2)
    df = pd.DataFrame(rows, columns=["arm", "metric", "group", "baseline", "value", "difference", "ci_low", "ci_high",
                                     "n", "excludes_zero"])
    if out is not None:
        df.attrs["directory"] = str(out)
    return df


def sweep(spec: str | Path | dict[str, Any], out: str | Path | None = None, workers: int | None = None) -> pd.DataFrame:
    """A parameter sweep (`scorelab sweep`): ``spec`` is a sweep TOML file or a dict with its keys, e.g.
    ``{"base": "rr1", "population": 20000, "days": 90, "replicates": 3,
    "parameters": {"sensors[camera].false_attribution.rate.rural": [8e-5, 8e-4]}}``; ``base`` may also be
    a `Scenario`. Returns the long summaries table: one column per parameter, ``replicate``, ``seed``,
    ``metric``, ``group``, ``value`` (one row per run, metric and group)."""
    import tomli_w

    from .engine.runner import default_workers
    from .experiments import sweep as sweep_mod

    with tempfile.TemporaryDirectory(prefix="scorelab-sweepfile-") as folder, _workdir(out, "scorelab-sweep-") as target:
        if isinstance(spec, dict):
            data = dict(spec)
            b = data.get("base", "rr1")
            if isinstance(b, Scenario):
                data["base"] = _arm_file(b, Path(folder), b.scenario.name)
            elif isinstance(b, (str, Path)) and (str(b).endswith(".toml") or Path(b).exists()):
                data["base"] = str(Path(b).resolve())  # relative to here, not to the temporary sweep file
            elif isinstance(b, Path):
                data["base"] = str(b)
            file = Path(folder) / "sweep.toml"
            try:
                file.write_text(tomli_w.dumps(data))
            except TypeError as e:
                raise ConfigError("sweep", None, f"the sweep spec cannot be written as a sweep file: {e}") from None
        else:
            file = Path(spec)
        _, report = sweep_mod.start(file, Path(target), workers=workers or default_workers())
        summaries = Path(target) / "summaries.parquet"
        df = pd.read_parquet(summaries) if summaries.is_file() else pd.DataFrame()
    if report.failed:
        warnings.warn(f"{len(report.failed)} run(s) failed ({report.failed[0].error})", stacklevel=2)
    if out is not None:
        df.attrs["directory"] = str(out)
    return df
