"""Test data and servers shared by the platform, dataset and upload tests (no fixtures here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.predictions import with_labels
from dqm_playground_ds.platform import PlaygroundClient
from dqm_playground_ds.platform.server import FaultPlan, LocalPlatform

TOKEN = "test-token"
RUNS = (315257, 315264, 315322)
TITLES_1D = ("PXLayer/charge_PXLayer_1", "TIB/Summary_ClusterStoNCorr__OnTrack__TIB")
TITLE_2D = "PXLayer/clusterposition_zphi_ontrack_PXLayer_1"
FILE_1D = "/eos/ZeroBias_2018A_DataFrame_1D_1.csv"
FILE_2D = "/eos/ZeroBias_2018B_DataFrame_2D_2.csv"


def make_table(runs: Sequence[int] = RUNS, n_ls: int = 40, seed: int = 0) -> pd.DataFrame:
    """1D and 2D LS histograms (2D is 5 x-bins by 3 y-bins, so a wrong flattening shows), plus one
    run-level histogram per run."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    one_d = {
        "dim": 1,
        "x_min": 0.0,
        "x_max": 10.0,
        "x_bins": 8,
        "y_min": np.nan,
        "y_max": np.nan,
        "y_bins": 0,
        "source": FILE_1D,
    }
    for run in runs:
        for ls in range(1, n_ls + 1):
            for title in TITLES_1D:
                data = rng.random(8) * 100
                rows.append(
                    {
                        "run": run,
                        "lumi": ls,
                        "me": title,
                        "entries": float(round(data.sum())),  # an integer on the platform
                        "data": data,
                        **one_d,
                    }
                )
            data = rng.random(15)
            rows.append(
                {
                    "run": run,
                    "lumi": ls,
                    "me": TITLE_2D,
                    "dim": 2,
                    "entries": 1.0,
                    "x_min": -1.0,
                    "x_max": 1.0,
                    "x_bins": 5,
                    "y_min": 0.0,
                    "y_max": 3.0,
                    "y_bins": 3,
                    "data": data,
                    "source": FILE_2D,
                }
            )
        rows.append(
            {
                "run": run,
                "lumi": 0,
                "me": TITLES_1D[0],
                "entries": 5.0,
                "data": np.arange(8.0),
                **one_d,
            }
        )
    return pd.DataFrame(rows)


def expected(table: pd.DataFrame, dim: int, **where: Any) -> pd.DataFrame:
    """Rows of ``table`` the server holds for a dimension, in the client's order (run, LS, ME:
    the server's own order means nothing)."""
    out = table[(table["dim"] == dim) & (table["lumi"] > 0)]
    for col, value in where.items():
        out = out[out[col].isin(value if isinstance(value, (list, tuple, set)) else [value])]
    return out.sort_values(["run", "lumi", "me"], kind="stable").reset_index(drop=True)


def write_legacy_csv(table: pd.DataFrame, path: Any) -> None:
    """``table`` as a legacy ML4DQM DataFrame CSV (flow bins added), the format the deployed
    platform parses (``file_format: csv``)."""
    rows = []
    for r in table.itertuples(index=False):
        if r.dim == 1:
            values = np.concatenate([[0.0], np.asarray(r.data, float), [0.0]])
            y = (1, 0.0, 1.0)
        else:
            inner = np.asarray(r.data, float).reshape(r.y_bins, r.x_bins)
            values = np.pad(inner, 1).reshape(-1)
            y = (r.y_bins, r.y_min, r.y_max)
        rows.append(
            {
                "fromrun": r.run,
                "fromlumi": r.lumi,
                "hname": r.me,
                "histo": "[" + ", ".join(repr(float(v)) for v in values) + "]",
                "entries": r.entries,
                "Xmax": r.x_max,
                "Xmin": r.x_min,
                "Xbins": r.x_bins,
                "Ymax": y[2],
                "Ymin": y[1],
                "Ybins": y[0],
            }
        )
    pd.DataFrame(rows).to_csv(path, index=False)


def make_predictions(
    runs: Sequence[int] = (315322,), n_ls: int = 40, strategies: Sequence[str] = ("ae",)
) -> pd.DataFrame:
    """A ``lumisection_predictions`` table as the anomaly-detection pipeline writes it: its
    columns and dtypes come from the pipeline's own :func:`with_labels`, so they cannot drift."""
    rows = []
    for strategy in strategies:
        for run in runs:
            for ls in range(1, n_ls + 1):
                score = (ls % 7) / 7
                rows.append(
                    {
                        "run": run,
                        "lumi": ls,
                        "strategy": strategy,
                        "score": score,
                        "threshold": 0.8,
                        "is_anomalous": score > 0.8,
                        "top_mes": [TITLE_2D, TITLES_1D[0]],
                    }
                )
    lumisections = pd.DataFrame(
        [(run, ls) for run in runs for ls in range(1, n_ls + 1)], columns=["run", "lumi"]
    ).assign(label="unknown", label_reason="run_not_certified", split="apply", quality="ok")
    return with_labels(pd.DataFrame(rows), lumisections)


def start_platform(
    table: pd.DataFrame | None = None, faults: FaultPlan | None = None, **kwargs: Any
) -> LocalPlatform:
    return LocalPlatform(histograms=table, token=TOKEN, faults=faults, **kwargs).start()


def start_extended(table: pd.DataFrame | None = None, **kwargs: Any) -> LocalPlatform:
    """A local platform with the project's extensions (prediction payload, task creation)."""
    return start_platform(table, extensions=("predictions", "tasks"), **kwargs)


def client_for(platform: LocalPlatform, **kwargs: Any) -> PlaygroundClient:
    args: dict[str, Any] = {
        "progress": False,
        "backoff": 0.01,
        "max_backoff": 0.05,
        "retries": 4,
        "max_workers": 4,
        "timeout": 5.0,
    }
    args.update(kwargs)
    token = args.pop("token", TOKEN)
    return PlaygroundClient(platform.url, token, **args)
