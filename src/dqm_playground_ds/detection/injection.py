"""Synthetic anomalies injected into good histograms, one type at a time (1D and 2D).

Every type keeps the statistical nature of the histogram: when the bins hold integer counts, moved
entries are redistributed with multinomial draws and added entries are Poisson, so that an injected
LS is not "anomalous" merely because its noise changed. Types and default magnitudes
(``docs/anomaly-detection.md``):

``dead_region``    a contiguous 5-20 % of the populated bins set to 0 (a rectangle in 2D)
``hot_spot``       x3-x5 on 1-3 adjacent populated bins (a 1-2 x 1-2 rectangle in 2D)
``shift``          the x axis moved by 1-3 bins, either direction
``stretch``        the x axis scaled by 1 +- (2-10 %) about x = 0 (a gain / calibration scale) or,
                   when 0 is outside the axis, about its centre
``normalisation``  all bins scaled by a factor in [0.5, 0.8] or [1.25, 2] (a wrong normalisation)
``low_stats``      binomial thinning to 1-20 % of the entries
``noise``          extra Gaussian noise of 1-3 times the Poisson level per bin

"Populated" bins are those where the reference shape (the ME's fitted
:class:`~dqm_playground_ds.detection.reference.Reference`, the one the reference test flags on) is
above 10 % of its mean over non-empty bins, so that a dead region or hot spot lands where there is something to lose or amplify.
In 2D, shift and stretch act along x only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.reference import Reference
from dqm_playground_ds.histogram_tables import HistogramTable, as_table

AnomalyType = Literal[
    "dead_region", "hot_spot", "shift", "stretch", "normalisation", "low_stats", "noise"
]
ANOMALY_TYPES: tuple[AnomalyType, ...] = get_args(AnomalyType)

DEFAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "dead_region": {"fraction": (0.05, 0.20)},
    "hot_spot": {"factor": (3.0, 5.0), "size": (1, 3)},
    "shift": {"bins": (1, 3)},
    "stretch": {"fraction": (0.02, 0.10)},
    "normalisation": {"factor": (1.25, 2.0)},
    "low_stats": {"fraction": (0.01, 0.20)},
    "noise": {"level": (1.0, 3.0)},
}


class InjectionError(ValueError):
    """An unknown anomaly type or an impossible injection."""


@dataclass(frozen=True)
class Axis:
    """Position of x = 0 in bin units from the low edge (the stretch pivot)."""

    x_min: float
    x_max: float
    nx: int

    @property
    def pivot(self) -> float:
        if self.x_min <= 0 <= self.x_max:
            return -self.x_min / (self.x_max - self.x_min) * self.nx
        return self.nx / 2


def populated_mask(reference: np.ndarray) -> np.ndarray:
    ref = np.asarray(reference, dtype=np.float64)
    nonzero = ref[ref > 0]
    if nonzero.size == 0:
        return np.zeros(ref.shape, dtype=bool)
    return ref >= 0.1 * nonzero.mean()


def _is_counts(h: np.ndarray) -> bool:
    return bool(np.all(h == np.round(h)))


def _scale(h: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply by ``factor`` keeping Poisson statistics (thinning below 1, extra Poisson above)."""
    if not _is_counts(h):
        return h * factor
    c = h.astype(np.int64)
    if factor <= 1:
        return rng.binomial(c, factor).astype(np.float64)
    return (c + rng.poisson(c * (factor - 1))).astype(np.float64)


def transfer_matrix(nx: int, a: float, offset: float, pivot: float) -> np.ndarray:
    """(nx, nx + 1) fractions of each source bin landing in each target bin (+ lost) for x -> pivot
    + a (x - pivot) + offset, the source bin's content being uniform within it."""
    lo = pivot + a * (np.arange(nx) - pivot) + offset
    hi = lo + a
    edges = np.arange(nx + 1)
    overlap = np.clip(
        np.minimum(hi[:, None], edges[None, 1:]) - np.maximum(lo[:, None], edges[None, :-1]),
        0,
        None,
    )
    frac = np.clip(overlap / a, 0, 1)
    frac /= np.maximum(frac.sum(axis=1, keepdims=True), 1.0)  # rounding must not exceed 1
    lost = np.clip(1 - frac.sum(axis=1), 0, 1)
    return np.hstack([frac, lost[:, None]])


def _remap_x(h: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply a transfer matrix along x of (ny, nx); multinomial per source bin for counts."""
    if not _is_counts(h):
        return h @ t[:, :-1]
    counts = h.astype(np.int64)
    pvals = np.broadcast_to(t, (*counts.shape, t.shape[1]))
    moved = rng.multinomial(counts, pvals)  # (ny, nx_source, nx + 1)
    return moved[..., :-1].sum(axis=1).astype(np.float64)


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _rectangle(
    pop: np.ndarray, area: int, rng: np.random.Generator, tries: int = 50
) -> tuple[slice, slice]:
    """A random rectangle of about ``area`` bins, mostly on populated bins of (ny, nx)."""
    ny = pop.shape[0]
    ys, xs = np.nonzero(pop)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    best: tuple[slice, slice] | None = None
    best_frac = -1.0
    for _ in range(tries):
        if ny == 1:
            height = 1
        else:
            aspect = np.exp(rng.uniform(np.log(0.25), np.log(4)))
            height = int(np.clip(round(np.sqrt(area * aspect)), 1, y1 - y0))
        width = int(np.clip(int(np.ceil(area / height)), 1, x1 - x0))
        ys0 = int(rng.integers(y0, y1 - height + 1))
        xs0 = int(rng.integers(x0, x1 - width + 1))
        rect = (slice(ys0, ys0 + height), slice(xs0, xs0 + width))
        frac = pop[rect].mean()
        if frac > best_frac:
            best, best_frac = rect, frac
        if frac >= 0.8:
            break
    if best is None:  # no attempt at all: the whole region
        best = (slice(y0, y1), slice(x0, x1))
    return best


def inject(
    data: np.ndarray,
    shape: tuple[int, int],
    kind: str,
    rng: np.random.Generator,
    *,
    reference: np.ndarray | None = None,
    axis: Axis | None = None,
    params: Mapping[str, Sequence[float]] | None = None,
) -> tuple[np.ndarray, float]:
    """Inject one anomaly into a flat histogram of ``shape`` (ny, nx) (ny = 1 for 1D).

    Returns the new flat histogram and the magnitude drawn (fraction, factor or bins).
    """
    if kind not in ANOMALY_TYPES:
        raise InjectionError(f"unknown anomaly type {kind!r}; known: {ANOMALY_TYPES}")
    p = {**DEFAULTS[kind], **(params or {})}
    h = np.asarray(data, dtype=np.float64).reshape(shape).copy()
    ny = shape[0]
    ref = h / h.sum() if reference is None else np.asarray(reference).reshape(shape)
    pop = populated_mask(ref)
    if not pop.any():
        raise InjectionError("nothing populated to inject into")

    if kind == "dead_region":
        magnitude = _uniform(rng, p["fraction"])
        rect = _rectangle(pop, max(1, round(magnitude * pop.sum())), rng)
        h[rect] = 0.0
    elif kind == "hot_spot":
        magnitude = _uniform(rng, p["factor"])
        lo, hi = (int(v) for v in p["size"])
        ys, xs = np.nonzero(pop)
        k = int(rng.integers(len(ys)))
        if ny == 1:
            size_y, size_x = 1, int(rng.integers(lo, hi + 1))
        else:
            size_y, size_x = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        rect = (slice(ys[k], ys[k] + size_y), slice(xs[k], xs[k] + size_x))
        h[rect] = _scale(h[rect], magnitude, rng)
    elif kind == "shift":
        lo, hi = (int(v) for v in p["bins"])
        magnitude = float(rng.integers(lo, hi + 1) * rng.choice([-1, 1]))
        h = _remap_x(h, transfer_matrix(shape[1], 1.0, magnitude, 0.0), rng)
    elif kind == "stretch":
        magnitude = _uniform(rng, p["fraction"]) * float(rng.choice([-1, 1]))
        pivot = axis.pivot if axis is not None else shape[1] / 2
        h = _remap_x(h, transfer_matrix(shape[1], 1.0 + magnitude, 0.0, pivot), rng)
    elif kind == "normalisation":
        f = _uniform(rng, p["factor"])
        magnitude = f if rng.random() < 0.5 else 1.0 / f
        h = h * magnitude
    elif kind == "low_stats":
        magnitude = _uniform(rng, p["fraction"])
        h = _scale(h, magnitude, rng)
    else:  # noise
        magnitude = _uniform(rng, p["level"])
        noisy = h + magnitude * np.sqrt(h) * rng.standard_normal(h.shape)
        h = np.clip(np.round(noisy) if _is_counts(h) else noisy, 0, None)
    return h.reshape(-1), magnitude


def _inject_row(
    r: pd.Series, kind: str, rng: np.random.Generator, reference: np.ndarray, params: Any
) -> tuple[np.ndarray, float]:
    """One histogram row with one anomaly of ``kind`` (new bins, magnitude)."""
    dim2 = int(r["dim"]) == 2
    shape = (int(r["y_bins"]) if dim2 else 1, int(r["x_bins"]))
    axis = Axis(float(r["x_min"]), float(r["x_max"]), int(r["x_bins"]))
    return inject(r["data"], shape, kind, rng, reference=reference, axis=axis, params=params)


def _copies(
    hist: pd.DataFrame,
    positions: list[int],
    samples: list[int],
    replaced: dict[int, tuple[np.ndarray, float]],
) -> pd.DataFrame:
    """The rows of every copied LS, numbered by sample, with the injected rows replaced."""
    table = hist.iloc[positions].reset_index(drop=True)
    table["sample"] = np.asarray(samples, dtype=np.int64)
    data = table["data"].to_numpy().copy()
    entries = table["entries"].to_numpy(dtype=np.float64).copy()
    for i, (d, e) in replaced.items():
        data[i], entries[i] = d, e
    table["data"] = data
    table["entries"] = entries
    return table


def inject_table(
    histograms: HistogramTable | pd.DataFrame,
    keys: pd.DataFrame,
    kinds: Sequence[str],
    n_per_kind: int,
    references: Mapping[str, Reference | np.ndarray],
    rng: np.random.Generator,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Injected copies of the LS in ``keys``: one ME per copy, ``n_per_kind`` copies per type.

    Returns the histogram rows of every copy (with a ``sample`` id; the other MEs of the LS are
    copied unchanged) and one info row per copy (sample, run, lumi, anomaly_type, me, magnitude).
    The copies are drawn from the table's keys first (LS, then the ME to change), so only the
    chosen LS's bins are read, one ME at a time: the cost follows ``n_per_kind``, not the table.
    """
    params = params or {}
    shapes = {me: r.shape if isinstance(r, Reference) else r for me, r in references.items()}
    unknown = set(kinds) - set(ANOMALY_TYPES)
    if unknown:
        raise InjectionError(f"unknown anomaly type(s) {sorted(unknown)}")
    table = as_table(histograms)
    mes = [m for m in table.mes() if m in shapes]
    present = _rows_at(table, mes, keys, ["run", "lumi", "me"])
    groups = dict(present.groupby(["run", "lumi"], sort=True).indices.items())
    lumis = list(groups)
    columns = ["sample", "run", "lumi", "anomaly_type", "me", "magnitude"]
    if not lumis:
        empty = table.read(me=[], columns=None)
        return empty.assign(sample=pd.Series(dtype="int64")), pd.DataFrame(columns=columns)
    plan = []  # (kind, LS, rows of its MEs in ``present``, the row to change)
    for kind in kinds:
        chosen = rng.choice(len(lumis), size=n_per_kind, replace=n_per_kind > len(lumis))
        for c in chosen:
            members = list(groups[lumis[c]])
            plan.append((kind, c, members, members[int(rng.integers(len(members)))]))
    picked = sorted({p for _, _, members, _ in plan for p in members})
    hist = _rows_at(table, mes, present.iloc[picked][["run", "lumi"]].drop_duplicates(), None)
    row_of = pd.MultiIndex.from_frame(hist[["run", "lumi", "me"]].astype({"me": str}))
    at = row_of.get_indexer(
        pd.MultiIndex.from_frame(present[["run", "lumi", "me"]].astype({"me": str}))
    )
    me_col = present["me"].astype(str).to_numpy()
    positions: list[int] = []
    samples: list[int] = []
    replaced: dict[int, tuple[np.ndarray, float]] = {}  # output row -> (data, entries)
    info: list[tuple[Any, ...]] = []
    for sample, (kind, c, members, target) in enumerate(plan):
        r = hist.iloc[at[target]]
        new, magnitude = _inject_row(r, kind, rng, shapes[me_col[target]], params.get(kind))
        old = float(np.sum(r["data"]))
        ratio = new.sum() / old if old > 0 else 0.0
        replaced[len(positions) + members.index(target)] = (new, float(r["entries"]) * ratio)
        positions.extend(int(at[m]) for m in members)
        samples.extend([sample] * len(members))
        info.append((sample, *lumis[c], kind, me_col[target], magnitude))
    out = _copies(hist, positions, samples, replaced)
    return out, pd.DataFrame(info, columns=columns)


def _rows_at(
    table: HistogramTable, mes: list[str], keys: pd.DataFrame, columns: list[str] | None
) -> pd.DataFrame:
    """The rows of ``mes`` at the LS of ``keys`` (read one ME at a time, their runs only), in
    (run, lumi, me) order."""
    wanted = pd.MultiIndex.from_frame(keys[["run", "lumi"]].reset_index(drop=True))
    runs = np.unique(keys["run"].to_numpy()).tolist()
    parts = []
    for me in mes:
        rows = table.read(me=me, runs=runs, columns=columns)
        keep = wanted.get_indexer(pd.MultiIndex.from_frame(rows[["run", "lumi"]])) >= 0
        parts.append(rows[keep])
    if not parts:
        return table.read(me=[], columns=columns)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["run", "lumi", "me"], kind="stable", ignore_index=True)
