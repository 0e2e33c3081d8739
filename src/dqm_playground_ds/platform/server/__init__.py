"""A local ML4DQM playground server (FastAPI + SQLite): the client's test double and a user tool.

Start it with ``python -m dqm_playground_ds.platform.server --help``, or in a thread with
:class:`LocalPlatform`. Needs the ``server`` extra (fastapi, uvicorn).
"""

from dqm_playground_ds.platform.server.api import create_app
from dqm_playground_ds.platform.server.faults import FaultPlan
from dqm_playground_ds.platform.server.runner import LocalPlatform
from dqm_playground_ds.platform.server.store import Store

__all__ = ["FaultPlan", "LocalPlatform", "Store", "create_app"]
