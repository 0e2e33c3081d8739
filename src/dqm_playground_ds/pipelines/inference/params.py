"""``params:inference``: which frozen model to apply, and whether its training runs are skipped."""

from __future__ import annotations

from pydantic import Field

from dqm_playground_ds.pipelines.params import Params


class InferenceParams(Params):
    # name (latest version) | name@version | a model folder path or URI (s3://..., https://...)
    model: str = Field("two_level", min_length=1)
    skip_training_runs: bool = True  # the model's own training runs are not re-scored
