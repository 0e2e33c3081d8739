"""Freeze every trained strategy into the stable model format (``06_models/frozen``)."""

from dqm_playground_ds.pipelines.model_export.pipeline import create_pipeline

__all__ = ["create_pipeline"]
