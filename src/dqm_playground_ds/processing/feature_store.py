"""The preprocessed features on disk, one ``.npy`` file per ME, read back as memory maps.

A pickle of every variant's feature matrices is loaded whole (300k LS x 12 MEs: 5 GB), and each
pod of an ME-group fan-out would load all of it for its few MEs. Here each array is written on its
own, one ME at a time (a :class:`~dqm_playground_ds.processing.preprocessing.TableCounts` computes
it from the histogram table just then), and loading opens nothing: an ME's counts are mapped when
a step asks for them and unmapped when it drops them, so memory follows the ME in use.

Layout of a store folder (``_meta.json`` is written last; the folder appears by one rename, so a
reader never sees half a store)::

    _meta.json                    format, variants, ME -> (dim, shape, normalisation, counts file)
    <variant>/keys.parquet        the LS of the rows
    <variant>/quality.npy         int8 (n_ls, n_me)
    <variant>/integral.npy        float64 (n_ls, n_me)
    counts/<k>.npy                float32 (n_ls, n_bins); variants that preprocess an ME alike
                                  share one file
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.atomic import TMP_PREFIX, _prefix, current_umask, is_stale
from dqm_playground_ds.processing.preprocessing import FeatureSet, MEFeatures

FORMAT = "dqm-feature-store/1"
META = "_meta.json"


class FeatureStoreError(ValueError):
    """A feature store folder is missing, incomplete or of another format; the message names it."""


class NpyCounts:
    """Counts in a ``.npy`` file, memory-mapped read-only on each access. Pickles as its path, so
    a worker process maps the file itself instead of receiving the array."""

    portable = True

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int]) -> None:
        self.path = str(path)
        self.shape = shape

    def __repr__(self) -> str:
        return f"NpyCounts({self.path!r}, shape={self.shape})"

    def load(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise FeatureStoreError(f"{self.path}: cannot map the counts: {exc}") from exc


def _variant_dir(variant: str) -> str:
    if not variant or "/" in variant or variant in (".", "..", "counts") or variant.startswith("_"):
        raise FeatureStoreError(f"variant name {variant!r} cannot name a folder of the store")
    return variant


def write_features(path: str | os.PathLike[str], features: Mapping[str, FeatureSet]) -> None:
    """Write every variant to the folder ``path``, replacing it whole only once all is written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for old in target.parent.glob(f"{TMP_PREFIX}*"):
        if old.is_dir() and is_stale(old):  # left by a killed writer
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(), dir=target.parent))
    try:
        meta = _write_into(tmp, features)
        (tmp / META).write_text(json.dumps(meta, indent=1))
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide it from the group
        aside = None
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=_prefix(), dir=target.parent))
            os.rename(target, aside / "old")
        os.rename(tmp, target)
        if aside is not None:  # open memory maps of the old store stay valid until unmapped
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_into(folder: Path, features: Mapping[str, FeatureSet]) -> dict[str, Any]:
    (folder / "counts").mkdir()
    files: dict[int, str] = {}  # id of a shared source -> its file
    variants: dict[str, Any] = {}
    for variant, fs in features.items():
        sub = folder / _variant_dir(str(variant))
        sub.mkdir()
        fs.keys.to_parquet(sub / "keys.parquet", index=False)
        np.save(sub / "quality.npy", np.ascontiguousarray(fs.quality, dtype=np.int8))
        np.save(sub / "integral.npy", np.ascontiguousarray(fs.integral, dtype=np.float64))
        mes = {}
        for me, f in fs.mes.items():
            key = id(f.source)
            if key not in files:
                files[key] = f"counts/{len(files)}.npy"
                counts = f.source if isinstance(f.source, np.ndarray) else _computed(f)
                if counts.shape[0] != len(fs):
                    raise FeatureStoreError(
                        f"variant {variant!r}, ME {me}: {counts.shape[0]} rows of counts for "
                        f"{len(fs)} LS"
                    )
                np.save(folder / files[key], np.ascontiguousarray(counts, dtype=np.float32))
                del counts
            mes[me] = {
                "dim": int(f.dim),
                "shape": [int(x) for x in f.shape],
                "normalisation": f.normalisation,
                "counts": files[key],
            }
        variants[str(variant)] = {"n_ls": len(fs), "mes": mes}
    return {"format": FORMAT, "variants": variants}


def _computed(f: MEFeatures) -> np.ndarray:
    source = f.source
    return source.compute() if hasattr(source, "compute") else f.counts


def read_features(path: str | os.PathLike[str]) -> dict[str, FeatureSet]:
    """The variants of a store; counts stay on disk (:class:`NpyCounts`)."""
    folder = Path(path)
    meta_path = folder / META
    if not meta_path.is_file():
        raise FeatureStoreError(
            f"{folder}: not a feature store ({META} missing: never written, or not by this "
            "project); run data_processing to build it"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as exc:
        raise FeatureStoreError(f"{meta_path}: unreadable: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise FeatureStoreError(
            f"{meta_path}: format {meta.get('format')!r}, this version reads {FORMAT!r}"
        )
    out = {}
    for variant, spec in meta["variants"].items():
        sub = folder / _variant_dir(variant)
        try:
            keys = pd.read_parquet(sub / "keys.parquet")
            quality = np.load(sub / "quality.npy")
            integral = np.load(sub / "integral.npy")
        except (OSError, ValueError) as exc:
            raise FeatureStoreError(f"{sub}: {exc}") from exc
        n = int(spec["n_ls"])
        if len(keys) != n or quality.shape[0] != n or integral.shape[0] != n:
            raise FeatureStoreError(f"{sub}: {n} LS in {META}, files disagree")
        mes = {}
        for me, m in spec["mes"].items():
            counts = folder / m["counts"]
            if not counts.is_file():
                raise FeatureStoreError(f"{counts}: counts of {me} ({variant}) missing")
            bins = int(np.prod(m["shape"]))
            mes[me] = MEFeatures(
                me,
                int(m["dim"]),
                tuple(m["shape"]),
                m["normalisation"],
                NpyCounts(counts, (n, bins)),
            )
        out[variant] = FeatureSet(keys, mes, quality, integral)
    return out
