"""Dask: reaching a scheduler, and running one run's shards on its workers.

Sweeps (`experiments/execute.py`) send whole runs to a cluster; `scorelab run --scheduler` sends the shards
of one run (`runner.run_shards(..., client=...)`). Both reach the scheduler through `connect_scheduler`
before anything is written, so a wrong address ends in one line (a `ConfigError`) and leaves nothing behind.

A shard is plain data (`Params` once per worker, a `ShardSpec` per task) and its `ShardResult` comes back
to the machine that started the run, which merges and writes the tables exactly as a local run does: the
cut of the population and the seeds depend on N alone, so the bytes are the same as with local processes.
``distributed`` is imported only here and only when a scheduler is given.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from ..config.loader import ConfigError, short

CONNECT_TIMEOUT = "15s"  # how long to try reaching a Dask scheduler (and to wait for its first worker)


def connect_scheduler(address: str):
    """A Dask client of ``address``; ConfigError (never a traceback) when Dask is missing, the address is
    malformed or the scheduler does not answer."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--scheduler", None, "Dask is not installed; pip install 'scorelab[sweep]'") from None
    if not isinstance(address, str) or not address.strip():
        raise ConfigError("--scheduler", None, f"{short(str(address))} is not a scheduler address; "
                                               "give one such as tcp://host:8786")
    try:
        return Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise ConfigError("--scheduler", None, f"cannot reach the Dask scheduler at {short(address)}: {e}") from None
    except (ValueError, TypeError) as e:
        raise ConfigError("--scheduler", None, f"{short(address)} is not a scheduler address ({e}); "
                                               "give one such as tcp://host:8786") from None


def check_scheduler(address: str | None) -> None:
    """Reach the scheduler before anything is written (then let go): a bad address leaves no directory."""
    if address:
        connect_scheduler(address).close()


def is_client(obj: Any) -> bool:
    """A `distributed.Client` (or anything that submits and gathers like one)."""
    return all(hasattr(obj, a) for a in ("submit", "scatter", "scheduler_info", "run"))


def describe(client) -> str:
    """The scheduler's address, for messages and run.json."""
    return str(getattr(getattr(client, "scheduler", None), "address", None) or client)


def _worker_versions() -> dict[str, str]:  # runs on each Dask worker
    import numpy

    from .._version import __version__

    return {"scorelab": __version__, "numpy": numpy.__version__}


def prepare(client) -> int:
    """Check the cluster before a run writes anything: it has workers (waiting up to CONNECT_TIMEOUT for the
    first), and each runs the scorelab and numpy of this machine (other versions could give other bytes).
    Returns the number of worker threads."""
    where = short(describe(client))
    if not client.scheduler_info().get("workers"):
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (TimeoutError, OSError):
            raise ConfigError("--scheduler", None, f"the Dask scheduler at {where} has no workers; "
                                                   "start some with `dask worker ADDRESS`") from None
    mine = _worker_versions()
    try:
        theirs = client.run(_worker_versions)
    except Exception as e:  # noqa: BLE001 - a worker that cannot even import scorelab
        raise ConfigError("--scheduler", None, f"the Dask workers of {where} cannot run scorelab "
                                               f"({type(e).__name__}: {str(e)[:300]}); install scorelab "
                                               f"{mine['scorelab']} on every worker") from None
    for worker, versions in sorted(theirs.items()):
        if versions != mine:
            raise ConfigError("--scheduler", None, f"the Dask worker {short(worker)} runs scorelab "
                                                   f"{versions.get('scorelab')} with numpy {versions.get('numpy')}, "
                                                   f"this machine scorelab {mine['scorelab']} with numpy "
                                                   f"{mine['numpy']}; install the same on every worker")
    return slots(client)


def slots(client) -> int:
    """Worker threads on the cluster now (what run.json records as ``workers``)."""
    info = client.scheduler_info()
    return sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()) or 1


def run_shards_dask(client, params, todo: list, days: int, progress: Callable[[int, int], None] | None,
                    done: Callable[[Any], None] | None, kernel: str = "numpy") -> list:
    """Simulate the shards ``todo`` on the cluster of ``client``; results in completion order.

    ``done(result)`` runs here, on this machine, as each shard comes back (checkpoints are written there),
    so the workers need not see this machine's files. Interrupted: nothing is left queued on the cluster."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    from .runner import run_shard  # the shard and its table columns built on the Dask worker

    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - older distributed
        KilledWorker = RuntimeError  # noqa: N806

    total = len(todo) * days
    token = uuid.uuid4().hex[:12]
    futures: list[Any] = []
    results = []
    try:
        shared = client.scatter(params, broadcast=True, hash=False)  # the compiled scenario, once per worker
        futures = [client.submit(run_shard, shared, spec, None, kernel, pure=False,
                                 key=f"scorelab-shard-{spec.index}-{token}") for spec in todo]
        if progress:
            progress(0, total)
        for f in as_completed(futures):
            try:
                r = f.result()
            except (KilledWorker, FutureCancelledError) as e:
                raise ConfigError("--scheduler", None, f"a shard could not finish on the Dask cluster at "
                                                       f"{short(describe(client))} ({type(e).__name__}: "
                                                       f"{str(e)[:300]}); the finished shards are kept: "
                                                       "finish with `scorelab run --resume DIR`") from None
            if done:
                done(r)
            results.append(r)
            if progress:
                progress(len(results) * days, total)
    except BaseException:
        client.cancel(futures)  # interrupted or failed: leave nothing queued on the cluster
        raise
    return results
