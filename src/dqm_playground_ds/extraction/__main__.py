"""``python -m dqm_playground_ds.extraction``: extract inputs into partitions without Kedro."""

import sys

from dqm_playground_ds.extraction.store import main

sys.exit(main())
