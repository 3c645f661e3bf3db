"""The Python API: load a scenario, simulate it, read a run's tables as DataFrames."""

from __future__ import annotations

import math
import platform
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import ValidationError

from ._version import __version__
from .runview import Run  # a finished run, for reading (runview.py)
from .config.loader import ConfigError, load_scenario, short
from .config.models import Scenario
from .engine.outputs import declared
from .engine.params import Params, compile_params
from .engine import cluster, compiled, runner, tables  # cluster imports distributed only when a scheduler is given
from .engine.checkpoint import check_shards, finished_shards, load_plan, load_shard, partial_dir, save_plan
from .engine.runner import Detail, default_workers, merge_metrics, plan_detail, plan_shards, run_shards
from .store import (
    OutputLock,
    check_replaceable,
    check_writable,
    commit_dir,
    distribution_table,
    metrics_table,
    prepare_detail,
    staging_dir,
    table_digests,
    write_detail,
    write_manifest,
    write_parquet,
)


def load(scenario: str | Path, **overrides: Any) -> Scenario:
    """A scenario from a preset name (``"rr1"``) or a TOML file; ``population=``, ``days=``, ``seed=`` override."""
    return load_scenario(scenario, **overrides)


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or the physical total where that is unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return os_total_memory()


def os_total_memory() -> int:  # pragma: no cover - fallback
    import os
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def state_bytes_per_citizen(params: Params) -> int:
    """Resident bytes per simulated citizen: score, listings, deterrence counters, misconduct counter."""
    return (params.score_dtype.itemsize + params.day_dtype.itemsize * len(params.bl_names)
            + params.deter_table.shape[0] + 1 + int(math.ceil(sum(p.citizen_bytes(c) for p, c in params.plugins))))


def estimate_memory(params: Params, detail: Detail, workers: int) -> int:
    """Peak bytes a run needs: shards in flight, candidate batches, kept ledger and citizen rows."""
    N = params.population
    shard = min(N, runner.shard_size_for(N))
    in_flight = min(workers, math.ceil(N / shard))
    per_shard = shard * (state_bytes_per_citizen(params) + 8) + 1_500_000 * 40 * max(1, params.n_behaviours)
    kept = 0 if detail.mode == "none" else math.ceil(N / detail.stride)
    per_day = params.expected_events_per_citizen_day()
    rows = kept * params.days * (per_day + sum(p.extra_rows(c, per_day) for p, c in params.plugins))
    # the kept rows are encoded as they grow (engine/tables.py): a worker holds at most two row groups of
    # blocks and columns (~80 bytes a row), and every kept row ends as its compressed Parquet (a few bytes;
    # 8 allowed) in the workers' parts and the files mapped here. The per-citizen walk (scenarios without
    # plugins) holds its shard's rows (72 bytes each) until the shard ends.
    shards = math.ceil(N / shard)
    per_shard_rows = rows / shards
    buffered = min(per_shard_rows, 2 * tables.ROW_GROUP) * 80 + (0 if params.plugins else per_shard_rows * 72)
    ledger = rows * 8 + in_flight * buffered
    citizens = kept * (48 + 4 * params.n_behaviours) * 3
    return int(in_flight * per_shard + ledger + citizens + 200e6)


BACKENDS = ("numpy", "jax")


def _jax_backend(backend: str, params: Params):
    """The jax_backend module when ``backend == "jax"`` (imported only then), None for numpy; ConfigError otherwise."""
    if backend not in BACKENDS:
        raise ConfigError("--backend", None, f"{backend!r} is not a backend; use one of: {', '.join(BACKENDS)}")
    if backend == "numpy":
        return None
    try:
        from .engine import jax_backend
    except ImportError:
        raise ConfigError("--backend", None, "jax is not installed; install with pip install 'scorelab[gpu]'") from None
    why = jax_backend.unsupported(params)
    if why:
        raise ConfigError("--backend", None, f"jax: {why}")
    return jax_backend


def simulate(scenario: Scenario | str | Path, seed: int | None = None, out: str | Path | None = None, *,
             population: int | None = None, days: int | None = None, ledger: str | None = None,
             workers: int | None = None, force: bool = False,
             progress: Callable[[int, int], None] | None = None, backend: str = "numpy",
             scheduler: Any = None) -> Run:
    """Run a scenario and write its run directory; returns the `Run`.

    ``out=None`` keeps the run in memory and leaves no directory behind (it is written to a temporary
    directory, read back and removed); `Run.save(dir)` writes it out later. Give ``out`` for large runs. ``ledger``: "all", "none", a number of citizens to
    keep detail for, or None (all up to 2 million citizens, else a 1-million sample). A run of several
    shards checkpoints each finished shard; `resume(out)` finishes a run that was killed.
    ``backend``: "numpy" (the sparse CPU kernel) or "jax" (the dense kernel on JAX's default device, GPU or
    CPU; RR-1-class scenarios only; needs the ``gpu`` extra). See docs/gpu.md.
    ``scheduler``: a Dask scheduler address (``"tcp://host:8786"``) or a ``distributed.Client``: the shards
    run on that cluster's workers and come back here to be written; the same seed gives the same bytes as
    a local run. Needs the ``sweep`` extra; see docs/performance.md.
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if population is not None or days is not None:
        meta = sc.scenario.model_copy(update={k: v for k, v in (("population", population), ("days", days)) if v})
        sc = Scenario.model_validate({**sc.model_dump(), "scenario": meta.model_dump()})
    seed = sc.scenario.seed if seed is None else seed
    if isinstance(scheduler, str):  # reached before anything is written: a bad address leaves nothing
        _check_scheduler_options(backend, workers)
        client = cluster.connect_scheduler(scheduler)
        try:
            return simulate(sc, seed, out, ledger=ledger, workers=workers, force=force, progress=progress,
                            backend=backend, scheduler=client)
        finally:
            client.close()
    client = _cluster(scheduler, backend, workers)
    if out is None:
        tmp = Path(tempfile.mkdtemp(prefix=f"scorelab-{sc.scenario.name}-"))
        try:
            run = simulate(sc, seed, tmp / "run", ledger=ledger, workers=workers, progress=progress, backend=backend,
                           scheduler=client)
            return Run.into_memory(run.path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(str(out), None, "output directory exists; choose another --out or pass --force to replace it")
    if force:
        check_replaceable(out)  # only a scorelab run directory is ever deleted
    check_writable(out)
    with OutputLock(out):
        if out.exists() and not force:  # another run finished it while we waited for nothing
            raise ConfigError(str(out), None, "output directory exists; choose another --out or pass --force to replace it")
        stage = partial_dir(out)
        if stage.exists():
            if not force:
                raise ConfigError(str(out), None, f"an unfinished run of this directory exists ({stage}); "
                                                  "finish it with `scorelab run --resume` or pass --force to start over")
            shutil.rmtree(stage)
        plan = {"scenario": sc.model_dump(mode="json"), "seed": seed, "ledger": ledger, "backend": backend,
                "shard_size": runner.shard_size_for(sc.scenario.population), "scorelab": __version__}
        try:
            return _execute(sc, seed, out, stage, plan, ledger, workers, force, progress, resumed=False,
                            backend=backend, client=client)
        except OSError as e:  # a full disk, a folder removed under us: keep only what can be resumed
            from .atomic import describe_os_error

            kept = len(finished_shards(stage)) if stage.is_dir() else 0
            if not kept:
                shutil.rmtree(stage, ignore_errors=True)
                raise ConfigError(str(out), None, f"{describe_os_error(e)}; nothing was kept") from None
            raise ConfigError(str(out), None, f"{describe_os_error(e)}; {kept} finished shard(s) are kept: once the "
                                              f"cause is fixed, finish with `scorelab run --resume {out}`") from None


def _check_scheduler_options(backend: str, workers: int | None) -> None:
    if backend == "jax":
        raise ConfigError("--scheduler", None, "the JAX backend runs on this machine's device; "
                                               "use --backend numpy with --scheduler")
    if workers is not None:
        raise ConfigError("--workers", None, "not used with --scheduler (the cluster's workers run the shards); "
                                             "give one or the other")


def _cluster(scheduler: Any, backend: str, workers: int | None):
    """``scheduler`` checked as a Dask client (None: run here): workers there, versions as here."""
    if scheduler is None:
        return None
    if not cluster.is_client(scheduler):
        raise ConfigError("scheduler", None, f"{short(scheduler)} is neither a scheduler address "
                                             "(such as 'tcp://host:8786') nor a distributed.Client")
    _check_scheduler_options(backend, workers)
    cluster.prepare(scheduler)
    return scheduler


def resume(out: str | Path, workers: int | None = None, progress: Callable[[int, int], None] | None = None,
           scheduler: Any = None) -> Run:
    """Finish a run that was killed part-way: only the shards without a checkpoint are simulated
    (on the Dask cluster of ``scheduler``, an address or a client, if given: see `simulate`)."""
    if isinstance(scheduler, str):
        _check_scheduler_options("numpy", workers)
        client = cluster.connect_scheduler(scheduler)
        try:
            return resume(out, workers=workers, progress=progress, scheduler=client)
        finally:
            client.close()
    out = Path(out)
    stage = partial_dir(out)
    plan = load_plan(stage)
    if plan is None:
        if (out / "run.json").exists():
            raise ConfigError(str(out), None, "this run is already complete; nothing to resume")
        raise ConfigError(str(out), None, f"no unfinished run to resume here (no checkpoint in {stage})")
    try:
        sc = Scenario.model_validate(plan["scenario"])
    except ValidationError as e:
        raise ConfigError(str(stage / "plan.json"), "scenario",
                          f"the checkpoint's scenario is not valid for this scorelab ({e.errors()[0]['msg']}); "
                          f"remove {stage} and run the scenario again") from None
    backend = plan.get("backend", "numpy")
    if backend not in BACKENDS:
        raise ConfigError(str(stage / "plan.json"), "backend", f"{short(backend)} is not a backend; the checkpoint is damaged")
    if backend == "numpy" and plan.get("shard_size") != runner.shard_size_for(sc.scenario.population):
        raise ConfigError(str(out), "shard_size", f"the run was started with shards of {plan.get('shard_size')} "
                                                  f"citizens, this scorelab uses {runner.shard_size_for(sc.scenario.population)}")
    client = _cluster(scheduler, backend, workers)
    with OutputLock(out):
        return _execute(sc, plan["seed"], out, stage, plan, plan.get("ledger"), workers, False, progress, resumed=True,
                        backend=backend, client=client)


def _execute(sc: Scenario, seed: int, out: Path, stage: Path, plan: dict[str, Any], ledger: str | None,
             workers: int | None, force: bool, progress, resumed: bool, backend: str = "numpy",
             client=None) -> Run:
    params = compile_params(sc)
    compiled.requested_kernel()  # a bad SCORELAB_KERNEL is refused before anything is written
    jaxb = _jax_backend(backend, params)
    detail = plan_detail(params.population, ledger)
    workers = workers or default_workers()
    need = estimate_memory(params, detail, 0 if client is not None else workers)  # on Dask, no shard runs here
    have = available_memory()
    if need > 0.9 * have:
        raise ConfigError(
            "--population", None,
            f"{params.population:,} citizens with {detail.describe(params.population)} need about "
            f"{need / 2**30:.1f} GiB; this machine has {have / 2**30:.1f} GiB available. "
            "Keep less detail (--ledger 1000000 or --ledger none) or simulate fewer citizens.")

    shard_size = jaxb.shard_size() if jaxb else None
    specs = plan_shards(params.population, seed, detail, shard_size=shard_size)
    if jaxb and (why := jaxb.check_detail(specs)):
        raise ConfigError("--ledger", None, f"jax: {why}")
    checkpoints = len(specs) > 1  # a single shard has nothing to resume from
    done = finished_shards(stage) if resumed else {}
    if resumed:
        check_shards(stage, done, len(specs))
    todo = [s for s in specs if s.index not in done]
    processes = cluster.slots(client) if client is not None else workers
    # a resumed run keeps the random streams its checkpointed shards were drawn from (plan "streams")
    kernel, kernel_why = ("numpy", "the JAX backend") if jaxb else compiled.choose(
        params, params.days * max((s.size for s in todo), default=0) * math.ceil(len(todo) / max(1, processes)),
        streams=plan.get("streams", "reference") if resumed else None)
    plan["streams"] = "walk" if kernel == "walk" else "reference"
    if checkpoints and not resumed:
        save_plan(stage, plan)
    t0 = time.perf_counter()
    fresh = run_shards(params, specs, workers=workers, progress=progress, skip=set(done), backend=backend,
                       checkpoint=stage if checkpoints else None, client=client, kernel=kernel)
    sim_s = time.perf_counter() - t0
    simulated = sum(s.size for s in specs if s.index not in done)
    by_index = {r.index: r for r in fresh}
    results = [by_index[s.index] if s.index in by_index else load_shard(done[s.index], mapped=True) for s in specs]

    tmp = staging_dir(out)
    try:
        sizes, merged = merge_metrics(params, results)
        metrics = metrics_table(params, sizes, merged)
        prepare_detail(params, results)  # in place: a raw shard (JAX, an old checkpoint) is encoded here
        # the tables are written in threads: events and citizens are their shards' Parquet parts (encoded where
        # each shard ran) joined, at the speed of a file copy; encoding the small ones releases the GIL
        with ThreadPoolExecutor(max_workers=2) as pool:
            writing = {"events": pool.submit(write_detail, params, results, "events", tmp / "events.parquet"),
                       "citizens": pool.submit(write_detail, params, results, "citizens", tmp / "citizens.parquet"),
                       "metrics": pool.submit(write_parquet, metrics, tmp / "metrics.parquet")}
            writing["distribution"] = pool.submit(write_parquet, distribution_table(params, results),
                                                  tmp / "distribution.parquet")
            rows = {k: w.result() for k, w in writing.items()}  # re-raises a failed write (a full disk) here
        wall = time.perf_counter() - t0
        manifest = {
            "scorelab": __version__,
            "scenario": sc.model_dump(mode="json"),
            "seed": seed,
            "population": params.population,
            "days": params.days,
            "group_sizes": dict(zip(params.groups, map(int, sizes))),
            "detail": {"mode": detail.mode, "stride": detail.stride, "kept": "" if detail.mode == "none" else detail.describe(params.population),
                       "event_rows": rows["events"], "citizens_rows": rows["citizens"]},
            "shards": len(specs),
            "shard_size": shard_size or runner.shard_size_for(params.population),
            "resumed_shards": len(done),
            "workers": 1 if jaxb else min(cluster.slots(client) if client is not None else workers,
                                          max(1, len(specs) - len(done))),
            **({"scheduler": cluster.describe(client)} if client is not None else {}),
            "backend": backend,
            "device": jaxb.device_description() if jaxb else "cpu",
            "kernel": {"name": kernel, "why": kernel_why},
            "bytes_per_citizen_state": state_bytes_per_citizen(params) + (compiled.STAMP_BYTES if kernel == "numba" else 0),
            "wall_seconds": round(wall, 4),
            "simulate_seconds": round(sim_s, 4),
            # throughput of this call's simulation alone: a resumed run simulates only its missing shards
            "simulated_agent_days": simulated * params.days,
            "agent_days_per_second": simulated * params.days / wall if simulated else 0.0,
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "pyarrow": __import__("pyarrow").__version__,
                         "pydantic": __import__("pydantic").__version__,
                         **({"jax": __import__("jax").__version__} if jaxb else {}),
                         **({"numba": __import__("numba").__version__} if kernel == "numba" else {})},
            "tables": ["metrics.parquet", "citizens.parquet", "events.parquet", "distribution.parquet"],
            "mechanisms": params.plugin_names,
            "outputs": [{"name": m.name, "kind": m.kind, "unit": m.unit, "meaning": m.meaning}
                        for m in declared(params)],  # every column of metrics.parquet but day, group, population
        }
        manifest["sha256"] = table_digests(tmp)  # check_run verifies them: a damaged page is never read as numbers
        write_manifest(tmp / "run.json", manifest)
        commit_dir(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    run = Run(out.resolve())
    run.__dict__["params"] = params  # what `params` would compile again from the manifest
    return run

