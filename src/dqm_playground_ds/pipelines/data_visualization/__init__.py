"""Visualization: HEP-style plots of scores, histograms and performance, and the HTML report."""

from dqm_playground_ds.pipelines.data_visualization.pipeline import create_pipeline

__all__ = ["create_pipeline"]
