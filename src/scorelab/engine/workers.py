"""Worker processes that never outlive the scorelab process that started them.

`die_with_parent` runs first in every worker (as the pool's initializer): on Linux it asks the kernel to
send the worker SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG), so a `kill -9` of a multi-worker
`scorelab run` or sweep leaves no orphan computing for nobody; it then checks that the parent did not
die before the request was made. Elsewhere a thread polls the parent instead. `stop_pool` ends the
workers of an interrupted pool at once rather than letting each finish its shard.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


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
