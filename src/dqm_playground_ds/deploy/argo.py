"""Generate an Argo ``WorkflowTemplate`` (or ``CronWorkflow``) for any registered Kedro pipeline.

One DAG task per group of nodes (see :mod:`.grouping`), each a pod of the project's image running
``kedro run --pipeline P --nodes a,b --env ENV``; DAG edges are the pipeline's dependencies.
Image, environment and run-time ``--params`` are workflow parameters, so one template serves
every release. With ``extraction_shards: N`` the extraction fans out over the input files: a
``list-inputs`` pod, N ``extract-shard`` pods (``withParam``), a ``join-shards`` pod that prunes and
builds the file index, then the extraction node's task as usual (see :mod:`.fanout`). Deployment settings (image, volume, secret, retries, resources per node tag,
schedule) come from ``conf/<env>/argo.yml``; command-line options override them::

    python -m dqm_playground_ds.deploy.argo --env argo --pipeline __default__ \\
        --image registry.example.org/dqm/dqm-playground-ds:1.0 -o argo/workflow-template.yaml
    argo template create argo/workflow-template.yaml
    argo submit --from workflowtemplate/dqm-playground-ds -p env=argo --watch
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from kedro.pipeline import Pipeline

from dqm_playground_ds.deploy import CONTAINER_PROJECT, fanout
from dqm_playground_ds.deploy.grouping import (
    GROUP_BY,
    GroupingError,
    Task,
    argo_name,
    group_nodes,
    is_parameter,
)
from dqm_playground_ds.deploy.resources import DEFAULT, check_profiles, task_resources
from dqm_playground_ds.deploy.storage import Catalog, is_shared

log = logging.getLogger(__name__)

APP = "dqm-playground-ds"
KINDS = ("workflow-template", "cron")
# the periodic job: extract new files, apply the frozen model (no training; pipeline_registry.py)
CRON_PIPELINE = "production"
DATA_DIR = "data"  # the project folder the shared volume is mounted on, in every pod


@dataclass
class ArgoSettings:
    """Deployment settings: the keys of ``conf/<env>/argo.yml`` (all optional)."""

    image: str = f"{APP}:latest"
    image_pull_policy: str = "IfNotPresent"
    namespace: str | None = None
    name: str | None = None  # default: dqm-playground-ds[-<pipeline>]
    group_by: str = "memory"
    extraction_shards: int = 0  # > 0: fan the extraction out over that many pods (default N)
    science_me_groups: int = 0  # > 0: fan train_strategies' detectors out over N ME-group pods
    params: str = ""  # default of the `params` workflow parameter (kedro run --params)
    data_volume_claim: str | None = f"{APP}-data"  # null: no volume (object store via fsspec)
    credentials_secret: str | None = f"{APP}-credentials"  # null: no secret
    service_account: str | None = None
    retry_strategy: dict[str, Any] = field(
        default_factory=lambda: {
            "limit": 2,
            "retryPolicy": "Always",
            "backoff": {"duration": "30s", "factor": 2, "maxDuration": "10m"},
        }
    )
    resources: dict[str, Any] = field(
        default_factory=lambda: {
            DEFAULT: {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
        }
    )
    cron: dict[str, Any] = field(
        default_factory=lambda: {
            "schedules": ["0 */6 * * *"],
            "timezone": "UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
        }
    )
    workflow_spec: dict[str, Any] = field(default_factory=dict)  # extra Argo spec fields, verbatim

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> ArgoSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"argo.yml: unknown key(s) {sorted(unknown)}; known {sorted(known)}")
        values = {**config, **{k: v for k, v in overrides.items() if v is not None}}
        settings = cls(**values)
        if settings.group_by not in GROUP_BY:
            raise ValueError(f"group_by must be one of {GROUP_BY}, got {settings.group_by!r}")
        check_profiles(settings.resources)
        for key in ("extraction_shards", "science_me_groups"):
            value = getattr(settings, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be an integer >= 0, got {value!r}")
        return settings


def _workflow_spec(
    settings: ArgoSettings,
    env: str,
    templates: list[dict[str, Any]],
    fan_out: bool,
    me_groups: bool = False,
) -> dict[str, Any]:
    """Arguments, security, garbage collection, volumes and templates of the workflow."""
    spec: dict[str, Any] = {
        "entrypoint": "main",
        "arguments": {
            "parameters": [
                {"name": "image", "value": settings.image, "description": "container image"},
                {"name": "env", "value": env, "description": "Kedro configuration environment"},
                {
                    "name": "params",
                    "value": settings.params,
                    "description": 'kedro run --params, e.g. "data_extraction.workers=4"',
                },
                *(
                    [
                        {
                            "name": "extraction-shards",
                            "value": str(settings.extraction_shards),
                            "description": "extraction pods, one per shard of the input files",
                        }
                    ]
                    if fan_out
                    else []
                ),
                *(
                    [
                        {
                            "name": ME_GROUPS_PARAM,
                            "value": str(settings.science_me_groups),
                            "description": "training pods, one per ME group (0: none)",
                        }
                    ]
                    if me_groups
                    else []
                ),
            ]
        },
        "securityContext": {"runAsNonRoot": True},
        "podGC": {"strategy": "OnPodSuccess"},
        "ttlStrategy": {"secondsAfterSuccess": 86400, "secondsAfterFailure": 604800},
        "volumes": _volumes(settings),
        "templates": templates,
    }
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    if not spec["volumes"]:
        del spec["volumes"]
    spec.update(copy.deepcopy(settings.workflow_spec))

    return spec


def _metadata(
    settings: ArgoSettings, pipeline_name: str, kind: str, env: str, n_nodes: int, n_tasks: int
) -> dict[str, Any]:
    base = settings.name or (APP if pipeline_name == "__default__" else f"{APP}-{pipeline_name}")
    metadata: dict[str, Any] = {
        "name": argo_name(base + ("-cron" if kind == "cron" else ""), 253),
        "labels": {
            "app.kubernetes.io/name": APP,
            "app.kubernetes.io/component": "pipeline",
            f"{APP}/pipeline": argo_name(pipeline_name),
        },
        "annotations": {
            "workflows.argoproj.io/description": (
                f"Kedro pipeline {pipeline_name!r} of {APP}, {n_nodes} nodes "
                f"in {n_tasks} tasks (grouped by {settings.group_by})"
            ),
            f"{APP}/kedro-pipeline": pipeline_name,
            f"{APP}/kedro-env": env,
            f"{APP}/generated-by": "python -m dqm_playground_ds.deploy.argo",
        },
    }
    if settings.namespace:
        metadata["namespace"] = settings.namespace
    return metadata


def build_manifest(
    pipeline: Pipeline,
    pipeline_name: str,
    catalog: Catalog,
    settings: ArgoSettings,
    env: str,
    kind: str = "workflow-template",
    extraction_partitions: str | None = None,
) -> dict[str, Any]:
    """The manifest as a dict; raises GroupingError if data would be lost between pods.

    ``extraction_partitions``: the partition store's path or URL (where shard pods write), needed
    with ``settings.extraction_shards``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not pipeline.nodes:
        raise GroupingError(f"pipeline {pipeline_name!r} has no nodes")
    tasks = group_nodes(pipeline, catalog.is_memory, settings.group_by)
    shared_dirs = (DATA_DIR,) if settings.data_volume_claim else ()
    _check_storage(pipeline, tasks, catalog, shared_dirs)

    tags = {n.name: n.tags for n in pipeline.nodes}
    dag = [_dag_task(t) for t in tasks]
    templates = [
        {"name": "main", "dag": {"tasks": dag}},
        *(_task_template(t, pipeline_name, tags, settings) for t in tasks),
    ]
    fan_out = settings.extraction_shards > 0 and fanout.EXTRACTION_NODE in tags
    if fan_out:
        _check_fan_out(tasks, extraction_partitions, shared_dirs)
        fan_dag, fan_templates = _fan_out(tags, settings)
        extraction = next(t for t in tasks if fanout.EXTRACTION_NODE in t.nodes)
        for entry in dag:  # the extraction node's task runs after the join
            if entry["name"] == extraction.name:
                entry["dependencies"] = [*entry.get("dependencies", []), fan_dag[-1]["name"]]
        dag[:0] = fan_dag
        templates += fan_templates
    me_groups = settings.science_me_groups > 0 and TRAIN_NODE in tags
    if me_groups:
        _me_group_fan_out(pipeline, tasks, catalog, shared_dirs, dag, templates, settings)
    spec = _workflow_spec(settings, env, templates, fan_out, me_groups)
    metadata = _metadata(settings, pipeline_name, kind, env, len(pipeline.nodes), len(tasks))
    if kind == "cron":
        cron = {**copy.deepcopy(settings.cron), "workflowSpec": spec}
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": metadata,
            "spec": cron,
        }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": metadata,
        "spec": spec,
    }


def _dag_task(task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {"name": task.name, "template": task.name}
    if task.dependencies:
        out["dependencies"] = list(task.dependencies)
    return out


FAN_OUT_TASKS = ("list-inputs", "extract-shard", "join-shards")


def _check_fan_out(tasks: list[Task], partitions: str | None, shared_dirs: tuple[str, ...]) -> None:
    taken = {t.name for t in tasks} & set(FAN_OUT_TASKS)
    if taken:
        raise GroupingError(f"task names {sorted(taken)} are needed by the extraction fan-out")
    if not partitions:
        raise GroupingError(
            f"extraction_shards needs a partition store ({fanout.STORE!r} in the catalog): the "
            "shard pods write their partitions there"
        )
    if not is_shared(partitions, shared_dirs, CONTAINER_PROJECT):
        raise GroupingError(
            f"the extraction partitions {partitions!r} are on a pod's own disk: the shard pods "
            "and the join would not see each other's files; put them on the shared volume "
            "(data/...) or an object store"
        )
    items = fanout.ITEMS_FILE
    if not is_shared(items, shared_dirs, CONTAINER_PROJECT):
        raise GroupingError(f"the items file {items!r} must be on shared storage")


def _fan_out(
    tags: dict[str, Any], settings: ArgoSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """DAG tasks and templates of list -> N shards (withParam) -> join, before the extraction
    node's task (which then finds every input extracted and builds the table)."""
    listing, shard, join = FAN_OUT_TASKS
    node = fanout.EXTRACTION_NODE
    common = ["--env", "{{workflow.parameters.env}}", "--params", "{{workflow.parameters.params}}"]
    shard_resources = task_resources([(node, tags[node])], settings.resources)
    default_resources = task_resources([(listing, ())], settings.resources)
    templates = [
        _template(
            listing,
            _container(
                settings,
                ["python", "-m", "dqm_playground_ds.deploy.fanout"],
                ["list", *common, "--shards", "{{workflow.parameters.extraction-shards}}"],
                default_resources,
            ),
            settings,
            "list the input files once, print the shards (JSON) for withParam",
        ),
        {
            **_template(
                shard,
                _container(
                    settings,
                    ["python", "-m", "dqm_playground_ds.deploy.fanout"],
                    ["extract", *common, "--shard", "{{inputs.parameters.shard}}"],
                    shard_resources,
                ),
                settings,
                "extract one shard of the input files into its own partitions (never prunes)",
            ),
            "inputs": {"parameters": [{"name": "shard"}]},
        },
        _template(
            join,
            _container(
                settings,
                ["python", "-m", "dqm_playground_ds.deploy.fanout"],
                ["join", *common],
                default_resources,
            ),
            settings,
            "after every shard: prune partitions of removed inputs, build the file index",
        ),
    ]
    dag: list[dict[str, Any]] = [
        {"name": listing, "template": listing},
        {
            "name": shard,
            "template": shard,
            "dependencies": [listing],
            "withParam": f"{{{{tasks.{listing}.outputs.result}}}}",
            "arguments": {"parameters": [{"name": "shard", "value": "{{item.shard}}"}]},
        },
        {"name": join, "template": join, "dependencies": [shard]},
    ]
    return dag, templates


TRAIN_NODE = "train_strategies"  # pipelines/data_science: the node the ME groups feed
ME_GROUP_PIPELINE = "me_group"  # pipeline_registry.py: one group's share of its fitting
ME_GROUP_DATASET = "me_group_fits"
ME_GROUP_TASK = "fit-me-group"
ME_GROUPS_PARAM = "science-me-groups"


def _check_me_group_inputs(
    pipeline: Pipeline, train: Task, catalog: Catalog, shared_dirs: tuple[str, ...]
) -> list[str]:
    """The nodes making train_strategies' inputs; refuses inputs the group pods could not read."""
    node = next(n for n in pipeline.nodes if n.name == TRAIN_NODE)
    producer = {ds: n.name for n in pipeline.nodes for ds in n.outputs}
    task_of: dict[str, str] = {}
    if ME_GROUP_DATASET not in node.inputs:
        raise GroupingError(f"science_me_groups: node {TRAIN_NODE!r} does not read "
                            f"{ME_GROUP_DATASET!r}")  # fmt: skip
    for ds in node.inputs:
        if is_parameter(ds):
            continue
        info = catalog.info(ds)
        if info.memory or (info.location and not is_shared(info.location, shared_dirs,
                                                           CONTAINER_PROJECT)):  # fmt: skip
            raise GroupingError(
                f"science_me_groups: {ds!r} ({info.location or 'in memory'}) is not on shared "
                "storage: the ME group pods could not share it with the training pod"
            )
        if ds in producer and ds != ME_GROUP_DATASET:
            task_of[ds] = producer[ds]
    inside = sorted(ds for ds, n in task_of.items() if n in train.nodes)
    if inside:
        raise GroupingError(
            f"science_me_groups: {inside} are made in the training pod ({train.name!r}) itself, "
            "so no ME group pod can run between them and train_strategies; persist them and "
            "group the nodes so that train_strategies has its own task"
        )
    return sorted(set(task_of.values()))


def _me_group_fan_out(
    pipeline: Pipeline,
    tasks: list[Task],
    catalog: Catalog,
    shared_dirs: tuple[str, ...],
    dag: list[dict[str, Any]],
    templates: list[dict[str, Any]],
    settings: ArgoSettings,
) -> None:
    """N ``kedro run --pipeline me_group`` pods (``withSequence``) after the tasks making the
    features, before the training task, which then requires their N results."""
    if ME_GROUP_TASK in {t.name for t in tasks}:
        raise GroupingError(f"task name {ME_GROUP_TASK!r} is needed by the ME group fan-out")
    train = next(t for t in tasks if TRAIN_NODE in t.nodes)
    makers = _check_me_group_inputs(pipeline, train, catalog, shared_dirs)  # node names
    task_of = {n: t.name for t in tasks for n in t.nodes}
    deps = sorted({task_of[n] for n in makers})
    count = f"{{{{workflow.parameters.{ME_GROUPS_PARAM}}}}}"
    params = "{{workflow.parameters.params}}"
    tags = {n.name: n.tags for n in pipeline.nodes}
    args = ["--pipeline", ME_GROUP_PIPELINE, "--env", "{{workflow.parameters.env}}", "--params",
            f"{params},data_science.me_groups.group={{{{inputs.parameters.group}}}}"]  # fmt: skip
    resources = task_resources([(TRAIN_NODE, tags[TRAIN_NODE])], settings.resources)
    what = "fit every detector set for the MEs of one group (kedro run --pipeline me_group)"
    templates.append(
        {
            **_template(
                ME_GROUP_TASK,
                _container(settings, ["kedro", "run"], args, resources),
                settings,
                what,
            ),
            "inputs": {"parameters": [{"name": "group"}]},
        }
    )
    entry: dict[str, Any] = {"name": ME_GROUP_TASK, "template": ME_GROUP_TASK}
    if deps:
        entry["dependencies"] = deps
    entry["withSequence"] = {"count": count}  # N known up front: no listing pod needed
    entry["arguments"] = {"parameters": [{"name": "group", "value": f"{{{{item}}}}/{count}"}]}
    position = next(i for i, e in enumerate(dag) if e["name"] == train.name)
    dag.insert(position, entry)
    dag[position + 1]["dependencies"] = sorted({*dag[position + 1].get("dependencies", []),
                                                ME_GROUP_TASK})  # fmt: skip
    container = next(t for t in templates if t["name"] == train.name)["container"]
    i = container["args"].index("--params") + 1
    container["args"][i] += f",data_science.me_groups.expected={count}"


def _template(
    name: str, container: dict[str, Any], settings: ArgoSettings, what: str
) -> dict[str, Any]:
    return {
        "name": name,
        "metadata": {
            "labels": {"app.kubernetes.io/name": APP, f"{APP}/task": name},
            "annotations": {f"{APP}/step": what},
        },
        "retryStrategy": copy.deepcopy(settings.retry_strategy),
        "container": container,
    }


def _container(
    settings: ArgoSettings, command: list[str], args: list[str], resources: dict[str, Any]
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "image": "{{workflow.parameters.image}}",
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "args": args,
        "env": [
            {"name": "KEDRO_DISABLE_TELEMETRY", "value": "1"},
            {"name": "DQM_ARGO_WORKFLOW", "value": "{{workflow.name}}"},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if resources:
        container["resources"] = resources
    mounts: list[dict[str, Any]] = []
    if settings.data_volume_claim:
        mounts.append({"name": "data", "mountPath": f"{CONTAINER_PROJECT}/{DATA_DIR}"})
    if settings.credentials_secret:
        container["envFrom"] = [
            {"secretRef": {"name": settings.credentials_secret, "optional": True}}
        ]
        mounts.append(
            {
                "name": "credentials",
                # conf/<env>/credentials/credentials.yml matches Kedro's "credentials*/**" pattern
                "mountPath": f"{CONTAINER_PROJECT}/conf/{{{{workflow.parameters.env}}}}/credentials",
                "readOnly": True,
            }
        )
    if mounts:
        container["volumeMounts"] = mounts
    return container


def _task_template(
    task: Task, pipeline_name: str, tags: dict[str, Any], settings: ArgoSettings
) -> dict[str, Any]:
    args = ["--pipeline", pipeline_name, "--env", "{{workflow.parameters.env}}"]
    args += ["--nodes", ",".join(task.nodes), "--params", "{{workflow.parameters.params}}"]
    resources = task_resources(((n, tags[n]) for n in task.nodes), settings.resources)
    return {
        "name": task.name,
        "metadata": {
            "labels": {"app.kubernetes.io/name": APP, f"{APP}/task": task.name},
            "annotations": {f"{APP}/nodes": ",".join(task.nodes)},
        },
        "retryStrategy": copy.deepcopy(settings.retry_strategy),
        "container": _container(settings, ["kedro", "run"], args, resources),
    }


def _volumes(settings: ArgoSettings) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = []
    if settings.data_volume_claim:
        volumes.append(
            {"name": "data", "persistentVolumeClaim": {"claimName": settings.data_volume_claim}}
        )
    if settings.credentials_secret:
        volumes.append(
            {
                "name": "credentials",
                "secret": {
                    "secretName": settings.credentials_secret,
                    "optional": True,
                    "items": [{"key": "credentials.yml", "path": "credentials.yml"}],
                },
            }
        )
    return volumes


def _check_storage(
    pipeline: Pipeline, tasks: list[Task], catalog: Catalog, shared_dirs: tuple[str, ...]
) -> None:
    """A dataset handed between pods must sit where every pod sees it; inputs must exist."""
    task_of = {n: t.name for t in tasks for n in t.nodes}
    producer = {ds: n.name for n in pipeline.nodes for ds in n.outputs}
    missing = [
        ds
        for ds in sorted(pipeline.inputs())
        if not is_parameter(ds) and catalog.info(ds).memory and not catalog.info(ds).preset
    ]
    if missing:
        raise GroupingError(
            f"pipeline inputs {missing} have no catalog entry (or are MemoryDatasets without "
            "data): no node produces them, so every pod would start without them"
        )
    problems: list[str] = []
    for node in pipeline.nodes:
        for ds in node.inputs:
            if ds not in producer or task_of[producer[ds]] == task_of[node.name]:
                continue
            info = catalog.info(ds)
            if info.memory:
                continue  # grouping has already refused these
            if info.location is None:
                log.warning("cannot tell where %r (%s) is stored; assuming shared", ds, info.type)
            elif not is_shared(info.location, shared_dirs, CONTAINER_PROJECT):
                problems.append(f"{ds!r} at {info.location!r}")
    if problems:
        where = (
            f"below {shared_dirs[0]}/ (the shared volume)" if shared_dirs else "in an object store"
        )
        raise GroupingError(
            "datasets handed between pods are stored on a pod's own disk: "
            + ", ".join(problems)
            + f"; store them {where} in the environment's catalog"
        )


def load_project(project_path: Path, env: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Registered pipelines, the environment's catalog configuration and its ``argo.yml``."""
    from kedro.framework.project import pipelines, settings
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    conf_source = project_path / settings.CONF_SOURCE
    if not (conf_source / env).is_dir():
        raise FileNotFoundError(f"no configuration environment {conf_source / env}")
    args = dict(settings.CONFIG_LOADER_ARGS)
    patterns = {**args.pop("config_patterns", {}), "argo": ["argo*", "argo*/**"]}
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf_source), env=env, config_patterns=patterns, **args
    )
    return pipelines, dict(loader["catalog"]), dict(loader["argo"])


def generate(
    project_path: Path,
    pipeline_name: str,
    env: str,
    kind: str = "workflow-template",
    **overrides: Any,
) -> dict[str, Any]:
    """Load the project and build a validated manifest; ``overrides`` are ArgoSettings fields."""
    from dqm_playground_ds.deploy.validate import validate

    pipelines, catalog_config, argo_config = load_project(project_path, env)
    if pipeline_name not in pipelines:
        raise KeyError(f"no pipeline {pipeline_name!r}; registered: {sorted(pipelines)}")
    validate_output = overrides.pop("validate", True)
    if overrides.get("science_me_groups") and ME_GROUP_PIPELINE not in pipelines:
        raise KeyError(f"science_me_groups needs the {ME_GROUP_PIPELINE!r} pipeline registered")
    schedules = overrides.pop("schedules", None)
    settings = ArgoSettings.from_config(argo_config, **overrides)
    if schedules:
        settings.cron = {**settings.cron, "schedules": list(schedules)}
    doc = build_manifest(
        pipelines[pipeline_name],
        pipeline_name,
        Catalog(catalog_config),
        settings,
        env,
        kind,
        extraction_partitions=store_location(catalog_config),
    )
    if validate_output:
        validate(doc)
    return doc


def store_location(catalog_config: dict[str, Any]) -> str | None:
    """Where the extraction's partitions go: the store dataset's ``path``, else the source's
    deprecated ``partitions`` key."""
    for name, key in ((fanout.STORE, "path"), (fanout.SOURCE, "partitions")):
        entry = catalog_config.get(name)
        if isinstance(entry, dict) and entry.get(key):
            return str(entry[key])
    return None


def to_yaml(doc: dict[str, Any], command: str) -> str:
    header = f"# Generated by: {command}\n# Do not edit: regenerate (docs/deployment.md).\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dqm_playground_ds.deploy.argo",
        description=(
            "Generate an Argo WorkflowTemplate (or CronWorkflow) for a registered Kedro pipeline. "
            "Settings come from conf/<env>/argo.yml; options given here override them."
        ),
    )
    p.add_argument(
        "--pipeline",
        help=f"registered pipeline (default: __default__; with --kind cron: {CRON_PIPELINE})",
    )
    p.add_argument(
        "--env",
        default="argo",
        help="Kedro environment whose catalog the pods use (default: %(default)s)",
    )
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="workflow-template",
        help="manifest kind (default: %(default)s)",
    )
    p.add_argument("--image", help="default of the image parameter")
    p.add_argument(
        "--group-by", choices=GROUP_BY, help="how nodes become tasks (argo.yml default: memory)"
    )
    p.add_argument(
        "--extraction-shards",
        type=int,
        help="fan the extraction out over N pods (0: one pod; argo.yml: extraction_shards)",
    )
    p.add_argument(
        "--science-me-groups",
        type=int,
        help="fan train_strategies' detector fits out over N ME-group pods (0: in its own pod; "
        "argo.yml: science_me_groups)",
    )
    p.add_argument("--name", help="metadata.name (default: dqm-playground-ds[-<pipeline>][-cron])")
    p.add_argument("--namespace", help="metadata.namespace")
    p.add_argument("--params", help="default of the params parameter (kedro run --params)")
    p.add_argument(
        "--schedule", action="append", help="cron schedule, repeatable (with --kind cron)"
    )
    p.add_argument(
        "--project-path", type=Path, default=Path.cwd(), help="Kedro project (default: cwd)"
    )
    p.add_argument("-o", "--output", default="-", help="output file, '-' for stdout (default)")
    p.add_argument(
        "--no-validate", action="store_true", help="skip the structural validation (hera)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stdout = sys.stdout
    overrides: dict[str, Any] = {
        "image": args.image,
        "group_by": args.group_by,
        "extraction_shards": args.extraction_shards,
        "science_me_groups": args.science_me_groups,
        "name": args.name,
        "namespace": args.namespace,
        "params": args.params,
        "schedules": args.schedule,
        "validate": not args.no_validate,
    }
    try:
        # Kedro logs to stdout (rich handler): keep stdout for the manifest alone
        with contextlib.redirect_stdout(sys.stderr):
            pipeline = args.pipeline or (CRON_PIPELINE if args.kind == "cron" else "__default__")
            doc = generate(args.project_path.resolve(), pipeline, args.env, args.kind, **overrides)
    except (GroupingError, KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    command = "python -m dqm_playground_ds.deploy.argo " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    text = to_yaml(doc, command.strip())
    if args.output == "-":
        stdout.write(text)
    else:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        tasks = [t for t in _templates(doc) if "container" in t]
        print(
            f"wrote {out}: {doc['kind']} {doc['metadata']['name']}, {len(tasks)} tasks",
            file=sys.stderr,
        )
    return 0


def _templates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    return spec["templates"]


if __name__ == "__main__":
    sys.exit(main())
