"""DIALS handler of a dqm-playground-ds strategy: standalone, numpy only (onnxruntime optional).

This file is copied as ``app.py`` into a DIALS model package (``deploy/dials_model.py``) and must
import nothing from dqm-playground-ds: the package runs in an MLServer image that has only what
``requirements.txt`` lists. It reads ``model.json`` + ``model.npz`` beside it (explicit arrays)
and reproduces the pipeline's preprocessing, detectors, combination and decision:

* preprocessing per ME: quality (invalid, empty, low statistics), crop, rebin, normalisation;
* detectors (one function per kind in :data:`DETECTORS`): ``knn``, ``lof`` (optional PCA
  projection), ``run_knn`` (run or causal mode), ``reference_test``, ``within_run`` (run or
  causal), ``integral_ratio``, ``pca`` / ``nmf`` / ``autoencoder`` reconstruction (top-N squared
  residuals), ``isolation_forest`` (the trees as flat node arrays);
* combination ``mean_z`` / ``max_z`` / ``gmm`` / ``kde``; the LS threshold, persistence and
  quality flags.

A detector entry with an ``onnx`` file (the ONNX variant of the package) is scored by
onnxruntime instead, from the same detector input.

One request = the LS of one run (run-aware detectors use the request's LS of quality ok as the
run). Inputs: one array per ME, (n_ls, nx) or (n_ls, ny, nx) raw bin contents without
under/overflow; optional ``run`` and ``lumi`` (n_ls,) split a request into runs and order LS.
Outputs: ``score`` (float64, NaN for an LS that cannot be scored) and ``flag`` (bool).

Local check without any server: ``python app.py inputs.npz outputs.npz``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OK, LOW_STATS, EMPTY, INVALID = 0, 1, 2, 5
WIDTHS_1D = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
WIDTHS_2D = (1, 2, 4, 8)
TIE_BREAK = 1e-3  # gmm/kde: weight of the largest column for LS below the median everywhere


# ------------------------------------------------------------------------------------------------
# numerics of the pipeline (copies: this file imports nothing of the project)
# ------------------------------------------------------------------------------------------------
def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    safe = np.where(x > 0, y, 1.0)
    return np.where(x > 0, x * np.log(safe), 0.0)


def deviance_pulls(x: np.ndarray, p: np.ndarray, n_ref: Any, dispersion: Any) -> np.ndarray:
    """Signed binomial deviance residuals of counts against the reference shape ``p`` (one, or
    one per row with ``n_ref`` (n, 1)), divided by the square root of the total-to-binomial
    variance ratio (the reference and within-run tests of the pipeline)."""
    n = x.sum(axis=1, keepdims=True)
    n_ref = np.maximum(np.asarray(n_ref, dtype=np.float64), 1e-300)
    pv = np.maximum(p, 0.5 / n_ref)
    mu = n * pv
    r1 = np.divide(x, mu, out=np.ones_like(x), where=(x > 0) & (mu > 0))
    rest, rest_mu = n - x, n - mu
    r2 = np.divide(rest, rest_mu, out=np.ones_like(x), where=(rest > 0) & (rest_mu > 0))
    dev = 2 * (_xlogy(x, r1) + _xlogy(rest, r2))
    z = np.sign(x - mu) * np.sqrt(np.clip(dev, 0, None))
    base = np.maximum(pv * (1 - pv), 1e-300)
    pull = z / np.sqrt(1 + n * (base / n_ref + dispersion) / base)
    pull[((p <= 0) & (x <= 0)) | (n[:, 0] <= 0)[:, None]] = 0.0
    return pull


def chi2_per_bin(pull: np.ndarray, x: np.ndarray, p: np.ndarray) -> np.ndarray:
    used = np.maximum(((np.asarray(p) > 0) | (x > 0)).sum(axis=1), 1)
    return (pull**2).sum(axis=1) / used


def scan_statistic(pull: np.ndarray, map_shape: list[int] | None) -> np.ndarray:
    """Largest |sum of pulls| / sqrt(size) over windows (rectangles in a 2D map)."""
    shape = tuple(map_shape) if map_shape is not None else (pull.shape[1],)
    best = np.zeros(len(pull))
    if len(shape) == 1 or shape[0] == 1:
        c = np.pad(np.cumsum(pull, axis=1), ((0, 0), (1, 0)))
        for w in (w for w in WIDTHS_1D if w <= pull.shape[1]):
            best = np.maximum(best, np.abs(c[:, w:] - c[:, :-w]).max(axis=1) / np.sqrt(w))
        return best
    ny, nx = shape
    c = np.pad(pull.reshape(len(pull), ny, nx).cumsum(axis=1).cumsum(axis=2),
               ((0, 0), (1, 0), (1, 0)))  # fmt: skip
    for h in (h for h in WIDTHS_2D if h <= ny):
        for w in (w for w in WIDTHS_2D if w <= nx):
            box = c[:, h:, w:] - c[:, :-h, w:] - c[:, h:, :-w] + c[:, :-h, :-w]
            best = np.maximum(best, np.abs(box).max(axis=(1, 2)) / np.sqrt(h * w))
    return best


def top_n_mean(squared: np.ndarray, n: int) -> np.ndarray:
    n = max(1, min(int(n), squared.shape[1]))
    if n == squared.shape[1]:
        return squared.mean(axis=1)
    return np.partition(squared, squared.shape[1] - n, axis=1)[:, -n:].mean(axis=1)


def logsumexp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.exp(a - top).sum(axis=1)) + top[:, 0]


def knn(
    train: np.ndarray, x: np.ndarray, k: int, brute: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of the ``k`` nearest training rows (nearest first).

    Brute force (the pipeline's kNN in 20 PCA components or on the full histogram) as
    scikit-learn computes it: ``|x|^2 - 2 x.y + |y|^2`` in float64, rounded to float32 for
    float32 features (then sklearn's distances bit for bit). Otherwise (a KD/ball tree: few
    dimensions; the run means of run_knn) the direct difference in float64, as the trees compute
    it (and exact where the expansion cancels, a training run against itself)."""
    single = x.dtype == np.float32 and train.dtype == np.float32
    expand = brute and x.dtype == train.dtype and x.dtype in (np.float32, np.float64)
    t = train.astype(np.float64)
    tt = np.einsum("ij,ij->i", t, t)[None, :] if expand else np.zeros((1, len(t)))
    dist, idx = np.empty((len(x), k)), np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), 256):
        block = x[start : start + 256].astype(np.float64)
        if expand:
            d2 = -2 * (block @ t.T)
            d2 += np.einsum("ij,ij->i", block, block)[:, None]
            d2 += tt
            d2 = np.maximum(d2.astype(np.float32) if single else d2, 0)
        else:
            d2 = ((block[:, None, :] - t[None, :, :]) ** 2).sum(axis=2)
        near = np.argpartition(d2, k - 1, axis=1)[:, :k]
        near_d2 = np.take_along_axis(d2, near, axis=1)
        order = np.lexsort((near, near_d2), axis=1)  # nearest first, ties by index (sklearn's)
        dist[start : start + len(block)] = np.sqrt(np.take_along_axis(near_d2, order, axis=1))
        idx[start : start + len(block)] = np.take_along_axis(near, order, axis=1)
    return dist, idx


# ------------------------------------------------------------------------------------------------
# detectors: kind -> f(model entry, arrays, detector input) -> raw scores of the scored LS
# ------------------------------------------------------------------------------------------------
@dataclass
class DetectorInput:
    """One ME of one request as a detector sees it."""

    x: np.ndarray  # the detector's input of every LS: values, counts or the ME's integral ratio
    codes: np.ndarray  # this ME's quality code per LS
    scored: np.ndarray  # LS scored at all (every ME of quality ok or low statistics)
    runs: np.ndarray
    lumis: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.scored)


def _pca(p: dict | None, a: dict, x: np.ndarray) -> np.ndarray:
    """sklearn's ``PCA.transform`` (projection first, then the projected mean) in the PCA's dtype:
    float64 (the pipeline's detectors fit it on float64), float32 for a model frozen before."""
    if p is None:
        return x
    c = a[p["components"]]
    out = x.astype(c.dtype, copy=False) @ c.T
    out -= a[p["mean"]].reshape(1, -1) @ c.T
    if p["whiten"]:
        scale = np.sqrt(a[p["explained_variance"]])
        out /= np.maximum(scale, np.finfo(scale.dtype).eps)
    return out


def _knn(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    x = _pca(m["projection"], a, d.x[d.scored])
    dist, _ = knn(a[m["train"]], x, m["n_neighbors"], m.get("brute", True))
    return dist.mean(axis=1)


def _lof(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    """Local outlier factor: mean ratio of the neighbours' to the LS's reachability density."""
    x = _pca(m["projection"], a, d.x[d.scored])
    dist, idx = knn(a[m["train"]], x, m["n_neighbors"], m.get("brute", True))
    kdist = a[m["kdist"]]  # sklearn computes in the training data's dtype (float32 features)
    reach = np.maximum(dist.astype(kdist.dtype), kdist[idx])
    lrd = 1.0 / (reach.mean(axis=1) + 1e-10)
    return (a[m["lrd"]][idx] / lrd[:, None]).mean(axis=1)


def run_sums(
    d: DetectorInput, causal: bool, upcast: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per scored LS: sum and number of the other context LS of its run (causal: those before it
    in LS order; all of the run for an LS outside the context), and whether it is in the context.

    Context = the scored LS of the run whose ME is of quality ok (as in the pipeline). The causal
    prefix sums run in the input's dtype unless ``upcast`` (as the pipeline's detectors do)."""
    ctx = d.scored & (d.codes == OK)
    rows = d.rows
    s, c = np.zeros((len(rows), d.x.shape[1])), np.zeros(len(rows))
    own = ctx[rows]
    for run in np.unique(d.runs[rows]):
        members = np.flatnonzero(ctx & (d.runs == run))
        members = members[np.argsort(d.lumis[members], kind="stable")]
        cx = d.x[members].astype(np.float64)
        part = cx if upcast or not causal else d.x[members]
        prefix = np.vstack([np.zeros((1, cx.shape[1])), np.cumsum(part, axis=0)])
        sel = np.flatnonzero(d.runs[rows] == run)
        where = np.zeros(len(d.x), dtype=np.int64)
        where[members] = np.arange(len(members))
        pos, inside = where[rows[sel]], own[sel]
        if causal:
            end = np.where(inside, pos, len(members))
            s[sel], c[sel] = prefix[end], end
        else:
            mine = cx[np.minimum(pos, max(len(cx) - 1, 0))] if len(cx) else 0.0
            s[sel] = prefix[-1] - np.where(inside[:, None], mine, 0.0)
            c[sel] = len(members) - inside
    return s, c, own


def _run_knn(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    """The run mean (the LS itself replacing or joining its run) against good training runs."""
    s, c, _ = run_sums(d, m["mode"] == "causal", upcast=False)
    x = d.x[d.rows].astype(np.float64)
    dist, _ = knn(a[m["run_means"]], (s + x) / (c + 1)[:, None], m["n_neighbors"], brute=False)
    return dist.mean(axis=1)


def _within_run(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    """Counts of the LS against the rest of its run (deviance pulls with within-run dispersion)."""
    ref, _, _ = run_sums(d, m["mode"] == "causal")
    x = d.x[d.rows].astype(np.float64)
    n_ref = ref.sum(axis=1, keepdims=True)
    out = np.full(len(x), float(m["neutral"]))
    ok = (x.sum(axis=1) > 0) & (n_ref[:, 0] > 0)
    if ok.any():
        p = ref[ok] / n_ref[ok]
        pull = deviance_pulls(x[ok], p, n_ref[ok], a[m["dispersion"]])
        if m["statistic"] == "chi2":
            out[ok] = chi2_per_bin(pull, x[ok], p)
        else:
            out[ok] = scan_statistic(pull, m["shape"])
    return out


def _reference_test(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    x = d.x[d.scored].astype(np.float64)  # counts, not normalised
    ref = a[m["reference"]]
    pull = deviance_pulls(x, ref, m["n_reference"], a[m["dispersion"]])
    stat = m["statistic"]
    if stat in ("chi2", "chi2_norm"):
        chi2 = chi2_per_bin(pull, x, ref[None, :])
        return chi2 if stat == "chi2" else chi2 * np.power(np.maximum(x.sum(axis=1), 1.0), -1 / 3)
    if stat == "max_pull":
        return np.sqrt((pull**2).max(axis=1, initial=0.0))
    if stat == "top_n":
        return top_n_mean(pull**2, m["top_n"])
    return scan_statistic(pull, m["shape"])


def _integral_ratio(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    z = (d.x[d.scored][:, None] - a[m["median"]]) / a[m["scale"]]
    z = np.abs(z) if m["side"] == "both" else (-z if m["side"] == "low" else z)
    return z.max(axis=1)


def _residual(x: np.ndarray, recon: np.ndarray, top_n: int) -> np.ndarray:
    return top_n_mean((x - recon).astype(np.float64) ** 2, top_n)


def _pca_reconstruction(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    x, p = d.x[d.scored], m["pca"]
    recon = _pca(p, a, x) @ a[p["components"]] + a[p["mean"]]  # not whitened (the detector)
    return _residual(x, recon, m["top_n"])


def _nmf(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    """Non-negative least squares on the fixed components by multiplicative updates."""
    x = d.x[d.scored]
    scale, comp = float(m["scale"]), a[m["components"]]
    h = comp.astype(np.float64)
    xh = (x / scale).astype(np.float64) @ h.T
    hh = h @ h.T
    w = np.clip(np.linalg.lstsq(hh, xh.T, rcond=None)[0].T, 1e-9, None)
    for _ in range(int(m["n_iter"])):
        w *= xh / np.maximum(w @ hh, 1e-12)
    return _residual(x, (w @ comp) * scale, m["top_n"])


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda v: v,
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0),
    "logistic": lambda v: 1.0 / (1.0 + np.exp(-v)),
}


def _autoencoder(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    """The MLP's forward pass on centred, scaled inputs (sklearn's ``MLPRegressor.predict``)."""
    x = d.x[d.scored]
    mean, scale = a[m["mean"]], float(m["scale"])
    act = (x.astype(np.float64) - mean) / scale
    n = len(m["coefs"])
    for i, (w, b) in enumerate(zip(m["coefs"], m["intercepts"], strict=True)):
        act = act @ a[w] + a[b]
        act = ACTIVATIONS[m["activation"] if i < n - 1 else m["out_activation"]](act)
    return _residual(x, act.reshape(x.shape) * scale + mean, m["top_n"])


def forest_score(f: dict, a: dict, x: np.ndarray) -> np.ndarray:
    """Isolation Forest anomaly score (``-score_samples``) from its flat node arrays."""
    left, right, feature = a[f["left"]], a[f["right"]], a[f["feature"]]
    threshold, missing_left, roots = a[f["threshold"]], a[f["missing_left"]], a[f["roots"]]
    x = np.asarray(x, dtype=np.float32)  # sklearn scores float32 features
    node = np.broadcast_to(roots, (len(x), len(roots))).copy()
    rows = np.arange(len(x))[:, None]
    while (inner := left[node] >= 0).any():
        v = x[rows, np.maximum(feature[node], 0)]
        with np.errstate(invalid="ignore"):
            go_left = np.where(np.isnan(v), missing_left[node], v <= threshold[node])
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)
    depths = np.zeros(len(x))
    for t in range(node.shape[1]):  # tree by tree: sklearn's summation order
        depths += a[f["leaf_value"]][node[:, t]]
    den = float(f["denominator"])
    ratio = np.divide(depths, den, out=np.ones_like(depths), where=np.asarray(den != 0))
    return 2 ** (-ratio)


def _isolation_forest(m: dict, a: dict, d: DetectorInput) -> np.ndarray:
    return forest_score(m["forest"], a, _pca(m["projection"], a, d.x[d.scored]))


DETECTORS = {
    "knn": _knn,
    "lof": _lof,
    "run_knn": _run_knn,
    "within_run": _within_run,
    "reference_test": _reference_test,
    "integral_ratio": _integral_ratio,
    "pca": _pca_reconstruction,
    "nmf": _nmf,
    "autoencoder": _autoencoder,
    "isolation_forest": _isolation_forest,
}
INPUTS = {"reference_test": "counts", "within_run": "counts", "integral_ratio": "ratio"}


# ------------------------------------------------------------------------------------------------
# combinations: standardised columns -> one LS score
# ------------------------------------------------------------------------------------------------
def gmm_log_density(g: dict, a: dict, z: np.ndarray) -> np.ndarray:
    """sklearn's ``GaussianMixture.score_samples`` (log p) for every covariance type."""
    means, chol, kind = a[g["means"]], a[g["precisions_cholesky"]], g["covariance_type"]
    d = z.shape[1]
    if kind in ("full", "tied"):
        chols = chol if kind == "full" else [chol] * len(means)
        diag = [np.diagonal(c) for c in chols]
        log_det = np.array([np.log(v).sum() for v in diag])
        log_prob = np.stack(
            [((z @ c) - (mu @ c)) ** 2 for mu, c in zip(means, chols, strict=True)], axis=1
        ).sum(axis=2)
    elif kind == "diag":
        prec = chol**2
        log_det = np.log(chol).sum(axis=1)
        log_prob = (means**2 * prec).sum(axis=1) - 2.0 * (z @ (means * prec).T) + (z**2 @ prec.T)
    else:  # spherical
        prec = chol**2
        log_det = d * np.log(chol)
        log_prob = ((means**2).sum(axis=1) * prec - 2 * (z @ means.T * prec)
                    + np.outer((z**2).sum(axis=1), prec))  # fmt: skip
    weighted = -0.5 * (d * math.log(2 * math.pi) + log_prob) + log_det + np.log(a[g["weights"]])
    return logsumexp(weighted)


def kde_log_density(k: dict, a: dict, z: np.ndarray) -> np.ndarray:
    """sklearn's ``KernelDensity.score_samples`` (Gaussian kernel, exact sum)."""
    data, h = a[k["data"]].astype(np.float64), float(k["bandwidth"])
    d2 = ((z[:, None, :] - data[None, :, :]) ** 2).sum(axis=2)
    log_norm = -0.5 * z.shape[1] * math.log(2 * math.pi) - z.shape[1] * math.log(h)
    return logsumexp(-0.5 * d2 / h**2) + log_norm - math.log(len(data))


def combine(c: dict, a: dict, raw: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logged = np.log(np.clip(raw, 0, None) + a[c["shift"]])
    t = np.where(a[c["log"]], logged, raw)
    z = ((t - a[c["center"]]) / a[c["scale"]])[:, a[c["active"]]]
    bad = np.isnan(z).any(axis=1)
    z = np.nan_to_num(z, nan=0.0)
    if c["method"] in ("mean_z", "max_z"):
        out = z.mean(axis=1) if c["method"] == "mean_z" else z.max(axis=1)
    else:
        density = gmm_log_density if c["method"] == "gmm" else kde_log_density
        out = -density(c["density"], a, np.clip(z, 0.0, None))
        floor = (z <= 0).all(axis=1)
        out[floor] += TIE_BREAK * z[floor].max(axis=1, initial=-np.inf)
    out[bad] = np.nan
    return out


# ------------------------------------------------------------------------------------------------
# the whole strategy
# ------------------------------------------------------------------------------------------------
class StrategyModel:
    """The frozen strategy as plain arrays; :meth:`predict` scores the LS of one request."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.meta = json.loads((folder / "model.json").read_text())
        with np.load(folder / "model.npz", allow_pickle=False) as z:
            self.arrays = {k: z[k] for k in z.files}
        self.mes = self.meta["mes"]
        self.sessions = _onnx_sessions(folder, self.meta["detectors"])

    def _a(self, key: str | None) -> np.ndarray | None:
        return None if key is None else self.arrays[key]

    def _features(self, me: dict, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts (float32), quality codes and integral of one ME, as the pipeline computes them."""
        raw = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
        if raw.shape[1] != me["n_raw"]:
            raise ValueError(
                f"input {me['name']} ({me['me']}): {raw.shape[1]} bins per LS, the model "
                f"expects {me['n_raw']} (binning {me['binning']})"
            )
        with np.errstate(invalid="ignore"):
            invalid = np.asarray(~np.isfinite(raw).all(axis=1) | (raw < 0).any(axis=1))
        raw = np.where(invalid[:, None], 0.0, raw)
        integral = raw.sum(axis=1)
        codes = np.zeros(len(raw), dtype=np.int8)
        low = (integral < me["min_entries"]) | (integral < me["min_entries_per_bin"] * me["n_raw"])
        codes[low] = LOW_STATS
        codes[integral <= 0] = EMPTY
        codes[invalid] = INVALID
        raw[codes > LOW_STATS] = 0.0
        integral = np.where(codes > LOW_STATS, np.nan, integral)
        integral[codes == EMPTY] = 0.0
        return self._crop_rebin(me, raw).astype(np.float32, copy=False), codes, integral

    def _crop_rebin(self, me: dict, raw: np.ndarray) -> np.ndarray:
        x_index, y_index = self._a(me["x_index"]), self._a(me["y_index"])
        rx, ry = self._a(me["rx"]), self._a(me["ry"])
        if me["dim"] == 1:
            x = raw if me["full"] else raw[:, x_index]
            return x if rx is None else x @ rx.T
        m = raw.reshape(len(raw), me["ny"], me["nx"])
        if not me["full"]:
            m = m[:, y_index][:, :, x_index]
        if rx is not None:
            m = m @ rx.T
        if ry is not None:
            m = ry @ m
        return m.reshape(len(raw), -1)

    @staticmethod
    def _normalise(counts: np.ndarray, how: str) -> np.ndarray:
        if how == "none":
            return counts
        norm = counts.sum(axis=1) if how == "l1" else counts.max(axis=1, initial=0.0)
        out = np.zeros_like(counts)
        np.divide(counts, norm[:, None], out=out, where=norm[:, None] > 0)
        return out

    def _inputs(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Counts, values, quality codes and the integral ratio of every ME of a request."""
        counts, values, codes, integral = [], [], [], []
        for me in self.mes:
            c, q, i = self._features(me, inputs[me["name"]])
            counts.append(c)
            values.append(self._normalise(c, me["normalisation"]))
            codes.append(q)
            integral.append(i)
        total = np.stack(integral, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(total > 0, np.log(total), np.nan)
        ratio = logs - logs.mean(axis=1, keepdims=True)
        return {"counts": counts, "values": values, "quality": np.stack(codes, axis=1),
                "ratio": [ratio[:, k] for k in range(len(self.mes))]}  # fmt: skip

    def raw_scores(self, inputs: dict[str, np.ndarray], runs: np.ndarray,
                   lumis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(n, columns) detector scores (NaN where unscored) and the (n, mes) quality codes."""
        f = self._inputs(inputs)
        n = len(runs)
        scored = (f["quality"] <= LOW_STATS).all(axis=1)
        columns = []
        for i, det in enumerate(self.meta["detectors"]):
            for j, k in enumerate(det["mes"]):
                col = np.full(n, np.nan)
                x = f[INPUTS.get(det["kind"], "values")][k]
                d = DetectorInput(x, f["quality"][:, k], scored, runs, lumis)
                if scored.any():
                    session = self.sessions.get((i, j))
                    if session is not None:
                        col[scored] = _onnx_score(session, x[scored])
                    else:
                        col[scored] = DETECTORS[det["kind"]](det["models"][j], self.arrays, d)
                columns.append(col)
        return np.stack(columns, axis=1), f["quality"]

    def predict(
        self,
        inputs: dict[str, np.ndarray],
        runs: np.ndarray | None = None,
        lumis: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        missing = [me["name"] for me in self.mes if me["name"] not in inputs]
        if missing:
            raise ValueError(f"missing input(s) {missing}; the model needs {self._names()}")
        n = len(inputs[self.mes[0]["name"]])
        runs = np.zeros(n, dtype=np.int64) if runs is None else np.asarray(runs)
        lumis = np.arange(1, n + 1) if lumis is None else np.asarray(lumis)
        raw, quality = self.raw_scores(inputs, runs, lumis)
        score = combine(self.meta["combiner"], self.arrays, raw)
        return {"score": score, "flag": self._decide(score, quality, runs, lumis)}

    def _decide(self, score, quality, runs, lumis) -> np.ndarray:
        d = self.meta["decision"]
        above = np.nan_to_num(score, nan=-np.inf) > d["threshold"]
        k = int(d["consecutive"])
        if k > 1:
            order = np.lexsort((lumis, runs))
            f, r, lu = above[order], runs[order], lumis[order]
            new = np.ones(len(f), dtype=bool)
            new[1:] = (f[1:] != f[:-1]) | (r[1:] != r[:-1]) | (lu[1:] != lu[:-1] + 1)
            block = np.cumsum(new)
            keep = f & (np.bincount(block)[block] >= k)
            above = np.empty_like(keep)
            above[order] = keep
        if d["flag_quality_failures"]:
            above = above | (quality.max(axis=1) > OK)
        return above

    def _names(self) -> list[str]:
        return [me["name"] for me in self.mes]


# ------------------------------------------------------------------------------------------------
# ONNX variant: detectors whose entry names an .onnx file are scored by onnxruntime
# ------------------------------------------------------------------------------------------------
def _onnx_sessions(folder: Path, detectors: list[dict]) -> dict[tuple[int, int], Any]:
    files = {(i, j): m["onnx"] for i, det in enumerate(detectors)
             for j, m in enumerate(det["models"]) if m.get("onnx")}  # fmt: skip
    if not files:
        return {}
    import onnxruntime as ort  # listed in requirements.txt of an ONNX package

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return {key: ort.InferenceSession(str(folder / name), options,
                                      providers=["CPUExecutionProvider"])
            for key, name in files.items()}  # fmt: skip


def _onnx_score(session: Any, x: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    (out,) = session.run(None, {name: np.asarray(x, dtype=np.float64)})
    return np.asarray(out, dtype=np.float64).reshape(len(x))


try:  # served by MLServer in DIALS; absent in a plain local check
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse
    from mlserver.utils import get_model_uri
except ImportError:  # pragma: no cover - depends on the serving image
    MLModel = None

if MLModel is not None:  # pragma: no cover - needs the MLServer image

    class Handler(MLModel):
        async def load(self) -> bool:
            uri = await get_model_uri(self._settings)
            self.model = StrategyModel(Path(uri).parent)
            return True

        async def predict(self, request: InferenceRequest) -> InferenceResponse:
            arrays = {i.name: NumpyCodec.decode_input(i) for i in request.inputs}
            out = self.model.predict(arrays, arrays.pop("run", None), arrays.pop("lumi", None))
            return InferenceResponse(
                id=request.id,
                model_name=self.name,
                model_version=self.version,
                outputs=[NumpyCodec.encode_output(k, v) for k, v in out.items()],
            )


def main(argv: list[str]) -> int:
    """``app.py INPUTS.npz OUTPUTS.npz``: arrays named like the template's inputs."""
    if len(argv) != 2:
        print("usage: python app.py INPUTS.npz OUTPUTS.npz", file=sys.stderr)
        return 2
    model = StrategyModel(Path(__file__).resolve().parent)
    with np.load(argv[0], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    out = model.predict(arrays, arrays.pop("run", None), arrays.pop("lumi", None))
    savez: Any = np.savez  # keyword arrays (numpy's stub takes them for allow_pickle)
    savez(argv[1], **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
