"""``me_features``: the preprocessed features of every variant as a folder of memory-mapped arrays."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path

from dqm_playground_ds.processing.feature_store import (
    META,
    FeatureStoreError,
    read_features,
    write_features,
)


class FeatureStoreDataset(AbstractDataset[dict, dict]):
    """Saves ``{variant: FeatureSet}`` one ME at a time; loads them without reading the counts.

    Memory maps need a file the kernel can page in. A local path (a shared volume mounted in
    every pod) is mapped where it is. A remote fsspec URL (an object store between Argo pods) is
    written locally then uploaded, ``_meta.json`` last and removed first, so a reader never
    trusts half a store; loading downloads it once into ``cache_dir`` (default: the system's
    temporary folder) and maps that copy.
    """

    def __init__(
        self,
        *,
        path: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, location = get_protocol_and_path(path)
        self._url = path
        self._local = protocol in ("file", "")
        self._fs: Any = None
        if not self._local:  # fsspec's own split: kedro's drops the host of some protocols
            self._fs, location = fsspec.core.url_to_fs(
                path, **(credentials or {}), **(fs_args or {})
            )
        self._location = location
        self._cache_dir = (
            Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "dqm-feature-store"
        )
        self.metadata = metadata

    def _remote(self, name: str = "") -> str:
        return f"{self._location.rstrip('/')}/{name}" if name else self._location.rstrip("/")

    def load(self) -> dict:
        try:
            if self._local:
                return read_features(self._location)
            return read_features(self._download())
        except FeatureStoreError as exc:
            raise DatasetError(str(exc)) from exc

    def save(self, data: dict) -> None:
        if not isinstance(data, dict) or not data:
            raise DatasetError(
                f"{self._url}: expected {{variant: FeatureSet}}, got {type(data).__name__}"
            )
        try:
            if self._local:
                write_features(self._location, data)
            else:
                self._upload(data)
        except FeatureStoreError as exc:
            raise DatasetError(str(exc)) from exc

    def _upload(self, data: dict) -> None:
        fs = self._fs
        staging = Path(tempfile.mkdtemp(prefix="dqm-features-"))
        try:
            write_features(staging / "store", data)
            if fs.exists(self._remote(META)):
                fs.rm(self._remote(META))  # from now on the old store is not trusted
            if fs.exists(self._remote()):
                fs.rm(self._remote(), recursive=True)
            for file in sorted((staging / "store").rglob("*")):
                rel = file.relative_to(staging / "store").as_posix()
                if file.is_file() and rel != META:
                    fs.put_file(str(file), self._remote(rel))
            fs.put_file(str(staging / "store" / META), self._remote(META))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _download(self) -> Path:
        fs = self._fs
        if not fs.exists(self._remote(META)):
            raise FeatureStoreError(
                f"{self._url}: not a feature store ({META} missing); run data_processing to build it"
            )
        meta = fs.cat_file(self._remote(META))
        local = self._cache_dir / hashlib.sha256(self._url.encode() + meta).hexdigest()[:16]
        if (local / META).is_file():
            return local  # this very store was downloaded before
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self._cache_dir))
        base = fs._strip_protocol(self._remote()).rstrip("/")
        try:
            for remote in fs.find(base):
                rel = fs._strip_protocol(remote)[len(base) :].lstrip("/")
                if rel != META:
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    fs.get_file(remote, str(tmp / rel))
            (tmp / META).write_bytes(meta)
            if (local / META).is_file():  # another process of this pod was quicker
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(local, ignore_errors=True)
                tmp.rename(local)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return local

    def _exists(self) -> bool:
        if self._local:
            return (Path(self._location) / META).is_file()
        return bool(self._fs.exists(self._remote(META)))

    def _describe(self) -> dict[str, Any]:
        return {"path": self._url, "cache_dir": None if self._local else str(self._cache_dir)}
