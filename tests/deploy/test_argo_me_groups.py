"""The Argo fan-out of training over ME groups: N `me_group` pods between the features and the
training pod, their commands and the refusals when a group pod could not share data."""

from __future__ import annotations

import dataclasses

import pytest
from kedro.framework.cli.utils import _split_params
from kedro.pipeline import Pipeline

from dqm_playground_ds.deploy import CONTAINER_PROJECT
from dqm_playground_ds.deploy.argo import ArgoSettings, build_manifest, main
from dqm_playground_ds.deploy.grouping import GroupingError
from dqm_playground_ds.deploy.storage import Catalog
from dqm_playground_ds.deploy.validate import validate
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from tests.deploy.conftest import node
from tests.deploy.test_argo import (
    PARTITIONS,
    PROJECT,
    assert_matches_pipeline,
    project,  # noqa: F401 (fixture)
    spec_of,
    tasks_of,
)


def _doc(project, groups=3, name="__default__", catalog=None):  # noqa: F811
    pipelines, real_catalog, settings, _ = project
    settings = dataclasses.replace(settings, science_me_groups=groups)
    return build_manifest(pipelines[name], name, catalog or real_catalog, settings, "argo",
                          extraction_partitions=PARTITIONS)  # fmt: skip


def _kedro_params(args: list[str], **values: str) -> DataScienceParams:
    """The data_science parameters `kedro run` gets from a pod's --params (Kedro's own parser)."""
    text = args[args.index("--params") + 1]
    for key, value in values.items():
        text = text.replace(f"{{{{{key}}}}}", value)
    runtime = _split_params(None, None, text)
    return DataScienceParams.model_validate(runtime.get("data_science", {}))


@pytest.mark.parametrize("name", ["__default__", "data_science"])
def test_group_pods_between_the_features_and_training(project, name):  # noqa: F811
    doc = _doc(project, name=name)
    validate(doc)
    assert_matches_pipeline(doc, project[0][name])  # every Kedro node still exactly once
    spec = spec_of(doc)
    dag = {t["name"]: t for t in spec["templates"][0]["dag"]["tasks"]}
    templates = {t["name"]: t for t in spec["templates"]}
    train = next(n for n, (nodes, _, _) in tasks_of(doc).items() if "train_strategies" in nodes)
    group = dag["fit-me-group"]
    makers = {n for n, (nodes, _, _) in tasks_of(doc).items() if "build_features" in nodes}
    assert set(group.get("dependencies", [])) == makers  # none in data_science: stored inputs
    assert group["withSequence"] == {"count": "{{workflow.parameters.science-me-groups}}"}
    assert group["arguments"]["parameters"] == [
        {"name": "group", "value": "{{item}}/{{workflow.parameters.science-me-groups}}"}
    ]
    assert "fit-me-group" in dag[train]["dependencies"]
    params = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    assert params["science-me-groups"] == "3"
    pod = templates["fit-me-group"]
    args = pod["container"]["args"]
    assert pod["container"]["command"] == ["kedro", "run"] and "--nodes" not in args
    assert args[args.index("--pipeline") + 1] == "me_group"
    assert pod["inputs"] == {"parameters": [{"name": "group"}]}
    mounts = pod["container"]["volumeMounts"]
    assert {"name": "data", "mountPath": f"{CONTAINER_PROJECT}/data"} in mounts
    # what Kedro makes of the pods' --params, with and without the user's own
    for user in ("", "data_science.n_jobs=4"):
        values = {"workflow.parameters.params": user, "inputs.parameters.group": "2/3",
                  "workflow.parameters.science-me-groups": "3"}  # fmt: skip
        mine = _kedro_params(args, **values)
        assert mine.me_groups.group == "2/3" and mine.n_jobs == (4 if user else None)
        trains = _kedro_params(templates[train]["container"]["args"], **values)
        assert trains.me_groups.expected == 3 and trains.me_groups.group is None


def test_no_group_pods_without_training_or_groups(project):  # noqa: F811
    for doc in (_doc(project, groups=0), _doc(project, name="data_extraction")):
        names = {t["name"] for t in spec_of(doc)["templates"]}
        assert "fit-me-group" not in names
        params = {p["name"] for p in spec_of(doc)["arguments"]["parameters"]}
        assert "science-me-groups" not in params
    with pytest.raises(ValueError, match="science_me_groups must be an integer >= 0"):
        ArgoSettings.from_config({"science_me_groups": -1})


def _science(train_inputs: list[str]) -> Pipeline:
    return Pipeline(
        [
            node("table", "me_features", "build_features"),
            node(train_inputs, "strategy_models", "train_strategies"),
            node("strategy_models", "scores", "score_lumisections"),
        ]
    )


STORED = {"{x}": {"type": "pickle.PickleDataset", "filepath": "data/{x}.pkl"}}
FITS = {"type": "partitions.IncrementalDataset", "path": "data/06_models/me_groups",
        "dataset": "pickle.PickleDataset"}  # fmt: skip


@pytest.mark.parametrize(
    ("catalog", "inputs", "message"),
    [
        (  # the features kept in memory: train_strategies shares the pod that makes them
            {**STORED, "me_features": {"type": "MemoryDataset"}, "me_group_fits": FITS},
            ["me_features", "me_group_fits"],
            r"'me_features' \(in memory\) is not on shared storage",
        ),
        (  # the group results on a pod's own disk
            {**STORED, "me_group_fits": {**FITS, "path": "/tmp/me_groups"}},
            ["me_features", "me_group_fits"],
            r"'me_group_fits' \(/tmp/me_groups\) is not on shared storage",
        ),
        (  # a training node that does not read the group results
            STORED,
            ["me_features"],
            "does not read 'me_group_fits'",
        ),
    ],
)
def test_group_pods_that_could_not_share_data_are_refused(catalog, inputs, message):
    settings = ArgoSettings(science_me_groups=2)
    with pytest.raises(GroupingError, match=message):
        build_manifest(_science(inputs), "p", Catalog(catalog), settings, "argo")
    fine = {**STORED, "me_group_fits": FITS}
    doc = build_manifest(_science(["me_features", "me_group_fits"]), "p", Catalog(fine),
                         settings, "argo")  # fmt: skip
    validate(doc)
    assert {t["name"]: t.get("dependencies") for t in spec_of(doc)["templates"][0]["dag"]["tasks"]}[
        "fit-me-group"
    ] == ["build-features"]


def test_cli_option(capsys):
    assert main(["--project-path", str(PROJECT), "--science-me-groups", "5"]) == 0
    out = capsys.readouterr().out
    assert "fit-me-group" in out and "withSequence" in out
