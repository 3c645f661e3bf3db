"""A finished run, for reading: a run directory, or a run held in memory (``simulate()`` without ``out``).
Its tables load as pandas DataFrames, or as NumPy columns without pandas (`Run.columns`)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .config.loader import ConfigError
from .config.models import Scenario
from .engine.params import Params, compile_params
from .store import commit_dir, read_manifest, staging_dir, table_digests, write_manifest


@dataclass
class Run:
    """A finished run: a run directory, or (``simulate()`` without ``out``) its tables held in memory.
    Tables load as pandas DataFrames."""

    path: Path | None
    _memory: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # name -> pyarrow Table
    _memory_manifest: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.path is not None:
            self.path = Path(self.path)

    @classmethod
    def into_memory(cls, run_dir: str | Path) -> "Run":
        """Read every table and the manifest of ``run_dir`` into memory (the directory may be removed after)."""
        import pyarrow.parquet as pq

        run_dir = Path(run_dir)
        tables = {p.stem: pq.read_table(p) for p in sorted(run_dir.glob("*.parquet"))}
        return cls(None, tables, read_manifest(run_dir))

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    @cached_property
    def manifest(self) -> dict[str, Any]:
        if self._memory_manifest is not None:
            return self._memory_manifest
        return read_manifest(self.path)

    @cached_property
    def params(self) -> Params:
        """The run's scenario compiled (names, declared outputs, the active mechanisms' tables)."""
        return compile_params(Scenario.model_validate(self.manifest["scenario"]))

    def table(self, name: str):
        import pandas as pd

        if self._memory is not None:
            if name not in self._memory:
                raise KeyError(f"this run has no table {name!r}; tables: {', '.join(self._memory)}")
            return self._memory[name].to_pandas()
        return pd.read_parquet(self.path / f"{name}.parquet")

    def columns(self, name: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Columns of a table as NumPy arrays (categories as their strings), read without pandas."""
        from .arrowio import to_numpy

        if self._memory is not None:
            t = self._memory[name]
            t = t.select([c for c in names if c in t.column_names]) if names else t
        else:
            import pyarrow.parquet as pq

            f = pq.ParquetFile(self.path / f"{name}.parquet")
            have = f.schema_arrow.names
            t = f.read(columns=[c for c in names if c in have] if names else None)
        return {c: to_numpy(t.column(c)) for c in t.column_names}

    @property
    def metrics(self):
        return self.table("metrics")

    @property
    def citizens(self):
        return self.table("citizens")

    @property
    def events(self):
        """The event log: every change of a kept citizen's state (engine/events.py lists the kinds)."""
        return self.table("events")

    @property
    def ledger(self):
        """The score changes alone (events of kind ``score``), with the rule as ``behaviour``."""
        from .store import read_ledger

        return read_ledger(self.path)

    @property
    def distribution(self):
        return self.table("distribution")

    def summary(self):
        """The RR-1 headline figures per group: last day's mean score and restricted share, totals of events."""
        m = self.metrics
        last = m[m["day"] == m["day"].max()].set_index("group")
        tot = m.groupby("group", observed=True)[["penalties", "wrongful_penalties", "criticism"]].sum()
        out = last[["mean_score", "restricted_share"]].join(tot)
        return out

    def save(self, out: str | Path) -> "Run":
        """Write this run as a normal run directory ``out`` (which must not exist); returns that `Run`."""
        import pyarrow.parquet as pq

        out = Path(out)
        if out.exists():
            raise ConfigError(str(out), None, "output directory exists; choose another")
        if self._memory is None:
            tmp = staging_dir(out)
            shutil.copytree(self.path, tmp, dirs_exist_ok=True)
        else:
            tmp = staging_dir(out)
            for name, t in self._memory.items():
                pq.write_table(t, tmp / f"{name}.parquet", compression="zstd", write_statistics=True)
            write_manifest(tmp / "run.json", {**self._memory_manifest, "sha256": table_digests(tmp)})
        commit_dir(tmp, out, force=False)
        return Run(out.resolve())

    @contextmanager
    def directory(self) -> Iterator[Path]:
        """A run directory holding this run: its own, or (in memory) a temporary one removed on exit."""
        if self._memory is None:
            yield self.path
            return
        tmp = Path(tempfile.mkdtemp(prefix="scorelab-run-"))
        try:
            self.save(tmp / "run")
            yield tmp / "run"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def __repr__(self) -> str:
        if self._memory is not None:
            m = self.manifest
            return f"Run(<in memory: {m['scenario']['scenario']['name']}, {m['population']:,} citizens, {m['days']} days>)"
        return f"Run({str(self.path)!r})"
