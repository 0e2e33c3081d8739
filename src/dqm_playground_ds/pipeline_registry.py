"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# applied on their own (`kedro run --pipeline inference`, the CronWorkflow), never in a training run
NOT_IN_DEFAULT = ("inference",)


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline by name; ``__default__`` trains (all but inference); ``production`` is
    extraction then inference with the frozen model (what the CronWorkflow runs)."""
    pipelines = find_pipelines(raise_errors=True)
    training = [p for name, p in pipelines.items() if name not in NOT_IN_DEFAULT]
    pipelines["__default__"] = sum(training, Pipeline([]))
    pipelines["production"] = pipelines["data_extraction"] + pipelines["inference"]
    return pipelines
