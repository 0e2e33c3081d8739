"""Upload nodes: turn the predictions table into the platform payload; the dataset sends it."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from dqm_playground_ds.frame_parts import FrameParts, as_frame
from dqm_playground_ds.pipelines.prediction_upload.params import UploadParams
from dqm_playground_ds.platform.upload import build_payload

log = logging.getLogger(__name__)


def build_prediction_payload(
    lumisection_predictions: pd.DataFrame | FrameParts, params: UploadParams
) -> dict[str, Any]:
    """The upload document (``docs/prediction-payload.md``) for the selected predictions.

    The ``dry_run`` flag travels in the document, so the upload dataset writes the local copy in
    every case and sends it only when asked.
    """
    lumisection_predictions = as_frame(lumisection_predictions)
    p = params
    payload = build_payload(
        lumisection_predictions,
        task=p.task,
        dry_run=p.dry_run,
        batch_size=p.batch_size,
        strategies=p.strategies,
        splits=p.splits,
        only_anomalous=p.only_anomalous,
        max_top_mes=p.max_top_mes,
    )
    n_bad = sum(item["is_anomalous"] for item in payload["predictions"])
    log.info(
        "prediction payload: %d predictions (%d anomalous) of strategies %s for task %r%s",
        payload["n_predictions"],
        n_bad,
        payload["strategies"],
        p.task,
        " (dry run: nothing will be sent)" if p.dry_run else "",
    )
    if not payload["predictions"]:
        log.warning("prediction payload is empty: no row of lumisection_predictions was selected")
    return payload
