"""Shard checkpoints: a finished shard is saved at once, so a killed run resumes where it stopped.

A run of several shards keeps, next to its future directory, a partial directory
(``.NAME.partial``) holding ``plan.json`` (what is being run) and one ``shards/NNNNNN.npz`` per finished
shard, each written under a temporary name and renamed. Resuming reads the plan, checks it, runs only
the missing shards and merges all of them: the same bytes as an uninterrupted run, since every shard
depends only on (scenario, seed, shard index).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .kernel import ShardResult

PLAN = "plan.json"


def partial_dir(out: Path) -> Path:
    out = Path(out).resolve()
    return out.parent / f".{out.name}.partial"


def save_plan(stage: Path, plan: dict[str, Any]) -> None:
    (stage / "shards").mkdir(parents=True, exist_ok=True)
    tmp = stage / (PLAN + ".tmp")
    tmp.write_text(json.dumps(plan, indent=1, sort_keys=True, default=str))
    os.replace(tmp, stage / PLAN)


def load_plan(stage: Path) -> dict[str, Any] | None:
    try:
        return json.loads((stage / PLAN).read_text())
    except (OSError, ValueError):
        return None


def save_shard(stage: Path, r: ShardResult) -> None:
    arrays = {"sizes": r.group_sizes, "hist": r.hist, "hist_days": r.hist_days}
    arrays.update({f"m:{k}": v for k, v in r.metrics.items()})
    arrays.update({f"l:{k}": v for k, v in r.ledger.items()})
    arrays.update({f"c:{k}": v for k, v in r.citizens.items()})
    final = stage / "shards" / f"{r.index:06d}.npz"
    tmp = final.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, final)


def load_shard(path: Path) -> ShardResult:
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    r = ShardResult(int(Path(path).name.split(".")[0]), data["sizes"],
                    {k[2:]: v for k, v in data.items() if k.startswith("m:")}, data["hist_days"], data["hist"])
    r.ledger = {k[2:]: v for k, v in data.items() if k.startswith("l:")}
    r.citizens = {k[2:]: v for k, v in data.items() if k.startswith("c:")}
    return r


def finished_shards(stage: Path) -> dict[int, Path]:
    d = stage / "shards"
    if not d.is_dir():
        return {}
    return {int(p.name.split(".")[0]): p for p in d.glob("[0-9]*.npz") if ".tmp" not in p.name}
