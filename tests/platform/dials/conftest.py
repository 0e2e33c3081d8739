"""A real local DIALS server on 127.0.0.1 (ephemeral port), loaded with the platform tests' table."""

from __future__ import annotations

import pytest

from dqm_playground_ds.platform.dials import DialsClient
from dqm_playground_ds.platform.dials.server import DEFAULT_DATASET, LocalDials
from tests.platform.helpers import make_table

TOKEN = "dials-test-token"
LIMITED = "ecal-only-token"
DATASET = DEFAULT_DATASET


@pytest.fixture(scope="session")
def dials_table():
    return make_table()


@pytest.fixture(scope="module")
def dials(dials_table):
    other = dials_table[dials_table["run"] == dials_table["run"].min()].assign(
        dataset="/Express/Run2018A-Express-v1/DQMIO"
    )
    server = LocalDials(
        {
            "tracker": __import__("pandas").concat([dials_table, other]),
            "ecal": dials_table.head(10),
        },
        token=TOKEN,
        token_workspaces={LIMITED: ["ecal"]},
    ).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_faults(dials):
    dials.faults.reset()


def dials_client(server, **kwargs):
    args = {"progress": False, "backoff": 0.01, "max_backoff": 0.05, "retries": 3,
            "max_workers": 4, "timeout": 5.0}  # fmt: skip
    args.update(kwargs)
    token = args.pop("token", TOKEN)
    return DialsClient(server.url, token, **args)


@pytest.fixture
def dclient(dials):
    c = dials_client(dials)
    yield c
    c.close()
