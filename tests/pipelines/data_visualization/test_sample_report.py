"""What the report shows of the bundled sample, trained by the real nodes (reference strategy):
the pulls drawn for a top LS are the pulls the detector flagged on, the saved reference is the
detector's, and an LS flagged by the quality cuts lists the MEs that failed them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dqm_playground_ds.detection.reference import references_from_table
from dqm_playground_ds.pipelines.data_visualization import nodes
from dqm_playground_ds.pipelines.data_visualization.params import DataVisualizationParams
from dqm_playground_ds.reporting.flagged import me_list
from dqm_playground_ds.reporting.plotting import safe_filename, short_name
from dqm_playground_ds.reporting.top_lumisections import top_prefix
from tests import sample_training

STRATEGY = "reference"
PARAMS = DataVisualizationParams.model_validate({"style": {"dpi": 20}})


@pytest.fixture(scope="module")
def trained() -> sample_training.Trained:
    if not sorted((sample_training.RAW / "dqmio").glob("*.root")):
        pytest.skip("bundled sample not generated")
    return sample_training.train([STRATEGY])


@pytest.fixture(scope="module")
def me_references(trained, tmp_path_factory) -> pd.DataFrame:
    """The saved reference table as the catalog writes and reads it (Parquet)."""
    path = tmp_path_factory.mktemp("models") / "me_references.parquet"
    trained.preprocessor.references().to_parquet(path)
    return pd.read_parquet(path)


def _reference_tests(trained) -> dict[str, object]:
    """The fitted reference test of every ME (the chi2 detector of the strategy)."""
    model = trained.models[STRATEGY]
    sets = [s for s in model.detector_sets if s.spec.kind == "reference_test"]
    assert sets, "the reference strategy has a reference test"
    return sets[0].models_


def test_the_saved_reference_is_the_one_the_detector_flags_on(trained, me_references):
    refs = references_from_table(me_references)
    detectors = _reference_tests(trained)
    assert set(refs) == set(detectors)
    for me, det in detectors.items():
        ref = refs[me]
        assert ref.n_runs == det.n_groups_ == 3  # run-aware: three training runs
        np.testing.assert_allclose(ref.shape, det.reference_, rtol=1e-12)
        np.testing.assert_allclose(ref.dispersion, det.dispersion_, rtol=1e-9, atol=1e-18)
        assert ref.n_entries == pytest.approx(det.n_reference_, rel=1e-12)


def test_pulls_shown_for_a_top_ls_are_the_detectors(trained, me_references):
    preds = trained.predictions
    top = nodes.select_top_lumisections(preds, STRATEGY, PARAMS)
    assert len(top) >= 3
    no_scores = pd.DataFrame(columns=["run", "lumi", "strategy", "me", "score"])
    figures = nodes.plot_top_lumisections(top, trained.histograms, me_references, no_scores, PARAMS)
    hist = trained.histograms.set_index(["run", "lumi", "me"])
    detectors = _reference_tests(trained)
    largest = []
    for row in top.to_dict(orient="records"):
        for k, me in enumerate(me_list(row["top_mes"])[:2], start=1):
            name = f"{top_prefix(row['rank'], row['run'], row['lumi'])}_{k}_{safe_filename(me)}.png"
            fig = figures[name]
            counts = np.asarray(hist.loc[(row["run"], row["lumi"], me), "data"], dtype=float)
            flagged_on = detectors[me].pulls(counts[None, :])[0]
            if len(fig.axes) == 6:  # a 2D ME: data, reference and pull maps with colour bars
                shown = np.ma.filled(fig.axes[2].collections[0].get_array(), np.nan).reshape(-1)
                expected = np.clip(flagged_on, -5, 5)
            else:  # 1D: the bars of the pull panel
                pull_ax = fig.axes[2]
                shown = np.array([b.get_height() for b in pull_ax.patches])
                lim = pull_ax.get_ylim()[1]
                expected = np.clip(flagged_on, -lim, lim)
            ok = np.isfinite(shown)
            assert ok.mean() > 0.5, name
            np.testing.assert_allclose(shown[ok], expected[ok], rtol=1e-9, atol=1e-12)
            largest.append(np.abs(flagged_on).max())
    assert len(largest) >= 4
    assert max(largest) > 5  # what the shifter is shown stands out


def test_quality_flagged_ls_are_listed_with_the_mes_that_failed(trained):
    flagged = nodes.list_flagged_lumisections(trained.predictions, STRATEGY)
    ls = trained.lumisections.set_index(["run", "lumi"])
    failing = ls[ls["quality"] != "ok"]
    assert len(failing) >= 5
    shown = flagged.set_index(["run", "LS"])
    for (run, lumi), row in failing.iterrows():
        assert (run, lumi) in shown.index, (run, lumi)  # flagged: +inf for the quality cuts
        mes = [part.rpartition(": ")[0] for part in str(row["quality_detail"]).split("; ")]
        assert shown.loc[(run, lumi), "top MEs"] == ", ".join(short_name(m) for m in mes)
        assert shown.loc[(run, lumi), "quality"] == row["quality"]
    # and they get no detail plots: their histograms are noise
    top = nodes.select_top_lumisections(trained.predictions, STRATEGY, PARAMS)
    assert not set(zip(top["run"], top["lumi"], strict=True)) & set(failing.index)
