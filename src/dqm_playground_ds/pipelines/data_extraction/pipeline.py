from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.pipelines.data_extraction.nodes import extract_histograms


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                extract_histograms,
                inputs=["raw_histogram_sources", "params:data_extraction"],
                outputs=["histograms", "file_index"],
                name="extract_histograms",
            ),
        ],
        tags=["extraction"],
    )
