"""Command line of the local platform server.

    python -m dqm_playground_ds.platform.server --db data/playground.sqlite \\
        --load 'data/01_raw/dqmio/*.root' --task conf/playground/task.yml --port 8000

The token comes from ``--token`` or ``DQM_PLAYGROUND_TOKEN``. Faults come from the ``--latency``...
options or ``DQM_PLAYGROUND_FAULTS`` (options win). ``--port 0`` picks a free port; the first line on
stdout is ``serving http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from dqm_playground_ds.platform.server.api import create_app
from dqm_playground_ds.platform.server.faults import FaultPlan
from dqm_playground_ds.platform.server.runner import bind, make_server
from dqm_playground_ds.platform.server.store import Store, expand_paths, read_histogram_file

log = logging.getLogger("dqm_playground_ds.platform.server")

FAULT_OPTIONS = {
    "latency": "seconds added to every /api/ request",
    "error_rate": "probability of a 503",
    "rate_limit": "probability of a 429 with Retry-After",
    "retry_after": "seconds announced by Retry-After",
    "drop_rate": "probability of a connection closed before any answer",
    "truncate_rate": "probability of an answer cut mid-body (after the request was processed)",
    "malformed_rate": "probability of a well-framed 200 holding cut JSON",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m dqm_playground_ds.platform.server",
        description="A local ML4DQM playground server (FastAPI + SQLite) for tests and offline use.",
    )
    p.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    p.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="PATH",
        help="histogram table (.parquet), legacy CSV or DQMIO .root; globs allowed; "
        "repeatable; a file already in --db is skipped",
    )
    p.add_argument("--me", action="append", help="only load these MEs (names or regexes)")
    p.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="YAML",
        help="create a task from a split file (name/train/apply); repeatable",
    )
    p.add_argument("--golden", help="golden JSON: fills the certification endpoints")
    p.add_argument("--data-dir", help="folder that histogram_data_files/discover/ scans")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", default=os.environ.get("DQM_PLAYGROUND_TOKEN"))
    p.add_argument("--admin-token", help="token allowed to call discover/")
    p.add_argument(
        "--file-cache-ttl",
        type=float,
        default=60.0,
        help="seconds histogram_data_files GETs stay cached (the platform's quirk)",
    )
    p.add_argument(
        "--extension",
        action="append",
        default=[],
        choices=["predictions", "tasks"],
        help="serve the project's contract beyond the deployed platform (advertised at "
        "/api/capabilities/): predictions = the upload payload, tasks = task creation; repeatable",
    )
    p.add_argument(
        "--parse-delay", type=float, default=0.0, help="seconds a background parse waits first"
    )
    for name, text in FAULT_OPTIONS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=float, help=text)
    p.add_argument("--fault-script", help="faults for the first requests, e.g. 'drop,429,ok'")
    p.add_argument("--seed", type=int, help="seed of the random faults")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not args.token:
        print("error: give --token or export DQM_PLAYGROUND_TOKEN", file=sys.stderr)
        return 2
    faults = FaultPlan.from_env()
    overrides = {k: getattr(args, k) for k in FAULT_OPTIONS if getattr(args, k) is not None}
    if args.fault_script:
        overrides["script"] = [s.strip() for s in args.fault_script.split(",") if s.strip()]
    if args.seed is not None:
        overrides["seed"] = args.seed
    faults.update(**overrides)

    store = Store(args.db)
    for path in expand_paths(args.load):
        table = read_histogram_file(path, args.me)
        added = store.load_histograms(table)
        log.info("%s: %d histograms loaded", path, added)
    for path in args.task:
        tid = store.load_task_file(path)
        log.info("%s: task %d created", path, tid)
    if args.golden:
        with open(args.golden) as f:
            store.load_golden(json.load(f))
    app = create_app(
        store,
        tokens=[args.token],
        admin_tokens=[args.admin_token] if args.admin_token else [],
        faults=faults,
        data_dir=args.data_dir,
        file_cache_ttl=args.file_cache_ttl,
        extensions=args.extension,
        parse_delay=args.parse_delay,
    )
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    n1 = store.scalar("SELECT COUNT(*) FROM lumisection_histograms_1d")
    n2 = store.scalar("SELECT COUNT(*) FROM lumisection_histograms_2d")
    nt = store.scalar("SELECT COUNT(*) FROM tasks")
    print(f"serving http://{host}:{port}", flush=True)
    active = {k: v for k, v in faults.as_dict().items() if v and k.endswith(("rate", "limit"))}
    if faults.latency or faults.script:
        active.update(latency=faults.latency, script=faults.script)
    log.info("%d 1D and %d 2D LS histograms, %d task(s); faults: %s", n1, n2, nt, active or "none")
    log.info("extensions: %s", ", ".join(args.extension) or "none (the deployed platform)")
    server = make_server(app, log_level="info" if args.log_level == "debug" else "warning")
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
