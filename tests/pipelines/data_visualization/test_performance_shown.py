"""The performance the report shows counts an LS flagged by the quality cuts as found (score
+inf), through the data_science evaluation node and Kedro's own parameter validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro.validation.parameter_validator import ParameterValidator

from dqm_playground_ds.pipelines.data_science import create_pipeline as detection
from dqm_playground_ds.reporting.performance import real_metrics
from dqm_playground_ds.reporting.report import Report
from dqm_playground_ds.reporting.sections import ReportFigures, Section, performance_section

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"


def _predictions() -> pd.DataFrame:
    """A held-out run: 8 good LS below the threshold, a bad LS above it, and a bad LS that the
    quality cuts flag although its model score is the lowest of all."""
    n = 10
    label = ["good"] * 8 + ["bad", "bad"]
    quality = ["ok"] * 9 + ["low_stats"]
    score = np.r_[np.linspace(0.1, 0.8, 8), 5.0, 0.01]
    frames = []
    for split, run in (("train", 1), ("apply", 2)):
        frames.append(
            pd.DataFrame(
                {
                    "run": run,
                    "lumi": np.arange(1, n + 1),
                    "strategy": "s",
                    "score": score,
                    "threshold": 1.0,
                    "is_anomalous": (score > 1.0) | (np.array(quality) != "ok"),
                    "top_mes": [np.array(["A"])] * n,
                    "label": label if split == "apply" else ["good"] * n,
                    "split": split,
                    "quality": quality if split == "apply" else ["ok"] * n,
                }
            )
        )
    return pd.concat(frames, ignore_index=True).astype({"strategy": "string"})


def _evaluate() -> pd.DataFrame:
    pipe = detection().only_nodes("evaluate")
    raw = yaml.safe_load((CONF / "parameters_data_science.yml").read_text())
    raw["data_science"]["evaluation"] = {"n_bootstrap": 10, "roc_points": 20}
    params = ParameterValidator({"p": pipe}).validate_raw_params(raw)  # what `kedro run` does
    columns = ["sample", "run", "lumi", "anomaly_type", "me", "magnitude", "strategy", "score",
               "threshold", "quality", "top_me"]  # fmt: skip
    catalog = DataCatalog(
        {
            "lumisection_predictions": MemoryDataset(_predictions()),
            "injection_scores": MemoryDataset(pd.DataFrame(columns=columns)),
            "params:data_science": MemoryDataset(params["data_science"]),
        }
    )
    return SequentialRunner().run(pipe, catalog)["strategy_metrics"].load()


def test_quality_flagged_bad_ls_counts_as_found():
    metrics = _evaluate()
    real = real_metrics(metrics).set_index("strategy")
    assert real.loc["s", "auc"] == 1.0  # ranked first: +inf, not its model score
    assert real.loc["s", "wp_tpr"] == 1.0
    row = metrics[metrics["evaluation"] == "real"].iloc[0]
    assert row["n_pos_quality_flagged"] == 1
    report = Report("r")
    sec: Section = report.section("Detection performance", anchor="performance")
    performance_section(sec, metrics, ReportFigures())
    assert '<td class="num">1.000</td>' in report.to_html()
