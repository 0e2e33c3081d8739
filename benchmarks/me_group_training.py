"""Training fanned out over ME groups: time of each group's pod vs the whole fit in one pod.

The table of ``pipeline_scale`` (N LS x 10 1D MEs of 100 bins + 2 2D maps), the real nodes and the
parameters of ``conf/base``. In one process, measured in the same run:

(a) ``train_strategies`` alone (what one training pod does without the fan-out), per ``--jobs``;
(b) ``fit_me_group`` for each group ``i/N`` in turn (what each of N pods does; this machine has 2
    cores, so the groups run one after the other here and each is timed on its own);
(c) ``train_strategies`` given the N results (merge, combiners, thresholds: the training pod);
(d) what a group pod adds: loading the pickled features and writing its result.

The strategies from (b)+(c) are checked bit-identical to (a). The ideal wall time of the fan-out
is max(b) + (c) + (d) with one pod per group running at once: it pays when that is well below (a)
at the pod's n_jobs, i.e. when the fitting dominates and the groups balance.

    python benchmarks/me_group_training.py --n-ls 4000 --groups 2 4       # ~10 min on 2 cores
    python benchmarks/me_group_training.py --smoke                         # 2000 LS, 3 strategies
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_scale import RUN_LEN, _params, make_histograms


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _features(n_ls: int, map_size: tuple[int, int]):
    from dqm_playground_ds.pipelines.data_processing import nodes as proc
    from dqm_playground_ds.pipelines.data_processing.params import DataProcessingParams

    dp, _ = _params()
    hist = make_histograms(n_ls, map_size)
    runs = np.unique(hist["run"].to_numpy())
    n_train = max(3, round(0.7 * len(runs)))
    dp["split"] = {"name": "bench", "train": {"runs": runs[:n_train].tolist()},
                   "apply": {"runs": runs[n_train:].tolist()}}  # fmt: skip
    dp = DataProcessingParams.model_validate(dp)
    golden = {str(r): [[1, RUN_LEN]] for r in runs}
    split = proc.assign_split(proc.label_lumisections_node(hist, golden, {}, dp), None, dp)
    pre = proc.fit_preprocessor(hist, split, dp)
    return proc.build_features(hist, split, pre, dp)


def _same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(
        a[k].threshold == b[k].threshold and np.array_equal(a[k].oof_raw, b[k].oof_raw, True)
        for k in a
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ls", type=int, default=4000)
    parser.add_argument("--map-size", type=int, nargs=2, default=[32, 32], metavar=("NY", "NX"))
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1], help="n_jobs of (a)")
    parser.add_argument("--strategies", nargs="*", default=None, help="default: all in conf/base")
    parser.add_argument("--smoke", action="store_true", help="2000 LS, 3 strategies, 2 groups")
    args = parser.parse_args()
    if args.smoke:
        args.n_ls, args.groups = 2000, [2]
        args.strategies = args.strategies or ["reference", "two_level", "pca_gmm"]

    from dqm_playground_ds.pipelines.data_science import nodes as sci
    from dqm_playground_ds.pipelines.data_science.params import DataScienceParams

    features, ls = _features(args.n_ls, tuple(args.map_size))
    _, ds = _params()
    if args.strategies:
        ds["active_strategies"] = args.strategies

    def params(**kw):
        return DataScienceParams.model_validate({**ds, "n_jobs": 1, **kw})

    blob, _ = _timed(pickle.dumps, features, pickle.HIGHEST_PROTOCOL)
    _, t_load = _timed(pickle.loads, blob)
    print(f"{args.n_ls} LS, {len(ls['train'].to_numpy().nonzero()[0])} training LS, "
          f"{len(next(iter(features.values())).mes)} MEs, "
          f"{len(params().strategy_specs())} strategies; me_features pickle "
          f"{len(blob) / 1e6:.0f} MB, load {t_load:.2f} s")  # fmt: skip
    alone = {}
    for jobs in args.jobs:
        alone[jobs], t = _timed(sci.train_strategies, features, ls, params(n_jobs=jobs))
        print(f"(a) train_strategies, one pod, n_jobs={jobs}: {t:.1f} s")
        alone[jobs] = (alone[jobs], t)
    reference, t_alone = alone[args.jobs[0]]
    for n in args.groups:
        results, times = {}, []
        for i in range(n):
            part, t = _timed(
                sci.fit_me_group, features, ls, params(me_groups={"group": f"{i}/{n}"})
            )
            buf = io.BytesIO()
            (_, t_write) = _timed(pickle.dump, part, buf, pickle.HIGHEST_PROTOCOL)
            results.update(part)
            fit = next(iter(part.values()))
            times.append(t + t_load + t_write)
            print(f"(b) group {i}/{n}: {t:.1f} s fit + {t_load + t_write:.2f} s load/write "
                  f"({len(buf.getvalue()) / 1e6:.1f} MB), MEs {fit.mes}")  # fmt: skip
        merged, t_merge = _timed(sci.train_strategies, features, ls, params(), results)
        ideal = max(times) + t_merge
        print(f"(c) N={n}: train_strategies from the groups {t_merge:.1f} s; identical to (a): "
              f"{_same(reference, merged)}")  # fmt: skip
        print(f"    N={n}: groups sum {sum(times):.1f} s, max {max(times):.1f} s "
              f"(balance max/mean {max(times) / np.mean(times):.2f}); ideal wall with {n} pods "
              f"at once {ideal:.1f} s = {t_alone / ideal:.2f}x (a, n_jobs={args.jobs[0]})")  # fmt: skip


if __name__ == "__main__":
    main()
