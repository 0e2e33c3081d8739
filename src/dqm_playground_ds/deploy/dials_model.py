"""A DIALS model package of a frozen strategy, and its check without this project installed.

DIALS runs registered models on every ingested DQMIO file as MLServer inference services packaged
with the ``cmsdism`` tool (``dismcli build -f template.yaml``, ``dismcli package``). This module
writes the folder that tool reads::

    <out>/template.yaml           resources: input MEs (name, ME path, type, dims), outputs
                                  (``score`` is the metric, ``flag`` the decision), conditions
    <out>/model/app.py            the handler (deploy/dials_handler.py: numpy only, no import of
                                  this project), a local CLI too
    <out>/model/model.json|.npz   the strategy as plain arrays (training LS, run means, trees...)
    <out>/model/det<i>_<j>.onnx   with ``--onnx``: detectors as ONNX graphs (deploy/dials_onnx.py)
    <out>/model/requirements.txt  what the handler needs (numpy; onnxruntime with ``--onnx``)

and verifies it: a fresh virtual environment gets only the requirements from the package index,
the handler scores the bundled sample run by run, and its scores must equal the frozen model's
(the pipeline's own scoring). Every detector kind of the project is supported except
``run_knn`` with a ``window``; every combination (``max_z``, ``mean_z``, ``gmm``, ``kde``).

    python -m dqm_playground_ds.deploy.dials_model build two_level -o build/dials/two_level [--onnx]
    python -m dqm_playground_ds.deploy.dials_model verify build/dials/two_level
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dqm_playground_ds.models import FrozenModel, ModelStore, check_compatible
from dqm_playground_ds.models.forest import IsolationForestArrays

HANDLER = Path(__file__).with_name("dials_handler.py")
COMBINERS = {"mean_z", "max_z", "gmm", "kde"}
REQUIREMENTS = ("numpy",)
ONNX_REQUIREMENTS = ("onnxruntime",)  # an ONNX package's handler (installed from the index)


class PackageError(ValueError):
    """The strategy cannot be packaged for DIALS, or the package does not reproduce it."""


def _check_supported(model: FrozenModel) -> None:
    spec = model.strategy.spec
    bad = [f"{d.name} ({d.kind})" for d in spec.detectors if d.kind not in SUPPORTED]
    bad += [
        f"{d.name} (run_knn window={d.params['window']})"
        for d in spec.detectors
        if d.kind == "run_knn" and d.params.get("window") is not None
    ]
    method = spec.combination.get("method", "max_z")
    if bad or method not in COMBINERS:
        raise PackageError(
            f"strategy {model.name!r} cannot be packaged for DIALS: detectors {bad or 'ok'}, "
            f"combination {method!r}; supported: detectors {sorted(SUPPORTED)} (run_knn without "
            f"a window), combinations {sorted(COMBINERS)}"
        )


def input_names(mes: list[str]) -> list[str]:
    """Short, unique input names from ME paths (their last component, made identifier-safe)."""
    names: list[str] = []
    for me in mes:
        base = re.sub(r"\W", "_", me.rsplit("/", 1)[-1]) or "me"
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}_{i}"
        names.append(name)
    return names


class _Arrays:
    """Collects the package's arrays under unique keys; JSON entries refer to them by key."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def __call__(self, key: str, value: Any) -> str | None:
        if value is None:
            return None
        if key in self.arrays:
            raise PackageError(f"array key {key!r} used twice")
        self.arrays[key] = np.asarray(value)
        return key


def _me_entry(model: FrozenModel, j: int, me: str, name: str, put: _Arrays) -> dict[str, Any]:
    """Binning, crop/rebin matrices, normalisation and quality cuts of one ME."""
    pre = model.preprocessor
    pp = pre.preprocessors_[model.strategy.spec.preprocessing][me]
    dim, nx, _, _, ny, _, _ = pre.binning_[me]
    min_entries, per_bin = pre.cuts_.for_me(me)
    return {
        "name": name,
        "me": me,
        "dim": int(dim),
        "nx": int(nx),
        "ny": int(ny),
        "n_raw": int(nx) * (int(ny) if int(dim) == 2 else 1),
        "binning": list(pre.binning_[me]),
        "full": bool(pp._full),
        "x_index": put(f"me{j}.x_index", pp.x_index),
        "y_index": put(f"me{j}.y_index", pp.y_index),
        "rx": put(f"me{j}.rx", pp.rx),
        "ry": put(f"me{j}.ry", pp.ry),
        "normalisation": pp.config.normalisation,
        "min_entries": float(min_entries),
        "min_entries_per_bin": float(per_bin),
    }


def _pca_entry(pca: Any, key: str, put: _Arrays) -> dict[str, Any] | None:
    if pca is None:
        return None
    return {
        "mean": put(f"{key}.mean", pca.mean_),
        "components": put(f"{key}.components", pca.components_),
        "explained_variance": put(f"{key}.ev", pca.explained_variance_),
        "whiten": bool(pca.whiten),
    }


def _neighbours(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    entry = {"projection": _pca_entry(det.projection_, f"{key}.proj", put),
             "train": put(f"{key}.train", det.model_._fit_X),
             "n_neighbors": int(det.n_neighbors_),
             "brute": det.model_._fit_method == "brute"}  # fmt: skip
    if det.method == "lof":
        lof = det.model_
        entry |= {
            "n_neighbors": int(lof.n_neighbors_),
            "lrd": put(f"{key}.lrd", lof._lrd),
            "kdist": put(f"{key}.kdist", lof._distances_fit_X_[:, lof.n_neighbors_ - 1]),
        }
    return entry


def _forest(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    forest = det.forest_
    if not isinstance(forest, IsolationForestArrays):
        forest = IsolationForestArrays.from_sklearn(forest)
    return {
        "projection": _pca_entry(det.projection_, f"{key}.proj", put),
        "forest": {k: put(f"{key}.{k}", v) for k, v in forest.arrays.items()}
        | {"denominator": forest.denominator, "n_features_in": forest.n_features_in},
    }


def _pca_reconstruction(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    return {"pca": _pca_entry(det.pca_, f"{key}.pca", put), "top_n": int(det.top_n)}


def _nmf(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    n_iter = inspect.signature(type(det)._weights).parameters["n_iter"].default
    return {"components": put(f"{key}.components", det.nmf_.components_),
            "scale": float(det.scale_), "n_iter": int(n_iter), "top_n": int(det.top_n)}  # fmt: skip


def _autoencoder(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    mlp = det.mlp_
    return {
        "mean": put(f"{key}.mean", det.mean_),
        "scale": float(det.scale_),
        "coefs": [put(f"{key}.w{i}", w) for i, w in enumerate(mlp.coefs_)],
        "intercepts": [put(f"{key}.b{i}", b) for i, b in enumerate(mlp.intercepts_)],
        "activation": mlp.activation,
        "out_activation": mlp.out_activation_,
        "top_n": int(det.top_n),
    }


def _shape(det: Any) -> list[int] | None:
    return None if det.shape is None else [int(v) for v in det.shape]


def _run_knn(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    return {"run_means": put(f"{key}.run_means", det.run_means_),
            "n_neighbors": int(det.n_neighbors_), "mode": det.mode}  # fmt: skip


def _within_run(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    return {"dispersion": put(f"{key}.dispersion", det.dispersion_), "neutral": float(det.neutral_),
            "statistic": det.statistic, "mode": det.mode, "shape": _shape(det)}  # fmt: skip


def _reference_test(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    return {"reference": put(f"{key}.reference", det.reference_),
            "n_reference": float(det.n_reference_),
            "dispersion": put(f"{key}.dispersion", det.dispersion_),
            "statistic": det.statistic, "top_n": int(det.top_n), "shape": _shape(det)}  # fmt: skip


def _integral_ratio(det: Any, key: str, put: _Arrays) -> dict[str, Any]:
    return {"median": put(f"{key}.median", det.median_),
            "scale": put(f"{key}.scale", det.scale_), "side": det.side}  # fmt: skip


# detector kind -> its description for the handler (arrays stored through ``put``)
EXPORTERS = {
    "knn": _neighbours,
    "lof": _neighbours,
    "isolation_forest": _forest,
    "pca": _pca_reconstruction,
    "nmf": _nmf,
    "autoencoder": _autoencoder,
    "run_knn": _run_knn,
    "within_run": _within_run,
    "reference_test": _reference_test,
    "integral_ratio": _integral_ratio,
}
SUPPORTED = set(EXPORTERS)


def _combiner_entry(c: Any, put: _Arrays) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "method": c.method,
        "log": put("combiner.log", c.log_),
        "shift": put("combiner.shift", c.shift_),
        "center": put("combiner.center", c.center_),
        "scale": put("combiner.scale", c.scale_),
        "active": put("combiner.active", c.active_),
    }
    if c.method == "gmm":
        g = c.density_
        entry["density"] = {
            "covariance_type": g.covariance_type,
            "weights": put("combiner.gmm.weights", g.weights_),
            "means": put("combiner.gmm.means", g.means_),
            "precisions_cholesky": put("combiner.gmm.chol", g.precisions_cholesky_),
        }
    elif c.method == "kde":
        kde = c.density_
        if kde.kernel != "gaussian":
            raise PackageError(f"kde combination with kernel {kde.kernel!r}: only gaussian")
        entry["density"] = {"data": put("combiner.kde.data", np.asarray(kde.tree_.data)),
                            "bandwidth": float(kde.bandwidth_)}  # fmt: skip
    return entry


def export_arrays(model: FrozenModel) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The handler's ``model.json`` and ``model.npz`` contents."""
    _check_supported(model)
    pre, strategy = model.preprocessor, model.strategy
    put = _Arrays()
    names = input_names(pre.mes_)
    mes = [_me_entry(model, j, me, names[j], put) for j, me in enumerate(pre.mes_)]
    detectors = [
        {
            "name": ds.spec.name,
            "kind": ds.spec.kind,
            "mes": [pre.mes_.index(me) for me in ds.mes_],
            "models": [
                EXPORTERS[ds.spec.kind](ds.models_[me], f"det{i}.{j}", put)
                for j, me in enumerate(ds.mes_)
            ],
        }
        for i, ds in enumerate(strategy.detector_sets)
    ]
    decision = model.decision_params
    doc = {
        "model": model.name,
        "version": model.version,
        "code_version": model.meta.get("code_version"),
        "mes": mes,
        "detectors": detectors,
        "combiner": _combiner_entry(strategy.combiner, put),
        "decision": {
            "threshold": float(strategy.threshold),
            "consecutive": int(strategy.spec.consecutive),
            "flag_quality_failures": bool(decision.get("flag_quality_failures", True)),
        },
    }
    return doc, put.arrays


def template(model: FrozenModel, doc: dict[str, Any], conditions: dict[str, Any]) -> dict:
    """``template.yaml``: one MLServer inference service with the strategy's inputs/outputs."""
    resource = re.sub(r"[^A-Za-z0-9]", "", model.name.title()) or "Model"
    inputs = [
        {
            "Name": me["name"],
            "MonitoringElement": me["me"],
            "DataType": "TYPE_FP64",
            "Dims": [-1, me["nx"]] if me["dim"] == 1 else [-1, me["ny"], me["nx"]],
        }
        for me in doc["mes"]
    ]
    return {
        "TemplateFormatVersion": "2025-03-31",
        "Description": f"dqm-playground-ds strategy {model.name} (version {model.version})",
        "Resources": {
            resource: {
                "Type": "InferenceService::MLServer::SKLearn",
                "Workspace": conditions.get("workspace", "global"),
                "Properties": {
                    "Description": (
                        f"LS anomaly score of {len(inputs)} MEs; flag = score above "
                        f"{doc['decision']['threshold']:.6g} or quality cuts failed"
                    ),
                    "Name": re.sub(r"[^a-z0-9-]", "-", f"dqm-playground-{model.name}".lower()),
                    "Image": "registry.cern.ch/docker.io/seldonio/mlserver:1.5.0",
                    "MetricKey": "score",
                    "BuiltinThreshold": True,
                    "InputSignature": inputs,
                    "OutputSignature": [
                        {"Name": "score", "DataType": "TYPE_FP64", "Dims": [-1]},
                        {"Name": "flag", "DataType": "TYPE_BOOL", "Dims": [-1]},
                    ],
                    "Conditions": {
                        k: v for k, v in conditions.items() if k != "workspace" and v is not None
                    },
                    "CodeUri": "model/",
                    "Handler": "app.Handler",
                    "ModelUri": "model/model.npz",
                    "Resources": {
                        "Requests": {"cpu": "100m", "memory": "500Mi"},
                        "Limits": {"cpu": "1", "memory": "2Gi"},
                    },
                },
            }
        },
    }


def onnx_files(model: FrozenModel, doc: dict[str, Any]) -> dict[str, bytes]:
    """ONNX graphs of the detectors that have a converter (deploy/dials_onnx.py), named in
    ``doc`` (the handler then scores them with onnxruntime); needs the ``onnx`` extra."""
    try:
        from dqm_playground_ds.deploy import dials_onnx
    except ImportError as exc:
        raise PackageError(
            f"the ONNX variant needs the onnx extra (pip install -e '.[onnx]'): {exc}"
        ) from exc
    files = {}
    for i, ds in enumerate(model.strategy.detector_sets):
        for j, me in enumerate(ds.mes_):
            det = ds.models_[me]
            graph = dials_onnx.detector_onnx(ds.spec.kind, det, int(det.n_features_in_))
            if graph is not None:
                name = f"det{i}_{j}.onnx"
                files[name] = graph.SerializeToString()
                doc["detectors"][i]["models"][j]["onnx"] = name
    return files


def _conditions(model: FrozenModel, conditions: dict[str, Any] | None) -> dict[str, Any]:
    training_runs = model.meta.get("training", {}).get("runs") or [0]
    return {
        "workspace": "global",
        "DatasetRegex": ".*ZeroBias.*",
        "MinRun": int(max(training_runs)) + 1,  # runs after the training ones
        "MinLumisections": 1,
        **(conditions or {}),
    }


def build_package(
    model: FrozenModel,
    out: str | Path,
    conditions: dict[str, Any] | None = None,
    onnx: bool = False,
) -> Path:
    """Write the package folder (replacing an older package there only when complete).

    ``onnx``: the ONNX variant (detectors with a converter as ``.onnx`` graphs, onnxruntime)."""
    out = Path(out)
    doc, arrays = export_arrays(model)
    graphs = onnx_files(model, doc) if onnx else {}
    requirements = [*REQUIREMENTS, *(ONNX_REQUIREMENTS if graphs else ())]
    tmp = Path(tempfile.mkdtemp(prefix=".dials-", dir=out.parent if out.parent.exists() else None))
    try:
        tmp.chmod(0o755)
        code = tmp / "model"
        code.mkdir()
        shutil.copyfile(HANDLER, code / "app.py")
        (code / "model.json").write_text(json.dumps(doc, indent=1))
        with open(code / "model.npz", "wb") as f:
            savez: Any = np.savez_compressed  # numpy's stub takes keyword arrays for allow_pickle
            savez(f, **arrays)
        for name, data in graphs.items():
            (code / name).write_bytes(data)
        pins = [f"{r}=={metadata.version(r)}" for r in requirements]
        (code / "requirements.txt").write_text("\n".join(pins) + "\n")
        header = "# Generated by dqm_playground_ds.deploy.dials_model; cmsdism: dismcli build -f\n"
        body = yaml.safe_dump(template(model, doc, _conditions(model, conditions)),
                              sort_keys=False, width=100)  # fmt: skip
        (tmp / "template.yaml").write_text(header + body)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ------------------------------------------------------------------------------------------------
# verification in a fresh environment
# ------------------------------------------------------------------------------------------------
def handler_inputs(package: Path, histograms: pd.DataFrame) -> dict[int, dict[str, np.ndarray]]:
    """Per run: the arrays a DIALS request would carry (LS of the run with every ME present)."""
    doc = json.loads((package / "model" / "model.json").read_text())
    hist = histograms[histograms["lumi"] > 0]
    out = {}
    for run, rows in hist.groupby("run", sort=True):
        lumis = np.array(sorted(set(rows["lumi"].tolist())), dtype=np.int64)
        arrays = {"run": np.full(len(lumis), int(run)), "lumi": lumis}
        for me in doc["mes"]:
            sel = rows[rows["me"] == me["me"]].set_index("lumi")["data"]
            data = np.zeros((len(lumis), me["n_raw"]))
            for i, lumi in enumerate(lumis):
                data[i] = np.asarray(sel[lumi]) if lumi in sel.index else np.nan
            shape = (len(lumis), me["nx"]) if me["dim"] == 1 else (len(lumis), me["ny"], me["nx"])
            arrays[me["name"]] = data.reshape(shape)
        out[int(run)] = arrays
    return out


def reference_scores(model: FrozenModel, histograms: pd.DataFrame) -> pd.DataFrame:
    """The frozen model's own LS scores and flags, one run at a time (what DIALS sees)."""
    from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
    from dqm_playground_ds.pipelines.inference.nodes import (
        prepare_new_lumisections,
        score_new_lumisections,
    )

    params = DataProcessingParams.model_validate({"labels": {}})
    frames = []
    for _, rows in histograms.groupby("run", sort=True):
        features, ls = prepare_new_lumisections(rows, model, {}, {}, params)
        frames.append(score_new_lumisections(model, features, ls))
    out = pd.concat(frames, ignore_index=True)
    return out[["run", "lumi", "score", "is_anomalous"]]


def make_venv(where: Path, requirements: Path) -> Path:
    """A fresh virtual environment (no system packages, not this project) with the requirements."""
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    python = where / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                   check=True, timeout=600)  # fmt: skip
    return python


def run_handler(
    package: Path, histograms: pd.DataFrame, python: str | Path, tmp: Path
) -> pd.DataFrame:
    """The package's handler run by ``python`` (isolated: ``-I``), one request per run."""
    # -I: no PYTHON* variables, no user site, no script or current directory on the path
    probe = subprocess.run([str(python), "-I", "-c", "import dqm_playground_ds"],
                           capture_output=True, timeout=60, check=False, cwd=tmp)  # fmt: skip
    if probe.returncode == 0:
        raise PackageError(f"{python} can import dqm_playground_ds: not an isolated check")
    got = []
    for run, arrays in handler_inputs(package, histograms).items():
        savez: Any = np.savez
        savez(tmp / f"in_{run}.npz", **arrays)
        subprocess.run([str(python), "-I", str(package / "model" / "app.py"),
                        str(tmp / f"in_{run}.npz"), str(tmp / f"out_{run}.npz")],
                       check=True, timeout=600, cwd=tmp)  # fmt: skip
        with np.load(tmp / f"out_{run}.npz") as z:
            got.append(pd.DataFrame({"run": run, "lumi": arrays["lumi"],
                                     "score_handler": z["score"], "flag": z["flag"]}))  # fmt: skip
    return pd.concat(got, ignore_index=True)


def compare(want: pd.DataFrame, handler: pd.DataFrame, atol: float, rtol: float) -> dict[str, Any]:
    """Score differences, equal flags and equal unscored LS; ``ok`` when within tolerance."""
    both = want.merge(handler, on=["run", "lumi"], how="outer", validate="one_to_one")
    a, b = both["score"].to_numpy(float), both["score_handler"].to_numpy(float)
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    finite = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a[finite] - b[finite])
    rel = diff / np.maximum(np.abs(a[finite]), 1e-300)
    report = {
        "lumisections": len(both),
        "runs": int(both["run"].nunique()),
        "max_abs_diff": float(diff.max(initial=0.0)),
        "max_rel_diff": float(rel.max(initial=0.0)),
        "flags_equal": bool((both["is_anomalous"] == both["flag"]).all()),
        "unscored_equal": bool(same_nan),
        "max_abs_diff_by_run": {
            int(run): float(d.max())
            for run, d in pd.Series(np.abs(a - b), index=both["run"]).fillna(0.0).groupby(level=0)
        },
        "atol": atol,
        "rtol": rtol,
    }
    close = np.allclose(a[finite], b[finite], rtol=rtol, atol=atol)
    report["ok"] = bool(same_nan and report["flags_equal"] and close)
    return report


def has_onnx(package: Path) -> bool:
    return any((Path(package) / "model").glob("*.onnx"))


def float32_projection(model: FrozenModel) -> bool:
    """Whether a detector projects with a float32 PCA (a model frozen before the detectors fitted
    their PCA in float64): its ONNX graph then rounds the projection unlike numpy's BLAS."""
    pcas = [getattr(det, attr, None) for ds in model.strategy.detector_sets
            for det in ds.models_.values() for attr in ("projection_", "pca_")]  # fmt: skip
    return any(p is not None and p.components_.dtype == np.float32 for p in pcas)


def default_rtol(package: Path, model: FrozenModel) -> float:
    """0 for the numpy handler; for an ONNX package 1e-6 (float64 projections: the graphs agree to
    rounding), 1e-4 for a float32 projection (docs/models.md)."""
    if not has_onnx(package):
        return 0.0
    return 1e-4 if float32_projection(model) else 1e-6


def verify(
    package: str | Path,
    model: FrozenModel,
    histograms: pd.DataFrame,
    python: str | Path | None = None,
    atol: float = 1e-5,
    rtol: float | None = None,
) -> dict[str, Any]:
    """Run the handler outside this project on ``histograms``; compare with the model's scores.

    Flags and unscored LS must be equal and scores agree to ``atol + rtol * |score|``. The numpy
    handler repeats the pipeline's arithmetic (kNN distances as sklearn's brute force): ``rtol``
    0. An ONNX package computes with onnxruntime's kernels: ``rtol`` from :func:`default_rtol`.

    ``python``: an interpreter to use; default: a fresh virtual environment with only the
    package's requirements. Raises :class:`PackageError` when scores or flags differ.
    """
    package = Path(package).resolve()
    if rtol is None:
        rtol = default_rtol(package, model)
    check_compatible(model.binning, histograms, f"model {model.name}")
    with tempfile.TemporaryDirectory(prefix="dials-verify-") as tmp_dir:
        tmp = Path(tmp_dir)
        if python is None:
            python = make_venv(tmp / "venv", package / "model" / "requirements.txt")
        handler = run_handler(package, histograms, python, tmp)
    report = compare(reference_scores(model, histograms), handler, atol, rtol)
    report["python"] = str(python)
    report["onnx"] = has_onnx(package)
    if not report["ok"]:
        raise PackageError(f"the DIALS handler does not reproduce the model: {report}")
    return report


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def _sample(paths: list[str]) -> pd.DataFrame:
    from dqm_playground_ds.readers.dqmio import read_dqmio

    files = sorted(f for p in paths for f in (Path(p).glob("*.root") if Path(p).is_dir() else [p]))
    if not files:
        raise FileNotFoundError(f"no DQMIO file in {paths}")
    return pd.concat([read_dqmio(f) for f in files], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dqm_playground_ds.deploy.dials_model",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the cmsdism package folder of a frozen model")
    v = sub.add_parser("verify", help="run the package's handler in a fresh venv on DQMIO files")
    for q in (b, v):
        q.add_argument("model", nargs="?", help="name, name@version or model folder")
        q.add_argument("--store", default="data/06_models/frozen", help="frozen models root")
    b.add_argument("-o", "--output", required=True, help="package folder to write")
    b.add_argument("--dataset-regex", help="condition: datasets the model applies to")
    b.add_argument("--min-run", type=int, help="condition: first run (default: after training)")
    b.add_argument("--onnx", action="store_true",
                   help="ONNX variant: detectors with a converter as .onnx (needs the onnx extra)")  # fmt: skip
    v.add_argument("package", help="package folder written by build")
    v.add_argument("--on", nargs="+", default=["data/01_raw/dqmio"], help="DQMIO files/folders")
    v.add_argument("--python", help="interpreter to run the handler (default: a fresh venv)")
    args = p.parse_args(argv)
    stdout = sys.stdout
    try:
        # logs may go to stdout (Kedro's rich handler): keep stdout for the result alone
        with contextlib.redirect_stdout(sys.stderr):
            store = ModelStore(args.store)
            if args.command == "build":
                model = store.load(args.model)
                cond = {"DatasetRegex": args.dataset_regex, "MinRun": args.min_run}
                cond = {k: x for k, x in cond.items() if x}
                out = build_package(model, args.output, cond, onnx=args.onnx)
                result = f"wrote {out} (model {model.name} version {model.version})"
            else:
                package = Path(args.package)
                meta = json.loads((package / "model" / "model.json").read_text())
                ref = args.model or f"{meta['model']}@{meta['version']}"
                report = verify(package, store.load(ref), _sample(args.on), args.python)
                result = json.dumps(report, indent=1)
        print(result, file=stdout)
        return 0
    except (PackageError, ValueError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
