"""Detection nodes: train every strategy, score LS, inject anomalies, evaluate, judge runs.

Parameters are :class:`~.params.DataScienceParams` (``params:data_science``); the domain work lives
in :mod:`dqm_playground_ds.detection` (strategies, predictions, assessment, verdicts, injection).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from dqm_playground_ds.detection.assessment import assess_strategies
from dqm_playground_ds.detection.injection import inject_table
from dqm_playground_ds.detection.me_groups import (
    MEGroupFit,
    TrainingPlan,
    fit_fingerprint,
    needed_sets,
    parse_group,
    partition_name,
    select_me_groups,
)
from dqm_playground_ds.detection.me_groups import fit_me_group as fit_me_group_sets
from dqm_playground_ds.detection.predictions import (
    INJECTION_SCORE_DTYPES,
    check_aligned,
    injection_predictions,
    me_score_table,
    own_rows,
    strategy_predictions,
    with_labels,
)
from dqm_playground_ds.detection.strategy import (
    Strategy,
    StrategyScores,
    assign_folds,
    fit_strategy,
)
from dqm_playground_ds.detection.verdicts import ml_certification, run_verdicts
from dqm_playground_ds.frame_parts import FrameParts, as_frame
from dqm_playground_ds.histogram_tables import HistogramTable
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.processing.labels import LumiMask
from dqm_playground_ds.processing.preprocessing import FeatureSet, HistogramPreprocessor
from dqm_playground_ds.processing.split import APPLY, TRAIN

log = logging.getLogger(__name__)


def _training_plan(
    me_features: dict[str, FeatureSet], lumisections: pd.DataFrame, params: DataScienceParams
) -> TrainingPlan:
    """The strategies, the good training rows and the out-of-fold rows with their run folds."""
    train_mask = lumisections["train"].to_numpy(dtype=bool)
    in_split = (lumisections["split"] == TRAIN).to_numpy(dtype=bool)
    scorable = lumisections["scorable"].to_numpy(dtype=bool) if "scorable" in lumisections else True
    oof_rows = np.flatnonzero(in_split & (scorable | train_mask))
    oof_folds = assign_folds(lumisections.iloc[oof_rows], params.calibration_folds)
    train_rows = np.flatnonzero(train_mask)
    folds = oof_folds[np.searchsorted(oof_rows, train_rows)]
    specs = tuple(params.strategy_specs())
    for spec in specs:
        if spec.preprocessing not in me_features:
            raise ValueError(f"strategy {spec.name!r}: preprocessing {spec.preprocessing!r} "
                             f"not among {sorted(me_features)}")  # fmt: skip
        check_aligned(me_features[spec.preprocessing], lumisections)
    return TrainingPlan(specs, train_rows, folds, oof_rows, oof_folds, params.seed)


def _group_cache(
    plan: TrainingPlan,
    me_features: dict[str, FeatureSet],
    results: dict[str, Any],
    expected: int,
) -> dict[str, Any]:
    """Detector sets merged from complete ME group results of these inputs, else nothing."""
    if not results and not expected:
        return {}
    fingerprint = fit_fingerprint(plan, me_features, needed_sets(plan, me_features))
    cache, notes = select_me_groups(results, fingerprint, expected)
    for note in notes:
        log.warning("me_group_fits: %s: ignored", note)
    if cache is None and expected:
        raise ValueError(
            f"me_groups.expected={expected}: no complete ME group results of the current inputs "
            f"in me_group_fits ({'; '.join(notes) or 'none saved'}); run `kedro run --pipeline "
            "me_group --params data_science.me_groups.group=i/N` for every i, or set expected: 0"
        )
    if cache is not None:
        log.info("me_group_fits: %d detector set(s) merged from the ME groups", len(cache))
    elif results:
        log.warning("me_group_fits: no complete set of the current inputs: fitting every ME here")
    return cache or {}


def train_strategies(
    me_features: dict[str, FeatureSet],
    lumisections: pd.DataFrame,
    params: DataScienceParams,
    me_group_fits: dict[str, Any] | None = None,
) -> dict[str, Strategy]:
    """Fit every active strategy on the good training LS, calibrated on out-of-fold scores.

    Every scorable LS of the training split (bad ones too) gets an out-of-fold score, by folds of
    whole runs, so that the real labels of training runs can judge the strategies. Detector sets
    come from ``me_group_fits`` (pipeline ``me_group``) when every group of these inputs is there.
    """
    plan = _training_plan(me_features, lumisections, params)
    cache = _group_cache(plan, me_features, me_group_fits or {}, params.me_groups.expected)
    models = {}
    jobs = params.jobs()
    for spec in plan.specs:
        models[spec.name] = fit_strategy(spec, me_features[spec.preprocessing], plan.train_rows,
                                         plan.folds, cache, plan.random_state, plan.oof_rows,
                                         plan.oof_folds, jobs)  # fmt: skip
        log.info("strategy %s: threshold %.4g", spec.name, models[spec.name].threshold)
    return models


def fit_me_group(
    me_features: dict[str, FeatureSet], lumisections: pd.DataFrame, params: DataScienceParams
) -> dict[str, MEGroupFit]:
    """The detector sets of one ME group (``me_groups.group``: ``i/N``), one partition of
    ``me_group_fits``: N such runs (pods) share the fitting of train_strategies."""
    if params.me_groups.group is None:
        raise ValueError(
            "fit_me_group: which ME group? kedro run --pipeline me_group --params "
            "data_science.me_groups.group=i/N (0 <= i < N)"
        )
    index, count = parse_group(params.me_groups.group)
    plan = _training_plan(me_features, lumisections, params)
    fit = fit_me_group_sets(plan, me_features, index, count, params.jobs())
    log.info("ME group %s: %d ME(s) %s, %d detector set(s)", fit.label, len(fit.mes), fit.mes,
             len(fit.sets))  # fmt: skip
    return {partition_name(index, count): fit}


def score_lumisections(
    strategy_models: dict[str, Strategy],
    me_features: dict[str, FeatureSet],
    lumisections: pd.DataFrame,
    params: DataScienceParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions per (LS, strategy) and the per-ME score table (training LS out of fold)."""
    predictions, scores = score_lumisection_parts(
        strategy_models, me_features, lumisections, params
    )
    return predictions.to_frame(), scores.to_frame()


def score_lumisection_parts(
    strategy_models: dict[str, Strategy],
    me_features: dict[str, FeatureSet],
    lumisections: pd.DataFrame,
    params: DataScienceParams,
) -> tuple[FrameParts, FrameParts]:
    """:func:`score_lumisections` as the pipeline runs it: every LS is scored here, and the two
    tables go to their datasets one strategy at a time (the per-ME table alone is LS x MEs x
    strategies rows: 13M at 100k LS), so neither is ever whole in memory."""
    keys = lumisections[["run", "lumi"]].reset_index(drop=True)
    scored = []
    cache: dict = {}  # strategies sharing detectors score them once
    for name, model in strategy_models.items():
        features = me_features[model.spec.preprocessing]
        check_aligned(features, lumisections)
        sc = model.anomaly_scores(features, cache=cache, n_jobs=params.jobs())
        scored.append((name, model, features, replace(sc, z=sc.z[:0])))  # z: not needed here
    del cache

    def predictions(name: str, model: Strategy, features: FeatureSet, sc: StrategyScores):
        frame = strategy_predictions(name, model, features, lumisections, sc,
                                     params.flag_quality_failures, params.me_scores_json)  # fmt: skip
        log.info("strategy %s: %d of %d LS flagged", name, int(frame["is_anomalous"].sum()),
                 len(frame))  # fmt: skip
        return with_labels(frame, lumisections)

    # detector columns in the order pd.concat of the parts would give them
    detectors = dict.fromkeys(d for _, m, _, _ in scored for _, d in m.columns)
    score_columns = ["run", "lumi", "strategy", "me", "score", *(f"raw_{d}" for d in detectors)]
    return (
        FrameParts([partial(predictions, *s) for s in scored]),
        FrameParts(
            [partial(me_score_table, m, sc, keys, n) for n, m, _, sc in scored], score_columns
        ),
    )


def inject_anomalies(
    histograms: HistogramTable | pd.DataFrame,
    lumisections: pd.DataFrame,
    preprocessor: HistogramPreprocessor,
    params: DataScienceParams,
) -> tuple[dict[str, FeatureSet], pd.DataFrame]:
    """Synthetic anomalies in held-out good LS (apply split, golden, quality ok), as features."""
    p = params.injection
    columns = ["sample", "run", "lumi", "anomaly_type", "me", "magnitude"]
    held = lumisections[
        (lumisections["split"] == APPLY)
        & (lumisections["label"] == "good")
        & (lumisections["quality"] == "ok")
    ]
    if not p.enabled or held.empty:
        log.warning("no injection: disabled or no held-out good LS (%d)", len(held))
        return {}, pd.DataFrame(columns=columns)
    rng = np.random.default_rng(params.seed)
    table, info = inject_table(histograms, held[["run", "lumi"]], list(p.types), p.n_per_type,
                               preprocessor.reference_, rng, {str(k): v for k, v in p.params.items()})  # fmt: skip
    features = preprocessor.transform(table, keys=info[["sample"]], key_columns=["sample"])
    for fs in features.values():
        fs.keys = info.copy()
    log.info("injected %d anomalies into %d held-out good LS", len(info), len(held))
    return features, info


def score_injections(
    strategy_models: dict[str, Strategy],
    injected_features: dict[str, FeatureSet],
    injections: pd.DataFrame,
    me_features: dict[str, FeatureSet] | None = None,
) -> pd.DataFrame:
    """Score of every injected sample under every strategy (never with out-of-fold lookups).

    Run-aware detectors score an injected LS in its run: the real LS of that run (``me_features``),
    the injected one in place of its original.
    """
    frames = []
    cache: dict = {}
    for name, model in strategy_models.items():
        features = injected_features.get(model.spec.preprocessing)
        if features is None or len(features) == 0:
            continue
        context = None
        if me_features and model.spec.preprocessing in me_features:
            ctx = me_features[model.spec.preprocessing]
            context = (ctx, own_rows(features, ctx))
        sc = model.anomaly_scores(features, use_oof=False, cache=cache, context=context)
        frames.append(injection_predictions(name, model, features, injections, sc))
    if not frames:
        extra = ["strategy", "score", "threshold", "quality", "top_me"]
        return pd.DataFrame(columns=[*injections.columns, *extra])
    return pd.concat(frames, ignore_index=True).astype(INJECTION_SCORE_DTYPES)


def evaluate(
    lumisection_predictions: pd.DataFrame | FrameParts,
    injection_scores: pd.DataFrame,
    params: DataScienceParams,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Metrics on real labels and on each injected anomaly type; the best strategy chosen.

    Returns (metrics.json, per-strategy table, ROC points, flags per run).
    """
    lumisection_predictions = as_frame(lumisection_predictions)
    return assess_strategies(
        lumisection_predictions,
        injection_scores,
        flag_quality_failures=params.flag_quality_failures,
        n_bootstrap=params.evaluation.n_bootstrap,
        roc_points=params.evaluation.roc_points,
        seed=params.seed,
        criteria=params.best_strategy,
    )


def judge_runs(
    lumisection_predictions: pd.DataFrame | FrameParts, params: DataScienceParams
) -> pd.DataFrame:
    """Per (run, strategy): run score, LS counts, flagged LS, run threshold and verdict."""
    lumisection_predictions = as_frame(lumisection_predictions)
    p = params.run_verdicts
    out = run_verdicts(lumisection_predictions, p.false_alarm_rate, p.min_flagged_lumisections,
                       p.min_flagged_fraction)  # fmt: skip
    for name, grp in out.groupby("strategy", observed=True):
        log.info("strategy %s: run verdicts %s", name, grp["verdict"].value_counts().to_dict())
    return out


def certify_lumisections(
    lumisection_predictions: pd.DataFrame | FrameParts,
    run_predictions: pd.DataFrame,
    golden_json: dict[str, Any],
    dcs_json: dict[str, Any] | None,
    params: DataScienceParams,
) -> dict[str, dict[str, list[list[int]]]]:
    """ML certification JSON per strategy: the LS it calls good (``certification.within``:
    ``none``, ``dcs`` or ``golden`` keeps only LS also in that mask)."""
    lumisection_predictions = as_frame(lumisection_predictions)
    within = params.certification.within
    mask = None
    if within != "none":
        chosen = golden_json if within == "golden" else dcs_json
        if not chosen:
            raise ValueError(f"certification.within={within}: the {within} JSON is empty")
        mask = LumiMask.from_json(chosen, name=f"{within} JSON", overlap="merge")
    return {
        str(name): ml_certification(lumisection_predictions, run_predictions, str(name), mask)
        for name in lumisection_predictions["strategy"].unique()
    }
