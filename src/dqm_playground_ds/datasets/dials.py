"""A Kedro dataset handing the extraction pipeline DIALS as its histogram source (``kind: dials``).

The client is built from ``base_url`` (default ``$DIALS_URL``, else the local DIALS server on
``http://127.0.0.1:8001/api/v1/``), ``workspace``, the token (Kedro credentials ``{token: ...}``, else
``$DIALS_TOKEN``; never logged, ``_describe()`` shows ``***``) and ``client_args`` (``timeout``,
``retries``, ``max_workers``, ``page_size``, ``deadline``...) by :mod:`dqm_playground_ds.sources.platforms`,
the same set-up as ``HistogramSourceDataset(kind="dials")``.
"""

from __future__ import annotations

from kedro.io import DatasetError

from dqm_playground_ds.datasets.histogram_sources import PlatformSourceDataset
from dqm_playground_ds.platform.dials import DIALS_TOKEN_ENV
from dqm_playground_ds.sources.platforms import DIALS_WORKSPACE


class DialsSourceDataset(PlatformSourceDataset):
    """Per-LS histograms of one ``dataset`` on DIALS: ``runs`` or ``run_range``, ``ls_range``,
    ``mes`` (exact names) and/or ``me_regex``, ``dims``; ``runs_per_item`` splits the runs into
    items; ``cache_dir`` keeps every page so an interrupted download resumes; ``on_bad_record``;
    ``partitions`` (deprecated) the extraction's partition store: declare a
    ``HistogramStoreDataset`` instead."""

    KIND = "dials"
    TOKEN_ENV = DIALS_TOKEN_ENV
    DEFAULTS = {"workspace": DIALS_WORKSPACE}

    def save(self, data: None) -> None:
        raise DatasetError("DIALS is read-only for clients")
