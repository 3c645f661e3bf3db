"""Running many simulations: one task per run directory, on local processes or a Dask cluster.

A task is plain data (a scenario dict, a seed, where to write), so it travels to a worker process or a
remote Dask worker unchanged. Each run is written by `scorelab.simulate`, which renames a finished
temporary directory into place: a run directory that has ``run.json`` is complete, and one that does not
exist was not finished. That makes resuming trivial: run the tasks whose directory does not exist.

Parallelism is across runs (each simulation uses one process). A run that raises is recorded in
``failures.json`` with its parameters and error; the others go on.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import numpy as np

from ..engine.cluster import check_scheduler, connect_scheduler  # noqa: F401  (compare and sweep use check_scheduler)
from ..config.loader import ConfigError
from ..engine.workers import start_worker, stop_pool

FAILURES = "failures.json"


def replicate_seed(root: int, replicate: int) -> int:
    """The seed of replicate ``replicate``: a SeedSequence child of the root seed (63 bits).

    Every policy or parameter point of one replicate uses this same seed (common random numbers)."""
    words = np.random.SeedSequence(int(root), spawn_key=(int(replicate),)).generate_state(2, np.uint32)
    return int((int(words[0]) << 32 | int(words[1])) & ((1 << 63) - 1))


def format_value(value: Any) -> str:
    """A partition value as it appears in a directory name (stable, so a resumed plan finds its runs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return quote(str(value), safe="")


def partition_dir(keys: dict[str, Any]) -> str:
    """``runs/k1=v1/k2=v2/...``: Hive partitioning, readable by DuckDB, Arrow, Spark."""
    return "/".join(["runs"] + [f"{k}={format_value(v)}" for k, v in keys.items()])


@dataclass(frozen=True)
class RunTask:
    rel: str  # run directory, relative to the experiment directory
    keys: dict[str, Any]  # partition values (parameters or policy label, then replicate)
    seed: int
    scenario: dict[str, Any]  # the full scenario, resolved
    ledger: str = "auto"

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.keys.items())


@dataclass
class Outcome:
    rel: str
    status: str  # "done" | "failed"
    keys: dict[str, Any]
    seed: int
    seconds: float = 0.0
    error: str = ""
    traceback: str = ""

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.keys.items())


def run_task(root: str, task: RunTask) -> Outcome:
    """Simulate one task into ``root/task.rel``; never raises for a failure of the run itself.

    A run killed mid-way that left shard checkpoints is finished from them (`scorelab.api.resume`), so
    that ``--resume`` completes a sweep whose large runs were killed, without simulating them anew."""
    from ..api import resume, simulate
    from ..config.loader import scenario_from_dict
    from ..engine.checkpoint import load_plan, partial_dir

    t0 = time.perf_counter()
    out = Path(root) / task.rel
    try:
        stage = partial_dir(out)
        plan = load_plan(stage) if stage.is_dir() else None
        if plan is not None and plan.get("seed") == task.seed and plan.get("scenario") == task.scenario:
            resume(out, workers=1)
        else:
            if stage.is_dir():  # checkpoints of another plan, or none usable: this task owns the folder
                shutil.rmtree(stage)
            sc = scenario_from_dict(task.scenario, source=task.rel)
            simulate(sc, seed=task.seed, out=out, ledger=task.ledger, workers=1)
    except Exception as e:  # noqa: BLE001 - a failed run is data: reported, and the sweep goes on
        return Outcome(task.rel, "failed", task.keys, task.seed, time.perf_counter() - t0,
                       f"{type(e).__name__}: {e}", traceback.format_exc())
    return Outcome(task.rel, "done", task.keys, task.seed, time.perf_counter() - t0)


def is_done(root: Path, rel: str) -> bool:
    return (root / rel / "run.json").is_file()


def clean_partials(root: Path) -> int:
    """Remove staging directories left by runs that were killed mid-write; returns how many."""
    n = 0
    runs = root / "runs"
    if not runs.is_dir():
        return 0
    for p in list(runs.rglob(".*.partial-*")) + list(runs.rglob(".*.old-*")):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


def read_manifest(out: Path, name: str, kind: str, start: str) -> dict[str, Any]:
    """An experiment directory's manifest (``name``, of ``kind``), or a ConfigError that says how to start one."""
    path = Path(out) / name
    if not path.is_file():
        raise ConfigError(str(out), None, f"no {name} here: not a {kind} directory (start one with `{start}`)")
    try:
        plan = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(str(path), None, f"unreadable {kind} manifest: {e}") from None
    if plan.get("kind") != kind:
        raise ConfigError(str(path), "kind", f"not a {kind} manifest")
    return plan


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    from ..atomic import write_json_atomic

    write_json_atomic(path, data, indent=2)


@dataclass
class Report:
    total: int  # tasks in the plan
    skipped: int  # already finished before this call
    done: int = 0  # finished by this call
    failed: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1

    @property
    def runs_per_minute(self) -> float:
        return 60.0 * self.done / self.seconds if self.seconds > 0 else 0.0


Listener = Callable[[str, Any], None]  # event name, payload


def execute(root: Path, tasks: list[RunTask], *, workers: int = 1, scheduler: str | None = None,
            listener: Listener | None = None) -> Report:
    """Run every task whose directory is not finished. ``listener(event, payload)`` hears
    ("start", {total, skipped, workers}), ("done", Outcome), ("failed", Outcome), ("tick", {running})."""
    root = Path(root).resolve()  # workers (a Dask cluster's included) must write where the user asked
    clean_partials(root)
    todo = [t for t in tasks if not is_done(root, t.rel)]
    report = Report(total=len(tasks), skipped=len(tasks) - len(todo))
    failures = _Failures(root, {t.rel for t in tasks})
    emit = listener or (lambda event, payload: None)
    t0 = time.perf_counter()
    if not todo:
        emit("start", {"total": len(tasks), "skipped": report.skipped, "workers": 0})
        failures.finish()
        return report

    def finished(o: Outcome) -> None:
        if o.status == "done":
            report.done += 1
            failures.clear(o.rel)
        else:
            report.failed.append(o)
            failures.add(o)
        emit(o.status, o)

    if scheduler:
        report.workers = _run_dask(str(root), todo, scheduler, finished, emit, report)
    else:
        report.workers = _run_local(str(root), todo, workers, finished, emit, report)
    report.seconds = time.perf_counter() - t0
    emit("tick", {"running": 0})
    failures.finish()
    return report


def _run_local(root: str, todo: list[RunTask], workers: int, finished: Callable[[Outcome], None],
               emit: Listener, report: Report) -> int:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    n = max(1, min(workers, len(todo)))
    emit("start", {"total": report.total, "skipped": report.skipped, "workers": n})
    ctx = mp.get_context("spawn")  # no inherited threads or locks from the parent (progress bars, pools)
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=start_worker, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(run_task, root, t): t for t in todo}
        pending = set(futures)
        while pending:
            emit("tick", {"running": min(n, len(pending))})
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for f in done:
                task = futures[f]
                try:
                    finished(f.result())
                except BrokenProcessPool as e:
                    finished(Outcome(task.rel, "failed", task.keys, task.seed, 0.0,
                                     f"worker process died: {e}", ""))
    except BaseException:
        # interrupted: start nothing new; runs in flight leave only a staging dir (cleaned on resume)
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return n


def _run_dask(root: str, todo: list[RunTask], address: str, finished: Callable[[Outcome], None],
              emit: Listener, report: Report) -> int:
    from distributed import as_completed

    client = connect_scheduler(address)
    futures: dict[Any, RunTask] = {}
    try:
        info = client.scheduler_info()
        slots = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()) or 1
        emit("start", {"total": report.total, "skipped": report.skipped, "workers": slots})
        for t in todo:
            f = client.submit(run_task, root, t, pure=False, key=f"scorelab-run-{t.rel}-{os.getpid()}")
            futures[f] = t
        remaining = len(futures)
        emit("tick", {"running": min(slots, remaining)})
        for f in as_completed(list(futures)):
            task = futures[f]
            try:
                o = f.result()
                if o.status == "done" and not is_done(Path(root), task.rel):  # written where this machine cannot see
                    o = Outcome(task.rel, "failed", task.keys, task.seed, o.seconds,
                                f"the worker reported the run finished, but {Path(root) / task.rel} has no run.json "
                                "here: the Dask workers must share this file system (same absolute path)", "")
                finished(o)
            except Exception as e:  # noqa: BLE001 - a worker died or the task could not run there
                finished(Outcome(task.rel, "failed", task.keys, task.seed, 0.0, f"{type(e).__name__}: {e}", ""))
            remaining -= 1
            emit("tick", {"running": min(slots, remaining)})
        return slots
    except BaseException:
        client.cancel(list(futures))  # interrupted: leave nothing queued on the cluster
        raise
    finally:
        client.close()


class _Failures:
    """``failures.json``: the runs of the plan that failed and are still unfinished (kept across resumes)."""

    def __init__(self, root: Path, planned: set[str]):
        self.path = root / FAILURES
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                for e in json.loads(self.path.read_text()):
                    if e.get("run") in planned and not is_done(root, e["run"]):
                        self.entries[e["run"]] = e
            except (json.JSONDecodeError, TypeError, KeyError):
                self.entries = {}
        self.root = root

    def add(self, o: Outcome) -> None:
        self.entries[o.rel] = {"run": o.rel, "parameters": o.keys, "seed": o.seed, "error": o.error,
                               "traceback": o.traceback, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json(self.path, list(self.entries.values()))

    def clear(self, rel: str) -> None:
        if self.entries.pop(rel, None) is not None:
            write_json(self.path, list(self.entries.values()))

    def finish(self) -> None:
        if self.entries:
            write_json(self.path, list(self.entries.values()))
        elif self.path.exists():
            self.path.unlink()


def progress_listener(console, label: str, quiet: bool = False):
    """A rich progress bar for `execute`: runs done, running, failed, time left. Returns (listener, bar)."""
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("{task.fields[done]}/{task.total} done · {task.fields[running]} running · "
                              "[red]{task.fields[failed]} failed[/]"),
                   TimeElapsedColumn(), TextColumn("· left"), TimeRemainingColumn(),
                   console=console, disable=quiet, transient=False)
    state: dict[str, Any] = {"task": None, "done": 0, "failed": 0}

    def listener(event: str, payload: Any) -> None:
        if event == "start":
            state["done"] = payload["skipped"]
            state["task"] = bar.add_task(label, total=payload["total"], completed=payload["skipped"],
                                         running=0, failed=0, done=state["done"])
            return
        if state["task"] is None:
            return
        if event == "tick":
            bar.update(state["task"], running=payload["running"])
        elif event == "done":
            state["done"] += 1
            bar.update(state["task"], advance=1, done=state["done"])
        elif event == "failed":
            state["failed"] += 1
            bar.update(state["task"], advance=1, failed=state["failed"])
            bar.console.print(f"[red]run failed[/] ({escape(payload.describe())}): {escape(payload.error)}",
                              highlight=False, soft_wrap=True)

    return listener, bar
