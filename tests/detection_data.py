"""Small synthetic histogram tables (histogram schema) for the processing and detection tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

ME_1D = "Test/1D/charge"
ME_1D_B = "Test/1D/sn"
ME_2D = "Test/2D/map"
NY, NX = 8, 10


def shape_1d(bins: int = 40, centre: float = 15.0, width: float = 4.0) -> np.ndarray:
    x = np.arange(bins) + 0.5
    p = np.exp(-0.5 * ((x - centre) / width) ** 2) + 0.02
    return p / p.sum()


def shape_2d() -> np.ndarray:
    y, x = np.mgrid[0:NY, 0:NX] + 0.5
    p = 1.0 + np.exp(-0.5 * ((x - NX / 2) / 3) ** 2) + 0.3 * np.cos(y)
    p[:, 2] = 0.0  # a permanently dead column
    return (p / p.sum()).reshape(-1)


def row(run, lumi, me, data, *, dim=1, x=(0.0, 40.0), y=(0.0, float(NY)), ny=0) -> dict:
    data = np.asarray(data, dtype=np.float64)
    return {
        "run": run,
        "lumi": lumi,
        "me": me,
        "dim": dim,
        "entries": float(np.nansum(data)),
        "x_min": x[0],
        "x_max": x[1],
        "x_bins": data.size if dim == 1 else data.size // ny,
        "y_min": y[0] if dim == 2 else np.nan,
        "y_max": y[1] if dim == 2 else np.nan,
        "y_bins": ny if dim == 2 else 0,
        "data": data,
        "source": "synthetic",
    }


def make_histograms(
    runs: dict[int, int], entries: float = 5000.0, seed: int = 0, run_scale: float = 0.0
) -> pd.DataFrame:
    """``runs`` maps run -> number of LS; three MEs (two 1D, one 2D), Poisson counts.

    ``run_scale`` gives each run a random x-scale of that relative size on the second 1D ME (the
    run-to-run calibration of the bundled sample).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for run, n_ls in runs.items():
        centre = 20.0 * (1 + run_scale * rng.standard_normal())
        sn = shape_1d(centre=centre, width=5.0)
        for lumi in range(1, n_ls + 1):
            n = entries * rng.uniform(0.8, 1.2)
            rows.append(row(run, lumi, ME_1D, rng.poisson(n * shape_1d())))
            rows.append(row(run, lumi, ME_1D_B, rng.poisson(2 * n * sn)))
            rows.append(
                row(run, lumi, ME_2D, rng.poisson(3 * n * shape_2d()), dim=2, x=(0.0, NX), ny=NY)
            )
    return frame(rows)


def frame(rows: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    return out.astype(
        {
            "run": "int64",
            "lumi": "int64",
            "me": "string",
            "dim": "int8",
            "x_bins": "int32",
            "y_bins": "int32",
            "source": "string",
        }
    )


def golden_for(histograms: pd.DataFrame) -> dict[str, list[list[int]]]:
    """Every LS of the table good."""
    out = {}
    for run, grp in histograms.groupby("run"):
        out[str(run)] = [[1, int(grp["lumi"].max())]]
    return out


def replace(histograms: pd.DataFrame, run: int, lumi: int, me: str, data) -> pd.DataFrame:
    """A copy with one histogram's bins replaced (entries follow)."""
    out = histograms.copy()
    sel = np.flatnonzero(
        (out["run"] == run).to_numpy() & (out["lumi"] == lumi).to_numpy() & (out["me"] == me)
    )
    assert sel.size == 1, (run, lumi, me)
    values = out["data"].to_numpy().copy()
    values[sel[0]] = np.asarray(data, dtype=np.float64)
    out["data"] = values
    out.loc[out.index[sel[0]], "entries"] = float(np.nansum(data))
    return out


def get(histograms: pd.DataFrame, run: int, lumi: int, me: str) -> np.ndarray:
    sel = (histograms["run"] == run) & (histograms["lumi"] == lumi) & (histograms["me"] == me)
    return np.asarray(histograms.loc[sel, "data"].iloc[0], dtype=np.float64)
