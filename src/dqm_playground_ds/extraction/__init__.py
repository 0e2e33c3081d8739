"""Sources into the partitioned histogram store: one Parquet partition per input, resumable.

``partitions`` is the store itself on any fsspec filesystem (atomic writes, markers, pruning,
reads with predicate push-down); ``store`` holds the extraction engine (plan, workers,
fingerprints, the command line); ``sharding`` cuts the list of inputs into disjoint shards for the
Argo fan-out or an HTCondor job array.
"""

from dqm_playground_ds.extraction.partitions import DONE_DIR, PartitionStore, as_store
from dqm_playground_ds.extraction.store import (
    ExtractionError,
    Request,
    check_pattern,
    check_workers,
    extract_many,
    extract_one,
    extract_table,
    extract_view,
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
    "PartitionStore",
    "Request",
    "as_store",
    "check_pattern",
    "check_workers",
    "extract_many",
    "extract_one",
    "extract_table",
    "extract_view",
    "iter_partitions",
    "main",
    "partition_id",
    "plan",
    "read_partitions",
    "write_partition",
]
