from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.pipelines.prediction_upload.nodes import build_prediction_payload


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_prediction_payload,
                inputs=["lumisection_predictions", "params:prediction_upload"],
                outputs="prediction_payload",
                name="build_prediction_payload",
            ),
        ],
        tags=["upload"],
    )
