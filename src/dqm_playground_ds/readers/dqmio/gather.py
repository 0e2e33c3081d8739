"""Byte ranges of many entries in one decompressed buffer, as one (entries, bytes) array."""

from __future__ import annotations

import numpy as np

_SMALL_GATHER = 2048  # bytes per entry below which one fancy-index gather beats a slice loop


def gather(buf: np.ndarray, starts: np.ndarray, rel: int, nbytes: int) -> np.ndarray:
    """Bytes ``[start + rel, start + rel + nbytes)`` of every entry, as an (n, nbytes) uint8 array.

    Equally spaced entries (one ME in successive LS blocks of equal size) come back as a strided
    view without copying; otherwise a gather copies them.
    """
    n = len(starts)
    if n == 0:
        return np.empty((0, nbytes), dtype=np.uint8)
    begin = starts + rel
    if n > 1:
        step = int(begin[1] - begin[0])
        if step > 0 and (np.diff(begin) == step).all() and begin[-1] + nbytes <= len(buf):
            return np.lib.stride_tricks.as_strided(
                buf[int(begin[0]) :], shape=(n, nbytes), strides=(step, 1), writeable=False
            )
    if nbytes <= _SMALL_GATHER:
        index_type = np.int32 if len(buf) < 2**31 else np.int64
        offsets: np.ndarray = begin.astype(index_type)[:, None]
        return buf[offsets + np.arange(nbytes, dtype=index_type)]
    out = np.empty((n, nbytes), dtype=np.uint8)
    for i, b in enumerate(begin.tolist()):
        out[i] = buf[b : b + nbytes]
    return out
