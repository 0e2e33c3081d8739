"""A dataset that hands the extraction pipeline a histogram source of any registered kind.

Loading returns a lazy :class:`~dqm_playground_ds.sources.HistogramSource`: nothing is read until the
extraction node asks for an item, so a broken file can be recorded and skipped, like Kedro's
``PartitionedDataset`` hands nodes lazy loaders. The kinds are those of
:func:`dqm_playground_ds.sources.source_kinds` (``dqmio``, ``legacy_csv``, ``dqmiotools``,
``playground_api``, ``dials``, and any a project registers).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from kedro.io import AbstractDataset, DatasetError

from dqm_playground_ds.datasets.histogram_store import warn_partitions_key
from dqm_playground_ds.sources import HistogramSource, make_source
from dqm_playground_ds.sources.platforms import credentials_token, server_url


class HistogramSourceDataset(AbstractDataset[None, HistogramSource]):
    """``kind`` plus that kind's configuration (``path`` + ``pattern`` for files, server and
    selection for the platforms; ``credentials`` from Kedro's credentials).

    ``partitions`` (deprecated): the extraction's partition store; declare it as its own catalog
    entry, a :class:`~dqm_playground_ds.datasets.HistogramStoreDataset`, instead.
    """

    def __init__(
        self,
        *,
        kind: str = "dqmio",
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        self._kind = kind
        self._config = config
        self.metadata = metadata
        self._has_credentials = credentials is not None
        if "partitions" in config:  # the catalog's name for the sources' ``partitions_dir``
            warn_partitions_key(config["partitions"], f"histogram source {kind!r}")
            config = {**config, "partitions_dir": config["partitions"]}
            del config["partitions"]
        if credentials is not None:
            config = {**config, "credentials": credentials}
        where = config.get("path") or config.get("base_url") or config.get("dataset") or "?"
        try:
            self._source = make_source(kind, **config)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"histogram source {kind!r} at {where!r}: {exc}") from exc

    def load(self) -> HistogramSource:
        return self._source

    def save(self, data: None) -> None:
        raise DatasetError("a histogram source is read-only")

    def _exists(self) -> bool:
        return bool(self._source.items())

    def _describe(self) -> dict[str, Any]:
        shown = {"kind": self._kind, **self._config}
        if self._has_credentials:
            shown["credentials"] = "***"
        return shown


class PlatformSourceDataset(HistogramSourceDataset):
    """A :class:`HistogramSourceDataset` whose ``kind`` is one web platform's (fixed by a subclass).

    The server is resolved once (``base_url``, else the kind's environment variable, else its
    local server) and shown with the token as ``***`` (from credentials or ``token_env``); saying
    it exists costs no request: a missing server fails at load time.
    """

    KIND: ClassVar[str]
    TOKEN_ENV: ClassVar[str]
    DEFAULTS: ClassVar[dict[str, Any]] = {}  # shown in the description when not configured

    def __init__(
        self,
        *,
        kind: str | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        if kind not in (None, self.KIND):
            raise DatasetError(f"{type(self).__name__} serves kind {self.KIND!r}, got {kind!r}")
        self._token_given = credentials_token(credentials) is not None
        base_url = server_url(self.KIND, config.get("base_url"))
        config = {**self.DEFAULTS, **config, "base_url": base_url}
        super().__init__(kind=self.KIND, credentials=credentials, metadata=metadata, **config)

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        token_env = self._config.get("token_env") or self.TOKEN_ENV
        token = self._token_given or bool(os.environ.get(token_env))
        shown = {k: v for k, v in super()._describe().items() if v is not None}
        shown.pop("credentials", None)  # shown as the token
        return {**shown, "token": "***" if token else None}
