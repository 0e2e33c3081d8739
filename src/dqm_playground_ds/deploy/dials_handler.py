"""DIALS handler of a dqm-playground-ds strategy: standalone, numpy only.

This file is copied as ``app.py`` into a DIALS model package (``deploy/dials_model.py``) and must
import nothing from dqm-playground-ds: the package runs in an MLServer image that has only what
``requirements.txt`` lists. It reads ``model.json`` + ``model.npz`` beside it (explicit arrays)
and reproduces the pipeline's preprocessing, detectors, combination and decision:

* preprocessing per ME: quality (invalid, empty, low statistics), crop, rebin, normalisation;
* detectors: ``knn`` (mean distance to the k nearest good training LS, optional PCA projection),
  ``reference_test`` (``chi2`` / ``scan`` of deviance pulls against the training reference),
  ``run_knn`` (the run's mean histogram against the good training runs' means), ``integral_ratio``
  (the ME's share of the LS statistics, robust z-score);
* combination ``mean_z`` / ``max_z``; the LS threshold, persistence and quality flags.

One request = the LS of one run (``run_knn`` averages the request's LS of quality ok). Inputs: one
array per ME, (n_ls, nx) or (n_ls, ny, nx) raw bin contents without under/overflow; optional
``run`` and ``lumi`` (n_ls,) split a request into runs and order LS. Outputs: ``score`` (float64,
NaN for an LS that cannot be scored) and ``flag`` (bool).

Local check without any server: ``python app.py inputs.npz outputs.npz``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

OK, LOW_STATS, EMPTY, INVALID = 0, 1, 2, 5


WIDTHS_1D = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
WIDTHS_2D = (1, 2, 4, 8)


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    safe = np.where(x > 0, y, 1.0)
    return np.where(x > 0, x * np.log(safe), 0.0)


def deviance_pulls(
    x: np.ndarray, p: np.ndarray, n_ref: float, dispersion: np.ndarray
) -> np.ndarray:
    """Signed binomial deviance residuals of counts against the reference shape, divided by the
    square root of the total-to-binomial variance ratio (the reference test of the pipeline)."""
    n = x.sum(axis=1, keepdims=True)
    n_ref = max(float(n_ref), 1e-300)
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


def scan_statistic(pull: np.ndarray, shape: list[int] | None) -> np.ndarray:
    """Largest |sum of pulls| / sqrt(size) over windows (rectangles in a 2D map)."""
    shape = tuple(shape) if shape is not None else (pull.shape[1],)
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


class StrategyModel:
    """The frozen strategy as plain arrays; :meth:`predict` scores the LS of one request."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.meta = json.loads((folder / "model.json").read_text())
        with np.load(folder / "model.npz", allow_pickle=False) as z:
            self.arrays = {k: z[k] for k in z.files}
        self.mes = self.meta["mes"]

    def _a(self, key: str | None) -> np.ndarray | None:
        return None if key is None else self.arrays[key]

    # -- preprocessing ---------------------------------------------------------------------
    def _features(self, me: dict, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts (float32), quality codes and integral of one ME, as the pipeline computes them."""
        raw = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
        if raw.shape[1] != me["n_raw"]:
            raise ValueError(
                f"input {me['name']} ({me['me']}): {raw.shape[1]} bins per LS, the model "
                f"expects {me['n_raw']} (binning {me['binning']})"
            )
        with np.errstate(invalid="ignore"):
            invalid = ~np.isfinite(raw).all(axis=1) | (raw < 0).any(axis=1)
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
        x_index, y_index = self._a(me["x_index"]), self._a(me["y_index"])
        rx, ry = self._a(me["rx"]), self._a(me["ry"])
        if me["dim"] == 1:
            x = raw if me["full"] else raw[:, x_index]
            if rx is not None:
                x = x @ rx.T
        else:
            m = raw.reshape(len(raw), me["ny"], me["nx"])
            if not me["full"]:
                m = m[:, y_index][:, :, x_index]
            if rx is not None:
                m = m @ rx.T
            if ry is not None:
                m = ry @ m
            x = m.reshape(len(raw), -1)
        return x.astype(np.float32, copy=False), codes, integral

    @staticmethod
    def _normalise(counts: np.ndarray, how: str) -> np.ndarray:
        if how == "none":
            return counts
        norm = counts.sum(axis=1) if how == "l1" else counts.max(axis=1, initial=0.0)
        out = np.zeros_like(counts)
        np.divide(counts, norm[:, None], out=out, where=norm[:, None] > 0)
        return out

    # -- detectors ---------------------------------------------------------------------------
    @staticmethod
    def _knn_distance(train: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
        train = train.astype(np.float64)
        out = np.empty(len(x))
        for start in range(0, len(x), 256):
            block = x[start : start + 256].astype(np.float64)
            d2 = ((block[:, None, :] - train[None, :, :]) ** 2).sum(axis=2)
            d = np.sqrt(np.partition(d2, k - 1, axis=1)[:, :k])
            out[start : start + len(block)] = d.mean(axis=1)
        return out

    def _detector(
        self, det: dict, j: int, k: int, values: np.ndarray, codes: np.ndarray, runs: np.ndarray,
        ratio: np.ndarray, scored: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        m = det["models"][j]
        kind = det["kind"]
        if kind == "knn":
            x = values[scored]
            if m["projection"] is not None:
                p = m["projection"]
                x = (x - self.arrays[p["mean"]]) @ self.arrays[p["components"]].T
                if p["whiten"]:
                    x = x / np.sqrt(self.arrays[p["explained_variance"]])
            return self._knn_distance(self.arrays[m["train"]], x, m["n_neighbors"])
        if kind == "run_knn":
            # context: the scored LS of the run whose ME is of quality ok; an LS outside it
            # (low statistics) is added to its run's mean, as the pipeline does
            ctx = scored & (codes == OK)
            out = np.empty(int(scored.sum()))
            rows = np.flatnonzero(scored)
            for run in np.unique(runs[rows]):
                in_run = runs == run
                c = values[ctx & in_run].astype(np.float64)
                total, n = c.sum(axis=0), len(c)
                sel = runs[rows] == run
                own = ctx[rows[sel]]
                x = values[rows[sel]].astype(np.float64)
                s = np.where(own[:, None], total[None, :], total[None, :] + x)
                v = s / np.where(own, n, n + 1)[:, None]
                out[sel] = self._knn_distance(self.arrays[m["run_means"]], v, m["n_neighbors"])
            return out
        if kind == "reference_test":
            x = values[scored].astype(np.float64)  # counts, not normalised
            ref = self.arrays[m["reference"]]
            pull = deviance_pulls(x, ref, m["n_reference"], self.arrays[m["dispersion"]])
            if m["statistic"] == "chi2":
                used = np.maximum(((ref[None, :] > 0) | (x > 0)).sum(axis=1), 1)
                return (pull**2).sum(axis=1) / used
            return scan_statistic(pull, m["shape"])
        if kind == "integral_ratio":
            z = (ratio[scored, k : k + 1] - self.arrays[m["median"]]) / self.arrays[m["scale"]]
            z = np.abs(z) if m["side"] == "both" else (-z if m["side"] == "low" else z)
            return z.max(axis=1)
        raise ValueError(f"detector kind {kind!r} is not supported by this handler")

    # -- the whole strategy ------------------------------------------------------------------
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
        counts, values, codes, integral = [], [], [], []
        for me in self.mes:
            c, q, i = self._features(me, inputs[me["name"]])
            counts.append(c)
            values.append(self._normalise(c, me["normalisation"]))
            codes.append(q)
            integral.append(i)
        quality = np.stack(codes, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(np.stack(integral, 1) > 0, np.log(np.stack(integral, 1)), np.nan)
        ratio = logs - logs.mean(axis=1, keepdims=True)
        scored = (quality <= LOW_STATS).all(axis=1)
        columns = []
        for det in self.meta["detectors"]:
            for j, k in enumerate(det["mes"]):
                col = np.full(n, np.nan)
                if scored.any():
                    x = counts[k] if det["kind"] == "reference_test" else values[k]
                    col[scored] = self._detector(det, j, k, x, quality[:, k], runs, ratio,
                                                 scored)  # fmt: skip
                columns.append(col)
        score = self._combine(np.stack(columns, axis=1))
        return {"score": score, "flag": self._decide(score, quality, runs, lumis)}

    def _combine(self, raw: np.ndarray) -> np.ndarray:
        c = self.meta["combiner"]
        a = self.arrays
        with np.errstate(divide="ignore", invalid="ignore"):
            logged = np.log(np.clip(raw, 0, None) + a[c["shift"]])
        t = np.where(a[c["log"]], logged, raw)
        z = ((t - a[c["center"]]) / a[c["scale"]])[:, a[c["active"]]]
        bad = np.isnan(z).any(axis=1)
        z = np.nan_to_num(z, nan=0.0)
        out = z.mean(axis=1) if c["method"] == "mean_z" else z.max(axis=1)
        out[bad] = np.nan
        return out

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
    np.savez(argv[1], **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
