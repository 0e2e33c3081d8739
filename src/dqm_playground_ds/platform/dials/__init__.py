"""DIALS, the CMS DQM platform that grew out of the playground, as a histogram source.

``DialsClient`` speaks the DIALS v1 API with ``requests`` (why not ``cmsdials``: see ``client.py``);
``DialsSource`` is the extraction pipeline's ``kind: dials`` source; the local server for tests and
offline runs is ``dqm_playground_ds.platform.dials.server`` (extra ``server``).
"""

from dqm_playground_ds.platform.dials.client import DIALS_TOKEN_ENV, DIALS_URL, DialsClient
from dqm_playground_ds.platform.dials.source import DialsSource

__all__ = ["DIALS_TOKEN_ENV", "DIALS_URL", "DialsClient", "DialsSource"]
