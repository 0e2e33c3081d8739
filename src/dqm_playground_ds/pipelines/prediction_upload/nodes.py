"""Upload nodes: turn the predictions table into the platform payload; the dataset sends it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

import pandas as pd

from dqm_playground_ds.platform.upload import build_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadParams:
    """``params:prediction_upload``: what to send, to which task, and whether to send at all."""

    dry_run: bool = True
    task: int | str | None = None
    strategies: list[str] | None = None
    splits: list[str] | None = None
    only_anomalous: bool = False
    max_top_mes: int | None = 5
    batch_size: int = 500

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> UploadParams:
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ValueError(
                f"prediction_upload: unknown parameter(s) {sorted(unknown)}; known {sorted(known)}"
            )
        out = cls(**params)
        if not isinstance(out.dry_run, bool):
            raise ValueError(
                f"prediction_upload.dry_run must be true or false, got {out.dry_run!r}"
            )
        if not out.dry_run and out.task is None:
            raise ValueError(
                "prediction_upload.task is not set: the platform ties every prediction to a task "
                "(a task id or name); set it, or keep dry_run: true"
            )
        return out


def build_prediction_payload(
    lumisection_predictions: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Any]:
    """The upload document (``docs/prediction-payload.md``) for the selected predictions.

    The ``dry_run`` flag travels in the document, so the upload dataset writes the local copy in
    every case and sends it only when asked.
    """
    p = UploadParams.from_dict(dict(params))
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
