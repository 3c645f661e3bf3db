"""Worker processes that never outlive the scorelab process that started them.

`die_with_parent` runs first in every worker (as the pool's initializer): on Linux it asks the kernel to
send the worker SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG), so a `kill -9` of a multi-worker
`scorelab run` or sweep leaves no orphan computing for nobody; it then checks that the parent did not
die before the request was made. Elsewhere a thread polls the parent instead. `stop_pool` ends the
workers of an interrupted pool at once rather than letting each finish its shard. `simulating_process`
marks a process that simulates and exits (a `scorelab` command, a pool worker) and keeps its freed arrays
for reuse instead of faulting fresh pages in for each (`reuse_freed_memory`); `is_simulating_process` tells
the code that may then take a process-wide shortcut (compiled.import_numba) that a notebook's kernel or a
Dask worker should not be given.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
HEAP_ARRAYS = 256 << 20  # arrays up to this size come from malloc's heap, not from a fresh mapping each
_reusing = False
_simulating = False


def simulating_process() -> None:
    """Mark this process as one that simulates and exits (a `scorelab` command or one of its pool workers,
    which inherit the mark), and `reuse_freed_memory`. Not for a notebook's kernel or a Dask worker."""
    global _simulating
    _simulating = True
    reuse_freed_memory()


def is_simulating_process() -> bool:
    return _simulating


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to serve arrays up to 256 MiB from its heap and to keep what is freed there,
    instead of mapping fresh pages for every large array and unmapping them when it is freed (its default
    for anything over 32 MiB, and, until a first free raises its threshold, over 128 KiB). A day's
    temporaries (4-64 MiB each in a 500,000-citizen shard) are then reused rather than faulted in again:
    a 64 MiB array took 6.0 ms to allocate and fill, 2.3 ms with this (measured on the benchmark machine).
    What a process frees stays reserved for its own reuse until it ends (peak memory of a 1 M x 120 run
    rose by 0-15%, at most 71 MiB, measured; a 20 M-citizen run of 20 shards stayed as flat as before), so
    this is for processes that simulate and exit (`scorelab` commands and their pool workers), not for a
    notebook's kernel or a Dask worker, whose memory manager watches the resident size. Once per process;
    False where the C library is not glibc."""
    global _reusing
    if _reusing:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, HEAP_ARRAYS)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 * HEAP_ARRAYS))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    _reusing = ok
    return ok


def die_with_parent(ppid: int) -> None:
    # the parent decides: Ctrl-C (SIGINT to the whole process group) is its to handle, and SIGTERM from
    # stop_pool ends a worker quietly instead of raising the parent's KeyboardInterrupt handler here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below still watches
            pass
    if os.getppid() != ppid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != ppid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def start_worker(ppid: int) -> None:
    """The initializer of a pool of simulating workers: `die_with_parent`, then `simulating_process`."""
    die_with_parent(ppid)
    simulating_process()


def stop_pool(pool) -> None:
    """Cancel what has not started and terminate the workers of a ProcessPoolExecutor (interrupted or failed)."""
    procs = list(getattr(pool, "_processes", {}).values())  # private, but the only handle on the workers
    calls = getattr(pool, "_call_queue", None)
    pool.shutdown(wait=False, cancel_futures=True)
    if calls is not None:
        # the queue's feeder thread may be blocked writing shards to a pipe no live worker reads any more;
        # joining it at exit would hang the interrupted process (and `communicate()` of whoever waits on it)
        calls.cancel_join_thread()
    for p in procs:
        try:
            p.terminate()
        except (OSError, AttributeError, ValueError):
            pass
    for p in procs:
        try:
            p.join(timeout=2)
            if p.is_alive():
                p.kill()
                p.join(timeout=2)
        except (OSError, AttributeError, ValueError, AssertionError):
            pass


def terminate_as_interrupt() -> None:
    """In the main process: SIGTERM is handled like Ctrl-C (workers stopped, checkpoints kept, exit 130)."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
