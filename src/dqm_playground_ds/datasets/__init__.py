"""Kedro datasets of the project: all I/O of the pipelines happens here."""

from dqm_playground_ds.datasets.feature_store import FeatureStoreDataset
from dqm_playground_ds.datasets.figures import FigureDataset
from dqm_playground_ds.datasets.histogram_sources import HistogramSourceDataset
from dqm_playground_ds.datasets.histogram_store import HistogramStoreDataset
from dqm_playground_ds.datasets.parquet_table import ParquetTableDataset

__all__ = [
    "FeatureStoreDataset",
    "FigureDataset",
    "HistogramSourceDataset",
    "HistogramStoreDataset",
    "ParquetTableDataset",
]
