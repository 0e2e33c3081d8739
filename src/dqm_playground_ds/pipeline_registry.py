"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# applied on their own (`kedro run --pipeline inference|production`, the CronWorkflow), never in
# a training run: `production` is extraction then inference with the frozen model
NOT_IN_DEFAULT = ("inference", "production", "__default__")


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline package by name; ``__default__`` trains (every pipeline but those above)."""
    pipelines = find_pipelines(raise_errors=True)
    training = [p for name, p in pipelines.items() if name not in NOT_IN_DEFAULT]
    pipelines["__default__"] = sum(training, Pipeline([]))
    return pipelines
