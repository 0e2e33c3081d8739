"""ONNX variant of the DIALS package: detectors as ONNX graphs that onnxruntime scores.

``python -m dqm_playground_ds.deploy.dials_model build NAME -o OUT --onnx`` writes, beside the
plain-array package, one ``det<i>_<j>.onnx`` per (detector, ME) whose kind is listed in
:data:`CONVERTERS`; the handler then scores those with onnxruntime (``requirements.txt`` gains
``onnxruntime``) and the others with numpy. Each graph maps the detector's input (the normalised
histograms of the scored LS, ``X``: double (n, bins)) to its raw anomaly score (``score``: (n,)).

Built from the frozen model with skl2onnx's own converters where scikit-learn has one, and small
hand-written graphs (onnx.helper) for what is the project's:

* ``knn``: [PCA projection] -> ``NearestNeighbors`` (skl2onnx, double) -> mean distance;
* ``lof``: [PCA] -> ``LocalOutlierFactor`` (skl2onnx, ``score_samples``) -> its opposite;
* ``pca``: PCA projection -> inverse transform -> mean of the top-N squared residuals;

* ``autoencoder``: centring and scaling -> ``MLPRegressor`` (skl2onnx) -> top-N residuals;
* ``isolation_forest``: [PCA], rounded to float32 as sklearn scores -> the trees as one
  ``TreeEnsembleRegressor`` (written here from the frozen node arrays) giving the leaf of every
  tree -> its value (depth + average path length - 1, float64) gathered and summed in double ->
  ``2 ** (-sum / denominator)``;
* ``nmf``: non-negative least squares on the fixed components by the pipeline's multiplicative
  updates, unrolled (start: the pseudo-inverse of ``H H^T`` for the pipeline's ``lstsq``).

The PCA projection is sklearn's ``transform`` as two double ``MatMul``/``Sub`` with float64
constants: the pipeline's detectors fit and apply their PCA in float64, so the graph and numpy
agree to rounding (~1e-12 relative). A model frozen before that (float32 PCA) is projected by
skl2onnx's float32 PCA, ~1 ulp of float32 from numpy's (~1e-5 of a score).

Not converted (numpy in the handler, with the reason): ``run_knn`` and ``within_run`` score an
LS from the other LS of its run (a request-level context, not a per-LS function);
``reference_test`` and ``integral_ratio`` are the project's own statistics with no estimator to
convert (the cumulative-sum window scan would be a graph of its own for no gain); the ``gmm``/
``kde`` combination stays in numpy with the other combinations.

Needs the ``onnx`` extra (``pip install -e ".[onnx]"``): skl2onnx, onnx, onnxruntime.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

from dqm_playground_ds.models.forest import IsolationForestArrays

OPSET = {"": 17, "ai.onnx.ml": 3}
DOUBLE, FLOAT = TensorProto.DOUBLE, TensorProto.FLOAT


class Graph:
    """A small graph builder: constants, nodes, and skl2onnx converter graphs inlined."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.opsets = dict(OPSET)
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: Any, dtype: Any = np.float64) -> str:
        name = self._name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, domain: str = "", n_out: int = 1, **attrs: Any) -> str:
        """Add a node; its (first) output's name."""
        outs = [self._name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, domain=domain, **attrs))
        return outs[0]

    def sklearn(self, est: Any, x: str, width: int, single: bool = False,
                options: dict | None = None) -> dict[str, str]:  # fmt: skip
        """Inline skl2onnx's graph of ``est`` on ``x``; its outputs by their skl2onnx names."""
        kind = FloatTensorType if single else DoubleTensorType
        model = convert_sklearn(est, initial_types=[("X", kind([None, width]))],
                                target_opset=OPSET, options=options)  # fmt: skip
        prefix = self._name("sk") + "_"
        model = onnx.compose.add_prefix(model, prefix)
        self.nodes.append(helper.make_node("Identity", [x], [model.graph.input[0].name]))
        self.nodes.extend(model.graph.node)
        self.initializers.extend(model.graph.initializer)
        for imp in model.opset_import:
            self.opsets.setdefault(imp.domain, imp.version)
        return {o.name.removeprefix(prefix): o.name for o in model.graph.output}

    def model(self, score: str) -> onnx.ModelProto:
        flat = self.op("Reshape", score, self.const([-1], np.int64))
        self.nodes.append(helper.make_node("Identity", [flat], ["score"]))
        graph = helper.make_graph(
            self.nodes,
            "dqm_playground_ds_detector",
            [helper.make_tensor_value_info("X", DOUBLE, [None, self.n_features])],
            [helper.make_tensor_value_info("score", DOUBLE, [None])],
            self.initializers,
        )
        opsets = [helper.make_opsetid(d, v) for d, v in self.opsets.items()]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="dqm_playground_ds")
        model.ir_version = min(model.ir_version, 9)
        onnx.checker.check_model(model)
        return model

    # -- pieces ----------------------------------------------------------------------------------
    def project(self, pca: Any, x: str, width: int) -> tuple[str, int]:
        """PCA projection in the PCA's dtype, returned as double.

        A float64 PCA (the pipeline's detectors fit it on float64) is written here as sklearn's
        ``transform``: ``X @ C^T - mean @ C^T`` (then whitening) with float64 constants, so that
        onnxruntime and numpy agree to rounding. A float32 PCA (a model frozen before) goes
        through skl2onnx in float32, as that pipeline projected it (~1 ulp of float32 apart)."""
        if pca is None:
            return x, width
        if pca.components_.dtype != np.float32:
            c = np.asarray(pca.components_, dtype=np.float64)
            mean = np.asarray(pca.mean_, dtype=np.float64).reshape(1, -1)
            z = self.op("Sub", self.op("MatMul", x, self.const(c.T)), self.const(mean @ c.T))
            if pca.whiten:
                scale = np.sqrt(np.asarray(pca.explained_variance_, dtype=np.float64))
                z = self.op("Div", z, self.const(np.maximum(scale, np.finfo(np.float64).eps)))
            return z, int(pca.n_components_)
        src = self.op("Cast", x, to=FLOAT)
        z = self.sklearn(pca, src, width, single=True)["variable"]
        return self.op("Cast", z, to=DOUBLE), int(pca.n_components_)

    def top_n_residual(self, x: str, recon: str, top_n: int, width: int) -> str:
        res = self.op("Sub", x, recon)
        sq = self.op("Mul", res, res)
        k = max(1, min(int(top_n), width))
        top = self.op("TopK", sq, self.const([k], np.int64), axis=1, n_out=2)
        return self.op("ReduceMean", top, axes=[1], keepdims=0)


# ------------------------------------------------------------------------------------------------
# converters: fitted detector -> graph
# ------------------------------------------------------------------------------------------------
def _knn(det: Any, g: Graph) -> str:
    z, width = g.project(det.projection_, "X", g.n_features)
    nn = copy.copy(det.model_)
    nn.radius = None  # a kneighbors-only model (skl2onnx refuses both radius and n_neighbors)
    return g.op("ReduceMean", g.sklearn(nn, z, width)["distance"], axes=[1], keepdims=0)


def _lof(det: Any, g: Graph) -> str:
    z, width = g.project(det.projection_, "X", g.n_features)
    out = g.sklearn(det.model_, z, width, options={id(det.model_): {"score_samples": True}})
    return g.op("Neg", out["score_samples"])


def _pca_reconstruction(det: Any, g: Graph) -> str:
    """In the PCA's dtype, as the pipeline computes it; residuals squared in float64."""
    pca = det.pca_
    if pca.components_.dtype != np.float32:
        t, _ = g.project(pca, "X", g.n_features)
        recon = g.op("Add", g.op("MatMul", t, g.const(pca.components_)), g.const(pca.mean_))
        return g.top_n_residual("X", recon, det.top_n, g.n_features)
    x32 = g.op("Cast", "X", to=FLOAT)
    t = g.sklearn(pca, x32, g.n_features, single=True)["variable"]
    recon = g.op("Add", g.op("MatMul", t, g.const(pca.components_, np.float32)),
                 g.const(pca.mean_, np.float32))  # fmt: skip
    return g.top_n_residual("X", g.op("Cast", recon, to=DOUBLE), det.top_n, g.n_features)


def _autoencoder(det: Any, g: Graph) -> str:
    mean, scale = g.const(det.mean_), g.const(det.scale_)
    z = g.op("Div", g.op("Sub", "X", mean), scale)
    out = g.sklearn(det.mlp_, z, g.n_features)["variable"]
    out = g.op("Reshape", out, g.const([-1, g.n_features], np.int64))  # skl2onnx may flatten it
    recon = g.op("Add", g.op("Mul", out, scale), mean)
    return g.top_n_residual("X", recon, det.top_n, g.n_features)


def _nmf(det: Any, g: Graph, n_iter: int = 200) -> str:
    comp = det.nmf_.components_
    h = comp.astype(np.float64)
    hh = h @ h.T
    x = g.op("Cast", g.op("Div", g.op("Cast", "X", to=FLOAT), g.const(det.scale_, comp.dtype)),
             to=DOUBLE)  # fmt: skip
    xh = g.op("MatMul", x, g.const(h.T))
    w = g.op("Max", g.op("MatMul", xh, g.const(np.linalg.pinv(hh).T)), g.const(1e-9))
    hh_c, floor = g.const(hh), g.const(1e-12)
    for _ in range(n_iter):
        w = g.op("Mul", w, g.op("Div", xh, g.op("Max", g.op("MatMul", w, hh_c), floor)))
    recon = g.op("Mul", g.op("MatMul", w, g.const(comp.astype(np.float64))), g.const(det.scale_))
    return g.top_n_residual("X", recon, det.top_n, g.n_features)


def _tree_attributes(forest: IsolationForestArrays) -> dict[str, Any]:
    a = forest.arrays
    roots = a["roots"]
    tree = np.searchsorted(roots, np.arange(len(a["left"])), side="right") - 1
    local = np.arange(len(a["left"])) - roots[tree]
    leaf = a["left"] < 0

    def child(c: np.ndarray) -> list[int]:
        return np.where(leaf, 0, c - roots[tree]).tolist()

    return {
        "nodes_treeids": tree.tolist(),
        "nodes_nodeids": local.tolist(),
        "nodes_featureids": np.where(leaf, 0, a["feature"]).tolist(),
        "nodes_modes": ["LEAF" if v else "BRANCH_LEQ" for v in leaf],
        "nodes_values_as_tensor": numpy_helper.from_array(
            np.where(leaf, 0.0, a["threshold"]).astype(np.float64), "t"
        ),
        "nodes_truenodeids": child(a["left"]),
        "nodes_falsenodeids": child(a["right"]),
        "nodes_missing_value_tracks_true": a["missing_left"].astype(int).tolist(),
        # tree t writes the global index of its leaf to target t (an integer: exact in the
        # float32 output of ai.onnx.ml 3); the double leaf values are gathered from it
        "target_treeids": tree[leaf].tolist(),
        "target_nodeids": local[leaf].tolist(),
        "target_ids": tree[leaf].tolist(),
        "target_weights_as_tensor": numpy_helper.from_array(
            np.flatnonzero(leaf).astype(np.float64), "w"
        ),
        "n_targets": len(roots),
        "aggregate_function": "SUM",
        "post_transform": "NONE",
    }


def _isolation_forest(det: Any, g: Graph) -> str:
    forest = det.forest_
    if not isinstance(forest, IsolationForestArrays):
        forest = IsolationForestArrays.from_sklearn(forest)
    z, _ = g.project(det.projection_, "X", g.n_features)
    z = g.op("Cast", g.op("Cast", z, to=FLOAT), to=DOUBLE)  # sklearn scores float32 features
    if len(forest.arrays["left"]) >= 2**24:
        raise ValueError("Isolation Forest too large for its ONNX graph (2^24 nodes)")
    leaves = g.op("TreeEnsembleRegressor", z, domain="ai.onnx.ml", **_tree_attributes(forest))
    index = g.op("Cast", leaves, to=TensorProto.INT64)  # (n, trees): leaf of every tree
    values = g.op("Gather", g.const(forest.arrays["leaf_value"]), index, axis=0)
    depth = g.op("ReduceSum", values, g.const([1], np.int64), keepdims=0)  # in double
    if forest.denominator == 0:  # one training sample per tree: sklearn scores 2 ** -1
        return g.op("Add", g.op("Mul", depth, g.const(0.0)), g.const(0.5))
    ratio = g.op("Div", depth, g.const(forest.denominator))
    return g.op("Pow", g.const(2.0), g.op("Neg", ratio))


CONVERTERS: dict[str, Callable[[Any, Graph], str]] = {
    "knn": _knn,
    "lof": _lof,
    "pca": _pca_reconstruction,
    "autoencoder": _autoencoder,
    "nmf": _nmf,
    "isolation_forest": _isolation_forest,
}


def detector_onnx(kind: str, det: Any, n_features: int) -> onnx.ModelProto | None:
    """The ONNX graph of one fitted detector (input ``X`` (n, n_features)), None if no converter."""
    if kind not in CONVERTERS:
        return None
    g = Graph(n_features)
    return g.model(CONVERTERS[kind](det, g))


def score(model: onnx.ModelProto | bytes | str, x: np.ndarray) -> np.ndarray:
    """Raw anomaly scores of ``x`` by onnxruntime (one thread: deterministic and shared cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"X": np.asarray(x, dtype=np.float64)})
    return np.asarray(out, dtype=np.float64)
