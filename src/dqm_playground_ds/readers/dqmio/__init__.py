"""DQMIO reader (uproot only, no ROOT, no Kedro)."""

from dqm_playground_ds.readers.dqmio.errors import DQMIOError, IntegrityError, MissingMEError
from dqm_playground_ds.readers.dqmio.reader import (
    DQMIOFile,
    FileSummary,
    iter_dqmio,
    read_dqmio,
    resolve_duplicates,
)

__all__ = [
    "DQMIOError",
    "DQMIOFile",
    "FileSummary",
    "IntegrityError",
    "MissingMEError",
    "iter_dqmio",
    "read_dqmio",
    "resolve_duplicates",
]
