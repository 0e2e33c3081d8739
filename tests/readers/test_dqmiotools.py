"""dqmiotools Parquet exports (real, shared): shape check and x-major to y-major conversion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.readers.dqmiotools import read_dqmiotools_parquet
from dqm_playground_ds.schema import validate_histograms


def test_real_exports_have_the_documented_shapes(shared_real):
    shapes = {}
    for f in sorted((shared_real / "dqmiotools-2023C").glob("*.parquet")):
        table = validate_histograms(read_dqmiotools_parquet(f))
        key = f.stem.rsplit("-", 1)[-1]
        shapes[key] = (
            len(table),
            int(table["x_bins"].iloc[0]),
            int(table["y_bins"].iloc[0]),
            sorted(set(table["run"])),
            sorted(set(table["dim"])),
        )
    assert shapes == {
        "charge_PXLayer_1": (45, 100, 0, [367094], [1]),
        "clusterposition_zphi_ontrack_PXLayer_1": (5, 300, 200, [367129], [2]),
        "clusterposition_xy_ontrack_PXDisk_+1": (5, 200, 200, [367129], [2]),
    }


def test_2d_is_transposed_to_y_outer(shared_real):
    f = next((shared_real / "dqmiotools-2023C").glob("*zphi*.parquet"))
    raw = pd.read_parquet(f).iloc[0]
    row = read_dqmiotools_parquet(f).iloc[0]
    x_major = np.asarray(raw["histo"], dtype=float).reshape(300, 200)
    np.testing.assert_array_equal(row["data"].reshape(200, 300), x_major.T)
    assert row["data"].sum() == raw["entries"]
