"""Read per-lumisection histograms out of DQMIO files into the histogram table.

How it stays fast and exact (see ``docs/dqmio-format.md``):

1. entries are selected through ``Indices`` and ``FullName`` only; ``Value`` is never decoded for an
   ME that was not asked for;
2. ``Value`` is read as raw, decompressed basket bytes, a bounded number of bytes at a time;
3. one entry per (ME, byte length) is parsed structurally (``layout.parse_entry``) and its offsets are
   applied to every entry of that group with numpy gathers; every entry's TH1 header, axis and array
   length are checked against the prototype, and entries that differ are parsed one by one.

The bin contents are the big-endian array ROOT wrote, so the values equal ``GetBinContent``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import uproot

from dqm_playground_ds.readers.dqmio import integrity, names
from dqm_playground_ds.readers.dqmio.baskets import BasketReader
from dqm_playground_ds.readers.dqmio.errors import DQMIOError, IntegrityError, MissingMEError
from dqm_playground_ds.readers.dqmio.gather import gather
from dqm_playground_ds.readers.dqmio.layout import (
    HIST_TYPES,
    NO_TYPES_STORED,
    TYPE_NAMES,
    EntryLayout,
    LayoutError,
    parse_entry,
)
from dqm_playground_ds.readers.dqmio.selection import MESpec, as_patterns, match_names, suggest
from dqm_playground_ds.schema import COLUMNS, KEY, Duplicates, MissingMEs, empty_histograms

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
_INDICES_BRANCHES = ("Run", "Lumi", "Type", "FirstIndex", "LastIndex")
MAX_DEFAULT_THREADS = 4  # beyond this, decoding in the calling thread is the bottleneck
_AHEAD_PER_THREAD = 2  # basket groups in flight per worker: keeps workers busy, memory bounded
_GROUP_BYTES = 256 * 1024  # compressed bytes of baskets read and decompressed as one task
_GROUP_BASKETS = 64
_SCRATCH_SHARE = 0.5  # below this share of a basket's entries wanted, they are copied out of it
_Part = tuple[Any, list[int], list[int]]  # selected entries' bytes (a buffer), starts, lengths

_Job = TypeVar("_Job")
_J = TypeVar("_J")
_Out = TypeVar("_Out")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def resolve_threads(threads: int | None) -> int:
    """``None`` -> min(4, usable CPUs); otherwise a positive int (1 reads in the calling thread)."""
    if threads is None:
        return min(MAX_DEFAULT_THREADS, usable_cpus())
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return threads


def _prefetch(
    work: Callable[[_Job], _Out], jobs: Sequence[_Job], threads: int
) -> Generator[_Out, None, None]:
    """``work(job)`` for every job, in order, computed up to ``2 * threads`` jobs ahead.

    With ``threads > 1`` the jobs run in a private thread pool; however the caller stops
    (exhausted, an error here or in the worker, ``close()``), pending jobs are cancelled and the
    threads joined before this generator ends, so none outlives the read.
    """
    if threads <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield work(job)
        return
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dqmio-basket")
    try:
        ahead: deque[Future[_Out]] = deque()
        todo = iter(jobs)
        for job in todo:
            ahead.append(pool.submit(work, job))
            if len(ahead) >= _AHEAD_PER_THREAD * threads:
                break
        while ahead:
            result = ahead.popleft().result()
            for job in todo:  # refill the window by one before handing a result out
                ahead.append(pool.submit(work, job))
                break
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Selected:
    """Selected entries of one type tree, in entry order."""

    type_code: int
    entries: np.ndarray  # int64 entry numbers in the type tree
    runs: np.ndarray
    lumis: np.ndarray
    name_ids: np.ndarray  # index into ``names``
    names: np.ndarray  # unique ME names of this tree (object array of str)


@dataclass
class FileSummary:
    """What a file holds, without decoding any histogram (for the file index)."""

    path: str
    guid: str | None
    runs: list[int]
    n_lumis: int
    n_mes: int
    n_histograms: int
    types: dict[str, int] = field(default_factory=dict)


def _factorize_strings(strings: Any) -> tuple[np.ndarray, np.ndarray]:
    """Codes and sorted uniques of an awkward array of strings, without a Python str per entry."""
    import awkward as ak

    layout = ak.to_layout(strings)
    offsets = np.asarray(layout.offsets, dtype=np.int64)
    content = np.asarray(layout.content.data, dtype=np.uint8)
    return names.factorize(content[offsets[0] : offsets[-1]], np.diff(offsets))


def _compact(data: Any, starts: list[int], ends: list[int]) -> tuple[bytes, list[int]]:
    """Copy the selected entries' byte ranges into one small buffer; return it and the new starts.

    Selected entries of one basket are mostly a few runs of consecutive entries (MEs next to each
    other in a LS block): one slice per run. Plain Python on the basket's few entries: numpy's
    per-call cost, paid with the GIL held in a worker thread, would exceed the copying.
    """
    view = memoryview(data)
    pieces, new_starts, pos = [], [], 0
    first = last = -1
    for s, e in zip(starts, ends, strict=True):
        new_starts.append(pos)
        pos += e - s
        if s != last:
            if last >= 0:
                pieces.append(view[first:last])
            first = s
        last = e
    if last >= 0:
        pieces.append(view[first:last])
    return b"".join(pieces), new_starts


def _strip_flow(values: np.ndarray, layout: EntryLayout) -> np.ndarray:
    """(n, fN) ROOT arrays -> (n, bins) float64 without flow bins, y outer and x inner in 2D."""
    n = values.shape[0]
    if layout.dim == 1:
        inner = values[:, 1:-1]
    else:
        inner = values.reshape(n, layout.ny + 2, layout.nx + 2)[:, 1:-1, 1:-1]
    return np.ascontiguousarray(inner, dtype=np.float64).reshape(n, -1)


class DQMIOFile:
    """An open DQMIO file: its index, ME names and a chunked histogram reader.

    ``path`` is a local path or any URL uproot opens (``file://``, ``root://`` with fsspec-xrootd,
    ``https://``...). Every failure is raised as :class:`DQMIOError` naming the file.
    """

    def __init__(self, path: str | os.PathLike[str], **open_options: Any) -> None:
        self.path = os.fspath(path)
        if "://" not in self.path and os.path.isfile(self.path) and os.path.getsize(self.path) == 0:
            raise DQMIOError(self.path, "file is empty (0 bytes)")
        try:
            self._file = uproot.open(self.path, **open_options)
        except FileNotFoundError as exc:
            raise DQMIOError(self.path, "file not found") from exc
        except Exception as exc:
            detail = _describe(exc)
            raise DQMIOError(self.path, f"not a readable ROOT file ({detail})") from exc
        self._check_size()
        try:
            keys = {k.split(";")[0] for k in self._file.keys(recursive=False)}
        except Exception as exc:
            self.close()
            raise DQMIOError(
                self.path, f"cannot list the file's objects ({_describe(exc)})"
            ) from exc
        if "Indices" not in keys:
            self.close()
            raise DQMIOError(
                self.path,
                "no 'Indices' tree: not a DQMIO file"
                + (f" (it holds {sorted(keys)[:8]})" if keys else " (it holds no objects)"),
            )
        self._keys = keys
        self._names: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._indices: dict[str, np.ndarray] | None = None
        self._layouts: dict[tuple[int, str, int], EntryLayout] = {}
        self._basket_reader: BasketReader | None = None

    def _check_size(self) -> None:
        """A truncated file is named as such, not by whatever read first runs past its end."""
        try:
            end = int(self._file.file.fEND)
            size = int(self._file.file.source.num_bytes)
        except Exception:  # some remote sources cannot tell their size cheaply
            return
        if size < end:
            self.close()
            raise DQMIOError(
                self.path, f"file is truncated: {size} bytes on disk, its ROOT header says {end}"
            )

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> DQMIOFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        reader = getattr(self, "_basket_reader", None)
        if reader is not None:
            reader.close()
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()

    # -- index ----------------------------------------------------------------------------------
    @property
    def guid(self) -> str | None:
        if "cms::edm::GUID" not in self._keys:
            return None
        try:
            value = self._file["cms::edm::GUID"]
        except Exception:  # an unreadable GUID is not worth failing the file for
            return None
        return str(value)

    @property
    def indices(self) -> dict[str, np.ndarray]:
        if self._indices is None:
            try:
                tree = self._file["Indices"]
                absent = [b for b in _INDICES_BRANCHES if b not in tree]
                if absent:
                    raise DQMIOError(self.path, f"the Indices tree lacks branch(es) {absent}")
                arrays = tree.arrays(list(_INDICES_BRANCHES), library="np")
            except DQMIOError:
                raise
            except Exception as exc:
                raise DQMIOError(
                    self.path, f"cannot read the Indices tree ({_describe(exc)})"
                ) from exc
            out = {k: np.asarray(v).astype(np.int64) for k, v in arrays.items()}
            bad = (out["Type"] != NO_TYPES_STORED) & (out["LastIndex"] < out["FirstIndex"])
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DQMIOError(
                    self.path,
                    f"Indices row {i}: LastIndex {out['LastIndex'][i]} < FirstIndex "
                    f"{out['FirstIndex'][i]}",
                )
            self._indices = out
        return self._indices

    def _tree(self, type_code: int) -> Any:
        name = TYPE_NAMES[type_code]
        if name not in self._keys:
            raise DQMIOError(
                self.path, f"Indices refers to type {type_code} but tree {name} is missing"
            )
        try:
            return self._file[name]
        except Exception as exc:
            raise DQMIOError(self.path, f"cannot open tree {name} ({_describe(exc)})") from exc

    def names(self, type_code: int) -> np.ndarray:
        """``FullName`` of every entry of a type tree (object array of str)."""
        codes, uniques = self._name_codes(type_code)
        return uniques[codes]

    def _name_codes(
        self, type_code: int, threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(code per entry, sorted unique names): names repeat every LS, so they are factorized."""
        if type_code not in self._names:
            tree_name = TYPE_NAMES[type_code]
            try:
                branch = self._tree(type_code)["FullName"]
                interp = getattr(branch, "interpretation", None)  # None: not a TBranch
                lean = (
                    isinstance(interp, uproot.interpretation.strings.AsStrings)
                    and interp.header_bytes == 0
                    and interp.length_bytes == "1-5"
                )
                if lean:
                    codes = self._read_names(branch, tree_name, resolve_threads(threads))
                else:  # not the std::string TBranch DQMIO writes: let uproot interpret it
                    codes = _factorize_strings(branch.array(library="ak"))
            except DQMIOError:
                raise
            except Exception as exc:
                raise DQMIOError(
                    self.path, f"cannot read {tree_name}/FullName ({_describe(exc)})"
                ) from exc
            self._names[type_code] = codes
        return self._names[type_code]

    def _read_names(
        self, branch: Any, tree_name: str, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``FullName`` from its raw baskets, decompressed on the thread pool (``names.py``)."""
        free = _free_baskets(branch)
        self._baskets()  # created here, before any worker thread needs it

        def fetch(group: list[tuple[int, None]]) -> list[tuple[np.ndarray, np.ndarray]]:
            out = []
            for b, _ in group:
                try:
                    if b < free[0]:
                        data, offsets = self._baskets().read(int(free[1][b]), int(free[2][b]))
                    else:  # embedded in the TBranch
                        basket = branch.basket(b)
                        data, offsets = basket.data, basket.byte_offsets
                    if offsets is None:
                        raise names.NamesError("the basket has no entry offsets")
                    out.append(names.parse_strings(data, offsets))
                except Exception as exc:
                    raise DQMIOError(
                        self.path,
                        f"cannot read {tree_name}/FullName basket {b} ({_describe(exc)})",
                    ) from exc
            return out

        jobs: list[tuple[int, None]] = [(b, None) for b in range(int(branch.num_baskets))]
        with closing(_prefetch(fetch, _group_jobs(jobs, free[2]), threads)) as groups:
            parts = [p for group in groups for p in group]
        lengths = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        if len(lengths) != int(branch.num_entries):
            raise DQMIOError(
                self.path,
                f"{tree_name}/FullName baskets hold {len(lengths)} names, the tree has "
                f"{int(branch.num_entries)} entries",
            )
        chars = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.uint8)
        return names.factorize(chars, lengths)

    def _type_codes(self) -> list[int]:
        types = np.unique(self.indices["Type"])
        unknown = [int(t) for t in types if t != NO_TYPES_STORED and not 0 <= t < len(TYPE_NAMES)]
        if unknown:
            raise DQMIOError(self.path, f"Indices has unknown type code(s) {unknown}")
        return [int(t) for t in types if t != NO_TYPES_STORED]

    def _entry_map(self, type_code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(entry numbers, run, lumi) of every entry of a type that the index covers."""
        idx = self.indices
        rows = idx["Type"] == type_code
        first, last = idx["FirstIndex"][rows], idx["LastIndex"][rows]
        counts = last - first + 1
        total = int(counts.sum())
        offsets = np.repeat(first - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        entries = np.arange(total, dtype=np.int64) + offsets
        return entries, np.repeat(idx["Run"][rows], counts), np.repeat(idx["Lumi"][rows], counts)

    def summary(self) -> FileSummary:
        """Runs, lumis and MEs in the file, from the index and names only."""
        idx = self.indices
        lumi_rows = idx["Lumi"] > 0
        lumis = np.unique(np.stack([idx["Run"][lumi_rows], idx["Lumi"][lumi_rows]]), axis=1)
        names: set[str] = set()
        n_hist = 0
        types = {}
        for t in self._type_codes():
            if t not in HIST_TYPES:
                continue
            entries, _, _ = self._entry_map(t)
            names.update(self._name_codes(t)[1].tolist())
            n_hist += len(entries)
            types[HIST_TYPES[t][2]] = len(entries)
        return FileSummary(
            path=self.path,
            guid=self.guid,
            runs=sorted({int(r) for r in idx["Run"]}),
            n_lumis=lumis.shape[1],
            n_mes=len(names),
            n_histograms=n_hist,
            types=types,
        )

    def list_mes(self) -> pd.DataFrame:
        """One row per ME: name, type, dimension and how many entries (LS + run-level) it has."""
        rows: list[dict[str, Any]] = []
        for t in self._type_codes():
            codes, uniq = self._name_codes(t)
            counts = np.bincount(codes, minlength=len(uniq))
            dim = HIST_TYPES[t][0] if t in HIST_TYPES else 0
            rows.extend(
                {
                    "me": n,
                    "type": TYPE_NAMES[t][:-1],
                    "type_code": t,
                    "dim": dim,
                    "n_entries": int(c),
                }
                for n, c in zip(uniq, counts, strict=True)
            )
        return pd.DataFrame(rows, columns=["me", "type", "type_code", "dim", "n_entries"])

    # -- selection ------------------------------------------------------------------------------
    def select(
        self,
        me: MESpec = None,
        *,
        include_run_level: bool = False,
        missing: MissingMEs = "raise",
        threads: int | None = None,
    ) -> list[_Selected]:
        patterns = as_patterns(me)
        selected: list[_Selected] = []
        matched_any: set[str] = set()
        unsupported: dict[str, str] = {}
        all_names: set[str] = set()
        for t in self._type_codes():
            inverse, uniq = self._name_codes(t, threads)
            all_names.update(uniq.tolist())
            mask_u, unmatched = match_names(uniq, patterns)
            if patterns is not None:
                matched_any.update(p for p in patterns if p not in unmatched)
            if t not in HIST_TYPES:
                if patterns is not None:
                    for n in uniq[mask_u]:
                        unsupported[str(n)] = TYPE_NAMES[t][:-1]
                continue
            entries, runs, lumis = self._entry_map(t)
            if len(entries) and (entries.max() >= len(inverse) or entries.min() < 0):
                raise DQMIOError(
                    self.path,
                    f"Indices points past the end of {TYPE_NAMES[t]} "
                    f"(entry {int(entries.max())}, tree has {len(inverse)})",
                )
            name_ids = inverse[entries]
            keep = mask_u[name_ids]
            if not include_run_level:
                keep &= lumis > 0
            if keep.any():
                order = np.argsort(entries[keep], kind="stable")
                selected.append(
                    _Selected(
                        type_code=t,
                        entries=entries[keep][order],
                        runs=runs[keep][order],
                        lumis=lumis[keep][order],
                        name_ids=name_ids[keep][order],
                        names=uniq,
                    )
                )
        if patterns is not None and missing == "raise":
            self._check_found(patterns, matched_any, unsupported, all_names)
        return selected

    def _check_found(
        self,
        patterns: list[str],
        matched_any: set[str],
        unsupported: dict[str, str],
        all_names: set[str],
    ) -> None:
        """A requested ME that is not a histogram, or that nothing matches, is an error."""
        exact_unsupported = [p for p in patterns if p in unsupported]
        if exact_unsupported:
            p = exact_unsupported[0]
            raise DQMIOError(
                self.path,
                f"monitor element {p!r} is a {unsupported[p]}, which the histogram table does "
                "not hold (only TH1F/S/D/I and TH2F/S/D/I)",
            )
        missing_patterns = [p for p in patterns if p not in matched_any]
        if missing_patterns:
            raise MissingMEError(self.path, missing_patterns, suggest(missing_patterns, all_names))

    # -- decoding -------------------------------------------------------------------------------
    def iter_histograms(
        self,
        me: MESpec = None,
        *,
        include_run_level: bool = False,
        missing: MissingMEs = "raise",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        verify: bool = True,
        threads: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Yield the histogram table in pieces holding at most ``chunk_bytes`` of raw entry bytes.

        ``verify`` checks every histogram against what its object stores (``integrity.py``) and
        raises :class:`IntegrityError` naming those that fail. ``threads`` read and decompress
        baskets while this thread decodes (``None``: min(4, usable CPUs); 1: no extra thread).
        """
        for batch in self._batches(me, include_run_level, missing, chunk_bytes, verify, threads):
            yield _frame([batch], self.path)

    def _batches(
        self,
        me: MESpec,
        include_run_level: bool,
        missing: MissingMEs,
        chunk_bytes: int,
        verify: bool,
        threads: int | None,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Column batches of every selected type tree, in file order (shared by read and iter)."""
        n_threads = resolve_threads(threads)
        selected = self.select(
            me, include_run_level=include_run_level, missing=missing, threads=n_threads
        )
        for sel in selected:
            yield from self._iter_type(sel, chunk_bytes, verify, n_threads)

    def read(
        self,
        me: MESpec = None,
        *,
        include_run_level: bool = False,
        missing: MissingMEs = "raise",
        duplicates: Duplicates = "sum",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        verify: bool = True,
        threads: int | None = None,
    ) -> pd.DataFrame:
        batches = list(self._batches(me, include_run_level, missing, chunk_bytes, verify, threads))
        table = _frame(batches, self.path, sort=True)
        return resolve_duplicates(table, duplicates, self.path)

    def _iter_type(
        self, sel: _Selected, chunk_bytes: int, verify: bool = True, threads: int = 1
    ) -> Iterator[dict[str, np.ndarray]]:
        """Decode one type's selected entries, holding at most ``chunk_bytes`` of their raw bytes.

        Baskets are read and decompressed by ``threads`` worker threads (decompression releases
        the GIL) while this thread decodes, at most ``2 * threads`` groups of baskets ahead; when few of a
        basket's entries are selected only their bytes are kept, so memory follows the output.
        """
        tree_name = TYPE_NAMES[sel.type_code]
        tree = self._tree(sel.type_code)
        try:
            branch = tree["Value"]
            basket_starts = np.asarray(branch.entry_offsets, dtype=np.int64)
            free = _free_baskets(branch)
        except Exception as exc:
            raise DQMIOError(
                self.path, f"tree {tree_name} has no readable Value branch ({_describe(exc)})"
            ) from exc
        self._baskets()  # created here, before any worker thread needs it
        basket_of = np.searchsorted(basket_starts, sel.entries, side="right") - 1
        needed = np.unique(basket_of)
        bounds = [*np.searchsorted(basket_of, needed, side="left").tolist(), len(basket_of)]
        local = (sel.entries - basket_starts[basket_of]).tolist()
        jobs = [(b, local[bounds[k] : bounds[k + 1]]) for k, b in enumerate(needed.tolist())]

        def fetch(group: list[tuple[int, list[int]]]) -> list[_Part]:
            return [self._fetch_basket(branch, tree_name, basket_starts, free, *j) for j in group]

        pending: list[_Part] = []
        pending_bytes = first = 0  # first: index into ``bounds`` of the first pending basket
        with closing(_prefetch(fetch, _group_jobs(jobs, free[2]), threads)) as groups:
            for part in (p for group in groups for p in group):
                pending.append(part)
                pending_bytes += len(part[0])
                if pending_bytes >= chunk_bytes:
                    which = np.arange(bounds[first], bounds[first + len(pending)])
                    yield self._decode_chunk(sel, pending, which, verify)
                    first += len(pending)
                    pending, pending_bytes = [], 0
        if pending:
            which = np.arange(bounds[first], bounds[first + len(pending)])
            yield self._decode_chunk(sel, pending, which, verify)

    def _baskets(self) -> BasketReader:
        if self._basket_reader is None:
            self._basket_reader = BasketReader(self.path, self._file.file.source)
        return self._basket_reader

    def _fetch_basket(
        self,
        branch: Any,
        tree_name: str,
        basket_starts: np.ndarray,
        free: tuple[int, np.ndarray, np.ndarray],
        b: int,
        local: list[int],
    ) -> _Part:
        """Read and decompress basket ``b``; return (bytes, starts, lengths) of entries ``local``.

        Runs in worker threads: it only reads the file and the branch's metadata. When few of the
        basket's entries are wanted, the basket is decompressed into the thread's reusable buffer
        and those entries are copied out, all on Python lists of its few entries (numpy's per-call
        cost, paid with the GIL held, would exceed the work); else it is kept whole and its
        offsets handled as arrays.
        """
        scratch = len(local) < _SCRATCH_SHARE * int(basket_starts[b + 1] - basket_starts[b])
        try:
            if b < free[0]:
                seek, size = int(free[1][b]), int(free[2][b])
                data, offsets = self._baskets().read(
                    seek, size, scratch=scratch, list_offsets=scratch
                )
            else:  # embedded in the TBranch (small trees): uproot has them already
                basket = branch.basket(b)
                data, offsets = basket.data, basket.byte_offsets
                if scratch and offsets is not None:
                    offsets = np.asarray(offsets).tolist()
        except Exception as exc:
            where = _where(tree_name, basket_starts, b)
            raise DQMIOError(self.path, f"{where} cannot be read ({_describe(exc)})") from exc
        if offsets is None:
            raise DQMIOError(self.path, f"{tree_name}/Value basket {b} has no entry offsets")
        if max(local) + 1 >= len(offsets):
            raise DQMIOError(
                self.path, f"{tree_name}/Value basket {b} holds fewer entries than its tree says"
            )
        if not _offsets_ok(offsets, len(data)):
            raise DQMIOError(
                self.path,
                f"{_where(tree_name, basket_starts, b)} has corrupt entry offsets (not "
                "increasing, or past its end)",
            )
        if scratch:
            starts = [offsets[i] for i in local]
            ends = [offsets[i + 1] for i in local]
            lengths = [e - s for s, e in zip(starts, ends, strict=True)]
        else:
            index = np.asarray(local)
            first, after = offsets[index], offsets[index + 1]
            starts, ends, lengths = first.tolist(), after.tolist(), (after - first).tolist()
        if scratch or 2 * sum(lengths) < len(data):  # keep only the selected entries' bytes
            kept, starts = _compact(data, starts, ends)
            return kept, starts, lengths
        return data, starts, lengths

    def _decode_chunk(
        self,
        sel: _Selected,
        baskets: list[_Part],
        which: np.ndarray,
        verify: bool = True,
    ) -> dict[str, np.ndarray]:
        """Decode the selected entries ``which`` (indices into ``sel``) held by ``baskets``."""
        base = np.cumsum([0] + [len(d) for d, _, _ in baskets[:-1]])
        counts = [len(s) for _, s, _ in baskets]
        data = baskets[0][0] if len(baskets) == 1 else b"".join(d for d, _, _ in baskets)
        buf = np.frombuffer(data, dtype=np.uint8)
        starts = np.fromiter(chain.from_iterable(s for _, s, _ in baskets), np.int64, sum(counts))
        starts += np.repeat(base, counts)
        lengths = np.fromiter(
            chain.from_iterable(ln for _, _, ln in baskets), np.int64, len(starts)
        )
        name_ids = sel.name_ids[which]
        order = np.lexsort((lengths, name_ids))
        key_sorted = np.stack([name_ids[order], lengths[order]], axis=1)
        cut = np.flatnonzero((key_sorted[1:] != key_sorted[:-1]).any(axis=1)) + 1
        pieces = []
        for members in np.split(order, cut):
            pieces.extend(
                self._decode_group(sel, buf, starts, lengths, which, np.sort(members), verify)
            )
        rows = which[np.concatenate([p[0] for p in pieces])]
        if verify:
            self._verify(sel, rows, pieces)
        data = np.empty(len(rows), dtype=object)
        pos = 0
        for piece in pieces:
            values = piece[2]
            data[pos : pos + len(values)] = list(values)
            pos += len(values)
        batch = {
            "run": sel.runs[rows],
            "lumi": sel.lumis[rows],
            "me": sel.names[sel.name_ids[rows]],
            "data": data,
        }
        for k in _NUMERIC:
            batch[k] = np.concatenate([p[1][k] for p in pieces])
        return batch

    def _verify(self, sel: _Selected, rows: np.ndarray, pieces: list[Any]) -> None:
        """Raise IntegrityError naming every decoded histogram that fails the integrity check."""
        resid = np.concatenate([p[1]["_resid"] for p in pieces])
        sizes = np.concatenate([p[1]["_nvalues"] for p in pieces])
        struct = np.concatenate([p[1]["_struct"] for p in pieces])
        why = np.where(struct, 1, 0)
        name_ids = sel.name_ids[rows]
        order = np.argsort(name_ids, kind="stable")
        cut = np.flatnonzero(np.diff(name_ids[order])) + 1
        for members in np.split(order, cut):
            bad = integrity.content_outliers(resid[members], int(sizes[members].max()))
            why[members[bad & ~struct[members]]] = 2
        if not why.any():
            return
        failures = []
        for i in np.flatnonzero(why).tolist():
            r = int(rows[i])
            reason = (
                "its structure (names, byte counts, versions, axes) differs from the other "
                "entries of this ME or is impossible"
                if why[i] == 1
                else "bin contents do not add up to the stored fEntries / fTsumw (relative "
                f"difference {resid[i]:.3g})"
            )
            failures.append(
                integrity.Failure(
                    int(sel.entries[r]),
                    str(sel.names[sel.name_ids[r]]),
                    int(sel.runs[r]),
                    int(sel.lumis[r]),
                    reason,
                )
            )
        raise IntegrityError(self.path, TYPE_NAMES[sel.type_code], failures)

    def _layout_for(
        self, sel: _Selected, name_id: int, entry_bytes: np.ndarray, entry: int
    ) -> EntryLayout:
        name = str(sel.names[name_id])
        key = (sel.type_code, name, len(entry_bytes))
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._parse(sel, name, entry_bytes, entry)
            self._layouts[key] = layout
        return layout

    def _parse(self, sel: _Selected, name: str, entry_bytes: np.ndarray, entry: int) -> EntryLayout:
        try:
            return parse_entry(entry_bytes.tobytes(), sel.type_code)
        except LayoutError as exc:
            raise DQMIOError(
                self.path, f"{TYPE_NAMES[sel.type_code]} entry {entry} ({name}) is corrupt: {exc}"
            ) from exc

    def _decode_group(
        self,
        sel: _Selected,
        buf: np.ndarray,
        starts: np.ndarray,
        lengths: np.ndarray,
        which: np.ndarray,
        members: np.ndarray,
        verify: bool = True,
    ) -> list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
        """Decode entries of one (ME, length) group; entries that break the layout go one by one."""
        first = int(members[0])
        s0, n0 = int(starts[first]), int(lengths[first])
        entry0 = int(sel.entries[which[first]])
        layout = self._layout_for(sel, int(sel.name_ids[which[first]]), buf[s0 : s0 + n0], entry0)
        head = gather(buf, starts[members], 0, layout.array_rel + 4)
        ok = _consistent(head, layout)
        if ok.all():
            return [_vector_decode(buf, starts[members], members, layout, head, verify)]
        out = []
        good = members[ok]
        if len(good):
            out.append(_vector_decode(buf, starts[good], good, layout, head[ok], verify))
        for m in members[~ok].tolist():
            s, n = int(starts[m]), int(lengths[m])
            name = str(sel.names[sel.name_ids[which[m]]])
            one = self._parse(sel, name, buf[s : s + n], int(sel.entries[which[m]]))
            st = starts[[m]]
            head_one = gather(buf, st, 0, one.array_rel + 4)
            out.append(_vector_decode(buf, st, np.array([m]), one, head_one, verify))
        return out


def _offsets_ok(offsets: Any, size: int) -> bool:
    """Entry offsets (a list or an int array) start at >= 0, never decrease, end within ``size``."""
    if isinstance(offsets, list):
        return offsets[0] >= 0 and offsets[-1] <= size and offsets == sorted(offsets)
    return bool(offsets[0] >= 0 and offsets[-1] <= size and (offsets[1:] >= offsets[:-1]).all())


def _where(tree_name: str, basket_starts: np.ndarray, b: int) -> str:
    return f"{tree_name}/Value basket {b} (entries {basket_starts[b]}-{basket_starts[b + 1] - 1})"


def _group_jobs(jobs: list[tuple[int, _J]], sizes: np.ndarray) -> list[list[tuple[int, _J]]]:
    """Consecutive baskets in groups of about ``_GROUP_BYTES`` in the file: one task per group
    keeps the per-task overhead (which holds the GIL) small next to the decompression."""
    groups: list[list[tuple[int, _J]]] = []
    current: list[tuple[int, _J]] = []
    size = 0
    for job in jobs:
        current.append(job)
        size += int(sizes[job[0]]) if job[0] < len(sizes) else 0
        if size >= _GROUP_BYTES or len(current) >= _GROUP_BASKETS:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def _free_baskets(branch: Any) -> tuple[int, np.ndarray, np.ndarray]:
    """(number of free baskets, their seek positions, their sizes in the file, key included)."""
    n = int(branch.num_baskets) - len(branch.embedded_baskets or ())
    seeks = np.asarray(branch.member("fBasketSeek"), dtype=np.int64)[:n]
    sizes = np.asarray(branch.member("fBasketBytes"), dtype=np.int64)[:n]
    return n, seeks, sizes


_NUMERIC = {
    "dim": np.int8,
    "entries": np.float64,
    "x_min": np.float64,
    "x_max": np.float64,
    "x_bins": np.int32,
    "y_min": np.float64,
    "y_max": np.float64,
    "y_bins": np.int32,
}


def _field(head: np.ndarray, rel: int, dtype: str) -> np.ndarray:
    """One big-endian field at byte ``rel`` of every (gathered) entry, as a native array."""
    size = np.dtype(dtype).itemsize
    return np.ascontiguousarray(head[:, rel : rel + size]).view(dtype)[:, 0].astype(dtype[1:])


def _consistent(head: np.ndarray, layout: EntryLayout) -> np.ndarray:
    """Entries whose TH1 header, bin counts and array length agree with the prototype's layout."""
    ok = (
        head[:, layout.th1_rel : layout.th1_rel + 6] == np.frombuffer(layout.th1_head, np.uint8)
    ).all(1)
    ok &= _field(head, layout.x_rel, ">i4") == layout.nx
    if layout.dim == 2:
        ok &= _field(head, layout.y_rel, ">i4") == layout.ny
    ok &= _field(head, layout.array_rel, ">i4") == layout.n_values
    return ok


def _vector_decode(
    buf: np.ndarray,
    st: np.ndarray,
    members: np.ndarray,
    layout: EntryLayout,
    head: np.ndarray,
    verify: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    n = len(st)
    two_d = layout.dim == 2
    cols = {
        "dim": np.full(n, layout.dim, dtype=np.int8),
        "entries": _field(head, layout.entries_rel, ">f8"),
        "x_min": _field(head, layout.x_rel + 4, ">f8"),
        "x_max": _field(head, layout.x_rel + 12, ">f8"),
        "x_bins": np.full(n, layout.nx, dtype=np.int32),
        "y_min": _field(head, layout.y_rel + 4, ">f8") if two_d else np.full(n, np.nan),
        "y_max": _field(head, layout.y_rel + 12, ">f8") if two_d else np.full(n, np.nan),
        "y_bins": np.full(n, layout.ny, dtype=np.int32),
    }
    itemsize = np.dtype(layout.dtype).itemsize
    raw = gather(buf, st, layout.array_rel + 4, layout.n_values * itemsize).view(layout.dtype)
    values = _strip_flow(raw, layout)
    if verify:
        tsumw = _field(head, layout.entries_rel + 8, ">f8")
        cols["_resid"] = integrity.residuals(raw, values, layout, cols["entries"], tsumw)
        cols["_nvalues"] = np.full(n, layout.n_values)
        cols["_struct"] = integrity.structure_outliers(buf, st, layout)
        cols["_struct"] |= integrity.bad_axes(cols, layout.dim)
    return members, cols, values


def _strings(codes: np.ndarray, values: list[str]) -> pd.api.extensions.ExtensionArray:
    """A pandas string column from codes into a few distinct values, built in Arrow (no loop)."""
    dictionary = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values))
    strings = pd.array(dictionary.cast(pa.string()), dtype=COLUMNS["me"])
    return strings


def _frame(batches: list[dict[str, np.ndarray]], path: str, *, sort: bool = False) -> pd.DataFrame:
    """Column batches -> one histogram table (built once: string columns are the costly part)."""
    if not batches:
        return empty_histograms()
    cols = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    n = len(cols["run"])
    if n == 0:
        return empty_histograms()
    codes, uniques = pd.factorize(cols["me"], sort=True)
    if sort:
        order = np.lexsort((codes, cols["lumi"], cols["run"]))
        cols = {k: v[order] for k, v in cols.items()}
        codes = codes[order]
    table = pd.DataFrame(
        {
            "run": cols["run"].astype(np.int64),
            "lumi": cols["lumi"].astype(np.int64),
            "me": _strings(codes, list(uniques)),
            **{k: cols[k] for k in _NUMERIC},
            "data": cols["data"],
            "source": _strings(np.zeros(n, dtype=np.int32), [path]),
        }
    )
    return table[list(COLUMNS)]


def resolve_duplicates(table: pd.DataFrame, policy: Duplicates, source: str) -> pd.DataFrame:
    """Handle (run, lumi, me) keys met more than once (merged files).

    ``sum`` adds bin contents and entries like CMSSW's DQMRootSource (the binning must agree),
    ``raise`` refuses, ``first`` keeps the first row of each key (in table order).
    """
    if table.empty:
        return table
    dup = table.duplicated(KEY, keep=False)
    if not dup.any():
        return table
    if policy == "first":
        return table.drop_duplicates(KEY, keep="first", ignore_index=True)
    first = table[dup].iloc[0]
    if policy == "raise":
        raise DQMIOError(
            source,
            f"{int(dup.sum())} rows share a (run, lumi, me) key, e.g. run {first['run']} lumi "
            f"{first['lumi']} {first['me']}",
        )
    merged_rows = []
    for _, group in table[dup].groupby(KEY, sort=False):
        axes = group[["x_min", "x_max", "x_bins", "y_bins"]].drop_duplicates()
        if len(axes) > 1:
            g = group.iloc[0]
            raise DQMIOError(
                source,
                f"run {g['run']} lumi {g['lumi']} {g['me']} appears {len(group)} times with "
                "different binning; cannot sum",
            )
        row = group.iloc[0].copy()
        row["entries"] = group["entries"].sum()
        row["data"] = np.sum(np.stack(group["data"].to_list()), axis=0)
        merged_rows.append(row)
    merged = pd.DataFrame(merged_rows, columns=table.columns)
    out = pd.concat([table[~dup], merged], ignore_index=True)
    return out.astype({k: v for k, v in COLUMNS.items() if k != "data"})


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0].rstrip(",") if text else ""
    if "expected Chunk of length" in first:  # uproot's words for a read past the end of the file
        return "the file is truncated or damaged: a record runs past the end of the file"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def read_dqmio(
    path: str | os.PathLike[str],
    me: MESpec = None,
    include_run_level: bool = False,
    *,
    missing: MissingMEs = "raise",
    duplicates: Duplicates = "sum",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    verify: bool = True,
    threads: int | None = None,
    **open_options: Any,
) -> pd.DataFrame:
    """Read the histograms of one DQMIO file into the histogram table.

    ``me`` selects monitor elements by exact full names or regular expressions (full match); ``None``
    takes every 1D/2D histogram. Run-level MEs (``lumi == 0``) are included on request. A requested
    ME that the file lacks raises :class:`MissingMEError` unless ``missing="ignore"``. ``threads``
    decompress baskets in parallel (``None``: min(4, usable CPUs)); the table does not depend on it.
    """
    with DQMIOFile(path, **open_options) as f:
        return f.read(
            me,
            include_run_level=include_run_level,
            missing=missing,
            duplicates=duplicates,
            chunk_bytes=chunk_bytes,
            verify=verify,
            threads=threads,
        )


def iter_dqmio(
    path: str | os.PathLike[str],
    me: MESpec = None,
    include_run_level: bool = False,
    *,
    missing: MissingMEs = "raise",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    verify: bool = True,
    threads: int | None = None,
    **open_options: Any,
) -> Iterator[pd.DataFrame]:
    """Stream the histogram table of one file in bounded pieces (rows are not de-duplicated)."""
    with DQMIOFile(path, **open_options) as f:
        yield from f.iter_histograms(
            me,
            include_run_level=include_run_level,
            missing=missing,
            chunk_bytes=chunk_bytes,
            verify=verify,
            threads=threads,
        )
