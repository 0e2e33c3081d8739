"""Lean reading of one ``TBasket``: raw file bytes -> (entry bytes, entry offsets).

uproot's ``TBranch.basket`` spends most of a small basket's time in Python while holding the GIL
(an fsspec file opened per call, the model machinery), so threads cannot overlap it. Here a basket
costs one ``os.pread`` on a file descriptor kept open (local files) or one ``source.chunk`` call,
three ``struct`` unpacks (key, basket header, entry offsets) and one call of the decompressor,
which releases the GIL. A single ZSTD or ZLIB block, the case of every DQMIO basket, is
decompressed by cramjam (the library uproot uses) straight into a buffer, reusable per thread;
other algorithms and multi-block baskets go through uproot's own ``decompress``.
The byte layout and arithmetic are those of ``uproot.models.TBasket.Model_TBasket.read_members``
for free (non-embedded) baskets, so the bytes and offsets are the same.
"""

from __future__ import annotations

import operator
import os
import struct
import threading
from itertools import repeat
from typing import Any

import cramjam
import numpy as np
import uproot.compression
from uproot.source.chunk import Chunk
from uproot.source.cursor import Cursor

_KEY = struct.Struct(">ihiIhh")  # fNbytes, key version, fObjlen, fDatime, fKeylen, fCycle
_BASKET = struct.Struct(">Hiiii")  # fVersion, fBufferSize, fNevBufSize, fNevBuf, fLast
_SCRATCH_MIN = 1 << 20  # bytes; a DQMIO basket decompresses to ~0.1-1 MB
_OFFSETS = np.dtype(">i4")
_BLOCK_HEADER = 9  # ROOT compression block: algorithm (2), method (1), sizes (3 + 3, little-endian)


def decompress(
    raw: bytes, start: int, compressed: int, objlen: int, source: Any, out: np.ndarray | None = None
) -> np.ndarray:
    """The ``objlen`` bytes that ``raw[start:start + compressed]`` (ROOT compression blocks) hold.

    A single ZSTD or ZLIB block is decompressed straight into ``out`` (at least ``objlen + 1``
    bytes; a view of it is returned) or into a fresh array; a block that does not decompress to
    exactly ``objlen`` bytes is refused. Reusing ``out`` matters: a basket's 100+ kB output is
    above malloc's mmap threshold, so every fresh buffer is mapped and page-faulted anew, and
    those page faults serialize the decompressing threads (on this project's 2-core VM two
    threads decompress 1.2x faster than one into fresh buffers, 1.8x into reused ones).
    """
    if compressed > _BLOCK_HEADER:
        head = raw[start : start + _BLOCK_HEADER]
        size = head[3] | head[4] << 8 | head[5] << 16
        out_size = head[6] | head[7] << 8 | head[8] << 16
        algorithm = bytes(head[:2])
        if size + _BLOCK_HEADER == compressed and out_size == objlen and algorithm in _INTO:
            block = memoryview(raw)[start + _BLOCK_HEADER : start + compressed]
            if out is None:
                out = np.empty(objlen + 1, dtype=np.uint8)
            # one byte of room more than expected: a longer stream is caught, not cut
            n = _INTO[algorithm](block, out[: objlen + 1])
            if n != objlen:
                raise BasketError(f"a block decompressed to {n} bytes, not {objlen}")
            return out[:n]
    chunk = Chunk.wrap(source, np.frombuffer(raw, dtype=np.uint8))
    result = uproot.compression.decompress(chunk, Cursor(start), {}, compressed, objlen)
    return np.asarray(result.get(0, objlen, Cursor(0), {}))


_INTO: dict[bytes, Any] = {  # (block, output buffer) -> bytes written; both release the GIL
    b"ZS": cramjam.zstd.decompress_into,
    b"ZL": cramjam.zlib.decompress_into,
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
        self._scratch = threading.local()

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

    def _scratch_buffer(self, nbytes: int) -> np.ndarray:
        """This thread's reusable decompression buffer, grown to ``nbytes`` when smaller."""
        buffer: np.ndarray | None = getattr(self._scratch, "buffer", None)
        if buffer is None or len(buffer) < nbytes:
            buffer = self._scratch.buffer = np.empty(max(nbytes, _SCRATCH_MIN), dtype=np.uint8)
        return buffer

    def read(
        self, seek: int, nbytes: int, *, scratch: bool = False, list_offsets: bool = False
    ) -> tuple[np.ndarray, Any]:
        """(data, entry byte offsets) of the basket at ``seek`` spanning ``nbytes`` (key included).

        ``list_offsets``: the offsets as a list of int rather than an int64 array, for a caller
        that wants a few of a basket's tens of entries: numpy's per-call cost on such small
        arrays, paid with the GIL held, would cost a worker thread more than the work.
        ``scratch``: the data may be a view of this thread's reusable buffer, valid until the
        thread's next ``scratch`` read; the caller copies what it keeps (the selected entries).
        """
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
            out = self._scratch_buffer(objlen + 1) if scratch else None
            content = decompress(raw, keylen, compressed, objlen, self._source, out)
        else:  # uncompressed: do not keep the whole read alive
            content = np.frombuffer(raw, dtype=np.uint8, offset=keylen).copy()
        border = last - keylen
        if not 0 <= border <= objlen:
            raise BasketError(f"basket fLast {last} is outside its {objlen} bytes")
        if border == objlen:
            return content, None
        words, rest = divmod(objlen - border, 4)
        if rest or words < 2:
            raise BasketError(f"basket entry offsets span {objlen - border} bytes")
        if list_offsets:
            # the stored offsets, after their count word
            stored = struct.unpack_from(f">{words - 1}i", content.data, border + 4)
            offsets: Any = [*map(operator.sub, stored, repeat(keylen))]
        else:
            offsets = content[border + 4 :].view(_OFFSETS).astype(np.int64) - keylen
        offsets[-1] = border
        return content[:border], offsets
