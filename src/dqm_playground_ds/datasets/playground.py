"""Kedro datasets for the ML4DQM playground platform: histogram source, task split, prediction upload.

All three build a :class:`~dqm_playground_ds.platform.PlaygroundClient` from:

- ``base_url``: the server (default ``$DQM_PLAYGROUND_URL``, else ``http://127.0.0.1:8000``, the
  local platform server);
- the token: Kedro credentials ``{token: ...}`` if given, else the environment variable
  ``token_env`` (``DQM_PLAYGROUND_TOKEN``). It is never logged and ``_describe()`` shows ``***``;
- ``client_args``: ``timeout``, ``retries``, ``backoff``, ``max_workers``, ``progress``, ...
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from dqm_playground_ds.atomic import atomic_write
from dqm_playground_ds.datasets.histogram_sources import PlatformSourceDataset
from dqm_playground_ds.platform import (
    TOKEN_ENV,
    CapabilityError,
    PayloadError,
    PlaygroundClient,
    PlaygroundError,
    TaskError,
    task_to_split,
)
from dqm_playground_ds.platform.upload import validate_payload
from dqm_playground_ds.sources.platforms import credentials_token, playground_client, server_url

log = logging.getLogger(__name__)


class _PlaygroundDataset:
    """Shared configuration: where the platform is and how to authenticate."""

    def _configure(
        self,
        base_url: str | None,
        credentials: dict[str, Any] | None,
        token_env: str,
        client_args: dict[str, Any] | None,
    ) -> None:
        self._base_url = server_url("playground_api", base_url)
        self._credentials = credentials
        self._token = credentials_token(credentials)
        self._token_env = token_env
        self._client_args = dict(client_args or {})

    def _client(self) -> PlaygroundClient:
        try:
            return playground_client(
                self._base_url, self._credentials, self._token_env, self._client_args
            )
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"playground client for {self._base_url}: {exc}") from exc

    def _token_source(self) -> str | None:
        if self._token:
            return "credentials"
        return f"${self._token_env}" if os.environ.get(self._token_env) else None

    def _common(self) -> dict[str, Any]:
        return {
            "base_url": self._base_url,
            "token": "***" if self._token_source() else None,
            "client_args": self._client_args or None,
        }


class PlaygroundSourceDataset(PlatformSourceDataset):
    """Histograms from the platform for the extraction pipeline (a lazy ``HistogramSource``): the
    same set-up as ``HistogramSourceDataset(kind="playground_api")``.

    Selection: ``titles`` (ME titles; ``null`` = all), ``dims`` ([1, 2]), ``runs`` (a list) or
    ``run_range`` ([first, last]), ``ls_range``, ``data_file`` (path substring) or
    ``source_data_file`` (id); ``runs_per_item`` splits the runs into several queries;
    ``on_bad_record`` (raise | skip). ``cache_dir`` keeps every fetched page so an interrupted
    download resumes; ``partitions`` (deprecated) the extraction's partition store: declare a
    ``HistogramStoreDataset`` instead.
    """

    KIND = "playground_api"
    TOKEN_ENV = TOKEN_ENV

    def save(self, data: None) -> None:
        raise DatasetError("the playground histogram source is read-only")


class PlaygroundTaskDataset(_PlaygroundDataset, AbstractDataset[None, dict[str, Any]]):
    """A platform task (id or unique name) loaded as a train/apply split mapping.

    The mapping is ``RunSplit.from_mapping``'s form, the same as a local split YAML file, so the
    processing pipeline cannot tell where the split came from.
    """

    def __init__(
        self,
        *,
        task: int | str,
        base_url: str | None = None,
        credentials: dict[str, Any] | None = None,
        token_env: str = TOKEN_ENV,
        client_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._configure(base_url, credentials, token_env, client_args)
        self._task = task
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        with self._client() as client:
            try:
                return task_to_split(client.task(self._task))
            except (PlaygroundError, TaskError) as exc:
                raise DatasetError(f"task {self._task!r} from {self._base_url}: {exc}") from exc

    def save(self, data: None) -> None:
        raise DatasetError("platform tasks are defined on the platform; this dataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {**self._common(), "task": self._task}


class PlaygroundUploadDataset(_PlaygroundDataset, AbstractDataset[dict[str, Any], dict[str, Any]]):
    """Saving a prediction payload keeps a local copy, then sends it unless it is a dry run.

    Under ``path`` (a local folder): ``payload-<hash>.json`` (every payload, by content),
    ``uploads.jsonl`` (one line per save: time, payload file, dry run or target, outcome, counts)
    and ``journal.jsonl`` (batches each server acknowledged; a re-run skips them). Loading returns
    the payload of the last save.
    """

    def __init__(
        self,
        *,
        path: str = "data/08_reporting/uploads",
        base_url: str | None = None,
        credentials: dict[str, Any] | None = None,
        token_env: str = TOKEN_ENV,
        client_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._configure(base_url, credentials, token_env, client_args)
        self._path = Path(path)
        self.metadata = metadata

    @property
    def _log_path(self) -> Path:
        return self._path / "uploads.jsonl"

    def _append_log(self, entry: dict[str, Any]) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def save(self, data: dict[str, Any]) -> None:
        try:
            validate_payload(data)
        except PayloadError as exc:
            raise DatasetError(f"prediction upload: {exc}") from exc
        text = json.dumps(data, indent=1, sort_keys=True)
        name = f"payload-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
        atomic_write(self._path / name, lambda tmp: Path(tmp).write_text(text))
        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "payload": name,
            "n_predictions": len(data["predictions"]),
            "dry_run": bool(data.get("dry_run", True)),
        }
        if entry["dry_run"]:
            self._append_log({**entry, "outcome": "dry-run"})
            log.info("dry run: %d predictions written to %s, nothing sent",
                     entry["n_predictions"], self._path / name)  # fmt: skip
            return
        if not self._token_source():
            self._append_log({**entry, "outcome": "failed", "error": "no token"})
            raise DatasetError(
                f"prediction upload to {self._base_url}: no token; export {self._token_env}=... "
                f"(the payload is kept in {self._path / name})"
            )
        entry["target"] = self._base_url
        try:
            with self._client() as client:
                report = client.upload_predictions(data, journal=self._path / "journal.jsonl")
        except CapabilityError as exc:
            self._append_log({**entry, "outcome": "refused", "error": str(exc)})
            raise DatasetError(
                f"prediction upload to {self._base_url} refused before anything was written: "
                f"{exc}. The payload is kept in {self._path / name}: send it to a server that "
                "offers the extension, or set prediction_upload.dry_run: true"
            ) from exc
        except (PlaygroundError, PayloadError) as exc:
            self._append_log({**entry, "outcome": "failed", "error": str(exc)})
            raise DatasetError(
                f"prediction upload to {self._base_url} failed: {exc}. The payload is kept in "
                f"{self._path / name}; running again resumes after the acknowledged batches"
            ) from exc
        self._append_log({**entry, "outcome": "sent", **report.as_dict()})
        log.info(
            "uploaded %d predictions to %s: %d created, %d updated, %d unchanged; %d of %d "
            "batch(es) already acknowledged",
            report.n_predictions, self._base_url, report.created, report.updated,
            report.unchanged, report.skipped, report.n_batches,
        )  # fmt: skip

    def load(self) -> dict[str, Any]:
        try:
            last = json.loads(self._log_path.read_text().splitlines()[-1])
            return json.loads((self._path / last["payload"]).read_text())
        except (OSError, IndexError, KeyError, ValueError) as exc:
            raise DatasetError(f"no prediction upload recorded under {self._path}") from exc

    def _exists(self) -> bool:
        return self._log_path.exists()

    def _describe(self) -> dict[str, Any]:
        return {**self._common(), "path": str(self._path)}
