"""The Argo generator: manifests that Argo's schema accepts, one task per group, edges from Kedro."""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path

import pytest
import yaml
from kedro.io import CatalogConfigResolver
from kedro.io.core import parse_dataset_definition
from kedro.pipeline import Pipeline

from dqm_playground_ds.deploy import CONTAINER_PROJECT
from dqm_playground_ds.deploy.argo import ArgoSettings, build_manifest, load_project, main
from dqm_playground_ds.deploy.grouping import GroupingError
from dqm_playground_ds.deploy.storage import Catalog
from dqm_playground_ds.deploy.validate import ManifestError, validate
from tests.deploy.conftest import expected_edges, node

PROJECT = Path(__file__).resolve().parents[2]
# where the argo environment's extraction writes its partitions (the shard pods too)
PARTITIONS = yaml.safe_load((PROJECT / "conf" / "argo" / "catalog.yml").read_text())[
    "histogram_store"
]["path"]
PROFILES = {
    "__default__": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "extraction": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
}


def spec_of(doc):
    return doc["spec"].get("workflowSpec", doc["spec"])


def tasks_of(doc):
    """{task name: (nodes, dependencies, template)} read back from a manifest."""
    spec = spec_of(doc)
    templates = {t["name"]: t for t in spec["templates"]}
    dag = templates[spec["entrypoint"]]["dag"]["tasks"]
    out = {}
    for task in dag:
        args = templates[task["template"]]["container"]["args"]
        if "--nodes" not in args:  # the extraction fan-out's list/shard/join pods: no Kedro node
            continue
        nodes = args[args.index("--nodes") + 1].split(",")
        out[task["name"]] = (nodes, set(task.get("dependencies", [])), templates[task["template"]])
    return out


def assert_matches_pipeline(doc, pipeline: Pipeline):
    """Every node exactly once; DAG edges = the pipeline's dependencies between tasks."""
    tasks = tasks_of(doc)
    nodes = [n for names, _, _ in tasks.values() for n in names]
    assert sorted(nodes) == sorted(n.name for n in pipeline.nodes)
    assert len(nodes) == len(set(nodes)), "a node runs in two tasks"
    task_of = {n: name for name, (names, _, _) in tasks.items() for n in names}
    edges = {(d, name) for name, (_, deps, _) in tasks.items() for d in deps if d in tasks}
    assert edges == expected_edges(pipeline, task_of)


@pytest.mark.parametrize("kind", ["workflow-template", "cron"])
def test_manifest_is_valid_and_matches_the_pipeline(chain, catalog, kind):
    settings = ArgoSettings(resources=PROFILES, image="reg/img:1")
    doc = build_manifest(chain, "__default__", catalog, settings, "argo", kind)
    validate(doc)
    assert_matches_pipeline(doc, chain)
    assert doc["kind"] == ("CronWorkflow" if kind == "cron" else "WorkflowTemplate")
    spec = spec_of(doc)
    params = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    assert params == {"image": "reg/img:1", "env": "argo", "params": ""}
    assert spec["securityContext"] == {"runAsNonRoot": True}
    if kind == "cron":
        assert doc["spec"]["schedules"] and doc["spec"]["concurrencyPolicy"] == "Forbid"
        assert doc["metadata"]["name"] == "dqm-playground-ds-cron"


def test_task_container(chain, catalog):
    settings = ArgoSettings(resources=PROFILES)
    doc = build_manifest(chain, "__default__", catalog, settings, "argo")
    tasks = tasks_of(doc)
    template = tasks["extract"][2]
    container = template["container"]
    assert container["image"] == "{{workflow.parameters.image}}"
    assert container["command"] == ["kedro", "run"]
    assert container["args"] == [
        "--pipeline",
        "__default__",
        "--env",
        "{{workflow.parameters.env}}",
        "--nodes",
        "extract",
        "--params",
        "{{workflow.parameters.params}}",
    ]
    assert container["resources"] == PROFILES["extraction"]  # from the node's tag
    assert tasks["upload"][2]["container"]["resources"] == PROFILES["__default__"]
    assert template["retryStrategy"]["limit"] == 2
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == f"{CONTAINER_PROJECT}/data"
    assert (
        mounts["credentials"]
        == f"{CONTAINER_PROJECT}/conf/{{{{workflow.parameters.env}}}}/credentials"
    )
    assert container["envFrom"] == [
        {"secretRef": {"name": "dqm-playground-ds-credentials", "optional": True}}
    ]
    volumes = {v["name"]: v for v in spec_of(doc)["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "dqm-playground-ds-data"
    assert volumes["credentials"]["secret"]["secretName"] == "dqm-playground-ds-credentials"


def test_object_store_mode_needs_urls(chain):
    settings = ArgoSettings(data_volume_claim=None, credentials_secret=None)
    local = Catalog({"{name}": {"type": "pandas.ParquetDataset", "filepath": "data/{name}.pq"}})
    with pytest.raises(GroupingError, match="object store"):
        build_manifest(chain, "__default__", local, settings, "argo")
    remote = Catalog(
        {
            "{name}": {"type": "pandas.ParquetDataset", "filepath": "s3://bucket/dqm/{name}.pq"},
            "mem": {"type": "MemoryDataset"},
        }
    )
    doc = build_manifest(chain, "__default__", remote, settings, "argo")
    validate(doc)
    assert "volumes" not in spec_of(doc)
    assert all("volumeMounts" not in t[2]["container"] for t in tasks_of(doc).values())


def test_dataset_on_a_pods_own_disk_is_refused(chain):
    catalog = Catalog(
        {
            "{name}": {"type": "pandas.ParquetDataset", "filepath": "data/{name}.pq"},
            "model": {"type": "pickle.PickleDataset", "filepath": "/tmp/model.pkl"},
            "mem": {"type": "MemoryDataset"},
        }
    )
    with pytest.raises(GroupingError, match=r"'model' at '/tmp/model\.pkl'"):
        build_manifest(chain, "__default__", catalog, ArgoSettings(), "argo")


def test_namespace_grouping_of_a_namespaced_pipeline(catalog):
    pipe = Pipeline(
        [
            node("raw", "a", "load", namespace="extraction"),
            node("a", "m", "fit", namespace="science"),
            node("m", "b", "predict", namespace="science"),
            node(["b", "a"], "c", "report", namespace="viz"),
        ]
    )
    is_mem = Catalog(
        {
            "m": {"type": "MemoryDataset"},
            "{x}": {"type": "json.JSONDataset", "filepath": "data/{x}"},
        }
    )
    doc = build_manifest(pipe, "science", is_mem, ArgoSettings(group_by="namespace"), "argo")
    validate(doc)
    assert_matches_pipeline(doc, pipe)
    assert set(tasks_of(doc)) == {"extraction", "science", "viz"}
    assert doc["metadata"]["name"] == "dqm-playground-ds-science"


def test_pipeline_inputs_must_exist_in_every_pod(catalog):
    pipe = Pipeline([node(["split", "preset"], "a", "one"), node("a", "b", "two")])
    config = {
        "preset": {"type": "MemoryDataset", "data": {}},
        "{x}": {"type": "json.JSONDataset", "filepath": "data/{x}"},
    }
    with pytest.raises(GroupingError, match=r"inputs \['split'\]"):
        build_manifest(
            pipe,
            "p",
            Catalog({**config, "split": {"type": "MemoryDataset"}}),
            ArgoSettings(),
            "argo",
        )
    validate(build_manifest(pipe, "p", Catalog(config), ArgoSettings(), "argo"))


def _valid_doc(chain, catalog):
    doc = build_manifest(chain, "__default__", catalog, ArgoSettings(), "argo")
    validate(doc)
    return doc


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            lambda s: s["templates"][1].update(retryStratgy={"limit": 1}),
            "retryStratgy: not an Argo field",
        ),
        (lambda s: s["templates"][1]["container"].update(resources={"requests": 5}), "resources"),
        (
            lambda s: s["templates"][0]["dag"]["tasks"][1].update(dependencies=["nope"]),
            "unknown dependency",
        ),
        (lambda s: s["templates"][0]["dag"]["tasks"][0].update(dependencies=["upload"]), "cycle"),
        (
            lambda s: s["templates"][0]["dag"]["tasks"][0].update(template="gone"),
            "unknown template",
        ),
        (
            lambda s: s["templates"][1]["container"].update(image="{{workflow.parameters.img}}"),
            "img",
        ),
        (lambda s: s.update(volumes=[]), "undeclared volume"),
        (lambda s: s.update(entrypoint="start"), "entrypoint"),
    ],
)
def test_validation_catches(chain, catalog, breakage, message):
    doc = copy.deepcopy(_valid_doc(chain, catalog))
    breakage(doc["spec"])
    with pytest.raises(ManifestError, match=message):
        validate(doc)


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match="unknown key"):
        ArgoSettings.from_config({"imgae": "x"})
    with pytest.raises(ValueError, match="group_by"):
        ArgoSettings.from_config({}, group_by="pods")
    assert ArgoSettings.from_config({"image": "a"}, image="b", name=None).image == "b"


REGISTERED = [
    "__default__",
    "data_extraction",
    "data_processing",
    "data_science",
    "data_visualization",
    "prediction_upload",
]


@pytest.fixture(scope="module")
def project():
    """The real project's pipelines, `argo` catalog (resolver too) and settings, loaded once."""
    pipelines, config, argo = load_project(PROJECT, "argo")
    clean = {
        k: {key: v for key, v in entry.items() if key != "credentials"}
        for k, entry in config.items()
        if isinstance(entry, dict) and not k.startswith("_")
    }
    resolver = CatalogConfigResolver(clean)
    return dict(pipelines), Catalog(config), ArgoSettings.from_config(argo), resolver


def _types(entry) -> list[str]:
    """Every dataset type in a resolved entry, wrapped datasets (CachedDataset) included."""
    if not isinstance(entry, dict):
        return []
    own = [entry["type"]] if isinstance(entry.get("type"), str) else []
    inner = entry.get("dataset")
    return own + (_types(inner) if isinstance(inner, dict) else [inner] if inner else [])


def _loadable(ds_type: str) -> bool:
    cls, _ = parse_dataset_definition({"type": ds_type})
    return typing.get_type_hints(cls.load).get("return") is not typing.NoReturn


def assert_handed_over_data_can_be_read_by_the_next_pod(doc, pipeline: Pipeline, resolver):
    """Independently of the generator's own classification: whatever goes from one task to
    another has a catalog entry (not memory) and every type along it can load."""
    task_of = {n: name for name, (names, _, _) in tasks_of(doc).items() for n in names}
    producer = {ds: n.name for n in pipeline.nodes for ds in n.outputs}
    for consumer in pipeline.nodes:
        for ds in consumer.inputs:
            if ds not in producer or task_of[producer[ds]] == task_of[consumer.name]:
                continue
            entry = resolver.resolve_pattern(ds)
            types = _types(entry)
            assert types and not any(t.endswith("MemoryDataset") for t in types), (ds, entry)
            assert all(_loadable(t) for t in types), f"{ds!r} ({types}) cannot be loaded back"


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_pipeline(project, name):
    """Each registered pipeline becomes a valid template: every node once, edges from Kedro,
    nothing kept in memory (MemoryDatasets, figures cached for the report) split across pods."""
    pipelines, catalog, settings, resolver = project
    doc = build_manifest(
        pipelines[name], name, catalog, settings, "argo", extraction_partitions=PARTITIONS
    )
    validate(doc)
    assert_matches_pipeline(doc, pipelines[name])
    assert_handed_over_data_can_be_read_by_the_next_pod(doc, pipelines[name], resolver)
    cron = build_manifest(
        pipelines[name], name, catalog, settings, "argo", "cron", extraction_partitions=PARTITIONS
    )
    validate(cron)
    assert_matches_pipeline(cron, pipelines[name])


def test_no_registered_pipeline_is_left_out(project):
    pipelines, catalog, settings, _ = project
    assert set(REGISTERED) <= set(pipelines)
    for name in sorted(set(pipelines) - set(REGISTERED)):  # pipelines added since
        doc = build_manifest(
            pipelines[name], name, catalog, settings, "argo", extraction_partitions=PARTITIONS
        )
        validate(doc)
        assert_matches_pipeline(doc, pipelines[name])


def test_one_pod_per_node_is_refused_on_the_real_pipeline(project):
    """The project hands MemoryDatasets between nodes: --group-by none must fail loudly."""
    pipelines, catalog, _, _ = project
    settings = ArgoSettings.from_config({}, group_by="none")
    with pytest.raises(GroupingError, match="in-memory data would be lost between pods"):
        build_manifest(pipelines["__default__"], "__default__", catalog, settings, "argo")


def test_cli_on_the_registered_default_pipeline(tmp_path, capsys):
    """The real project: every node of __default__ exactly once, edges from its dependencies."""
    from kedro.framework.project import pipelines

    out = tmp_path / "argo" / "workflow-template.yaml"
    assert (
        main(
            ["--project-path", str(PROJECT), "--env", "argo", "--image", "reg/x:2", "-o", str(out)]
        )
        == 0
    )
    doc = yaml.safe_load(out.read_text())
    validate(doc)
    assert_matches_pipeline(doc, pipelines["__default__"])
    assert doc["spec"]["arguments"]["parameters"][0]["value"] == "reg/x:2"
    assert "wrote" in capsys.readouterr().err

    assert (
        main(
            [
                "--project-path",
                str(PROJECT),
                "--pipeline",
                "data_extraction",
                "--kind",
                "cron",
                "--schedule",
                "*/30 * * * *",
            ]
        )
        == 0
    )
    cron = yaml.safe_load(capsys.readouterr().out)  # stdout holds the manifest and nothing else
    assert cron["kind"] == "CronWorkflow" and cron["spec"]["schedules"] == ["*/30 * * * *"]
    assert_matches_pipeline(cron, pipelines["data_extraction"])


def test_cli_errors_are_one_line(capsys):
    assert main(["--project-path", str(PROJECT), "--pipeline", "nope"]) == 2
    assert "no pipeline 'nope'" in capsys.readouterr().err
    assert main(["--project-path", str(PROJECT), "--env", "nowhere"]) == 2
    assert "no configuration environment" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0


def test_cluster_manifests_match_the_generator_defaults():
    """argo/*.yaml (applied by hand) name the claim, Secret, port and paths the generator uses."""
    config = yaml.safe_load((PROJECT / "conf" / "argo" / "argo.yml").read_text())
    settings = ArgoSettings.from_config(config)
    (claim,) = yaml.safe_load_all((PROJECT / "argo" / "storage.yaml").read_text())
    assert claim["metadata"]["name"] == settings.data_volume_claim
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    (secret,) = yaml.safe_load_all(
        (PROJECT / "argo" / "credentials-secret.example.yaml").read_text()
    )
    assert secret["metadata"]["name"] == settings.credentials_secret
    assert "credentials.yml" in secret["stringData"]
    deployment, service = yaml.safe_load_all((PROJECT / "argo" / "trigger.yaml").read_text())
    assert service["metadata"]["name"] == "dqm-playground-ds"
    assert service["spec"]["ports"][0]["port"] == 8888
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "dqm_playground_ds.deploy.trigger"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == f"{CONTAINER_PROJECT}/data"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == settings.data_volume_claim
    assert volumes["credentials"]["secret"]["secretName"] == settings.credentials_secret


# ------------------------------------------------------------------------------------------------
# extraction fan-out over the input files
# ------------------------------------------------------------------------------------------------
def _fan_out_doc(project, shards=3, name="__default__", **kw):
    pipelines, catalog, settings, _ = project
    settings = dataclasses.replace(settings, extraction_shards=shards)
    kw = {"extraction_partitions": PARTITIONS, **kw}
    return build_manifest(pipelines[name], name, catalog, settings, "argo", **kw)


@pytest.mark.parametrize("name", ["__default__", "data_extraction"])
def test_fan_out_list_then_shards_then_join_then_extraction(project, name):
    doc = _fan_out_doc(project, name=name)
    validate(doc)
    assert_matches_pipeline(doc, project[0][name])  # every Kedro node still exactly once
    spec = spec_of(doc)
    dag = {t["name"]: t for t in spec["templates"][0]["dag"]["tasks"]}
    templates = {t["name"]: t for t in spec["templates"]}
    assert "dependencies" not in dag["list-inputs"]
    shard = dag["extract-shard"]
    assert shard["dependencies"] == ["list-inputs"]
    assert shard["withParam"] == "{{tasks.list-inputs.outputs.result}}"
    assert shard["arguments"]["parameters"] == [{"name": "shard", "value": "{{item.shard}}"}]
    assert dag["join-shards"]["dependencies"] == ["extract-shard"]
    extraction = next(
        n for n, (nodes, _, _) in tasks_of(doc).items() if "extract_histograms" in nodes
    )
    assert "join-shards" in dag[extraction]["dependencies"]
    args = templates["extract-shard"]["container"]["args"]
    assert args[0] == "extract" and args[args.index("--shard") + 1] == "{{inputs.parameters.shard}}"
    assert templates["extract-shard"]["inputs"] == {"parameters": [{"name": "shard"}]}
    assert templates["extract-shard"]["container"]["resources"]["requests"]["cpu"] == "2"
    listing = templates["list-inputs"]["container"]["args"]
    assert listing[listing.index("--shards") + 1] == "{{workflow.parameters.extraction-shards}}"
    params = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    assert params["extraction-shards"] == "3"
    for step in ("list-inputs", "extract-shard", "join-shards"):  # every pod sees the volume
        mounts = templates[step]["container"]["volumeMounts"]
        assert {"name": "data", "mountPath": f"{CONTAINER_PROJECT}/data"} in mounts


def test_no_fan_out_without_the_extraction_node_or_shards(project):
    doc = _fan_out_doc(project, name="data_science")
    assert "list-inputs" not in {t["name"] for t in spec_of(doc)["templates"]}
    doc = _fan_out_doc(project, shards=0)
    assert "list-inputs" not in {t["name"] for t in spec_of(doc)["templates"]}


def test_fan_out_needs_shared_partitions(project):
    with pytest.raises(GroupingError, match="partition store"):
        _fan_out_doc(project, extraction_partitions=None)
    with pytest.raises(GroupingError, match="own disk"):
        _fan_out_doc(project, extraction_partitions="/tmp/parts")
    with pytest.raises(ValueError, match="extraction_shards"):
        ArgoSettings.from_config({"extraction_shards": -1})


def test_fan_out_store_from_the_catalog_an_object_store_or_the_old_partitions_key(project):
    from dqm_playground_ds.deploy.argo import store_location

    source = {"type": "x", "partitions": "data/02_intermediate/old"}
    store = {"type": "dqm_playground_ds.datasets.HistogramStoreDataset", "path": "s3://b/parts"}
    assert (
        store_location({"raw_histogram_sources": source, "histogram_store": store})
        == "s3://b/parts"
    )
    assert store_location({"raw_histogram_sources": source}) == "data/02_intermediate/old"
    assert store_location({"raw_histogram_sources": {"type": "x"}}) is None
    validate(_fan_out_doc(project, extraction_partitions="s3://b/parts"))  # shared by every pod
