"""Production: extract the new DQMIO files, then apply the frozen model (no training).

What the CronWorkflow runs (``deploy/argo.py --kind cron``); a package so that Kedro finds it
when it is the only pipeline asked for (``kedro run --pipeline production``).
"""

from kedro.pipeline import Pipeline

from dqm_playground_ds.pipelines import data_extraction, inference


def create_pipeline(**kwargs: object) -> Pipeline:
    return data_extraction.create_pipeline() + inference.create_pipeline()


__all__ = ["create_pipeline"]
