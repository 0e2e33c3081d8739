"""Project hooks: tell the user where the HTML report is once ``kedro run`` has written it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

log = logging.getLogger(__name__)

REPORT_DATASET = "report_html"


def _filepath(dataset: Any) -> str | None:
    """The file behind a (possibly wrapped) file dataset, from its public description."""
    try:
        described = dataset._describe()
    except Exception:  # a dataset that cannot describe itself is not worth failing a run for
        return None
    while isinstance(described, dict) and "filepath" not in described and "dataset" in described:
        described = described["dataset"]
    value = described.get("filepath") if isinstance(described, dict) else None
    return str(value) if value else None


class ReportPathHook:
    """Print the report's path at the end of a run that produced it."""

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if REPORT_DATASET not in pipeline.all_outputs():
            return
        try:
            dataset = catalog.get(REPORT_DATASET)
        except Exception:  # no such entry: nothing to point at
            return
        path = _filepath(dataset) if dataset is not None else None
        if path is None:
            return
        resolved = Path(path).resolve()
        if not resolved.exists():
            return
        message = f"DQM report: {resolved} (file://{resolved})"
        log.info(message)
        print(message, flush=True)  # the one line a user looks for after a run
