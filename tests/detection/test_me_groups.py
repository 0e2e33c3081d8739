"""Training fanned out over ME groups gives bit-identical strategies to the unsharded fit."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dqm_playground_ds.detection.me_groups import (
    MEGroupError,
    assign_me_groups,
    merge_me_groups,
    parse_group,
)
from dqm_playground_ds.detection.strategy import DetectorSpec, assign_folds, fit_detector_set
from dqm_playground_ds.pipelines.data_processing import nodes as proc
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science import nodes as sci
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from tests.detection_data import ME_1D, ME_1D_B, ME_2D, golden_for, make_histograms

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"
# every strategy of conf/base: each detector kind the project ships, shared detector sets included
BASE = yaml.safe_load((CONF / "parameters_data_science.yml").read_text())["data_science"]
CHEAP = ["reference", "two_level", "pca_gmm"]  # run-aware, integral ratio and max_train among them


def _params(**kw) -> DataScienceParams:
    return DataScienceParams.model_validate({**BASE, "n_jobs": 1, "seed": 7, **kw})


def _group(params: DataScienceParams, group: str) -> DataScienceParams:
    return params.model_copy(update={"me_groups": params.me_groups.model_copy(update={"group": group})})  # fmt: skip


def _fan_out(features, ls, params: DataScienceParams, n: int) -> dict:
    """What N pods write: fit_me_group run once per group, partitions pooled."""
    out: dict = {}
    for i in range(n):
        part = sci.fit_me_group(features, ls, _group(params, f"{i}/{n}"))
        assert list(part) == [f"group-{i}-of-{n}"]
        out.update(part)
    return out


@pytest.fixture(scope="module")
def prepared():
    hist = make_histograms({1: 15, 2: 15, 3: 15, 4: 10}, seed=8)
    pp = DataProcessingParams.model_validate(
        {
            "split": {"name": "t", "train": {"runs": [1, 2, 3]}, "apply": {"runs": [4]}},
            "preprocessing": {"default": {}, "fine": {}},  # the variants conf/base strategies read
        }
    )
    labelled = proc.label_lumisections_node(hist, golden_for(hist), {}, pp)
    split = proc.assign_split(labelled, None, pp)
    pre = proc.fit_preprocessor(hist, split, pp)
    return proc.build_features(hist, split, pre, pp)


@pytest.fixture(scope="module")
def unsharded(prepared):
    features, ls = prepared
    params = _params()
    models = sci.train_strategies(features, ls, params)
    return models, sci.score_lumisections(models, features, ls, params)


def _assert_identical(models, scored, other, features, ls) -> None:
    assert list(other) == list(models)
    for name, model in models.items():
        got = other[name]
        assert got.threshold == model.threshold, name
        assert got.columns == model.columns, name
        np.testing.assert_array_equal(got.oof_raw, model.oof_raw)
        for a, b in zip(got.detector_sets, model.detector_sets, strict=True):
            assert a.mes_ == b.mes_ and a.spec == b.spec
    preds, me_scores = sci.score_lumisections(other, features, ls, _params())
    pd.testing.assert_frame_equal(preds, scored[0], check_exact=True)
    pd.testing.assert_frame_equal(me_scores, scored[1], check_exact=True)


@pytest.mark.parametrize("n", [1, 2, 3, 5])  # 5 > 3 MEs: some groups are empty
def test_strategies_from_n_groups_are_bit_identical(prepared, unsharded, n, caplog):
    features, ls = prepared
    results = _fan_out(features, ls, _params(), n)
    mes = [me for fit in results.values() for me in fit.mes]
    assert sorted(mes) == sorted([ME_1D, ME_1D_B, ME_2D])  # every ME in exactly one group
    with caplog.at_level(logging.INFO):
        merged = sci.train_strategies(features, ls, _params(), results)
    assert "merged from the ME groups" in caplog.text
    assert "fitting" not in caplog.text  # no detector set refitted where the groups meet
    _assert_identical(*unsharded, merged, features, ls)


def test_stale_results_are_ignored_with_a_warning_and_required_ones_fail(prepared, caplog):
    """Results of another seed (or data, or code) never mix in: the node fits everything itself,
    naming each ignored partition; when the fan-out is expected, it fails instead."""
    features, ls = prepared
    cheap = {"active_strategies": CHEAP}
    models = sci.train_strategies(features, ls, _params(**cheap))
    unsharded = models, sci.score_lumisections(models, features, ls, _params(**cheap))
    stale = _fan_out(features, ls, _params(**cheap, seed=8), 2)
    fresh = _fan_out(features, ls, _params(**cheap), 3)
    with caplog.at_level(logging.WARNING):
        refit = sci.train_strategies(features, ls, _params(**cheap), stale)
    assert "group-0-of-2: ME group 0/2 was fitted on other data, parameters or code" in caplog.text
    assert "no complete set of the current inputs: fitting every ME here" in caplog.text
    _assert_identical(*unsharded, refit, features, ls)
    caplog.clear()
    incomplete = {**stale, **{k: v for k, v in fresh.items() if k != "group-1-of-3"}}
    with pytest.raises(ValueError, match=r"expected=3: .*missing \[1\]"):
        sci.train_strategies(features, ls, _params(**cheap, me_groups={"expected": 3}), incomplete)
    with caplog.at_level(logging.WARNING):  # stale ones beside a complete fresh set: ignored
        mixed = sci.train_strategies(features, ls, _params(**cheap, me_groups={"expected": 3}),
                                     {**stale, **fresh, "junk": [1, 2]})  # fmt: skip
    assert "junk: not an ME group result (list)" in caplog.text
    _assert_identical(*unsharded, mixed, features, ls)


def test_merge_refuses_missing_duplicated_and_mismatching_groups(prepared):
    features, ls = prepared
    params = _params(active_strategies=CHEAP)
    three = list(_fan_out(features, ls, params, 3).values())
    with pytest.raises(MEGroupError, match=r"ME groups of 3: missing \[2\], duplicated \[\]"):
        merge_me_groups(three[:2])
    with pytest.raises(MEGroupError, match=r"missing \[\], duplicated \[1\]"):
        merge_me_groups([*three, three[1]])
    other = sci.fit_me_group(features, ls, _group(_params(active_strategies=CHEAP, seed=99),
                                                  "2/3"))["group-2-of-3"]  # fmt: skip
    with pytest.raises(MEGroupError, match=r"ME group 2/3: fitted on other data, parameters"):
        merge_me_groups([*three[:2], other])
    two = list(_fan_out(features, ls, params, 2).values())
    with pytest.raises(MEGroupError, match=r"ME group 1/2: one of 2 groups, but group 0/3"):
        merge_me_groups([three[0], two[1]])
    with pytest.raises(MEGroupError, match="no ME group results"):
        merge_me_groups([])
    merged = merge_me_groups(three)
    assert all(s.mes_ == [ME_1D, ME_1D_B, ME_2D] for s, _ in merged.values())  # full order


@pytest.mark.parametrize("n_mes", [1, 2, 7, 40])
@pytest.mark.parametrize("count", [1, 2, 3, 8, 50])
def test_every_me_lands_in_exactly_one_group(n_mes, count):
    rng = np.random.default_rng(n_mes * 100 + count)
    weights = {f"ME/{k:02d}": float(rng.choice([1, 100, 400, 10_000])) for k in range(n_mes)}
    groups = assign_me_groups(weights, count)
    assert len(groups) == count
    flat = [me for g in groups for me in g]
    assert sorted(flat) == sorted(weights) and len(flat) == len(set(flat))
    # the same in every process, whatever order the MEs come in
    assert assign_me_groups(dict(reversed(list(weights.items()))), count) == groups
    if n_mes >= count:  # balanced: no group waits for more than the heaviest ME over its share
        loads = [sum(weights[m] for m in g) for g in groups]
        assert max(loads) <= sum(weights.values()) / count + max(weights.values())
        assert all(groups)


def test_restricted_fit_gives_the_full_fits_columns(prepared):
    """The ME restriction (max_train subsample included) leaves each ME's column unchanged."""
    features, ls = prepared
    fs = features["default"]
    rows = np.flatnonzero(ls["train"].to_numpy(dtype=bool))
    folds = assign_folds(ls.iloc[rows], 3)
    spec = DetectorSpec("pca", "pca", {"n_components": 2}, max_train=20)
    full, full_oof = fit_detector_set(spec, fs, rows, folds, 3)
    for only in ([ME_2D], [ME_1D_B, ME_1D], []):
        part, oof = fit_detector_set(spec, fs, rows, folds, 3, only=only)
        assert part.mes_ == [m for m in full.mes_ if m in only]
        cols = [full.mes_.index(m) for m in part.mes_]
        np.testing.assert_array_equal(oof, full_oof[:, cols])
        np.testing.assert_array_equal(part.anomaly_scores(fs), full.anomaly_scores(fs)[:, cols])


def test_group_parameter(prepared):
    assert parse_group(" 2 / 5 ") == (2, 5)
    for bad in ("5/5", "-1/3", "1", "a/b"):
        with pytest.raises(ValueError, match="expected 'i/N'"):
            parse_group(bad)
    with pytest.raises(ValueError, match="expected 'i/N'"):
        DataScienceParams.model_validate({"me_groups": {"group": "3/2"}})
    with pytest.raises(ValueError, match="which ME group"):
        sci.fit_me_group(*prepared, _params())
