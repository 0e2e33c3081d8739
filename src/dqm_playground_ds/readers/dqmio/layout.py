"""Byte layout of one serialized histogram entry in a DQMIO ``Value`` branch.

Entries of ``TBranchElement`` branches (TH1x, TH2I: automatic streamers) have no top-level header
and start with the TH2/TH1 base; entries of ``TBranchObject`` branches (TH2F/S/D) start with the class
name, a zero byte and the object's own header. Both end
with the bin-content array: int32 ``fN`` then ``fN`` big-endian values, x fastest, flow bins included.
The parser walks the bytecounts, so it only needs the field order up to ``fEntries``; everything else
is skipped. One parsed prototype gives the offsets for every entry of the same ME and length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# type code -> (dimension, big-endian dtype of the bin array, class name)
HIST_TYPES: dict[int, tuple[int, str, str]] = {
    3: (1, ">f4", "TH1F"),
    4: (1, ">i2", "TH1S"),
    5: (1, ">f8", "TH1D"),
    6: (2, ">f4", "TH2F"),
    7: (2, ">i2", "TH2S"),
    8: (2, ">f8", "TH2D"),
    12: (1, ">i4", "TH1I"),
    13: (2, ">i4", "TH2I"),
}
TYPE_NAMES = (
    "Ints",
    "Floats",
    "Strings",
    "TH1Fs",
    "TH1Ss",
    "TH1Ds",
    "TH2Fs",
    "TH2Ss",
    "TH2Ds",
    "TH3Fs",
    "TProfiles",
    "TProfile2Ds",
    "TH1Is",
    "TH2Is",
)
NO_TYPES_STORED = 1000

_BYTECOUNT_MASK = 0x40000000


class LayoutError(ValueError):
    """The bytes of one entry are not a histogram of the expected type."""


@dataclass(frozen=True)
class EntryLayout:
    """Offsets (relative to the entry start) shared by every entry of one ME and byte length."""

    length: int
    dim: int
    dtype: str
    th1_rel: int  # TH1 bytecount + version (6 bytes), checked on every entry
    th1_head: bytes
    x_rel: int  # fNbins (int32), fXmin, fXmax (float64)
    y_rel: int  # same for the y axis; -1 in 1D
    entries_rel: int  # fEntries (float64)
    array_rel: int  # fN (int32), then the values
    nx: int
    ny: int
    # regions that legitimately change from one LS to the next (statistics and arrays); every
    # other byte of an entry is the same for all entries of one ME and length (integrity check)
    variable: tuple[tuple[int, int], ...] = ()

    @property
    def n_values(self) -> int:
        return (self.nx + 2) * (self.ny + 2) if self.dim == 2 else self.nx + 2


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise LayoutError(f"entry ends at byte {len(self.buf)}, needed {self.pos + n}")

    def u8(self) -> int:
        self.need(1)
        self.pos += 1
        return self.buf[self.pos - 1]

    def unpack(self, fmt: str) -> int | float:
        size = struct.calcsize(fmt)
        self.need(size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def header(self, what: str) -> tuple[int, int]:
        """Read a bytecount + version header; return (end position, version)."""
        start = self.pos
        count = int(self.unpack(">I"))
        if not count & _BYTECOUNT_MASK:
            raise LayoutError(f"{what} at byte {start}: no bytecount (0x{count:08x})")
        version = int(self.unpack(">h"))
        end = start + 4 + (count & ~_BYTECOUNT_MASK)
        if end > len(self.buf):
            raise LayoutError(
                f"{what} at byte {start} claims {end - start} bytes, entry is shorter"
            )
        return end, version

    def skip_object(self, what: str) -> None:
        end, _ = self.header(what)
        self.pos = end


def _axis(cur: _Cursor) -> tuple[int, int]:
    """Parse a TAxis; return (offset of fNbins, fNbins)."""
    end, _ = cur.header("TAxis")
    cur.skip_object("TAxis.TNamed")
    cur.skip_object("TAxis.TAttAxis")
    rel = cur.pos
    nbins = int(cur.unpack(">i"))
    cur.unpack(">d")
    cur.unpack(">d")
    cur.pos = end
    return rel, nbins


def _skip_object_header(cur: _Cursor, buf: bytes, cls: str) -> None:
    """A TBranchObject entry starts with its class name, a zero byte and the object's header."""
    cur.need(4)
    if not int.from_bytes(buf[:4], "big") & _BYTECOUNT_MASK:
        # TBranchObject entry: class name, a zero byte, then the object with its own header
        n = cur.u8()
        if n == 255:
            n = int(cur.unpack(">I"))
        cur.need(n + 1)
        name = bytes(buf[cur.pos : cur.pos + n]).decode("ascii", "replace")
        if name != cls:
            raise LayoutError(f"entry holds a {name[:40]!r}, expected {cls}")
        cur.pos += n + 1
        cur.header(cls)


def parse_entry(buf: bytes, type_code: int) -> EntryLayout:
    """Parse one serialized histogram entry and return its layout; raise LayoutError if it is not one."""
    if type_code not in HIST_TYPES:
        raise LayoutError(f"type code {type_code} is not a 1D/2D histogram type")
    dim, dtype, cls = HIST_TYPES[type_code]
    cur = _Cursor(buf)
    _skip_object_header(cur, buf, cls)
    # else: TBranchElement entry (automatic streamer): starts directly with the TH2 or TH1 base
    if dim == 2:
        th2_end, _ = cur.header("TH2")
    th1_rel = cur.pos
    th1_end, version = cur.header("TH1")
    if version < 5:
        raise LayoutError(f"TH1 streamer version {version} is too old")
    for base in ("TNamed", "TAttLine", "TAttFill", "TAttMarker"):
        cur.skip_object(f"TH1.{base}")
    cur.unpack(">i")  # fNcells
    x_rel, nx = _axis(cur)
    y_rel, ny = _axis(cur)
    cur.skip_object("TH1.fZaxis")
    cur.unpack(">h")  # fBarOffset
    cur.unpack(">h")  # fBarWidth
    entries_rel = cur.pos
    variable = [(entries_rel, entries_rel + 64)]  # fEntries, fTsumw..fTsumwx2, fMax/fMin/fNorm
    variable.append((x_rel + 4, x_rel + 20))  # axis limits may change with the same bin count
    if dim == 2:
        variable.append((y_rel + 4, y_rel + 20))
    cur.pos = entries_rel + 64
    for what in ("fContour", "fSumw2"):
        n = int(cur.unpack(">i"))
        if n < 0 or cur.pos + 8 * n > th1_end:
            raise LayoutError(f"TH1.{what} claims {n} values, past the end of the TH1")
        variable.append((cur.pos, cur.pos + 8 * n))
        cur.pos += 8 * n
    if dim == 2:
        variable.append((th1_end, th2_end))  # fScalefactor, fTsumwy, fTsumwy2, fTsumwxy
    cur.pos = th2_end if dim == 2 else th1_end
    array_rel = cur.pos
    n_values = int(cur.unpack(">i"))
    expected = (nx + 2) * (ny + 2) if dim == 2 else nx + 2
    if n_values != expected:
        raise LayoutError(f"bin array has {n_values} values, axes say {expected}")
    end = array_rel + 4 + n_values * np.dtype(dtype).itemsize
    if end != len(buf):
        raise LayoutError(f"bin array ends at byte {end}, entry has {len(buf)} bytes")
    variable.append((array_rel + 4, end))
    return EntryLayout(
        length=len(buf),
        dim=dim,
        dtype=dtype,
        th1_rel=th1_rel,
        th1_head=bytes(buf[th1_rel : th1_rel + 6]),
        x_rel=x_rel,
        y_rel=y_rel if dim == 2 else -1,
        entries_rel=entries_rel,
        array_rel=array_rel,
        nx=nx,
        ny=ny if dim == 2 else 0,
        variable=tuple(variable),
    )
