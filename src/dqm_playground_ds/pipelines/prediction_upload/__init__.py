"""Prediction upload: per-LS predictions to the playground platform (or, in a dry run, to disk)."""

from dqm_playground_ds.pipelines.prediction_upload.pipeline import create_pipeline

__all__ = ["create_pipeline"]
