"""Worker processes that die with their parent, even when it is killed with ``kill -9``.

A ``ProcessPoolExecutor`` worker blocked waiting for work outlives a parent killed by SIGKILL (no
``finally`` runs), holding its memory forever. Each worker therefore asks Linux to send it SIGKILL
when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and, where that is unavailable or the parent
thread that forked it is not the process, a watchdog thread exits it once its parent pid changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

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
