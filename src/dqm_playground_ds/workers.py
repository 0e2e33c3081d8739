"""Worker processes that die with their parent, even when it is killed with ``kill -9``.

A ``ProcessPoolExecutor`` worker blocked waiting for work outlives a parent killed by SIGKILL (no
``finally`` runs), holding its memory forever. Each worker therefore asks Linux to send it SIGKILL
when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and, where that is unavailable or the parent
thread that forked it is not the process, a watchdog thread exits it once its parent pid changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 1.0


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watchdog(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # orphaned: nothing to report to
        threading.Event().wait(WATCHDOG_SECONDS)


def die_with_parent(parent: int) -> None:
    """Pool initializer: tie this worker's life to ``parent``'s."""
    _set_pdeathsig()
    if os.getppid() != parent:  # the parent died before we got here
        os._exit(1)
    threading.Thread(target=_watchdog, args=(parent,), name="parent-watchdog", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers exit when this process dies."""
    return ProcessPoolExecutor(
        max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)
    )


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, bounded by a cgroup v2 CPU quota (a pod's limit)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def resolve_jobs(n_jobs: int | None) -> int:
    """``None``: every usable CPU; ``-1`` likewise; otherwise at least 1."""
    if n_jobs is None or n_jobs == -1:
        return usable_cpus()
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, -1 or null, got {n_jobs}")
    return n_jobs


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None  # picklable, formatted where it arose
        record.exc_info = record.exc_text = None
        self.records.append(record)


def _logged(fn: Callable[..., Any], *args: Any) -> tuple[Any, list[logging.LogRecord]]:
    """Run ``fn`` in a worker, keeping its log records for the parent to emit."""
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    level = root.level
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        return fn(*args), collect.records
    finally:
        root.removeHandler(collect)
        root.setLevel(level)


def parallel_map(
    fn: Callable[..., Any],
    tasks: Iterable[tuple[Any, ...]],
    n_jobs: int,
    n_tasks: int | None = None,
) -> list[Any]:
    """``[fn(*t) for t in tasks]``, in order, over ``n_jobs`` loky worker processes.

    ``tasks`` may be a generator (give ``n_tasks``): a task's inputs are then built only when a
    worker is about to take it (a few ahead), so one ME's arrays are alive at a time, not all.

    loky starts clean interpreters (a forked child of a process whose OpenMP/BLAS threads are
    running can hang forever) and hands large arrays over as memory maps. Each result depends on
    its task alone, so the output is the same whatever ``n_jobs``; what the workers log is logged
    here, through this process's handlers (Kedro's console, files, test capture).
    """
    n = len(tasks) if n_tasks is None else n_tasks  # type: ignore[arg-type]
    if n_jobs <= 1 or n < 2:
        return [fn(*t) for t in tasks]
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=min(n_jobs, n), backend="loky", return_as="generator")(
        delayed(_logged)(fn, *t) for t in tasks
    )
    results = []
    for result, records in out:
        for record in records:
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        results.append(result)
    return results
