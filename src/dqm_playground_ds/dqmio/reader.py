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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import uproot

from dqm_playground_ds.dqmio.errors import DQMIOError, MissingMEError
from dqm_playground_ds.dqmio.layout import (
    HIST_TYPES,
    NO_TYPES_STORED,
    TYPE_NAMES,
    EntryLayout,
    LayoutError,
    parse_entry,
)
from dqm_playground_ds.dqmio.selection import MESpec, as_patterns, match_names, suggest
from dqm_playground_ds.schema import COLUMNS, KEY, empty_histograms

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
_SMALL_GATHER = 2048  # bytes per entry below which one fancy-index gather beats a slice loop
_INDICES_BRANCHES = ("Run", "Lumi", "Type", "FirstIndex", "LastIndex")
Duplicates = Literal["sum", "raise", "keep"]


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


def _gather(buf: np.ndarray, starts: np.ndarray, rel: int, nbytes: int) -> np.ndarray:
    """Bytes ``[start + rel, start + rel + nbytes)`` of every entry, as an (n, nbytes) uint8 array."""
    n = len(starts)
    if n == 0:
        return np.empty((0, nbytes), dtype=np.uint8)
    begin = starts + rel
    if nbytes <= _SMALL_GATHER:
        return buf[begin[:, None] + np.arange(nbytes)]
    out = np.empty((n, nbytes), dtype=np.uint8)
    for i, b in enumerate(begin.tolist()):
        out[i] = buf[b : b + nbytes]
    return out


def _compact(
    data: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Copy the given byte ranges into one small buffer; return it and the new starts."""
    new_starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    index = np.repeat(starts - new_starts, lengths) + np.arange(int(lengths.sum()))
    return data[index], new_starts


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
            if "expected Chunk" in detail:
                detail += "; the file is truncated or damaged"
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
        self._names: dict[int, np.ndarray] = {}
        self._indices: dict[str, np.ndarray] | None = None
        self._layouts: dict[tuple[int, str, int], EntryLayout] = {}

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
                absent = [b for b in _INDICES_BRANCHES if b not in tree.keys()]
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
        if type_code not in self._names:
            tree = self._tree(type_code)
            try:
                self._names[type_code] = tree["FullName"].array(library="np")
            except Exception as exc:
                raise DQMIOError(
                    self.path, f"cannot read {TYPE_NAMES[type_code]}/FullName ({_describe(exc)})"
                ) from exc
        return self._names[type_code]

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
        lumis = {
            (int(r), int(lumi))
            for r, lumi in zip(idx["Run"][lumi_rows], idx["Lumi"][lumi_rows], strict=True)
        }
        names: set[str] = set()
        n_hist = 0
        types = {}
        for t in self._type_codes():
            if t not in HIST_TYPES:
                continue
            tree_names = self.names(t)
            entries, _, _ = self._entry_map(t)
            names.update(np.unique(tree_names).tolist())
            n_hist += len(entries)
            types[HIST_TYPES[t][2]] = len(entries)
        return FileSummary(
            path=self.path,
            guid=self.guid,
            runs=sorted({int(r) for r in idx["Run"]}),
            n_lumis=len(lumis),
            n_mes=len(names),
            n_histograms=n_hist,
            types=types,
        )

    def list_mes(self) -> pd.DataFrame:
        """One row per ME: name, type, dimension and how many entries (LS + run-level) it has."""
        rows = []
        for t in self._type_codes():
            names = self.names(t)
            uniq, counts = np.unique(names, return_counts=True)
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
        missing: Literal["raise", "ignore"] = "raise",
    ) -> list[_Selected]:
        patterns = as_patterns(me)
        selected: list[_Selected] = []
        matched_any: set[str] = set()
        unsupported: dict[str, str] = {}
        all_names: set[str] = set()
        for t in self._type_codes():
            names = self.names(t)
            uniq, inverse = np.unique(names, return_inverse=True)
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
            if len(entries) and (entries.max() >= len(names) or entries.min() < 0):
                raise DQMIOError(
                    self.path,
                    f"Indices points past the end of {TYPE_NAMES[t]} "
                    f"(entry {int(entries.max())}, tree has {len(names)})",
                )
            name_ids = inverse.reshape(-1)[entries]
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
        if patterns is not None:
            exact_unsupported = [p for p in patterns if p in unsupported]
            if exact_unsupported and missing == "raise":
                p = exact_unsupported[0]
                raise DQMIOError(
                    self.path,
                    f"monitor element {p!r} is a {unsupported[p]}, which the histogram table does "
                    "not hold (only TH1F/S/D/I and TH2F/S/D/I)",
                )
            missing_patterns = [p for p in patterns if p not in matched_any]
            if missing_patterns and missing == "raise":
                raise MissingMEError(
                    self.path, missing_patterns, suggest(missing_patterns, all_names)
                )
        return selected

    # -- decoding -------------------------------------------------------------------------------
    def iter_histograms(
        self,
        me: MESpec = None,
        *,
        include_run_level: bool = False,
        missing: Literal["raise", "ignore"] = "raise",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> Iterator[pd.DataFrame]:
        """Yield the histogram table in pieces of at most ``chunk_bytes`` of decompressed baskets."""
        for sel in self.select(me, include_run_level=include_run_level, missing=missing):
            yield from self._iter_type(sel, chunk_bytes)

    def read(
        self,
        me: MESpec = None,
        *,
        include_run_level: bool = False,
        missing: Literal["raise", "ignore"] = "raise",
        duplicates: Duplicates = "sum",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> pd.DataFrame:
        parts = list(
            self.iter_histograms(
                me, include_run_level=include_run_level, missing=missing, chunk_bytes=chunk_bytes
            )
        )
        table = pd.concat(parts, ignore_index=True) if parts else empty_histograms()
        table = resolve_duplicates(table, duplicates, self.path)
        return table.sort_values(KEY, kind="stable", ignore_index=True)

    def _iter_type(self, sel: _Selected, chunk_bytes: int) -> Iterator[pd.DataFrame]:
        """Decode one type's selected entries, holding at most ``chunk_bytes`` of their raw bytes.

        Baskets are read one at a time; when few of a basket's entries are selected, only their
        bytes are kept, so memory follows the selected output, not the file.
        """
        tree_name = TYPE_NAMES[sel.type_code]
        branch = self._tree(sel.type_code)["Value"]
        basket_starts = np.asarray(branch.entry_offsets, dtype=np.int64)
        basket_of = np.searchsorted(basket_starts, sel.entries, side="right") - 1
        needed = np.unique(basket_of)
        bounds = np.searchsorted(basket_of, needed, side="left").tolist() + [len(basket_of)]
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (data, starts, lengths)
        pending_sel: list[np.ndarray] = []
        pending_bytes = 0
        for k, b in enumerate(needed.tolist()):
            try:
                basket = branch.basket(b)
                data = basket.data
                offsets = basket.byte_offsets
            except Exception as exc:
                raise DQMIOError(
                    self.path,
                    f"{tree_name}/Value basket {b} (entries {basket_starts[b]}-"
                    f"{basket_starts[b + 1] - 1}) cannot be read ({_describe(exc)})",
                ) from exc
            if offsets is None:
                raise DQMIOError(self.path, f"{tree_name}/Value basket {b} has no entry offsets")
            which = np.arange(bounds[k], bounds[k + 1])
            local = sel.entries[which] - basket_starts[b]
            if local.max() + 1 >= len(offsets):
                raise DQMIOError(
                    self.path,
                    f"{tree_name}/Value basket {b} holds fewer entries than its tree says",
                )
            starts = offsets[local].astype(np.int64)
            lengths = offsets[local + 1].astype(np.int64) - starts
            if 2 * int(lengths.sum()) < len(data):  # keep only the selected entries' bytes
                data, starts = _compact(data, starts, lengths)
            pending.append((data, starts, lengths))
            pending_sel.append(which)
            pending_bytes += len(data)
            if pending_bytes >= chunk_bytes:
                yield self._decode_chunk(sel, pending, pending_sel)
                pending, pending_sel, pending_bytes = [], [], 0
        if pending:
            yield self._decode_chunk(sel, pending, pending_sel)

    def _decode_chunk(
        self,
        sel: _Selected,
        baskets: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        which_parts: list[np.ndarray],
    ) -> pd.DataFrame:
        base = np.cumsum([0] + [len(d) for d, _, _ in baskets[:-1]])
        buf = baskets[0][0] if len(baskets) == 1 else np.concatenate([d for d, _, _ in baskets])
        starts = np.concatenate([s + o for (_, s, _), o in zip(baskets, base, strict=True)])
        lengths = np.concatenate([ln for _, _, ln in baskets])
        which = np.concatenate(which_parts)
        name_ids = sel.name_ids[which]
        key = name_ids.astype(np.int64) * (int(lengths.max()) + 1) + lengths
        groups, inverse = np.unique(key, return_inverse=True)
        pieces = []
        for g in range(len(groups)):
            members = np.flatnonzero(inverse == g)
            pieces.extend(self._decode_group(sel, buf, starts, lengths, which, members))
        pieces.sort(key=lambda p: p[0][0])
        order = np.concatenate([p[0] for p in pieces])
        rows = which[order]
        layouts_dim = np.concatenate([np.full(len(p[0]), p[1].dim, dtype=np.int8) for p in pieces])
        data = np.empty(len(order), dtype=object)
        pos = 0
        for _, _, _, values in pieces:
            data[pos : pos + len(values)] = list(values)
            pos += len(values)

        def col(i: int) -> np.ndarray:
            return np.concatenate([p[2][i] for p in pieces])

        table = pd.DataFrame(
            {
                "run": sel.runs[rows],
                "lumi": sel.lumis[rows],
                "me": pd.array(sel.names[sel.name_ids[rows]].astype(str), dtype="string"),
                "dim": layouts_dim,
                "entries": col(0),
                "x_min": col(1),
                "x_max": col(2),
                "x_bins": col(3).astype(np.int32),
                "y_min": col(4),
                "y_max": col(5),
                "y_bins": col(6).astype(np.int32),
                "data": data,
                "source": pd.array([self.path] * len(order), dtype="string"),
            }
        )
        return table.astype({k: v for k, v in COLUMNS.items() if k != "data"})

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
    ) -> list[tuple[np.ndarray, EntryLayout, tuple[np.ndarray, ...], np.ndarray]]:
        """Decode entries of one (ME, length) group; entries that break the layout go one by one."""
        first = int(members[0])
        s0, n0 = int(starts[first]), int(lengths[first])
        entry0 = int(sel.entries[which[first]])
        layout = self._layout_for(sel, int(sel.name_ids[which[first]]), buf[s0 : s0 + n0], entry0)
        st = starts[members]
        head = _gather(buf, st, layout.th1_rel, 6)
        ok = (head == np.frombuffer(layout.th1_head, dtype=np.uint8)).all(axis=1)
        x = _gather(buf, st, layout.x_rel, 20)
        ok &= x[:, :4].copy().view(">i4")[:, 0] == layout.nx
        if layout.dim == 2:
            y = _gather(buf, st, layout.y_rel, 20)
            ok &= y[:, :4].copy().view(">i4")[:, 0] == layout.ny
        fn = _gather(buf, st, layout.array_rel, 4).view(">i4")[:, 0]
        ok &= fn == layout.n_values
        out = []
        if ok.all():
            out.append(self._vector_decode(buf, st, members, layout))
        else:
            good = members[ok]
            if len(good):
                out.append(self._vector_decode(buf, starts[good], good, layout))
            for m in members[~ok].tolist():
                s, n = int(starts[m]), int(lengths[m])
                one = self._parse(
                    sel,
                    str(sel.names[sel.name_ids[which[m]]]),
                    buf[s : s + n],
                    int(sel.entries[which[m]]),
                )
                out.append(self._vector_decode(buf, starts[[m]], np.array([m]), one))
        return out

    @staticmethod
    def _vector_decode(
        buf: np.ndarray, st: np.ndarray, members: np.ndarray, layout: EntryLayout
    ) -> tuple[np.ndarray, EntryLayout, tuple[np.ndarray, ...], np.ndarray]:
        n = len(st)
        entries = _gather(buf, st, layout.entries_rel, 8).view(">f8")[:, 0].astype(np.float64)
        x = _gather(buf, st, layout.x_rel + 4, 16).view(">f8").astype(np.float64)
        if layout.dim == 2:
            y = _gather(buf, st, layout.y_rel + 4, 16).view(">f8").astype(np.float64)
            y_min, y_max = y[:, 0], y[:, 1]
        else:
            y_min = y_max = np.full(n, np.nan)
        itemsize = np.dtype(layout.dtype).itemsize
        raw = _gather(buf, st, layout.array_rel + 4, layout.n_values * itemsize)
        values = _strip_flow(raw.view(layout.dtype), layout)
        cols = (
            entries,
            x[:, 0],
            x[:, 1],
            np.full(n, layout.nx),
            y_min,
            y_max,
            np.full(n, layout.ny),
        )
        return members, layout, cols, values


def resolve_duplicates(table: pd.DataFrame, policy: Duplicates, source: str) -> pd.DataFrame:
    """Handle (run, lumi, me) keys met more than once (merged files).

    ``sum`` adds bin contents and entries like CMSSW's DQMRootSource (the binning must agree),
    ``raise`` refuses, ``keep`` leaves every row (the table then fails schema validation).
    """
    if table.empty or policy == "keep":
        return table
    dup = table.duplicated(KEY, keep=False)
    if not dup.any():
        return table
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
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def read_dqmio(
    path: str | os.PathLike[str],
    me: MESpec = None,
    include_run_level: bool = False,
    *,
    missing: Literal["raise", "ignore"] = "raise",
    duplicates: Duplicates = "sum",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    **open_options: Any,
) -> pd.DataFrame:
    """Read the histograms of one DQMIO file into the histogram table.

    ``me`` selects monitor elements by exact full names or regular expressions (full match); ``None``
    takes every 1D/2D histogram. Run-level MEs (``lumi == 0``) are included on request. A requested
    ME that the file lacks raises :class:`MissingMEError` unless ``missing="ignore"``.
    """
    with DQMIOFile(path, **open_options) as f:
        return f.read(
            me,
            include_run_level=include_run_level,
            missing=missing,
            duplicates=duplicates,
            chunk_bytes=chunk_bytes,
        )


def iter_dqmio(
    path: str | os.PathLike[str],
    me: MESpec = None,
    include_run_level: bool = False,
    *,
    missing: Literal["raise", "ignore"] = "raise",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    **open_options: Any,
) -> Iterator[pd.DataFrame]:
    """Stream the histogram table of one file in bounded pieces (rows are not de-duplicated)."""
    with DQMIOFile(path, **open_options) as f:
        yield from f.iter_histograms(
            me, include_run_level=include_run_level, missing=missing, chunk_bytes=chunk_bytes
        )
