from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.pipelines.model_export.nodes import freeze_models


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                freeze_models,
                inputs=[
                    "strategy_models",
                    "preprocessor",
                    "lumisection_predictions",
                    "metrics",
                    "params:data_science",
                ],
                outputs="frozen_models",
                name="freeze_models",
            )
        ],
        tags=["models"],
    )
