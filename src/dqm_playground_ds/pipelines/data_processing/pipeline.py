from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.pipelines.data_processing.nodes import (
    assign_split,
    build_features,
    fit_preprocessor,
    label_lumisections_node,
    me_references,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                label_lumisections_node,
                inputs=[
                    "histograms",
                    "golden_json",
                    "dcs_json",
                    "params:data_processing",
                    "bad_runs",
                ],
                outputs="labelled_lumisections",
                name="label_lumisections",
            ),
            Node(
                assign_split,
                inputs=["labelled_lumisections", "split_definition", "params:data_processing"],
                outputs="split_lumisections",
                name="assign_split",
            ),
            Node(
                fit_preprocessor,
                inputs=["histograms", "split_lumisections", "params:data_processing"],
                outputs="preprocessor",
                name="fit_preprocessor",
            ),
            Node(
                build_features,
                inputs=[
                    "histograms",
                    "split_lumisections",
                    "preprocessor",
                    "params:data_processing",
                ],
                outputs=["me_features", "lumisections"],
                name="build_features",
            ),
            Node(
                me_references,
                inputs="preprocessor",
                outputs="me_references",
                name="me_references",
            ),
        ],
        tags=["processing"],
    )
