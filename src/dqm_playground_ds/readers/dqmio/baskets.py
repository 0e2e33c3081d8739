"""Lean reading of one ``TBasket``: raw file bytes -> (entry bytes, entry offsets).

uproot's ``TBranch.basket`` spends most of a small basket's time in Python while holding the GIL
(an fsspec file opened per call, the model machinery), so threads cannot overlap it. Here a basket
costs one ``os.pread`` on a file descriptor kept open (local files) or one ``source.chunk`` call,
two ``struct`` unpacks and uproot's own ``decompress`` (zlib/zstd/lz4 release the GIL). The byte
layout and arithmetic are those of ``uproot.models.TBasket.Model_TBasket.read_members`` for free
(non-embedded) baskets, so the bytes and offsets are the same.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np
import uproot.compression
from uproot.source.chunk import Chunk
from uproot.source.cursor import Cursor

_KEY = struct.Struct(">ihiIhh")  # fNbytes, key version, fObjlen, fDatime, fKeylen, fCycle
_BASKET = struct.Struct(">Hiiii")  # fVersion, fBufferSize, fNevBufSize, fNevBuf, fLast
_OFFSETS = np.dtype(">i4")


class BasketError(ValueError):
    """The bytes at a basket's seek position are not a readable basket."""


class BasketReader:
    """Thread-safe reads of a file's free baskets (``pread`` on one descriptor, or the source)."""

    def __init__(self, path: str, source: Any) -> None:
        self._source = source
        self._fd: int | None = None
        local = path[7:] if path.startswith("file://") else path
        if "://" not in local and hasattr(os, "pread"):
            try:
                self._fd = os.open(local, os.O_RDONLY)
            except OSError:  # fall back to uproot's source
                self._fd = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _bytes(self, start: int, stop: int) -> np.ndarray:
        if self._fd is not None:
            raw = os.pread(self._fd, stop - start, start)
        else:
            raw = self._source.chunk(start, stop).raw_data
        out = np.frombuffer(raw, dtype=np.uint8)
        if len(out) != stop - start:
            raise BasketError(
                "the file is truncated or damaged: a record runs past the end of the file"
            )
        return out

    def read(self, seek: int, nbytes: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(data, byte offsets) of the basket at ``seek`` spanning ``nbytes`` (key included)."""
        raw = self._bytes(seek, seek + nbytes)
        if nbytes < _KEY.size:
            raise BasketError(f"basket of {nbytes} bytes is shorter than its key")
        fnbytes, _, objlen, _, keylen, _ = _KEY.unpack_from(raw.data, 0)
        if fnbytes != nbytes or not _KEY.size + _BASKET.size < keylen <= nbytes or objlen < 0:
            raise BasketError(
                f"basket key says {fnbytes} bytes, key length {keylen}, {objlen} uncompressed "
                f"(the branch says {nbytes} bytes)"
            )
        *_, last = _BASKET.unpack_from(raw.data, keylen - _BASKET.size - 1)
        compressed = fnbytes - keylen
        if compressed != objlen:
            chunk = Chunk.wrap(self._source, raw)
            out = uproot.compression.decompress(chunk, Cursor(keylen), {}, compressed, objlen)
            content = out.get(0, objlen, Cursor(0), {})
        else:
            content = raw[keylen:].copy()  # uncompressed: do not keep the whole read alive
        border = last - keylen
        if not 0 <= border <= objlen:
            raise BasketError(f"basket fLast {last} is outside its {objlen} bytes")
        if border == objlen:
            return content, None
        offsets = content[border:].view(_OFFSETS)[1:] - keylen
        offsets[-1] = border
        return content[:border], offsets
