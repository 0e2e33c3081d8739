"""The bundled sample trained once per test session by the real node functions (no injection).

Shared by the frozen-model, inference and DIALS-package tests: training the strategies they need
costs ~10 s, so it happens once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dqm_playground_ds.pipelines.data_processing import nodes as proc
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science import nodes as sci
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.readers.dqmio import read_dqmio

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw"


def params(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text())[name]


def sample_histograms() -> pd.DataFrame:
    files = sorted((RAW / "dqmio").glob("*.root"))
    return pd.concat([read_dqmio(f) for f in files], ignore_index=True)


def labels() -> tuple[dict, dict]:
    return (
        json.loads((RAW / "labels" / "golden.json").read_text()),
        json.loads((RAW / "labels" / "dcs_on.json").read_text()),
    )


@dataclass
class Trained:
    histograms: pd.DataFrame
    processing_params: DataProcessingParams
    science_params: DataScienceParams
    preprocessor: Any
    lumisections: pd.DataFrame
    models: dict[str, Any]
    predictions: pd.DataFrame
    run_predictions: pd.DataFrame
    certification: dict[str, Any]


def train(strategies: list[str]) -> Trained:
    hist = sample_histograms()
    golden, dcs = labels()
    pp = DataProcessingParams.model_validate(params("data_processing"))
    sp = DataScienceParams.model_validate(
        {**params("data_science"), "active_strategies": strategies, "injection": {"enabled": False}}
    )
    labelled = proc.label_lumisections_node(hist, golden, dcs, pp, [])
    split = proc.assign_split(labelled, {}, pp)
    pre = proc.fit_preprocessor(hist, split, pp)
    features, ls = proc.build_features(hist, split, pre, pp)
    models = sci.train_strategies(features, ls, sp)
    preds, _ = sci.score_lumisections(models, features, ls, sp)
    runs = sci.judge_runs(preds, sp)
    cert = sci.certify_lumisections(preds, runs, golden, dcs, sp)
    return Trained(hist, pp, sp, pre, ls, models, preds, runs, cert)
