"""The CronWorkflow runs extraction then inference with the frozen model, never training."""

from __future__ import annotations

import yaml

from dqm_playground_ds.deploy.argo import main
from tests.deploy.test_argo import PROJECT, assert_matches_pipeline, tasks_of


def test_the_default_cron_is_extraction_then_inference(capsys):
    from kedro.framework.project import pipelines

    assert main(["--project-path", str(PROJECT), "--env", "argo", "--kind", "cron"]) == 0
    cron = yaml.safe_load(capsys.readouterr().out)
    assert cron["kind"] == "CronWorkflow"
    assert cron["metadata"]["name"] == "dqm-playground-ds-production-cron"
    production = pipelines["production"]
    assert_matches_pipeline(cron, production)
    names = {n.name for n in production.nodes}
    assert {"select_model", "select_new_runs", "certify_inferred"} <= names
    assert not names & {"train_strategies", "fit_preprocessor", "freeze_models"}
    # inference reads what extraction wrote: it runs after it
    tasks = tasks_of(cron)
    infer = next(t for t, (nodes, _, _) in tasks.items() if "select_new_runs" in nodes)
    assert tasks[infer][1], "the inference task has no upstream (extraction) task"


def test_training_runs_do_not_apply_models_but_freeze_them():
    from kedro.framework.project import pipelines

    names = {n.name for n in pipelines["__default__"].nodes}
    assert "freeze_models" in names and "train_strategies" in names
    assert not names & {n.name for n in pipelines["inference"].nodes}
