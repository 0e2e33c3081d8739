"""A Kedro dataset handing the extraction pipeline DIALS as its histogram source (``kind: dials``).

The client is built from ``base_url`` (default ``$DIALS_URL``, else the local DIALS server on
``http://127.0.0.1:8001/api/v1/``), ``workspace``, the token (Kedro credentials ``{token: ...}``, else
``$DIALS_TOKEN``; never logged, ``_describe()`` shows ``***``) and ``client_args`` (``timeout``,
``retries``, ``max_workers``, ``page_size``, ``deadline``...).
"""

from __future__ import annotations

import os
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from dqm_playground_ds.datasets.histogram_store import warn_partitions_key
from dqm_playground_ds.platform.dials import DIALS_TOKEN_ENV, DialsClient, DialsSource

URL_ENV = "DIALS_URL"
LOCAL_URL = "http://127.0.0.1:8001/api/v1/"


class DialsSourceDataset(AbstractDataset[None, DialsSource]):
    """Per-LS histograms of one ``dataset`` on DIALS: ``runs`` or ``run_range``, ``ls_range``,
    ``mes`` (exact names) and/or ``me_regex``, ``dims``; ``runs_per_item`` splits the runs into
    items; ``cache_dir`` keeps every page so an interrupted download resumes; ``partitions``
    (deprecated) the extraction's partition store: declare a ``HistogramStoreDataset`` instead."""

    def __init__(
        self,
        *,
        dataset: str,
        kind: str = "dials",
        base_url: str | None = None,
        workspace: str | None = "tracker",
        credentials: dict[str, Any] | None = None,
        token_env: str = DIALS_TOKEN_ENV,
        dims: list[int] | None = None,
        runs: list[int] | None = None,
        run_range: list[int | None] | None = None,
        ls_range: list[int | None] | None = None,
        mes: list[str] | None = None,
        me_regex: str | None = None,
        runs_per_item: int | None = None,
        cache_dir: str | None = None,
        partitions: str | None = None,
        on_bad_record: str = "raise",
        client_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if kind != "dials":
            raise DatasetError(f"DialsSourceDataset serves kind 'dials', got {kind!r}")
        self._base_url = base_url or os.environ.get(URL_ENV) or LOCAL_URL
        self._workspace = workspace
        self._token = (credentials or {}).get("token") or None
        self._token_env = token_env
        self._client_args = dict(client_args or {})
        self.metadata = metadata
        self._args: dict[str, Any] = {
            "dataset": dataset,
            "dims": tuple(dims or (1, 2)),
            "runs": runs,
            "run_range": tuple(run_range) if run_range is not None else None,
            "ls_range": tuple(ls_range) if ls_range is not None else None,
            "mes": mes,
            "me_regex": me_regex,
            "runs_per_item": runs_per_item,
            "cache_dir": cache_dir,
            "on_bad_record": on_bad_record,
            "partitions_dir": partitions,
        }
        warn_partitions_key(partitions, "DIALS source")
        self._source()  # a bad selection fails at catalog creation

    def _source(self) -> DialsSource:
        try:
            client = DialsClient(
                self._base_url,
                self._token,
                workspace=self._workspace,
                token_env=self._token_env,
                **self._client_args,
            )
            return DialsSource(client, **self._args)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"DIALS source at {self._base_url}: {exc}") from exc

    def load(self) -> DialsSource:
        return self._source()

    def save(self, data: None) -> None:
        raise DatasetError("DIALS is read-only for clients")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        token = self._token or os.environ.get(self._token_env)
        return {
            "kind": "dials",
            "base_url": self._base_url,
            "workspace": self._workspace,
            "token": "***" if token else None,
            **{k: v for k, v in self._args.items() if v is not None},
        }
