"""Extraction: histogram sources (DQMIO files, legacy CSV, platform API) to the histogram table."""

from dqm_playground_ds.pipelines.data_extraction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
