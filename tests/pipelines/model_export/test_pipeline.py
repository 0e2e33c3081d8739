"""model_export: every trained strategy is frozen (Isolation Forests included), one version per
training run, and the Kedro dataset writes folders the store loads back to identical scores."""

from __future__ import annotations

import numpy as np
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from dqm_playground_ds.datasets.frozen_models import FrozenModelsDataset
from dqm_playground_ds.pipelines.data_science import nodes as sci
from dqm_playground_ds.pipelines.data_science.params import DataScienceParams
from dqm_playground_ds.pipelines.model_export import create_pipeline
from tests.deploy import dials_kinds


def test_every_strategy_is_frozen_and_loads_back(tmp_path):
    hist, pre, features, ls = dials_kinds.generated()
    names = ["forest", "reconstruction_gmm", "run_aware"]
    params = {"seed": 3, "calibration_folds": 2,
              "strategies": {n: dials_kinds.KINDS[n] for n in names}}  # fmt: skip
    typed = DataScienceParams.model_validate(params)
    models = sci.train_strategies(features, ls, typed)
    preds, _ = sci.score_lumisections(models, features, ls, typed)
    catalog = DataCatalog(
        {
            "strategy_models": MemoryDataset(models),
            "preprocessor": MemoryDataset(pre),
            "lumisection_predictions": MemoryDataset(preds),
            "metrics": MemoryDataset({"strategies": {"forest": {"real": {"auc": 0.5}}}}),
            "params:data_science": MemoryDataset(typed),
            "frozen_models": FrozenModelsDataset(path=str(tmp_path)),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    store = catalog["frozen_models"].load()
    assert store.names() == sorted(names)
    assert len({store.versions(n)[0] for n in names}) == 1  # one version: this training run
    for name in names:
        model = store.load(name)
        variant = model.strategy.spec.preprocessing
        fresh = model.preprocessor.transform(hist, ls[["run", "lumi"]])[variant]
        got = model.strategy.anomaly_scores(fresh, use_oof=False).score
        want = models[name].anomaly_scores(features[variant], use_oof=False).score
        np.testing.assert_array_equal(got, want)
    assert store.load("forest").meta["metrics"] == {"real": {"auc": 0.5}}
