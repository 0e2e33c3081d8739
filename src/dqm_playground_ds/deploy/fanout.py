"""The pod commands of the Argo fan-out over input files (see :mod:`dqm_playground_ds.extraction.sharding`).

They read the same Kedro configuration as ``kedro run --env ENV`` (the extraction node's source
and store datasets and ``params:data_extraction``), so the partitions a shard pod writes are exactly
those the extraction node would write, and the node that follows finds every input done::

    python -m dqm_playground_ds.deploy.fanout list    --env argo --shards 8   # JSON for withParam
    python -m dqm_playground_ds.deploy.fanout extract --env argo --shard 3/8
    python -m dqm_playground_ds.deploy.fanout join    --env argo

``list`` writes the items file on the shared volume and prints ``[{"shard": "0/8"}, ...]`` (and
nothing else) on stdout: Argo's ``outputs.result``. ``extract`` never prunes; ``join`` prunes and
saves the file index, then the pipeline's extraction node builds the histogram table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from dqm_playground_ds.extraction import sharding

log = logging.getLogger(__name__)

SOURCE = "raw_histogram_sources"  # the extraction node's inputs (pipelines/data_extraction)
STORE = "histogram_store"
PARAMS = "data_extraction"
INDEX = "file_index"
EXTRACTION_NODE = "extract_histograms"
ITEMS_FILE = "data/02_intermediate/extraction_items.txt"


def parse_params(text: str | None) -> dict[str, Any]:
    """``kedro run --params`` syntax: ``a.b=1,c=x`` -> ``{"a": {"b": 1}, "c": "x"}``."""
    out: dict[str, Any] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"--params: {part!r} is not key=value")
        key, value = part.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def _context(project: Path, env: str, params: str | None) -> Any:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    session = KedroSession.create(
        project_path=project, env=env, runtime_params=parse_params(params)
    )
    return session.load_context()


def _source_and_request(context: Any) -> tuple[Any, Any, Any, Any]:
    """The extraction node's source, store, request and parameters, from the configuration."""
    from dqm_playground_ds.pipelines.data_extraction.nodes import partition_store
    from dqm_playground_ds.pipelines.data_extraction.params import ExtractionParams

    source = context.catalog.load(SOURCE)
    store = context.catalog.load(STORE) if STORE in context.catalog else None
    p = context.params.get(PARAMS)  # validated by Kedro into the node's ExtractionParams
    if not isinstance(p, ExtractionParams):
        p = ExtractionParams.model_validate(p or {})
    request = p.request()  # as the extraction node builds it: same fingerprints, same partitions
    out = partition_store(source, store)
    if not out:
        raise ValueError(
            f"no {STORE!r} in the catalog (nor a `partitions` folder on {SOURCE}): shards need "
            "one shared store to write into"
        )
    return source, out, request, p


def list_inputs(context: Any, shards: int, items_file: str) -> list[dict[str, str]]:
    """Step 1: the inputs, once, into the items file; the shard list for ``withParam``."""
    source, _, _, _ = _source_and_request(context)
    items = source.items()
    sharding.write_items(items, items_file)
    sizes = [len(s) for s in sharding.split(items, shards)]
    log.info("%d input(s) in %d shards (%s) listed in %s", len(items), shards, sizes, items_file)
    return sharding.shard_params(shards)


def extract_shard(context: Any, shard: sharding.Shard, items_file: str) -> int:
    """Step 2: one shard's inputs into the shared partition store; never prunes."""
    from dqm_playground_ds.extraction import extract_many

    source, store, request, p = _source_and_request(context)
    items = sharding.select(sharding.read_items(items_file), shard)
    log.info("shard %s: %d input(s)", shard, len(items))
    if not items:  # more shards than inputs: nothing to do (not an empty source)
        return 0
    index = extract_many(
        source,
        store,
        request,
        items=items,
        workers=p.jobs(store),
        retry_bad=p.retry_bad,
        progress=p.progress,
        prune=False,  # a shard knows only its inputs: pruning would delete the other shards'
    )
    return int((index["status"] == "bad").sum()) if len(index) else 0


def join_shards(context: Any, items_file: str) -> int:
    """Step 3: prune what no listed input owns, save the file index; errors if a shard is missing."""
    _, store, _, _ = _source_and_request(context)
    index = sharding.join_partitions(store, sharding.read_items(items_file))
    context.catalog.save(INDEX, index)
    return len(index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dqm_playground_ds.deploy.fanout", description=__doc__.splitlines()[0]
    )
    parser.add_argument("step", choices=["list", "extract", "join"])
    parser.add_argument("--env", default="argo", help="Kedro environment (default: %(default)s)")
    parser.add_argument("--params", default="", help="kedro run --params")
    parser.add_argument("--shards", type=int, help="list: number of shards")
    parser.add_argument("--shard", help="extract: shard i/N (0 <= i < N)")
    parser.add_argument("--items", default=ITEMS_FILE, help="items file (default: %(default)s)")
    parser.add_argument("--project-path", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Kedro logs to stdout; keep it for the JSON
            context = _context(args.project_path.resolve(), args.env, args.params)
            if args.step == "list":
                if not args.shards or args.shards < 1:
                    raise ValueError("list needs --shards N with N >= 1")
                result: Any = list_inputs(context, args.shards, args.items)
            elif args.step == "extract":
                if not args.shard:
                    raise ValueError("extract needs --shard i/N")
                result = {
                    "bad": extract_shard(context, sharding.Shard.parse(args.shard), args.items)
                }
            else:
                result = {"inputs": join_shards(context, args.items)}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
