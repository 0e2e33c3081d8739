"""A trained strategy frozen for production: explicit arrays + JSON metadata, no pickle.

A model folder holds two files:

* ``model.json``: format name and version, the strategy definition, the preprocessing (variant,
  quality cuts, MEs with their binning), the LS threshold, the decision settings the training run
  used (quality flagging, run verdicts, certification), training runs, code version, metrics, and
  the fitted state as a JSON tree whose arrays are references into
* ``arrays.npz``: every fitted array (read with ``allow_pickle=False``).

Besides the detectors it keeps the out-of-fold LS scores of the training runs: the run verdicts
of new runs are then calibrated exactly as in the training run (same good training runs, same run
threshold). Format changes that old readers cannot follow bump :data:`FORMAT_VERSION`; this reader
accepts every version up to its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds import __version__
from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.detection.strategy import MEDetectorSet, Strategy, StrategySpec
from dqm_playground_ds.models.codec import Encoder, ModelFormatError, decode
from dqm_playground_ds.processing.preprocessing import (
    HistogramPreprocessor,
    MEPreprocessor,
    QualityCuts,
    resolve_config,
)

log = logging.getLogger(__name__)

FORMAT = "dqm-playground-ds/strategy"
# 1: first format; 2: Isolation Forests as flat tree arrays (models/forest.py). A reader reads
# every version up to its own; writers write the newest.
FORMAT_VERSION = 2
MODEL_FILE, ARRAYS_FILE = "model.json", "arrays.npz"
# the columns of the training predictions a model keeps (what run verdicts need)
TRAINING_COLUMNS = ("run", "lumi", "score", "is_anomalous", "quality", "label", "label_reason",
                    "split")  # fmt: skip
DECISION_KEYS = ("flag_quality_failures", "me_scores_json", "run_verdicts", "certification")


@dataclass
class FrozenModel:
    """A strategy with its preprocessing, its training-run scores and its metadata."""

    name: str
    strategy: Strategy
    preprocessor: HistogramPreprocessor
    training_predictions: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", ""))

    @property
    def decision_params(self) -> dict[str, Any]:
        """The ``data_science`` parameters that turn scores into flags and verdicts."""
        return dict(self.meta.get("decision") or {})

    @property
    def binning(self) -> dict[str, tuple[float, ...]]:
        return dict(self.preprocessor.binning_)


def spec_to_dict(spec: StrategySpec) -> dict[str, Any]:
    """The parameter mapping :meth:`StrategySpec.from_dict` reads back."""
    return {
        "preprocessing": spec.preprocessing,
        "detectors": [
            {
                "name": d.name,
                "kind": d.kind,
                "params": dict(d.params),
                "mes": d.mes,
                "dims": list(d.dims),
                "max_train": d.max_train,
            }
            for d in spec.detectors
        ],
        "combination": dict(spec.combination),
        "threshold": {"false_alarm_rate": spec.false_alarm_rate, "consecutive": spec.consecutive},
        "top_n_mes": spec.top_n_mes,
    }


def code_version() -> dict[str, str]:
    """Package version and, when run from a git checkout, the commit (``+dirty`` if modified)."""
    out = {"package": __version__}
    root = Path(__file__).resolve().parents[3]
    try:
        git = ["git", "-C", str(root)]

        def run(args: list[str]) -> str:
            done = subprocess.run(args, check=True, capture_output=True, text=True, timeout=10)
            return done.stdout.strip()

        commit = run([*git, "rev-parse", "HEAD"])
        dirty = run([*git, "status", "--porcelain", "--", "src"])
        out["git_commit"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def freeze(
    name: str,
    strategy: Strategy,
    preprocessor: HistogramPreprocessor,
    predictions: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    version: str | None = None,
) -> FrozenModel:
    """Freeze one trained strategy (``predictions``: the training run's LS predictions)."""
    p = predictions[predictions["strategy"] == name]
    train = p[p["split"] == "train"]
    cols = [c for c in TRAINING_COLUMNS if c in train]
    training = train[cols].reset_index(drop=True)
    variant = strategy.spec.preprocessing
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version or datetime.now(UTC).strftime("%Y-%m-%dT%H.%M.%S.%fZ"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "strategy": spec_to_dict(strategy.spec),
        "threshold": float(strategy.threshold),
        "preprocessing": preprocessing_meta(preprocessor, variant),
        "decision": {k: params[k] for k in DECISION_KEYS if k in params},
        "training": {
            "runs": sorted(int(r) for r in training["run"].unique()),
            "n_lumisections": len(training),
            "n_good_lumisections": int(strategy.oof_good.sum())
            if strategy.oof_good is not None
            else None,
        },
        "metrics": (metrics or {}).get("strategies", {}).get(name, {}),
    }
    # a frozen strategy scores every LS with its final models (as when loaded back): the
    # out-of-fold scores of the training LS live on in ``training_predictions``
    final = dataclasses.replace(
        strategy, oof_keys=_no_keys(), oof_raw=np.empty((0, len(strategy.columns))), oof_good=None
    )
    return FrozenModel(name, final, preprocessor, training, meta)


def preprocessing_meta(preprocessor: HistogramPreprocessor, variant: str) -> dict[str, Any]:
    """The preprocessing a model applies: variant, quality cuts, every ME with its binning."""
    cuts = preprocessor.cuts_
    return {
        "variant": variant,
        "spec": preprocessor.variants[variant],
        "quality": {
            "min_entries": cuts.min_entries,
            "min_entries_per_bin": cuts.min_entries_per_bin,
            "per_me": {k: dict(v) for k, v in cuts.per_me.items()},
        },
        "mes": [
            {
                "me": me,
                "dim": preprocessor.dim_[me],
                "binning": list(preprocessor.binning_[me]),
                "n_train": int(preprocessor.n_train_[me]),
            }
            for me in preprocessor.mes_
        ],
    }


def _no_keys() -> pd.DataFrame:
    return pd.DataFrame({"run": pd.Series(dtype="int64"), "lumi": pd.Series(dtype="int64")})


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------
def _state(model: FrozenModel, enc: Encoder) -> dict[str, Any]:
    s = model.strategy
    sets = []
    for i, ds in enumerate(s.detector_sets):
        sets.append(
            {
                "name": ds.spec.name,
                "random_state": int(ds.random_state),
                "needs": ds.needs_,
                "mes": list(ds.mes_),
                "models": [enc(ds.models_[me], f"det{i}.{j}") for j, me in enumerate(ds.mes_)],
            }
        )
    pre = model.preprocessor
    return {
        "detector_sets": sets,
        "combiner": enc(s.combiner, "combiner"),
        "references": [
            enc(np.asarray(pre.reference_[me]), f"ref.{j}") for j, me in enumerate(pre.mes_)
        ],
        "training_predictions": {
            c: enc(_column(model.training_predictions[c]), f"train.{c}")
            for c in model.training_predictions.columns
        },
    }


def _column(s: pd.Series) -> np.ndarray:
    if s.dtype.kind in "biuf":
        return s.to_numpy()
    if str(s.dtype) == "bool":
        return s.to_numpy(dtype=bool)
    return s.astype("string").fillna("").to_numpy(dtype=str)


def check_encodable(model: FrozenModel) -> None:
    """Raise :class:`ModelFormatError` if ``model`` holds something the format cannot store."""
    _state(model, Encoder())


def save_model(model: FrozenModel, folder: str | Path) -> Path:
    """Write ``model.json`` and ``arrays.npz`` into ``folder`` (each file atomically)."""
    folder = Path(folder)
    enc = Encoder()
    doc = {**model.meta, "state": _state(model, enc)}
    text = json.dumps(doc, indent=1, allow_nan=False)

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as f:
            savez: Any = np.savez_compressed  # numpy's stub takes keyword arrays for allow_pickle
            savez(f, **enc.arrays)

    atomic_write(folder / ARRAYS_FILE, write_npz, suffix=".npz")
    atomic_write(folder / MODEL_FILE, lambda tmp: Path(tmp).write_text(text))
    return folder


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def read_meta(folder: str | Path) -> dict[str, Any]:
    """``model.json`` without the state, checked for format and version."""
    folder = Path(folder)
    path = folder / MODEL_FILE
    if not path.is_file():
        raise ModelFormatError(f"{folder}: no {MODEL_FILE} (not a frozen model folder)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc})") from exc
    if doc.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: format {doc.get('format')!r} is not {FORMAT!r}")
    v = doc.get("format_version")
    if not isinstance(v, int) or not 1 <= v <= FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format_version {v!r} unknown to this reader (reads 1..{FORMAT_VERSION}); "
            "upgrade dqm-playground-ds"
        )
    return doc


def load_model(folder: str | Path) -> FrozenModel:
    """Read a model folder written by :func:`save_model` (any format version up to ours)."""
    folder = Path(folder)
    doc = read_meta(folder)
    try:
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{folder / ARRAYS_FILE}: cannot be read ({exc})") from exc
    state = doc.pop("state")
    name = doc["name"]
    spec = StrategySpec.from_dict(name, doc["strategy"])
    sets = []
    for det, st in zip(spec.detectors, state["detector_sets"], strict=True):
        ds = MEDetectorSet(det, st["random_state"])
        ds.mes_ = list(st["mes"])
        ds.needs_ = st["needs"]
        ds.models_ = {me: decode(m, arrays) for me, m in zip(ds.mes_, st["models"], strict=True)}
        sets.append(ds)
    combiner = decode(state["combiner"], arrays)
    pre = _preprocessor(doc["preprocessing"], [decode(r, arrays) for r in state["references"]])
    training = pd.DataFrame(
        {c: decode(v, arrays) for c, v in state["training_predictions"].items()}
    )
    for c in ("quality", "label", "label_reason", "split"):
        if c in training:
            training[c] = training[c].astype("string")
    n_cols = sum(len(s.mes_) for s in sets)
    strategy = Strategy(
        spec,
        sets,
        combiner,
        float(doc["threshold"]),
        _no_keys(),
        np.empty((0, n_cols)),
        None,
    )
    return FrozenModel(name, strategy, pre, training, doc)


def _preprocessor(p: dict[str, Any], references: list[np.ndarray]) -> HistogramPreprocessor:
    variant = p["variant"]
    pre = HistogramPreprocessor({variant: p["spec"]}, p["quality"])
    pre.cuts_ = QualityCuts.from_dict(p["quality"])
    pre.binning_ = {m["me"]: tuple(float(v) for v in m["binning"]) for m in p["mes"]}
    pre.dim_ = {m["me"]: int(m["dim"]) for m in p["mes"]}
    pre.n_train_ = {m["me"]: int(m["n_train"]) for m in p["mes"]}
    pre.mes_ = [m["me"] for m in p["mes"]]
    pre.reference_ = dict(zip(pre.mes_, references, strict=True))
    pre.preprocessors_ = {
        variant: {
            me: MEPreprocessor(
                me, pre.dim_[me], resolve_config(p["spec"], me, pre.dim_[me]), pre.binning_[me]
            )
            for me in pre.mes_
        }
    }
    return pre
