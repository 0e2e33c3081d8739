"""Export node: trained strategies -> frozen models (explicit arrays + JSON, see models/)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from dqm_playground_ds.detection.strategy import Strategy
from dqm_playground_ds.frame_parts import FrameParts, as_frame
from dqm_playground_ds.models import FrozenModel, ModelFormatError, freeze
from dqm_playground_ds.models.frozen import check_encodable
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.processing.preprocessing import HistogramPreprocessor

log = logging.getLogger(__name__)


def freeze_models(
    strategy_models: dict[str, Strategy],
    preprocessor: HistogramPreprocessor,
    lumisection_predictions: pd.DataFrame | FrameParts,
    metrics: dict[str, Any],
    params: DataScienceParams,
) -> dict[str, FrozenModel]:
    """One frozen model per trained strategy, all with one version (the time of this run).

    A strategy the format cannot hold (an estimator without a codec) is logged and skipped: it
    stays usable in the training run only. Every detector of the project has a codec.
    """
    lumisection_predictions = as_frame(lumisection_predictions)
    out: dict[str, FrozenModel] = {}
    version = None
    settings = params.model_dump(by_alias=True)
    for name, strategy in strategy_models.items():
        model = freeze(name, strategy, preprocessor, lumisection_predictions, settings, metrics,
                       version)  # fmt: skip
        version = model.version
        try:
            check_encodable(model)
        except ModelFormatError as exc:
            log.warning("strategy %s is not exported (training-only): %s", name, exc)
            continue
        out[name] = model
    log.info("frozen models, version %s: %s", version, sorted(out))
    return out
