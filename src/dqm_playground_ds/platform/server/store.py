"""SQLite storage of the local platform: the playground's models, loaded from histogram tables.

One connection, guarded by a lock (the server's event loop and a test thread may both use it).
Bin contents are stored as little-endian float64 blobs in the schema's order and turned back into
the platform's JSON (2D as y rows of x values) when served.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.platform.endpoints import CERT_FLAGS
from dqm_playground_ds.schema import validate_histograms

log = logging.getLogger(__name__)

_FLAG_COLUMNS = ", ".join(f"{f} INTEGER" for f in CERT_FLAGS)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_number INTEGER PRIMARY KEY, date TEXT, run_date TEXT, year INTEGER, period TEXT,
    oms_fill INTEGER, oms_lumisections INTEGER, oms_initial_lumi REAL, oms_end_lumi REAL);
CREATE TABLE IF NOT EXISTS lumisections (
    id INTEGER PRIMARY KEY, run INTEGER NOT NULL, ls_number INTEGER NOT NULL, date TEXT,
    oms_zerobias_rate REAL, UNIQUE (run, ls_number));
CREATE TABLE IF NOT EXISTS histogram_data_files (
    id INTEGER PRIMARY KEY, filepath TEXT UNIQUE NOT NULL, filesize REAL, data_era TEXT,
    entries_total INTEGER, entries_processed INTEGER, granularity TEXT, dims TEXT,
    created TEXT, modified TEXT);
CREATE TABLE IF NOT EXISTS lumisection_histograms_1d (
    id INTEGER PRIMARY KEY, run INTEGER, lumisection INTEGER, title TEXT, entries REAL,
    x_min REAL, x_max REAL, x_bin INTEGER, data BLOB, source_data_file INTEGER);
CREATE INDEX IF NOT EXISTS h1_title ON lumisection_histograms_1d (title);
CREATE INDEX IF NOT EXISTS h1_run ON lumisection_histograms_1d (run, lumisection);
CREATE TABLE IF NOT EXISTS lumisection_histograms_2d (
    id INTEGER PRIMARY KEY, run INTEGER, lumisection INTEGER, title TEXT, entries REAL,
    x_min REAL, x_max REAL, x_bin INTEGER, y_min REAL, y_max REAL, y_bin INTEGER, data BLOB,
    source_data_file INTEGER);
CREATE INDEX IF NOT EXISTS h2_title ON lumisection_histograms_2d (title);
CREATE INDEX IF NOT EXISTS h2_run ON lumisection_histograms_2d (run, lumisection);
CREATE TABLE IF NOT EXISTS run_histograms (
    id INTEGER PRIMARY KEY, run INTEGER, title TEXT, primary_dataset TEXT, entries REAL,
    mean REAL, rms REAL, skewness REAL, kurtosis REAL, source_data_file INTEGER);
CREATE TABLE IF NOT EXISTS run_certifications (
    id INTEGER PRIMARY KEY, run INTEGER UNIQUE, date TEXT, rr_is_golden_json INTEGER,
    {_FLAG_COLUMNS});
CREATE TABLE IF NOT EXISTS lumisection_certifications (
    id INTEGER PRIMARY KEY, run INTEGER, lumisection INTEGER, date TEXT,
    rr_is_golden_json INTEGER, {_FLAG_COLUMNS}, UNIQUE (run, lumisection));
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, metadata TEXT, created TEXT, modified TEXT);
CREATE TABLE IF NOT EXISTS task_runs (task INTEGER, run INTEGER, role TEXT);
CREATE TABLE IF NOT EXISTS task_lumisections (task INTEGER, run INTEGER, ls_number INTEGER, role TEXT);
CREATE TABLE IF NOT EXISTS strategies (id INTEGER PRIMARY KEY, model TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, task INTEGER NOT NULL, strategy TEXT NOT NULL,
    run INTEGER NOT NULL, lumisection INTEGER NOT NULL, score REAL, threshold REAL,
    is_anomalous INTEGER NOT NULL, top_mes TEXT, label TEXT, split TEXT, batch TEXT,
    created TEXT, modified TEXT);
"""

ERA = re.compile(r"_(20\d\d[A-Z])_")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _moments(values: np.ndarray, lo: float, hi: float) -> tuple[float, ...]:
    """Mean, rms, skewness, kurtosis of a 1D histogram (bin centres weighted by contents)."""
    n = len(values)
    total = float(values.sum())
    if n == 0 or total <= 0:
        return (np.nan, np.nan, np.nan, np.nan)
    centres = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    mean = float((centres * values).sum() / total)
    var = float((((centres - mean) ** 2) * values).sum() / total)
    rms = var**0.5
    if rms == 0:
        return (mean, 0.0, np.nan, np.nan)
    skew = float((((centres - mean) ** 3) * values).sum() / total / rms**3)
    kurt = float((((centres - mean) ** 4) * values).sum() / total / rms**4 - 3)
    return (mean, rms, skew, kurt)


def _none(value: Any) -> Any:
    return None if isinstance(value, float) and np.isnan(value) else value


class Store:
    """The platform's data in one SQLite database (``":memory:"`` or a file)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        with self.lock:
            self.conn.executescript(SCHEMA)
        self._titles: dict[int, set[str]] = {}

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def titles(self, dim: int) -> set[str]:
        """Known titles of an LS-histogram endpoint (the server answers 400 on any other)."""
        if dim not in self._titles:
            table = f"lumisection_histograms_{dim}d"
            self._titles[dim] = {r[0] for r in self.query(f"SELECT DISTINCT title FROM {table}")}
        return self._titles[dim]

    # -- loading ------------------------------------------------------------------------------
    def add_data_file(
        self,
        filepath: str,
        *,
        entries_total: int,
        entries_processed: int = 0,
        dims: Iterable[int] = (),
        granularity: str = "lum",
        filesize: float | None = None,
    ) -> int | None:
        """Register a data file; ``None`` if that path is already known (loading twice is a no-op)."""
        era = ERA.search(os.path.basename(filepath))
        stamp = now()
        with self.lock:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO histogram_data_files (filepath, filesize, data_era, "
                "entries_total, entries_processed, granularity, dims, created, modified) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    filepath,
                    filesize,
                    era.group(1) if era else "",
                    int(entries_total),
                    int(entries_processed),
                    granularity,
                    ",".join(map(str, sorted(set(dims)))),
                    stamp,
                    stamp,
                ),
            )
            return cur.lastrowid if cur.rowcount else None

    def load_histograms(self, table: pd.DataFrame, *, file_id: int | None = None) -> int:
        """Load a histogram table; one data file per distinct ``source`` unless ``file_id`` is given.

        Returns the number of histograms added; sources already loaded are skipped.
        """
        table = validate_histograms(table, name="table loaded into the local platform")
        if table.empty:
            return 0
        added = 0
        groups = [(None, table)] if file_id is not None else table.groupby("source", sort=True)
        for source, part in groups:
            fid = file_id
            if fid is None:
                ls_level = part["lumi"] > 0
                fid = self.add_data_file(
                    str(source) or "<loaded table>",
                    entries_total=len(part),
                    entries_processed=len(part),
                    dims=part["dim"].unique().tolist(),
                    granularity="lum" if ls_level.any() else "run",
                )
                if fid is None:
                    log.info("data file %s is already loaded; skipped", source)
                    continue
            added += self._insert(part, fid)
        self._titles.clear()
        return added

    def _insert(self, part: pd.DataFrame, fid: int) -> int:
        """Insert one file's histograms (and their runs and LS) in one transaction."""
        stamp = now()
        runs = sorted({int(r) for r in part["run"]})
        ls = part[part["lumi"] > 0]
        lumis = sorted({(int(r), int(x)) for r, x in zip(ls["run"], ls["lumi"], strict=True)})
        h1, h2, rh = _histogram_rows(part, fid)
        with self.lock:
            c = self.conn
            c.execute("BEGIN")
            try:
                c.executemany(
                    "INSERT OR IGNORE INTO runs (run_number, date) VALUES (?, ?)",
                    [(r, stamp) for r in runs],
                )
                c.executemany(
                    "INSERT OR IGNORE INTO lumisections (run, ls_number, date) VALUES (?, ?, ?)",
                    [(r, x, stamp) for r, x in lumis],
                )
                c.executemany(
                    "INSERT INTO lumisection_histograms_1d (run, lumisection, title, entries, "
                    "x_min, x_max, x_bin, data, source_data_file) VALUES (?,?,?,?,?,?,?,?,?)",
                    h1,
                )
                c.executemany(
                    "INSERT INTO lumisection_histograms_2d (run, lumisection, title, entries, "
                    "x_min, x_max, x_bin, y_min, y_max, y_bin, data, source_data_file) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    h2,
                )
                c.executemany(
                    "INSERT INTO run_histograms (run, title, primary_dataset, entries, mean, rms, "
                    "skewness, kurtosis, source_data_file) VALUES (?,?,?,?,?,?,?,?,?)",
                    rh,
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return len(h1) + len(h2) + len(rh)

    def load_golden(self, golden: Mapping[str, Sequence[Sequence[int]]]) -> int:
        """Certify every loaded LS from a golden JSON (``{"run": [[first, last], ...]}``)."""
        good = {
            (int(run), ls)
            for run, ranges in golden.items()
            for first, last in ranges
            for ls in range(int(first), int(last) + 1)
        }
        stamp = now()
        lumis = self.query("SELECT run, ls_number FROM lumisections ORDER BY run, ls_number")
        rows = [
            (r["run"], r["ls_number"], stamp, int((r["run"], r["ls_number"]) in good))
            for r in lumis
        ]
        runs = sorted({r[0] for r in rows})
        golden_runs = {int(r) for r in golden}
        with self.lock:
            self.conn.executemany(
                "INSERT OR REPLACE INTO lumisection_certifications (run, lumisection, date, "
                "rr_is_golden_json) VALUES (?, ?, ?, ?)",
                rows,
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO run_certifications (run, date, rr_is_golden_json) "
                "VALUES (?, ?, ?)",
                [(r, stamp, int(r in golden_runs)) for r in runs],
            )
        return len(rows)

    # -- tasks, strategies, predictions ---------------------------------------------------------
    def create_task(self, body: Mapping[str, Any], *, create_runs: bool = False) -> int:
        """Insert a task from an already validated body (runs as numbers, LS as [run, ls])."""
        stamp = now()
        with self.lock:
            c = self.conn
            if create_runs:
                runs = {*body["training_runs"], *body["testing_runs"]}
                runs |= {
                    r for r, _ in (*body["training_lumisections"], *body["testing_lumisections"])
                }
                c.executemany(
                    "INSERT OR IGNORE INTO runs (run_number, date) VALUES (?, ?)",
                    [(int(r), stamp) for r in runs],
                )
            cur = c.execute(
                "INSERT INTO tasks (name, metadata, created, modified) VALUES (?, ?, ?, ?)",
                (body["name"], body.get("metadata") or "", stamp, stamp),
            )
            tid = int(cur.lastrowid or 0)
            for role in ("training", "testing"):
                c.executemany(
                    "INSERT INTO task_runs VALUES (?, ?, ?)",
                    [(tid, int(r), role) for r in body[f"{role}_runs"]],
                )
                c.executemany(
                    "INSERT INTO task_lumisections VALUES (?, ?, ?, ?)",
                    [(tid, int(r), int(x), role) for r, x in body[f"{role}_lumisections"]],
                )
        return tid

    def load_task_file(self, path: str | os.PathLike[str]) -> int:
        """A task from a local split YAML/JSON file (the offline form of a task).

        A task of that name that already exists is kept (restarting on the same ``--db`` does not
        make a second one); its id is returned.
        """
        import yaml

        from dqm_playground_ds.platform.tasks import split_to_task

        with open(path) as f:
            body = split_to_task(yaml.safe_load(f))
        existing = self.scalar("SELECT MIN(id) FROM tasks WHERE name = ?", (body["name"],))
        if existing is not None:
            log.info("task %r already exists (id %d); kept", body["name"], existing)
            return int(existing)
        return self.create_task(body, create_runs=True)

    def upsert_predictions(
        self, task: int, items: Sequence[Mapping[str, Any]], batch: str | None
    ) -> dict[str, int]:
        """Merge predictions on their key (task, strategy, run, LS); count what changed."""
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        stamp = now()
        fields = ("score", "threshold", "is_anomalous", "top_mes", "label", "split")
        with self.lock:
            c = self.conn
            c.execute("BEGIN")
            try:
                for it in items:
                    key = f"{task}/{it['strategy']}/{it['run']}/{it['lumisection']}"
                    values = (
                        it.get("score"),
                        it.get("threshold"),
                        int(bool(it["is_anomalous"])),
                        json.dumps(list(it.get("top_mes") or [])),
                        it.get("label"),
                        it.get("split"),
                    )
                    old = c.execute(
                        f"SELECT {', '.join(fields)} FROM predictions WHERE key = ?", (key,)
                    ).fetchone()
                    if old is None:
                        c.execute(
                            "INSERT INTO predictions (key, task, strategy, run, lumisection, "
                            f"{', '.join(fields)}, batch, created, modified) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                key,
                                task,
                                it["strategy"],
                                int(it["run"]),
                                int(it["lumisection"]),
                                *values,
                                batch,
                                stamp,
                                stamp,
                            ),
                        )
                        counts["created"] += 1
                    elif tuple(old) == values:
                        counts["unchanged"] += 1
                    else:
                        c.execute(
                            f"UPDATE predictions SET {', '.join(f + ' = ?' for f in fields)}, "
                            "batch = ?, modified = ? WHERE key = ?",
                            (*values, batch, stamp, key),
                        )
                        counts["updated"] += 1
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return counts


def read_histogram_file(path: str, me: Sequence[str] | None = None) -> pd.DataFrame:
    """A histogram table from a Parquet table, a legacy ML4DQM CSV or a DQMIO file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        table = pd.read_parquet(path)
        if me is not None:
            from dqm_playground_ds.readers.dqmio.selection import match_names

            mask, _ = match_names(table["me"].astype(str).tolist(), list(me))
            table = table[mask]
        return table
    if suffix == ".csv":
        from dqm_playground_ds.readers.legacy_csv import read_legacy_csv

        return read_legacy_csv(path, me=me, include_run_level=True)
    if suffix == ".root":
        from dqm_playground_ds.readers.dqmio import read_dqmio

        return read_dqmio(path, me, include_run_level=True, missing="ignore")
    raise ValueError(
        f"{path}: cannot load {suffix or 'a file without suffix'} (parquet, csv, root)"
    )


def expand_paths(patterns: Iterable[str]) -> list[str]:
    out = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
        if not found:
            raise FileNotFoundError(f"{pattern}: no such file")
        out.extend(found)
    return out


def _histogram_rows(
    part: pd.DataFrame, fid: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The 1D, 2D and run-level rows to insert (bins as little-endian float64 bytes)."""
    h1, h2, rh = [], [], []
    for row in part.itertuples(index=False):
        blob = np.asarray(row.data, dtype="<f8").tobytes()
        head = (int(row.run), int(row.lumi), str(row.me), float(row.entries))
        x = (float(row.x_min), float(row.x_max), int(row.x_bins))
        if row.lumi == 0:
            stats = (
                _moments(np.asarray(row.data), row.x_min, row.x_max)
                if row.dim == 1
                else (np.nan,) * 4
            )
            rh.append((int(row.run), str(row.me), "", float(row.entries), *map(_none, stats), fid))
        elif row.dim == 1:
            h1.append((*head, *x, blob, fid))
        else:
            y = (float(row.y_min), float(row.y_max), int(row.y_bins))
            h2.append((*head, *x, *y, blob, fid))
    return h1, h2, rh
