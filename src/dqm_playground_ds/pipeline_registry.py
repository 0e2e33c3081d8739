"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from dqm_playground_ds.pipelines.data_science.pipeline import create_me_group_pipeline

# applied on their own (`kedro run --pipeline inference|production`, the CronWorkflow), never in
# a training run: `production` is extraction then inference with the frozen model; `me_group` is
# one ME group's share of train_strategies (the Argo fan-out runs it once per group)
ME_GROUP = "me_group"
NOT_IN_DEFAULT = ("inference", "production", ME_GROUP, "__default__")


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline package by name; ``__default__`` trains (every pipeline but those above)."""
    pipelines = find_pipelines(raise_errors=True)
    training = [p for name, p in pipelines.items() if name not in NOT_IN_DEFAULT]
    pipelines["__default__"] = sum(training, Pipeline([]))
    pipelines[ME_GROUP] = create_me_group_pipeline()
    return pipelines
