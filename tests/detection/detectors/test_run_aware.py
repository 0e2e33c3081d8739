"""Run-aware detectors: a run's own calibration is not an anomaly, a departure from the run is."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dqm_playground_ds.detection.detectors import (
    ReferenceTest,
    RunContext,
    RunNeighbors,
    WithinRunDeviation,
)
from tests.detection_data import shape_1d

LS_PER_RUN = 12


def runs_with_calibration(n_runs: int, seed: int, spread: float = 2.0):
    """Counts of runs whose peak sits at a run-specific (sub-bin) position; groups = run."""
    rng = np.random.default_rng(seed)
    base = shape_1d()
    x = np.arange(base.size)
    rows, groups = [], []
    for r in range(n_runs):
        shift = rng.normal(0, spread)
        p = np.interp(x - shift, x, base)
        p /= p.sum()
        rows.append(rng.poisson(4000 * p, size=(LS_PER_RUN, base.size)))
        groups += [r] * LS_PER_RUN
    return np.vstack(rows).astype(float), np.asarray(groups)


@pytest.fixture(scope="module")
def train():
    return runs_with_calibration(30, seed=1)


def test_own_calibration_is_not_an_anomaly_a_departure_from_the_run_is(train):
    X, g = train
    new, ng = runs_with_calibration(6, seed=2, spread=4.0)  # runs with unusual calibration
    odd = new.copy()
    odd[3] = np.roll(odd[3], 3)  # one LS departs from its run
    within = WithinRunDeviation().fit(X, groups=g)
    s = within.anomaly_score(odd, groups=ng)
    others = np.delete(s, 3)
    assert s[3] > 5 * np.quantile(others, 0.95)
    # the pooled reference flags whole runs for their calibration, so the odd LS ranks lower
    pooled = ReferenceTest().fit(X, groups=g).anomaly_score(odd)
    assert (pooled > pooled[3]).sum() > (s > s[3]).sum()


def test_run_neighbors_scores_whole_runs(train):
    X, g = train
    det = RunNeighbors(n_neighbors=3).fit(X / X.sum(1, keepdims=True), groups=g)
    good, gg = runs_with_calibration(4, seed=3)
    bad = np.roll(good[:LS_PER_RUN], 4, axis=1)
    V = np.vstack([good, bad])
    V = V / V.sum(1, keepdims=True)
    groups = np.r_[gg, np.full(LS_PER_RUN, 99)]
    s = det.anomaly_score(V, groups=groups)
    for r in np.unique(groups):
        assert np.ptp(s[groups == r]) == 0  # one score per run
    assert s[groups == 99].min() > s[groups != 99].max()


@pytest.mark.parametrize("cls", [RunNeighbors, WithinRunDeviation])
def test_causal_mode_never_looks_at_the_future(cls, train):
    X, g = train
    if cls is RunNeighbors:
        X = X / X.sum(1, keepdims=True)
    det = cls(mode="causal").fit(X, groups=g)
    run = X[:LS_PER_RUN].copy()
    groups = np.zeros(LS_PER_RUN, int)
    before = det.anomaly_score(run, groups=groups)
    run[8:] = run[8:][:, ::-1]  # the end of the run changes
    after = det.anomaly_score(run, groups=groups)
    np.testing.assert_array_equal(before[:8], after[:8])
    assert not np.allclose(before[8:], after[8:])


def test_no_reference_gives_the_neutral_training_score(train):
    X, g = train
    det = WithinRunDeviation().fit(X, groups=g)
    single = det.anomaly_score(X[:1], groups=[7])  # a run with a single LS
    assert single[0] == det.neutral_ and np.isfinite(single[0])
    first = WithinRunDeviation(mode="causal").fit(X, groups=g).anomaly_score(X[:3], groups=[0] * 3)
    assert np.isfinite(first).all()


def test_bad_training_input_is_refused_or_logged(train, caplog):
    X, _ = train
    with pytest.raises(ValueError, match="single LS"):
        WithinRunDeviation().fit(X[:20], groups=np.arange(20))
    with caplog.at_level(logging.WARNING):
        det = RunNeighbors().fit(X / X.sum(1, keepdims=True), groups=np.zeros(len(X)))
    assert "one training run" in caplog.text
    assert np.isfinite(det.anomaly_score(X[:5] / X[:5].sum(1, keepdims=True))).all()
    with pytest.raises(ValueError, match="groups has 3 entries"):
        det.anomaly_score(X[:5], groups=[1, 2, 3])


@pytest.mark.parametrize("mode", ["run", "causal"])
def test_context_scores_an_ls_in_place_of_its_original(train, mode):
    """An injected LS scored with context equals scoring its run with the LS replaced."""
    X, g = train
    run = X[:LS_PER_RUN].copy()
    groups = np.zeros(LS_PER_RUN, int)
    injected = np.roll(run[5], 2)[None, :]
    replaced = run.copy()
    replaced[5] = injected[0]
    for det in (WithinRunDeviation(mode=mode).fit(X, groups=g),):
        direct = det.anomaly_score(replaced, groups=groups)[5]
        ctx = RunContext(run, groups, np.array([5]))
        via = det.anomaly_score(injected, groups=[0], context=ctx)[0]
        assert via == pytest.approx(direct)
    V = X / X.sum(1, keepdims=True)
    det = RunNeighbors(mode=mode).fit(V, groups=g)
    vr, vi = replaced / replaced.sum(1, keepdims=True), run / run.sum(1, keepdims=True)
    direct = det.anomaly_score(vr, groups=groups)[5]
    ctx = RunContext(vi, groups, np.array([5]))
    assert det.anomaly_score(vr[5:6], groups=[0], context=ctx)[0] == pytest.approx(direct)


def test_window_follows_a_drift_in_run_number():
    """With a drift over the year, a run is judged against the good runs of its time."""
    rng = np.random.default_rng(4)
    base = shape_1d()
    x = np.arange(base.size)

    def run(shift):
        p = np.interp(x - shift, x, base)
        return rng.poisson(4000 * p / p.sum(), size=(LS_PER_RUN, base.size)).astype(float)

    runs = np.arange(100, 160)
    drift = np.linspace(0, 6, len(runs))  # the peak walks 6 bins over 60 runs
    X = np.vstack([run(d) for d in drift])
    g = np.repeat(runs, LS_PER_RUN)
    V = X / X.sum(1, keepdims=True)
    late_shape_early = np.vstack([run(6.0), run(6.0)])  # run 101: a late shape early; 158 normal
    T = late_shape_early / late_shape_early.sum(1, keepdims=True)
    tg = np.repeat([101, 158], LS_PER_RUN)
    plain = RunNeighbors(n_neighbors=3).fit(V, groups=g).anomaly_score(T, groups=tg)
    windowed = RunNeighbors(n_neighbors=3, window=6).fit(V, groups=g).anomaly_score(T, groups=tg)
    assert plain[0] < 1.5 * plain[-1]  # the plain reference has seen that shape (late)
    assert windowed[0] > 5 * windowed[-1]  # the windowed one knows it is not normal in run 101
    with pytest.raises(ValueError, match="numeric run numbers"):
        RunNeighbors(window=2).fit(V[:48], groups=np.repeat(list("abcd"), 12)).anomaly_score(
            V[:12], groups=["a"] * 12
        )


@pytest.mark.parametrize("mode", ["run", "causal"])
def test_scoring_by_batches_of_whole_runs_equals_scoring_all_at_once(train, mode, monkeypatch):
    from dqm_playground_ds.detection.detectors import run_aware

    X, g = train
    test, tg = runs_with_calibration(9, seed=4)
    tg = tg[::-1].copy()  # runs not in order, interleaved below
    test = test[::-1].copy()
    perm = np.random.default_rng(2).permutation(len(test))
    test, tg = test[perm], tg[perm]
    # context: every LS of the runs, scored rows are half of them standing for themselves
    scored = np.arange(0, len(test), 2)
    ctx = RunContext(test, tg, scored)
    V, Vt = X / X.sum(1, keepdims=True), test / test.sum(1, keepdims=True)
    detectors = [
        (WithinRunDeviation(mode=mode, statistic="scan").fit(X, groups=g), test, ctx),
        (RunNeighbors(mode=mode).fit(V, groups=g), Vt, RunContext(Vt, tg, scored)),
    ]
    for det, data, context in detectors:
        whole = det.anomaly_score(data[scored], groups=tg[scored], context=context)
        alone = det.anomaly_score(data, groups=tg)
        monkeypatch.setattr(run_aware, "SCORE_CHUNK_ROWS", 2 * LS_PER_RUN)  # 2 runs a batch
        np.testing.assert_allclose(
            det.anomaly_score(data[scored], groups=tg[scored], context=context), whole, rtol=1e-9
        )
        np.testing.assert_allclose(det.anomaly_score(data, groups=tg), alone, rtol=1e-9)
        monkeypatch.undo()
    chunks = run_aware.run_chunks(np.repeat([3, 1, 2, 4], [5, 5, 20, 4]), 10)
    assert [c.tolist() for c in chunks] == [[1], [2], [3, 4]]


@pytest.mark.parametrize("mode", ["run", "causal"])
def test_fitting_by_batches_of_whole_runs_equals_fitting_all_at_once(train, mode, monkeypatch):
    from dqm_playground_ds.detection.detectors import run_aware

    X, g = train
    perm = np.random.default_rng(5).permutation(len(X))  # runs interleaved
    X, g = X[perm], g[perm]
    for statistic in ("chi2", "scan"):
        whole = WithinRunDeviation(mode=mode, statistic=statistic).fit(X, groups=g)
        monkeypatch.setattr(run_aware, "FIT_CHUNK_ROWS", 3 * LS_PER_RUN)  # 3 runs a batch
        batched = WithinRunDeviation(mode=mode, statistic=statistic).fit(X, groups=g)
        monkeypatch.undo()
        np.testing.assert_allclose(batched.dispersion_, whole.dispersion_, rtol=1e-12, atol=1e-18)
        assert batched.neutral_ == pytest.approx(whole.neutral_, rel=1e-9)
        assert batched.offset_ == pytest.approx(whole.offset_, rel=1e-9)
        np.testing.assert_allclose(
            batched.anomaly_score(X, groups=g), whole.anomaly_score(X, groups=g), rtol=1e-9
        )
