"""The injection places its anomalies with the ME's fitted reference (the one the reference test
flags on and the plots draw), not with the shape of the LS it injects into."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.injection import inject_table
from dqm_playground_ds.detection.reference import Reference
from tests.detection_data import ME_1D, make_histograms


def test_dead_regions_land_where_the_reference_is_populated():
    hist = make_histograms({1: 6})
    hist = hist[hist["me"] == ME_1D].reset_index(drop=True)
    n_bins = len(hist.loc[0, "data"])
    shape = np.zeros(n_bins)
    shape[30:36] = 1 / 6  # the reference populates bins 30-35 only (the data peak elsewhere)
    ref = Reference(shape, 1e5, np.zeros(n_bins), 2)
    keys = pd.DataFrame({"run": [1] * 6, "lumi": range(1, 7)})
    for refs in ({ME_1D: ref}, {ME_1D: ref.shape}):  # the Reference or its shape alone
        table, _ = inject_table(hist, keys, ["dead_region"], 20, refs, np.random.default_rng(1))
        original = hist.set_index(["run", "lumi"])["data"]
        for data, run, lumi in zip(table["data"], table["run"], table["lumi"], strict=True):
            zeroed = np.flatnonzero((np.asarray(data) == 0) & (original[(run, lumi)] > 0))
            assert zeroed.size and (zeroed >= 30).all() and (zeroed < 36).all(), zeroed
