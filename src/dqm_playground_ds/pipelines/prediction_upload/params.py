"""``params:prediction_upload``: what to send, to which task, and whether to send at all."""

from __future__ import annotations

from typing import Self

from pydantic import Field, StrictBool, model_validator

from dqm_playground_ds.pipelines.params import Params


class UploadParams(Params):
    dry_run: StrictBool = True
    task: int | str | None = None  # platform task id or unique name (needed to send)
    strategies: list[str] | None = None  # null = every strategy in the table
    splits: list[str] | None = None  # e.g. [apply]; null = every row
    only_anomalous: StrictBool = False
    max_top_mes: int | None = Field(5, ge=0)  # MEs that drove each verdict, most important first
    batch_size: int = Field(500, ge=1)  # predictions per POST; batches are the unit of resume

    @model_validator(mode="after")
    def _task_to_send(self) -> Self:
        if not self.dry_run and self.task is None:
            raise ValueError(
                "prediction_upload.task is not set: the platform ties every prediction to a task "
                "(a task id or name); set it, or keep dry_run: true"
            )
        return self
