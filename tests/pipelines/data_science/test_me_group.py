"""The `me_group` pipeline through Kedro: N runs write their partitions of the catalog's
``me_group_fits`` (the conf/base entry, on disk), then train_strategies reads them back."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.pipeline_registry import register_pipelines
from dqm_playground_ds.pipelines.data_science import create_pipeline as detection
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.pipelines.data_science.pipeline import create_me_group_pipeline
from tests.detection.test_me_groups import CHEAP, prepared  # noqa: F401 (fixture)

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"


def _fits_dataset(tmp_path: Path):
    """conf/base's me_group_fits entry, moved under tmp_path."""
    entry = yaml.safe_load((CONF / "catalog_data_science.yml").read_text())["me_group_fits"]
    entry = {**entry, "path": str(tmp_path / "me_groups")}
    return DataCatalog.from_config({"me_group_fits": entry})["me_group_fits"]


def _catalog(features, ls, science: dict, fits) -> DataCatalog:
    return DataCatalog(
        {
            "me_features": MemoryDataset(features, copy_mode="assign"),
            "lumisections": MemoryDataset(ls),
            "params:data_science": MemoryDataset(DataScienceParams.model_validate(science)),
            "me_group_fits": fits,
        }
    )


def _train(features, ls, science: dict, fits):
    pipe = detection().only_nodes("train_strategies")
    return SequentialRunner().run(pipe, _catalog(features, ls, science, fits))


def test_group_runs_then_training_through_the_catalog(prepared, tmp_path, caplog):  # noqa: F811
    features, ls = prepared
    science = {"seed": 3, "n_jobs": 1, "active_strategies": CHEAP,
               "strategies": yaml.safe_load((CONF / "parameters_data_science.yml").read_text())
               ["data_science"]["strategies"]}  # fmt: skip
    fits = _fits_dataset(tmp_path)
    with caplog.at_level(logging.WARNING):
        alone = _train(features, ls, science, fits)["strategy_models"].load()
    assert "me_group_fits" not in caplog.text  # nothing saved yet: empty, no warning, all fitted
    for i in range(2):  # two pods, each its own Kedro run of the `me_group` pipeline
        group = {**science, "me_groups": {"group": f"{i}/2"}}
        SequentialRunner().run(create_me_group_pipeline(), _catalog(features, ls, group, fits))
    assert sorted(p.name for p in (tmp_path / "me_groups").iterdir()) == [
        "group-0-of-2.pkl",
        "group-1-of-2.pkl",
    ]
    with caplog.at_level(logging.INFO):
        merged = _train(features, ls, {**science, "me_groups": {"expected": 2}}, fits)
    assert "merged from the ME groups" in caplog.text
    merged = merged["strategy_models"].load()
    for name, model in alone.items():
        assert merged[name].threshold == model.threshold
        np.testing.assert_array_equal(merged[name].oof_raw, model.oof_raw)


def test_me_group_is_registered_apart_from_the_default_run():
    bootstrap_project(CONF.parents[1])
    pipelines = register_pipelines()
    assert [n.name for n in pipelines["me_group"].nodes] == ["fit_me_group"]
    default = {n.name for n in pipelines["__default__"].nodes}
    assert "fit_me_group" not in default and "train_strategies" in default
    assert "me_group_fits" in pipelines["__default__"].inputs()  # read, never produced there
