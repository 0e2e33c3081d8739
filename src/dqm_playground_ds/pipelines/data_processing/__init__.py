"""Processing: certification labels, run split, quality cuts and per-ME feature matrices."""

from dqm_playground_ds.pipelines.data_processing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
