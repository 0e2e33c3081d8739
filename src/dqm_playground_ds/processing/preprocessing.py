"""Per-ME preprocessing of the histogram table into feature matrices, fitted on training LS only.

One pass over each monitor element (ME) does three things:

* **quality** per (LS, ME), worst first: ``invalid`` (NaN, inf or negative bins), ``bad_binning``
  (axis differs from the binning the training LS have), ``missing`` (no histogram for this LS),
  ``empty`` (zero integral), ``low_stats`` (integral below ``min_entries`` or below
  ``min_entries_per_bin`` times the number of bins), ``ok``. Statistics are the bin integral (what
  the histogram holds), not ROOT's ``fEntries``: sources disagree on the latter and an injected
  normalisation change must be visible. ``ok`` and ``low_stats`` LS can be scored; training uses
  ``ok`` only;
* **cropping** (axis values; bins whose centre lies inside are kept) and **rebinning** (integer
  factors, or a target size; a size that does not divide the bin count splits bins in proportion
  to their overlap, which keeps the integral);
* the counts that remain are stored (float32); the **normalisation** (``l1``, ``max``, ``none``) is
  applied on demand by :meth:`MEFeatures.values`, so statistics-aware detectors still see counts.

What is fitted on training LS: the expected binning of each ME (the most common one among them) and
its run-aware :class:`~dqm_playground_ds.detection.reference.Reference` in the original binning
(the one the reference test flags on, the plots draw and the injection places anomalies with). Several named
*variants* (different cropping/rebinning) can be built from one pass; strategies pick one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.reference import Reference
from dqm_playground_ds.histogram_tables import HistogramTable, as_table, iter_batches

log = logging.getLogger(__name__)

QUALITY = ("ok", "low_stats", "empty", "missing", "bad_binning", "invalid")
OK, LOW_STATS, EMPTY, MISSING, BAD_BINNING, INVALID = range(len(QUALITY))
NORMALISATIONS = ("l1", "max", "none")
REFERENCE_METHOD = "beta_binomial"  # the reference test's default: the pulls it flags on
BINNING_COLUMNS = ("dim", "x_bins", "x_min", "x_max", "y_bins", "y_min", "y_max")


class PreprocessingError(ValueError):
    """Preprocessing parameters or training data do not allow fitting; the message names the ME."""


# ------------------------------------------------------------------------------------------------
# parameters
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityCuts:
    """Minimum statistics per ME; ``per_me`` maps a regular expression (full match) to overrides."""

    min_entries: float = 0.0
    min_entries_per_bin: float = 0.0
    per_me: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None) -> QualityCuts:
        params = dict(params or {})
        unknown = set(params) - {"min_entries", "min_entries_per_bin", "per_me"}
        if unknown:
            raise PreprocessingError(f"quality: unknown key(s) {sorted(unknown)}")
        out = cls(
            float(params.get("min_entries", 0.0)),
            float(params.get("min_entries_per_bin", 0.0)),
            dict(params.get("per_me") or {}),
        )
        for pattern, value in out.per_me.items():
            bad = set(value) - {"min_entries", "min_entries_per_bin"}
            if bad:
                raise PreprocessingError(f"quality.per_me[{pattern!r}]: unknown key(s) {bad}")
        return out

    def for_me(self, me: str) -> tuple[float, float]:
        out = {"min_entries": self.min_entries, "min_entries_per_bin": self.min_entries_per_bin}
        for pattern, value in self.per_me.items():
            if re.fullmatch(pattern, me):
                out.update({k: float(v) for k, v in value.items()})
        return out["min_entries"], out["min_entries_per_bin"]


@dataclass(frozen=True)
class MEConfig:
    """Resolved preprocessing of one ME: crop (axis values), rebin factors or size, normalisation."""

    crop_x: tuple[float, float] | None = None
    crop_y: tuple[float, float] | None = None
    rebin: tuple[int, int] = (1, 1)  # (y, x)
    shape: tuple[int, int] | None = None  # (ny, nx); ny = 1 for 1D
    normalisation: str = "l1"


_CONFIG_KEYS = {"crop", "rebin", "shape", "normalisation"}


def _pair(value: Any, what: str, dim: int, cast: type) -> tuple[Any, Any]:
    if isinstance(value, (int, float)):
        return (cast(1), cast(value)) if dim == 1 else (cast(value), cast(value))
    value = list(value)
    if dim == 1 and len(value) == 1:
        return cast(1), cast(value[0])
    if len(value) != 2:
        raise PreprocessingError(f"{what}: expected one value or [y, x], got {value!r}")
    return cast(value[0]), cast(value[1])


def _range(value: Any, what: str) -> tuple[float, float]:
    bounds = tuple(map(float, value))
    if len(bounds) != 2:
        raise PreprocessingError(f"{what}: a range is [low, high], got {list(value)!r}")
    return bounds[0], bounds[1]


def resolve_config(variant: Mapping[str, Any], me: str, dim: int) -> MEConfig:
    """Settings for ``me``: the ``1d``/``2d`` block, then every matching ``per_me`` regex in order."""
    unknown = set(variant) - {"1d", "2d", "per_me"}
    if unknown:
        raise PreprocessingError(f"preprocessing: unknown key(s) {sorted(unknown)}")
    merged: dict[str, Any] = dict(variant.get(f"{dim}d") or {})
    for pattern, value in (variant.get("per_me") or {}).items():
        if re.fullmatch(pattern, me):
            merged.update(value or {})
    bad = set(merged) - _CONFIG_KEYS
    if bad:
        raise PreprocessingError(f"preprocessing of {me}: unknown key(s) {sorted(bad)}")
    crop = merged.get("crop") or {}
    if not isinstance(crop, Mapping) or set(crop) - {"x", "y"}:
        raise PreprocessingError(
            f"preprocessing of {me}: crop must be {{x: [lo, hi], y: [lo, hi]}}"
        )
    norm = str(merged.get("normalisation", "l1")).lower()
    if norm not in NORMALISATIONS:
        raise PreprocessingError(
            f"preprocessing of {me}: normalisation {norm!r} not in {NORMALISATIONS}"
        )
    shape = merged.get("shape")
    return MEConfig(
        crop_x=_range(crop["x"], f"preprocessing of {me}: crop.x")
        if crop.get("x") is not None
        else None,
        crop_y=_range(crop["y"], f"preprocessing of {me}: crop.y")
        if crop.get("y") is not None
        else None,
        rebin=_pair(merged.get("rebin", 1), f"{me}: rebin", dim, int),
        shape=_pair(shape, f"{me}: shape", dim, int) if shape is not None else None,
        normalisation=norm,
    )


# ------------------------------------------------------------------------------------------------
# binning helpers
# ------------------------------------------------------------------------------------------------
def rebin_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix sending each input bin to output bins in proportion to their overlap."""
    if n_out <= 0 or n_out > n_in:
        raise PreprocessingError(f"cannot rebin {n_in} bins to {n_out}")
    # bin i covers [i*n_out, (i+1)*n_out), output j covers [j*n_in, (j+1)*n_in): integers, exact
    lo_in = np.arange(n_in) * n_out
    lo_out = np.arange(n_out) * n_in
    overlap = np.minimum(lo_in[None, :] + n_out, lo_out[:, None] + n_in) - np.maximum(
        lo_in[None, :], lo_out[:, None]
    )
    return np.clip(overlap, 0, None) / n_out


def _crop_index(n: int, lo: float, hi: float, limits: tuple[float, float] | None) -> np.ndarray:
    if limits is None:
        return np.arange(n)
    centres = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    keep = np.flatnonzero((centres >= limits[0]) & (centres <= limits[1]))
    if keep.size == 0:
        raise PreprocessingError(f"crop {list(limits)} keeps no bin of the axis [{lo}, {hi}]")
    return keep


def _output_size(n: int, factor: int, size: int | None, what: str) -> int:
    if size is not None:
        return size
    if factor < 1 or n % factor:
        raise PreprocessingError(
            f"{what}: rebin factor {factor} does not divide {n} bins (use shape for any size)"
        )
    return n // factor


@dataclass
class MEPreprocessor:
    """Crop/rebin of one ME for one variant (no learned state beyond the binning)."""

    me: str
    dim: int
    config: MEConfig
    binning: tuple[float, ...]
    x_index: np.ndarray = field(init=False)
    y_index: np.ndarray = field(init=False)
    rx: np.ndarray | None = field(init=False)
    ry: np.ndarray | None = field(init=False)
    shape: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        _, nx, x_lo, x_hi, ny, y_lo, y_hi = self.binning
        nx, ny = int(nx), int(ny)
        cfg = self.config
        self.x_index = _crop_index(nx, x_lo, x_hi, cfg.crop_x)
        self.y_index = _crop_index(ny, y_lo, y_hi, cfg.crop_y) if self.dim == 2 else np.arange(1)
        size = cfg.shape
        ox = _output_size(self.x_index.size, cfg.rebin[1], size[1] if size else None, self.me)
        self.rx = None if ox == self.x_index.size else rebin_matrix(self.x_index.size, ox)
        if self.dim == 2:
            oy = _output_size(self.y_index.size, cfg.rebin[0], size[0] if size else None, self.me)
            self.ry = None if oy == self.y_index.size else rebin_matrix(self.y_index.size, oy)
            self.shape = (oy, ox)
        else:
            self.ry = None
            self.shape = (ox,)
        self._full = self.x_index.size == nx and (self.dim == 1 or self.y_index.size == ny)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Raw (b, bins) float64 -> (b, prod(shape)) float32 counts."""
        _, nx, _, _, ny, _, _ = self.binning
        if self.dim == 1:
            x = raw if self._full else raw[:, self.x_index]
            if self.rx is not None:
                x = x @ self.rx.T
            return x.astype(np.float32, copy=False)
        m = raw.reshape(len(raw), int(ny), int(nx))
        if not self._full:
            m = m[:, self.y_index][:, :, self.x_index]
        if self.rx is not None:
            m = m @ self.rx.T
        if self.ry is not None:
            m = self.ry @ m
        return m.reshape(len(raw), -1).astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------------------
# feature containers
# ------------------------------------------------------------------------------------------------
class CountsSource(Protocol):
    """Where an ME's counts come from when they are not an array in memory."""

    def load(self) -> np.ndarray: ...


class MEFeatures:
    """Counts of one ME after crop/rebin, one row per LS of the owning :class:`FeatureSet`.

    ``counts`` is an array, or a :class:`CountsSource` asked on each access: a memory-mapped file
    of the feature store (the pages go when the caller drops the array, so a pass over the MEs
    holds one ME at a time) or the histogram table itself (:meth:`HistogramPreprocessor.transform`
    with ``lazy=True``).
    """

    def __init__(
        self,
        me: str,
        dim: int,
        shape: tuple[int, ...],
        normalisation: str,
        counts: np.ndarray | CountsSource,
    ) -> None:
        self.me, self.dim, self.shape, self.normalisation = me, dim, tuple(shape), normalisation
        self._counts = counts

    def __repr__(self) -> str:
        where = "array" if isinstance(self._counts, np.ndarray) else type(self._counts).__name__
        return f"MEFeatures({self.me!r}, dim={self.dim}, shape={self.shape}, {where})"

    @property
    def counts(self) -> np.ndarray:
        """float32 (n_ls, n_bins); 0 where the LS cannot be scored."""
        c = self._counts
        return c if isinstance(c, np.ndarray) else c.load()

    @property
    def source(self) -> np.ndarray | CountsSource:
        """The array or the source behind ``counts`` (two variants may share one)."""
        return self._counts

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        c = self._counts
        if not (isinstance(c, np.ndarray) or getattr(c, "portable", False)):
            state["_counts"] = c.compute() if hasattr(c, "compute") else c.load()
        return state

    def values(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Normalised features (float32); rows with nothing to normalise are 0."""
        c = self.counts if rows is None else self.counts[rows]
        if self.normalisation == "none":
            return c
        norm = c.sum(axis=1) if self.normalisation == "l1" else c.max(axis=1, initial=0.0)
        out = np.zeros_like(c)
        np.divide(c, norm[:, None], out=out, where=norm[:, None] > 0)
        return out


class TableCounts:
    """One ME's preprocessed counts, computed from the histogram table when asked (kept after
    the first :meth:`load`; :meth:`compute` does not keep them, for a writer going ME by ME)."""

    portable = False

    def __init__(
        self,
        preprocessor: HistogramPreprocessor,
        me: str,
        pp: MEPreprocessor,
        table: HistogramTable,
        index: pd.Index,
        key_columns: list[str],
        runs: list[int] | None,
    ) -> None:
        self.preprocessor, self.me, self.pp = preprocessor, me, pp
        self.table, self.index, self.key_columns, self.runs = table, index, key_columns, runs
        self._array: np.ndarray | None = None

    def load(self) -> np.ndarray:
        if self._array is None:
            self._array = self.compute()
        return self._array

    def compute(self) -> np.ndarray:
        pre = self.preprocessor
        out = np.zeros((len(self.index), int(np.prod(self.pp.shape))), np.float32)
        filled = np.zeros(len(self.index), dtype=bool)
        for batch in pre._batches_of(self.table, self.me, self.runs, self.key_columns):
            rows, pos = pre._positions(self.me, batch, self.index, self.key_columns, filled)
            start = 0
            for raw, _, _ in pre._raw_chunks(rows, self.me):
                out[pos[start : start + len(raw)]] = self.pp(raw)
                start += len(raw)
        return out


@dataclass
class FeatureSet:
    """Per-ME feature matrices aligned on one LS index (``keys``) with per-(LS, ME) quality."""

    keys: pd.DataFrame
    mes: dict[str, MEFeatures]
    quality: np.ndarray  # int8 (n_ls, n_me), codes of QUALITY, columns in ``me_names`` order
    integral: np.ndarray  # float64 (n_ls, n_me), bin sum of the raw histogram (NaN if missing)

    @property
    def me_names(self) -> list[str]:
        return list(self.mes)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def scorable(self) -> np.ndarray:
        """LS whose every ME can be scored (quality ok or low_stats)."""
        return np.asarray((self.quality <= LOW_STATS).all(axis=1), dtype=bool)

    def ls_quality(self) -> tuple[np.ndarray, np.ndarray]:
        """Worst quality name per LS and a ``me: reason; ...`` detail string."""
        worst = self.quality.max(axis=1, initial=OK)
        names = np.asarray(QUALITY, dtype=object)[worst]
        detail = np.full(len(self), "", dtype=object)
        for j, me in enumerate(self.me_names):
            bad = self.quality[:, j] > OK
            if bad.any():
                reason = np.asarray(QUALITY, dtype=object)[self.quality[bad, j]]
                sep = np.where(detail[bad] == "", "", "; ")
                detail[bad] = detail[bad] + sep + me + ": " + reason
        return names, detail

    def failing_mes(self, row: int) -> list[str]:
        return [me for j, me in enumerate(self.me_names) if self.quality[row, j] > OK]

    def integral_ratio(self) -> np.ndarray:
        """log(integral) of each ME minus its LS mean over MEs: luminosity cancels, a drop stays."""
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(self.integral > 0, np.log(self.integral), np.nan)
        return logs - logs.mean(axis=1, keepdims=True)

    def subset(self, rows: np.ndarray) -> FeatureSet:
        rows = np.asarray(rows)
        mes = {
            k: MEFeatures(v.me, v.dim, v.shape, v.normalisation, v.counts[rows])
            for k, v in self.mes.items()
        }
        return FeatureSet(
            self.keys.iloc[rows].reset_index(drop=True),
            mes,
            self.quality[rows],
            self.integral[rows],
        )


# ------------------------------------------------------------------------------------------------
# the fitted object
# ------------------------------------------------------------------------------------------------
def _binning_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.loc[:, list(BINNING_COLUMNS)].astype("float64")
    return out.fillna(0.0)


def _key_index(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Index:
    if len(columns) == 1:
        return pd.Index(frame[columns[0]].to_numpy())
    return pd.MultiIndex.from_frame(frame.loc[:, list(columns)])


def _training_batches(
    table: HistogramTable,
    me: str,
    train_keys: pd.DataFrame,
    columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """The rows of ``me`` at the training LS, in batches (read for the training runs only)."""
    runs = np.unique(train_keys["run"].to_numpy()).tolist()
    index = _key_index(train_keys, ("run", "lumi"))
    for batch in iter_batches(table, me, runs=runs, columns=columns):
        rows = batch[batch["lumi"] > 0]
        in_train = index.get_indexer(_key_index(rows, ("run", "lumi")))
        if (in_train >= 0).any():
            yield rows[in_train >= 0]


class HistogramPreprocessor:
    """Fit on training LS, transform any LS of the histogram table into :class:`FeatureSet`s.

    ``variants`` maps a name to ``{1d: {...}, 2d: {...}, per_me: {regex: {...}}}`` with keys
    ``crop``, ``rebin``, ``shape``, ``normalisation``; ``quality`` holds the quality cuts.
    """

    def __init__(
        self,
        variants: Mapping[str, Mapping[str, Any]] | None = None,
        quality: QualityCuts | Mapping[str, Any] | None = None,
        chunk_size: int = 4096,
    ) -> None:
        self.variants = dict(variants or {"default": {}})
        self.quality = quality
        self.chunk_size = chunk_size

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self, histograms: HistogramTable | pd.DataFrame, train_keys: pd.DataFrame
    ) -> HistogramPreprocessor:
        """Binning and reference shape of every ME from the histograms of ``train_keys`` LS.

        Reads the table one ME at a time (the training runs only), twice: the quality of every
        ME's training LS decides which LS the references learn from, and that needs every ME.
        """
        self.cuts_ = (
            self.quality
            if isinstance(self.quality, QualityCuts)
            else QualityCuts.from_dict(self.quality)
        )
        table = as_table(histograms)
        self.binning_: dict[str, tuple[float, ...]] = {}
        self.dim_: dict[str, int] = {}
        self.reference_: dict[str, np.ndarray] = {}
        self.n_train_: dict[str, int] = {}
        present = table.mes()
        ok_keys: dict[str, pd.Index] = {}
        binning_columns = ["run", "lumi", *BINNING_COLUMNS]
        for me in present:
            bins = list(_training_batches(table, me, train_keys, binning_columns))
            if not bins:
                continue
            self._fit_binning(me, pd.concat(bins, ignore_index=True))
            del bins
            ok = [
                rows.loc[np.concatenate([c for _, c, _ in self._raw_chunks(rows, me)]) == OK,
                         ["run", "lumi"]]
                for rows in _training_batches(table, me, train_keys)
            ]  # fmt: skip
            ok_keys[me] = _key_index(pd.concat(ok, ignore_index=True), ("run", "lumi"))
        if not self.binning_:
            raise PreprocessingError("no histogram of any training LS: cannot fit preprocessing")
        self.mes_ = sorted(self.binning_)
        others = sorted(set(present) - set(self.mes_))
        if others:
            log.warning("MEs absent from the training LS are ignored: %s", others)
        self.preprocessors_ = {
            name: {
                me: MEPreprocessor(
                    me, self.dim_[me], resolve_config(spec, me, self.dim_[me]), self.binning_[me]
                )
                for me in self.mes_
            }
            for name, spec in self.variants.items()
        }
        self._fit_references(table, train_keys, ok_keys)
        return self

    def _fit_binning(self, me: str, rows: pd.DataFrame) -> None:
        """The most common binning of the training LS (the others are ``bad_binning``)."""
        counts = _binning_frame(rows).value_counts(sort=True)
        binning = tuple(float(v) for v in counts.index[0])
        if len(counts) > 1:
            log.warning(
                "%s: training LS have %d binnings; using the most common (%d LS), the "
                "others are marked bad_binning",
                me,
                len(counts),
                int(counts.iloc[0]),
            )
        self.binning_[me] = binning
        self.dim_[me] = int(binning[0])

    def _fit_references(
        self, table: HistogramTable, train_keys: pd.DataFrame, ok_by_me: dict[str, pd.Index]
    ) -> None:
        """The run-aware :class:`Reference` of every ME (original binning) from the training LS
        whose every ME passes the quality cuts: the LS the detectors learn from, in (run, lumi)
        order, so that the reference test and the plots share one reference."""
        ok_keys = None
        for me in self.mes_:
            keys = ok_by_me[me]
            if keys.empty:
                raise PreprocessingError(
                    f"{me}: no training LS passes the quality cuts "
                    f"(min_entries, min_entries_per_bin = {self.cuts_.for_me(me)})"
                )
            ok_keys = keys if ok_keys is None else ok_keys.intersection(keys)
        if ok_keys is None or ok_keys.empty:
            raise PreprocessingError(
                "no training LS passes the quality cuts in every ME: no reference can be fitted"
            )
        self.fitted_references_: dict[str, Reference] = {}
        order = np.lexsort(
            (ok_keys.get_level_values(1).to_numpy(), ok_keys.get_level_values(0).to_numpy())
        )
        ok_sorted = ok_keys[order]  # (run, lumi) order
        for me in self.mes_:
            # filled in place at each LS's (run, lumi) position: one copy of the counts, not the
            # batches, their stack and its sorted copy (the 2D maps of 300k LS are GBs each)
            X = np.zeros((len(ok_sorted), self._n_raw(me)))
            filled = np.zeros(len(ok_sorted), dtype=bool)
            for batch in _training_batches(table, me, train_keys):
                pos = ok_sorted.get_indexer(_key_index(batch, ("run", "lumi")))
                rows, pos = batch[pos >= 0], pos[pos >= 0]
                start = 0
                for raw, _, _ in self._raw_chunks(rows, me):
                    X[pos[start : start + len(raw)]] = raw
                    start += len(raw)
                filled[pos] = True
            if not filled.any():
                raise PreprocessingError(f"{me}: no training LS passes the quality cuts")
            if not filled.all():  # an ME's table changed between the two reads
                X = X[filled]
            runs = ok_sorted.get_level_values(0).to_numpy()[filled]
            ref = Reference.fit(X, groups=runs, method=REFERENCE_METHOD)
            del X
            self.fitted_references_[me] = ref
            self.reference_[me] = ref.shape
            self.n_train_[me] = int(filled.sum())

    def _n_raw(self, me: str) -> int:
        b = self.binning_[me]
        return int(b[1]) * (int(b[4]) if self.dim_[me] == 2 else 1)

    def _raw_chunks(self, rows: pd.DataFrame, me: str):
        """Yield (raw float64 chunk, quality codes, integrals) for rows of one ME."""
        expected = np.asarray(self.binning_[me])
        bins = _binning_frame(rows).to_numpy()
        good_binning = np.isclose(bins, expected[None, :], rtol=1e-9, atol=0.0).all(axis=1)
        n_raw = self._n_raw(me)
        min_entries, per_bin = self.cuts_.for_me(me)
        data = rows["data"].to_numpy()
        for start in range(0, len(rows), self.chunk_size):
            sl = slice(start, start + self.chunk_size)
            gb = good_binning[sl]
            codes = np.full(gb.size, BAD_BINNING, dtype=np.int8)
            raw = np.zeros((gb.size, n_raw))
            if gb.any():
                raw[gb] = np.stack([np.asarray(v, dtype=np.float64) for v in data[sl][gb]])
            with np.errstate(invalid="ignore"):
                invalid = ~np.isfinite(raw).all(axis=1) | (raw < 0).any(axis=1)
            raw[invalid] = 0.0
            integral = raw.sum(axis=1)
            codes[gb] = OK
            low = (integral < min_entries) | (integral < per_bin * n_raw)
            codes[gb & low] = LOW_STATS
            codes[gb & (integral <= 0)] = EMPTY
            codes[gb & invalid] = INVALID
            raw[codes > LOW_STATS] = 0.0
            integral = np.where(codes > LOW_STATS, np.nan, integral)
            integral[codes == EMPTY] = 0.0
            yield raw, codes, integral

    # -- transform --------------------------------------------------------------------------
    def transform(
        self,
        histograms: HistogramTable | pd.DataFrame,
        keys: pd.DataFrame | None = None,
        key_columns: Sequence[str] = ("run", "lumi"),
        lazy: bool = False,
    ) -> dict[str, FeatureSet]:
        """One :class:`FeatureSet` per variant, rows in the order of ``keys``.

        ``keys`` defaults to the sorted distinct (run, lumi > 0) of the table; ``key_columns``
        lets another key (e.g. an injected sample id) identify the LS. The table is read one ME
        at a time, the runs of ``keys`` only. ``lazy``: quality and integrals now, each ME's
        counts only when asked (:class:`TableCounts`), so a writer holds one ME at a time.
        """
        if not hasattr(self, "preprocessors_"):
            raise PreprocessingError("HistogramPreprocessor is not fitted")
        key_columns = list(key_columns)
        table = as_table(histograms)
        if keys is None:
            keys = table.read(columns=key_columns)
            if "lumi" in key_columns:
                keys = keys[keys["lumi"] > 0]
            keys = keys.drop_duplicates().sort_values(key_columns)
        keys = keys.reset_index(drop=True)
        index = _key_index(keys, key_columns)
        if not index.is_unique:
            raise PreprocessingError(f"keys are not unique on {key_columns}")
        n, mes = len(keys), self.mes_
        quality = np.full((n, len(mes)), MISSING, dtype=np.int8)
        integral = np.full((n, len(mes)), np.nan)
        runs = np.unique(keys["run"].to_numpy()).tolist() if "run" in key_columns else None
        if lazy:
            counts = self._table_counts(table, index, key_columns, runs)
            owners: dict[str, list[tuple[str, MEPreprocessor]]] = {me: [] for me in mes}
        else:
            counts, owners = self._count_arrays(n)
        for j, me in enumerate(mes):
            filled = np.zeros(n, dtype=bool)
            for batch in self._batches_of(table, me, runs, key_columns):
                rows, pos = self._positions(me, batch, index, key_columns, filled)
                self._fill(me, j, rows, pos, quality, integral, counts, owners)
        self._log_quality(quality, mes)
        return {
            v: FeatureSet(
                keys,
                {me: self._features(me, pps[me], counts[v][me]) for me in mes},
                quality,
                integral,
            )
            for v, pps in self.preprocessors_.items()
        }

    @staticmethod
    def _batches_of(
        table: HistogramTable, me: str, runs: list[int] | None, key_columns: list[str]
    ) -> Iterator[pd.DataFrame]:
        for batch in iter_batches(table, me, runs=runs):
            if "lumi" in key_columns and "lumi" in batch.columns:
                batch = batch[batch["lumi"] > 0]  # noqa: PLW2901
            yield batch

    def _table_counts(
        self,
        table: HistogramTable,
        index: pd.Index,
        key_columns: list[str],
        runs: list[int] | None,
    ) -> dict[str, dict[str, Any]]:
        """Per variant and ME, its :class:`TableCounts`; identical settings share one."""
        shared: dict[tuple[str, MEConfig], TableCounts] = {}
        counts: dict[str, dict[str, Any]] = {}
        for v, pps in self.preprocessors_.items():
            counts[v] = {}
            for me, pp in pps.items():
                key = (me, pp.config)
                if key not in shared:
                    shared[key] = TableCounts(self, me, pp, table, index, key_columns, runs)
                counts[v][me] = shared[key]
        return counts

    def _count_arrays(
        self, n: int
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[tuple[str, MEPreprocessor]]]]:
        """Per variant and ME, the (n, bins) array to fill; ``owners`` fill each shared one once."""
        mes = self.mes_
        # variants that preprocess an ME identically share one array (and one computation)
        shared: dict[tuple[str, MEConfig], np.ndarray] = {}
        counts: dict[str, dict[str, np.ndarray]] = {}
        owners: dict[str, list[tuple[str, MEPreprocessor]]] = {me: [] for me in mes}
        for v, pps in self.preprocessors_.items():
            counts[v] = {}
            for me, pp in pps.items():
                key = (me, pp.config)
                if key not in shared:
                    shared[key] = np.zeros((n, int(np.prod(pp.shape))), np.float32)
                    owners[me].append((v, pp))
                counts[v][me] = shared[key]
        return counts, owners

    def _fill(
        self,
        me: str,
        j: int,
        rows: pd.DataFrame,
        pos: np.ndarray,
        quality: np.ndarray,
        integral: np.ndarray,
        counts: dict[str, dict[str, Any]],
        owners: dict[str, list[tuple[str, MEPreprocessor]]],
    ) -> None:
        """Quality, integral and preprocessed counts of one ME's histograms at rows ``pos``."""
        start = 0
        for raw, codes, integ in self._raw_chunks(rows, me):
            p = pos[start : start + len(raw)]
            start += len(raw)
            quality[p, j] = codes
            integral[p, j] = integ
            for v, pp in owners[me]:
                counts[v][me][p] = pp(raw)

    @staticmethod
    def _positions(
        me: str,
        rows: pd.DataFrame,
        index: pd.Index,
        key_columns: list[str],
        filled: np.ndarray,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The rows whose key is in ``index`` and their row there; ``filled`` marks the rows
        already met (a key twice, in one batch or two, is an error)."""
        if rows.empty:
            return rows, np.zeros(0, dtype=np.intp)
        pos = index.get_indexer(_key_index(rows, key_columns))
        rows, pos = rows[pos >= 0], pos[pos >= 0]
        if np.unique(pos).size != pos.size or filled[pos].any():
            raise PreprocessingError(f"{me}: duplicate histograms for one LS key")
        filled[pos] = True
        return rows, pos

    def _features(
        self, me: str, pp: MEPreprocessor, counts: np.ndarray | CountsSource
    ) -> MEFeatures:
        return MEFeatures(me, self.dim_[me], pp.shape, pp.config.normalisation, counts)

    @staticmethod
    def _log_quality(quality: np.ndarray, mes: list[str]) -> None:
        for j, me in enumerate(mes):
            counts = np.bincount(quality[:, j], minlength=len(QUALITY))
            bad = {QUALITY[c]: int(k) for c, k in enumerate(counts) if c != OK and k}
            if bad:
                log.info("%s: LS not ok: %s", me, bad)

    def references(self) -> pd.DataFrame:
        """The fitted reference of each ME in its original binning, in the histogram schema's
        layout: shape (``data``), ``n_entries``, ``dispersion``, ``n_runs``, ``method``."""
        if not hasattr(self, "fitted_references_"):
            raise PreprocessingError(
                "this preprocessor holds reference shapes only (e.g. restored from a frozen "
                "model): refit it (data_processing) to get the fitted references"
            )
        rows = []
        for me in self.mes_:
            _, nx, x_lo, x_hi, ny, y_lo, y_hi = self.binning_[me]
            rows.append(
                {
                    "me": me,
                    "dim": self.dim_[me],
                    "x_min": x_lo,
                    "x_max": x_hi,
                    "x_bins": int(nx),
                    "y_min": y_lo if self.dim_[me] == 2 else np.nan,
                    "y_max": y_hi if self.dim_[me] == 2 else np.nan,
                    "y_bins": int(ny),
                    "n_train": self.n_train_[me],
                    **self.fitted_references_[me].to_record(),
                }
            )
        return pd.DataFrame(rows)
