"""The one parameter idiom: typed models whose defaults are what conf/base states, checked by Kedro
before a run starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.validation.exceptions import ParameterValidationError

from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams
from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.pipelines.data_visualization.params import DataVisualizationParams
from dqm_playground_ds.pipelines.inference.params import InferenceParams
from dqm_playground_ds.pipelines.prediction_upload.params import UploadParams
from dqm_playground_ds.tracking import TrackingSettings

PROJECT = Path(__file__).resolve().parents[2]
CONF = PROJECT / "conf" / "base"

# group -> (model, keys that are a catalogue the user writes, not defaults)
MODELS = {
    "data_extraction": (ExtractionParams, {"me"}),
    "data_processing": (DataProcessingParams, {"split", "preprocessing"}),
    "data_science": (DataScienceParams, {"strategies"}),
    "data_visualization": (DataVisualizationParams, set()),
    "inference": (InferenceParams, set()),
    "prediction_upload": (UploadParams, set()),
    "tracking": (TrackingSettings, set()),
}


def test_every_parameter_group_has_a_model():
    groups = {p.stem.removeprefix("parameters_") for p in CONF.glob("parameters_*.yml")}
    assert groups == set(MODELS)


def _yaml(group: str) -> dict:
    return yaml.safe_load((CONF / f"parameters_{group}.yml").read_text())[group]


@pytest.mark.parametrize("group", sorted(MODELS))
def test_conf_base_states_the_models_defaults(group):
    model, catalogue = MODELS[group]
    stated = {k: v for k, v in _yaml(group).items() if k not in catalogue}
    defaults = model().model_dump(by_alias=True)
    assert stated == {k: v for k, v in defaults.items() if k not in catalogue}
    model.model_validate(_yaml(group))  # and the whole group, catalogue included, is valid


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        (
            {"data_science": {"active_strategis": ["reference"]}},
            r"did you mean 'active_strategies'",
        ),
        ({"data_science": {"run_verdicts": {"false_alarm_rate": 2}}}, r"less than 1"),
        ({"data_processing": {"quality": {"min_entries": "abc"}}}, r"valid number"),
        ({"data_processing": {"labels": {"certified_runs": "gold"}}}, r"'golden' or 'dcs'"),
        ({"data_extraction": {"workrs": 4}}, r"did you mean 'workers'"),
        ({"inference": {"skip_training_run": False}}, r"did you mean 'skip_training_runs'"),
        ({"prediction_upload": {"dry_run": False}}, r"task is not set"),
    ],
)
def test_kedro_refuses_a_bad_parameter_before_any_node_runs(runtime, message):
    bootstrap_project(PROJECT)
    session = KedroSession.create(project_path=PROJECT, env="ci", runtime_params=runtime)
    with session, pytest.raises(ParameterValidationError, match=message):
        session.load_context().params  # noqa: B018 (the property validates)
