"""Reconstruction detectors (PCA, NMF, a small autoencoder): score = mean of top-N squared residuals.

This is the ML4DQMDC-PixelAE scoring: an LS far from the learned manifold of good histograms has a
few bins that the model cannot reproduce, and the mean of the ``top_n`` largest squared residuals
keeps a local defect from being averaged away by hundreds of well-reconstructed bins. Inputs are
normalised histograms. These models are blind to what their manifold can absorb (a small shift of a
peak is often within it), which is why the reference test exists.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from dqm_playground_ds.detection.detectors.base import BaseDetector, top_n_mean
from dqm_playground_ds.detection.detectors.isolation import PROJECT_CHUNK, fit_projection


class _Reconstruction(BaseDetector):
    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "top_n": [Interval(Integral, 1, None, closed="left")],
    }

    def reconstruct(self, X) -> np.ndarray:
        check_is_fitted(self, "offset_")
        return self._reconstruct(self._validate(X, reset=False))

    def _anomaly(self, X: np.ndarray) -> np.ndarray:
        # chunk by chunk: each LS is reconstructed on its own, and the float64 copies of every
        # scored LS at once (300k LS of a 2D map: 7 GB for the autoencoder) never exist
        if len(X) <= PROJECT_CHUNK:
            return self._chunk_anomaly(X)
        out = np.empty(len(X))
        for start in range(0, len(X), PROJECT_CHUNK):
            x = X[start : start + PROJECT_CHUNK]
            out[start : start + len(x)] = self._chunk_anomaly(x)
        return out

    def _chunk_anomaly(self, X: np.ndarray) -> np.ndarray:
        residual = X - self._reconstruct(X)
        return top_n_mean(residual.astype(np.float64) ** 2, self.top_n)

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class PCAReconstruction(_Reconstruction):
    """Linear manifold of good histograms; ``n_components`` is capped by the data's size."""

    _parameter_constraints: dict = {
        **_Reconstruction._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_components: int = 5, top_n: int = 10, contamination: float = 0.01):
        self.n_components = n_components
        self.top_n = top_n
        self.contamination = contamination

    def _fit(self, X: np.ndarray) -> None:
        # float64 (see isolation.fit_projection): the same projection in numpy and ONNX
        pca = fit_projection(X, self.n_components)
        assert pca is not None  # n_components is an int here
        self.pca_ = pca

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:
        """In the PCA's dtype (float64; float32 for a model frozen before), by chunks."""
        dtype = self.pca_.components_.dtype
        out = np.empty(X.shape, dtype=dtype)
        for start in range(0, len(X), PROJECT_CHUNK):
            x = X[start : start + PROJECT_CHUNK].astype(dtype)
            out[start : start + len(x)] = self.pca_.inverse_transform(self.pca_.transform(x))
        return out

    def _anomaly(self, X: np.ndarray) -> np.ndarray:
        # chunk by chunk: no (n, bins) float64 reconstruction of every scored LS at once
        out = np.empty(len(X))
        for start in range(0, len(X), PROJECT_CHUNK):
            x = X[start : start + PROJECT_CHUNK]
            out[start : start + len(x)] = self._chunk_anomaly(x.astype(self.pca_.components_.dtype))
        return out


class NMFReconstruction(_Reconstruction):
    """Non-negative parts-based model (PixelNMF); new LS are fitted with the components fixed."""

    _positive_only = True
    _parameter_constraints: dict = {
        **_Reconstruction._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_components: int = 3,
        top_n: int = 10,
        max_iter: int = 500,
        contamination: float = 0.01,
        random_state: int | None = None,
    ):
        self.n_components = n_components
        self.top_n = top_n
        self.max_iter = max_iter
        self.contamination = contamination
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        k = min(self.n_components, X.shape[0], X.shape[1])
        # the scale only conditions the solver's tolerances; residuals are in input units
        self.scale_ = float(X.max()) or 1.0
        self.nmf_ = NMF(
            n_components=k, init="nndsvda", max_iter=self.max_iter, random_state=self.random_state
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.nmf_.fit(X / self.scale_)
        self.n_iter_ = self.nmf_.n_iter_

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:
        return (self._weights(X / self.scale_) @ self.nmf_.components_) * self.scale_

    def _weights(self, X: np.ndarray, n_iter: int = 200) -> np.ndarray:
        """Non-negative least squares of X on the fixed components by multiplicative updates.

        ``X H^T`` and ``H H^T`` are computed once, so an iteration costs O(n k^2) instead of
        sklearn's O(n k d) per iteration of ``NMF.transform``: 100k LS take a second, not minutes.
        """
        H = self.nmf_.components_.astype(np.float64)
        XH = X.astype(np.float64) @ H.T
        HH = H @ H.T
        W = np.clip(np.linalg.lstsq(HH, XH.T, rcond=None)[0].T, 1e-9, None)
        for _ in range(n_iter):
            W *= XH / np.maximum(W @ HH, 1e-12)
        return W


class MLPAutoencoder(_Reconstruction):
    """Dense autoencoder (scikit-learn MLP trained to reproduce its input through a bottleneck).

    Inputs are centred per bin and divided by one global scale, so that the network sees numbers of
    order one without up-weighting nearly empty bins the way per-bin standardisation would.
    """

    _parameter_constraints: dict = {
        **_Reconstruction._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (32, 8, 32),
        activation: str = "tanh",
        alpha: float = 1e-4,
        learning_rate_init: float = 1e-3,
        batch_size: int = 64,
        max_iter: int = 200,
        early_stopping: bool = False,
        top_n: int = 10,
        contamination: float = 0.01,
        random_state: int | None = None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.top_n = top_n
        self.contamination = contamination
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        X = X.astype(np.float64)
        self.mean_ = X.mean(axis=0)
        self.scale_ = float((X - self.mean_).std()) or 1.0
        Z = (X - self.mean_) / self.scale_
        self.mlp_ = MLPRegressor(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes),
            activation=self.activation,
            alpha=self.alpha,
            learning_rate_init=self.learning_rate_init,
            batch_size=min(self.batch_size, len(X)),
            max_iter=self.max_iter,
            early_stopping=self.early_stopping and len(X) >= 20,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.mlp_.fit(Z, Z)
        self.n_iter_ = self.mlp_.n_iter_

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:
        Z = (X.astype(np.float64) - self.mean_) / self.scale_
        out = self.mlp_.predict(Z)
        return out.reshape(Z.shape) * self.scale_ + self.mean_
