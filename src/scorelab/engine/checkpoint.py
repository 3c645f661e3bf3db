"""Shard checkpoints: a finished shard is saved at once, so a killed run resumes where it stopped.

A run of several shards keeps, next to its future directory, a partial directory
(``.NAME.partial``) holding ``plan.json`` (what is being run) and one ``shards/NNNNNN.npz`` per finished
shard, each written under a temporary name and renamed. Resuming reads the plan, checks it, runs only
the missing shards and merges all of them: the same bytes as an uninterrupted run, since every shard
depends only on (scenario, seed, shard index).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_atomic, write_text_atomic
from .kernel import ShardResult

PLAN = "plan.json"


def partial_dir(out: Path) -> Path:
    out = Path(out).resolve()
    return out.parent / f".{out.name}.partial"


def save_plan(stage: Path, plan: dict[str, Any]) -> None:
    (stage / "shards").mkdir(parents=True, exist_ok=True)
    write_text_atomic(stage / PLAN, json.dumps(plan, indent=1, sort_keys=True, default=str))


def load_plan(stage: Path) -> dict[str, Any] | None:
    """The plan of an unfinished run; None when there is none. A damaged plan is a ConfigError naming it."""
    from ..config.loader import ConfigError

    path = stage / PLAN
    if not path.exists():
        return None
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        plan = e
    keys = {"scenario": dict, "seed": int}
    if not isinstance(plan, dict) or any(not isinstance(plan.get(k), t) or isinstance(plan.get(k), bool)
                                         for k, t in keys.items()):
        raise ConfigError(str(path), None, "the checkpoint's plan is damaged (unreadable or wrong types), so this run "
                                           f"cannot be resumed; remove {stage} and run the scenario again (or pass "
                                           "--force to `scorelab run` with the same --out)")
    return plan


def check_shards(stage: Path, shards: dict[int, Path], expected: int) -> None:
    """Every finished shard's file is a whole .npz (CRC checked) for a shard of the plan; else a ConfigError
    naming the file and how to recover, before anything is re-simulated."""
    import zipfile

    from ..config.loader import ConfigError

    for i, path in sorted(shards.items()):
        problem = None
        if i >= expected:
            problem = f"shard {i} is not part of this run's plan ({expected} shards)"
        else:
            try:
                with zipfile.ZipFile(path) as z:
                    bad = z.testzip()
                    if bad is not None:
                        problem = f"its member {bad} is corrupt"
                    elif "sizes.npy" not in z.namelist():
                        problem = "it is not a scorelab shard checkpoint"
            except (OSError, zipfile.BadZipFile, EOFError) as e:
                problem = f"it is truncated or not a checkpoint ({e})"
        if problem:
            raise ConfigError(str(path), None, f"damaged checkpoint: {problem}. Delete this file and resume again: "
                                               "only its shard is simulated anew")


def save_shard(stage: Path, r: ShardResult) -> Path:
    arrays = {"sizes": r.group_sizes, "hist": r.hist, "hist_days": r.hist_days}
    arrays.update({f"m:{k}": v for k, v in r.metrics.items()})
    arrays.update({f"l:{k}": v for k, v in r.ledger.items()})
    arrays.update({f"c:{k}": v for k, v in r.citizens.items()})
    arrays.update({f"p:{k}": v for k, v in r.encoded.items()})  # the shard's Parquet parts (engine/tables.py)
    arrays.update({f"r:{k}": np.array(v, dtype=np.int64) for k, v in r.rows.items()})
    final = stage / "shards" / f"{r.index:06d}.npz"
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return write_atomic(final, write)  # a temporary name starting with "." that finished_shards never lists


def _mapped(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz that `save_shard` wrote (members stored, not compressed), as read-only views of
    the file mapped into memory: nothing is copied, and the pages stay the page cache's, not this process's
    (a shard's columns go from there straight to the Parquet writer). None where a member is not a plain
    stored array (then `np.load` reads it)."""
    import mmap
    import zipfile

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return None
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mm)
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                return None
            h = info.header_offset  # the local header: 30 bytes, then the name and an extra field
            if view[h:h + 4] != b"PK\x03\x04":
                return None
            start = h + 30 + int.from_bytes(view[h + 26:h + 28], "little") + int.from_bytes(view[h + 28:h + 30], "little")
            member = view[start:start + info.file_size]
            head = io.BytesIO(member[:min(len(member), 1 << 16)])
            fmt = np.lib.format
            version = fmt.read_magic(head)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(head)
            if dtype.hasobject:
                return None
            count = int(np.prod(shape, dtype=np.int64))
            arr = np.frombuffer(member, dtype=dtype, count=count, offset=head.tell())
            out[info.filename[:-4]] = arr.reshape(shape, order="F" if fortran else "C")
    return out


def load_shard(path: Path, mapped: bool = False) -> ShardResult:
    """A checkpointed shard; ``mapped``: its arrays are views of the file mapped into memory (`_mapped`)."""
    data = _mapped(path) if mapped else None
    if data is None:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    r = ShardResult(int(Path(path).name.split(".")[0]), data["sizes"],
                    {k[2:]: v for k, v in data.items() if k.startswith("m:")}, data["hist_days"], data["hist"])
    r.ledger = {k[2:]: v for k, v in data.items() if k.startswith("l:")}
    r.citizens = {k[2:]: v for k, v in data.items() if k.startswith("c:")}
    r.encoded = {k[2:]: v for k, v in data.items() if k.startswith("p:")}  # none in an earlier version's: raw
    r.rows = {k[2:]: int(v) for k, v in data.items() if k.startswith("r:")}
    return r


def finished_shards(stage: Path) -> dict[int, Path]:
    d = stage / "shards"
    if not d.is_dir():
        return {}
    return {int(p.name.split(".")[0]): p for p in d.glob("[0-9]*.npz") if ".tmp" not in p.name}
