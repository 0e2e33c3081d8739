"""``python -m dqm_playground_ds.extraction``: extract inputs into partitions without Kedro."""

from dqm_playground_ds.extraction.store import main

if __name__ == "__main__":
    raise SystemExit(main())
