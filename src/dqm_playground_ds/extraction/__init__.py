"""Sources into the partitioned histogram store: one Parquet partition per input, resumable.

``store`` holds the engine (plan, workers, markers, pruning, the command line); ``sharding`` cuts
the list of inputs into disjoint shards for the Argo fan-out or an HTCondor job array.
"""

from dqm_playground_ds.extraction.store import (
    DONE_DIR,
    ExtractionError,
    Request,
    check_pattern,
    check_workers,
    extract_many,
    extract_one,
    extract_table,
    iter_partitions,
    main,
    partition_id,
    plan,
    read_partitions,
    write_partition,
)

__all__ = [
    "DONE_DIR",
    "ExtractionError",
    "Request",
    "check_pattern",
    "check_workers",
    "extract_many",
    "extract_one",
    "extract_table",
    "iter_partitions",
    "main",
    "partition_id",
    "plan",
    "read_partitions",
    "write_partition",
]
