"""A table handed from a node to its dataset in parts, so that it never exists whole in memory.

The scoring node's outputs grow with LS x strategies (x MEs for the per-ME scores: 13M rows at 100k
LS, 40M at 300k); concatenated, then converted to Arrow by the writer, they held three copies of
themselves. A :class:`FrameParts` is a list of functions each building one part (one strategy's
rows) with the same columns; ``ParquetTableDataset`` writes it part by part into one Parquet file,
which loads back as the frame ``to_frame()`` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd


class FrameParts:
    """Parts of one table, built when iterated; each is given exactly ``columns`` (a column a
    part lacks is NaN), as ``pd.concat`` of the parts would have them. ``columns=None``: every
    part has the columns of the first."""

    def __init__(
        self, parts: Sequence[Callable[[], pd.DataFrame]], columns: Sequence[str] | None = None
    ):
        self.parts = list(parts)
        self.columns = None if columns is None else list(columns)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for make in self.parts:
            part = make()
            if self.columns is None:
                self.columns = list(part.columns)
            extra = [c for c in part.columns if c not in self.columns]
            if extra:
                raise ValueError(f"a part has columns {extra} outside the table's {self.columns}")
            missing = {c: np.nan for c in self.columns if c not in part.columns}
            yield part.assign(**missing)[self.columns] if missing else part[self.columns]

    def to_frame(self) -> pd.DataFrame:
        """The whole table (for callers that want it in memory)."""
        frames = list(self)
        if not frames:
            return pd.DataFrame(columns=self.columns or [])
        return pd.concat(frames, ignore_index=True)


def as_frame(table: pd.DataFrame | FrameParts) -> pd.DataFrame:
    """The frame of a node input: a dataset loads these tables as frames, but where an output is
    kept in memory (a MemoryDataset) the next node receives the parts themselves."""
    return table.to_frame() if isinstance(table, FrameParts) else table
