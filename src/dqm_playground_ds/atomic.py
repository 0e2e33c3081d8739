"""Atomic local writes: a later step never trusts a half-written file, a failed write leaves none.

Temporaries are named ``.tmp-<pid>@<host>-<random>`` beside their target, so a process killed with
``kill -9`` (which no ``finally`` survives) leaves a temporary that the next run can recognise as
stale (its writer is gone) and remove, without touching those of a live writer on another host.
The final file gets the mode a plain ``open()`` would give (0666 minus the umask, 0644 by default),
not ``mkstemp``'s 0600: a group-shared volume needs group read/write.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"
FOREIGN_STALE_SECONDS = 24 * 3600  # a temporary of another host is stale after a day


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic read-and-restore
    os.umask(mask)
    return mask


def _prefix() -> str:
    return f"{TMP_PREFIX}{os.getpid()}@{socket.gethostname()}-"


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[str], Any], suffix: str = ""
) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The rename is atomic on one filesystem, so ``path`` is either the old file or the whole new one;
    the temporary file is removed when ``write`` fails or is interrupted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(), suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(tmp: Path, now: float | None = None) -> bool:
    """A temporary whose writer is gone: a dead process of this host, or an old one of another."""
    name = tmp.name[len(TMP_PREFIX) :]
    pid_text, _, rest = name.partition("@")
    host = rest.rsplit("-", 1)[0]
    try:
        age = (now or time.time()) - tmp.stat().st_mtime
    except OSError:
        return False
    if not pid_text.isdigit() or not rest:  # an older naming: judge by age alone
        return age > FOREIGN_STALE_SECONDS
    if host == socket.gethostname():
        return not _alive(int(pid_text))
    return age > FOREIGN_STALE_SECONDS


def remove_stale_temporaries(*folders: str | os.PathLike[str]) -> list[Path]:
    """Delete stale ``.tmp-*`` files directly in ``folders``; return what was removed."""
    removed = []
    for folder in folders:
        for tmp in Path(folder).glob(f"{TMP_PREFIX}*"):
            if tmp.is_file() and is_stale(tmp):
                try:
                    tmp.unlink()
                    removed.append(tmp)
                except OSError:
                    pass
    return removed
