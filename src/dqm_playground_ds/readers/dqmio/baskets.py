"""Lean reading of one ``TBasket``: raw file bytes -> (entry bytes, entry offsets).

uproot's ``TBranch.basket`` spends most of a small basket's time in Python while holding the GIL
(an fsspec file opened per call, the model machinery), so threads cannot overlap it. Here a basket
costs one ``os.pread`` on a file descriptor kept open (local files) or one ``source.chunk`` call,
two ``struct`` unpacks and one call of the decompressor (zlib and zstd release the GIL). A single
ZSTD or ZLIB block, the case of every DQMIO basket, goes straight to the library uproot uses for it
(cramjam, zlib); other algorithms and multi-block baskets go through uproot's own ``decompress``.
The byte layout and arithmetic are those of ``uproot.models.TBasket.Model_TBasket.read_members``
for free (non-embedded) baskets, so the bytes and offsets are the same.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any

import cramjam
import numpy as np
import uproot.compression
from uproot.source.chunk import Chunk
from uproot.source.cursor import Cursor

_KEY = struct.Struct(">ihiIhh")  # fNbytes, key version, fObjlen, fDatime, fKeylen, fCycle
_BASKET = struct.Struct(">Hiiii")  # fVersion, fBufferSize, fNevBufSize, fNevBuf, fLast
_OFFSETS = np.dtype(">i4")
_BLOCK_HEADER = 9  # ROOT compression block: algorithm (2), method (1), sizes (3 + 3, little-endian)


def decompress(raw: bytes, start: int, compressed: int, objlen: int, source: Any) -> np.ndarray:
    """The ``objlen`` bytes that ``raw[start:start + compressed]`` (ROOT compression blocks) hold."""
    if compressed > _BLOCK_HEADER:
        head = raw[start : start + _BLOCK_HEADER]
        size = head[3] | head[4] << 8 | head[5] << 16
        out_size = head[6] | head[7] << 8 | head[8] << 16
        if size + _BLOCK_HEADER == compressed and out_size == objlen and head[:2] in _FAST:
            block = memoryview(raw)[start + _BLOCK_HEADER : start + compressed]
            out = np.frombuffer(_FAST[bytes(head[:2])](block, objlen), dtype=np.uint8)
            if len(out) != objlen:
                raise BasketError(f"a block decompressed to {len(out)} bytes, not {objlen}")
            return out
    chunk = Chunk.wrap(source, np.frombuffer(raw, dtype=np.uint8))
    result = uproot.compression.decompress(chunk, Cursor(start), {}, compressed, objlen)
    return np.asarray(result.get(0, objlen, Cursor(0), {}))


_FAST: dict[bytes, Any] = {
    b"ZS": lambda block, n: cramjam.zstd.decompress(block, output_len=n),
    b"ZL": lambda block, n: zlib.decompress(block, bufsize=n),
}


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

    def _bytes(self, start: int, stop: int) -> bytes:
        if self._fd is not None:
            raw = os.pread(self._fd, stop - start, start)
        else:
            raw = bytes(self._source.chunk(start, stop).raw_data)
        if len(raw) != stop - start:
            raise BasketError(
                "the file is truncated or damaged: a record runs past the end of the file"
            )
        return raw

    def read(self, seek: int, nbytes: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(data, byte offsets) of the basket at ``seek`` spanning ``nbytes`` (key included)."""
        raw = self._bytes(seek, seek + nbytes)
        if nbytes < _KEY.size:
            raise BasketError(f"basket of {nbytes} bytes is shorter than its key")
        fnbytes, _, objlen, _, keylen, _ = _KEY.unpack_from(raw, 0)
        if fnbytes != nbytes or not _KEY.size + _BASKET.size < keylen <= nbytes or objlen < 0:
            raise BasketError(
                f"basket key says {fnbytes} bytes, key length {keylen}, {objlen} uncompressed "
                f"(the branch says {nbytes} bytes)"
            )
        *_, last = _BASKET.unpack_from(raw, keylen - _BASKET.size - 1)
        compressed = fnbytes - keylen
        if compressed != objlen:
            content = decompress(raw, keylen, compressed, objlen, self._source)
        else:  # uncompressed: do not keep the whole read alive
            content = np.frombuffer(raw, dtype=np.uint8, offset=keylen).copy()
        border = last - keylen
        if not 0 <= border <= objlen:
            raise BasketError(f"basket fLast {last} is outside its {objlen} bytes")
        if border == objlen:
            return content, None
        offsets = content[border:].view(_OFFSETS)[1:] - keylen
        offsets[-1] = border
        return content[:border], offsets
