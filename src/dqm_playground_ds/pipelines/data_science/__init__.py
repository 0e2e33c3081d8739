"""Detection: per-ME detectors, one score per LS, thresholds, predictions and evaluation."""

from dqm_playground_ds.pipelines.data_science.pipeline import create_pipeline

__all__ = ["create_pipeline"]
