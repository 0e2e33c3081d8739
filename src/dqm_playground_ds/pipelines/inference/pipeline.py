from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.pipelines.inference.nodes import (
    certify_inferred,
    judge_new_runs,
    prepare_new_lumisections,
    record_batch,
    score_new_lumisections,
    select_model,
    select_new_runs,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                select_model,
                inputs=["frozen_models", "params:inference"],
                outputs="inference_model",
                name="select_model",
            ),
            Node(
                select_new_runs,
                inputs=[
                    "histograms",
                    "inference_scored_runs",
                    "inference_model",
                    "params:inference",
                ],
                outputs="new_histograms",
                name="select_new_runs",
            ),
            Node(
                prepare_new_lumisections,
                inputs=[
                    "new_histograms",
                    "inference_model",
                    "golden_json",
                    "dcs_json",
                    "params:data_processing",
                    "bad_runs",
                ],
                outputs=["new_features", "new_lumisections"],
                name="prepare_new_lumisections",
            ),
            Node(
                score_new_lumisections,
                inputs=["inference_model", "new_features", "new_lumisections"],
                outputs="new_predictions",
                name="score_new_lumisections",
            ),
            Node(
                judge_new_runs,
                inputs=["inference_model", "new_predictions"],
                outputs="new_run_predictions",
                name="judge_new_runs",
            ),
            Node(
                record_batch,
                inputs=["inference_model", "new_predictions", "new_run_predictions"],
                outputs=[
                    "inference_lumisection_predictions",
                    "inference_run_predictions",
                    "inference_scored_runs_batch",
                ],
                name="record_batch",
            ),
            Node(
                certify_inferred,
                inputs=[
                    "inference_model",
                    "inference_lumisection_predictions_previous",
                    "new_predictions",
                    "inference_run_predictions_previous",
                    "new_run_predictions",
                    "golden_json",
                    "dcs_json",
                ],
                outputs="inference_ml_certification",
                name="certify_inferred",
            ),
        ],
        tags=["inference"],
    )
