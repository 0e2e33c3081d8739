"""Apply a frozen model to new runs: incremental, with the training run's decisions."""

from dqm_playground_ds.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
