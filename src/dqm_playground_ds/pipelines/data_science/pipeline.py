from kedro.pipeline import Node, Pipeline

from dqm_playground_ds.pipelines.data_science.nodes import (
    certify_lumisections,
    evaluate,
    fit_me_group,
    inject_anomalies,
    judge_runs,
    score_injections,
    score_lumisection_parts,
    train_strategies,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                train_strategies,
                inputs=["me_features", "lumisections", "params:data_science", "me_group_fits"],
                outputs="strategy_models",
                name="train_strategies",
            ),
            Node(
                score_lumisection_parts,
                inputs=["strategy_models", "me_features", "lumisections", "params:data_science"],
                outputs=["lumisection_predictions", "me_scores"],
                name="score_lumisections",
            ),
            Node(
                judge_runs,
                inputs=["lumisection_predictions", "params:data_science"],
                outputs="run_predictions",
                name="judge_runs",
            ),
            Node(
                certify_lumisections,
                inputs=[
                    "lumisection_predictions",
                    "run_predictions",
                    "golden_json",
                    "dcs_json",
                    "params:data_science",
                ],
                outputs="ml_certification",
                name="certify_lumisections",
            ),
            Node(
                inject_anomalies,
                inputs=["histograms", "lumisections", "preprocessor", "params:data_science"],
                outputs=["injected_features", "injections"],
                name="inject_anomalies",
                tags=["evaluation"],
            ),
            Node(
                score_injections,
                inputs=["strategy_models", "injected_features", "injections", "me_features"],
                outputs="injection_scores",
                name="score_injections",
                tags=["evaluation"],
            ),
            Node(
                evaluate,
                inputs=["lumisection_predictions", "injection_scores", "params:data_science"],
                outputs=["metrics", "strategy_metrics", "roc_curves", "flagged_per_run"],
                name="evaluate",
                tags=["evaluation"],
            ),
        ],
        tags=["detection"],
    )


def create_me_group_pipeline(**kwargs: object) -> Pipeline:
    """One ME group's share of train_strategies (registered as ``me_group``, never in a default
    run): ``kedro run --pipeline me_group --params data_science.me_groups.group=i/N``."""
    return Pipeline(
        [
            Node(
                fit_me_group,
                inputs=["me_features", "lumisections", "params:data_science"],
                outputs="me_group_fits",
                name="fit_me_group",
            )
        ],
        tags=["detection"],
    )
