from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.pipelines.data_extraction.nodes import extract_histograms


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                extract_histograms,
                inputs={
                    "source": "raw_histogram_sources",
                    "params": "params:data_extraction",
                    "store": "histogram_store",
                },
                outputs=["histograms", "file_index"],
                name="extract_histograms",
            ),
        ],
        tags=["extraction"],
    )
