"""Fixtures: real local platform servers on 127.0.0.1 (ephemeral ports) and clients.

``platform`` is shared by a module's read-only tests (faults are reset before each test);
``fresh_platform`` is a server of its own for a test that changes data. Both run every test twice:
once answering like the deployed playground, once also serving the project's extensions
(predictions, task creation), since what the client does must hold on both; ``mode`` gives the
same two settings to a test that starts a server of its own. ``deployed_platform`` and
``extended_platform`` are one mode only, for what differs between them.
"""

from __future__ import annotations

import pytest

from tests.platform.helpers import client_for, make_table, start_extended, start_platform


@pytest.fixture(scope="session")
def table():
    return make_table()


MODES = {"deployed": (), "extended": ("predictions", "tasks")}


@pytest.fixture(scope="module", params=sorted(MODES))
def platform(request, table):
    server = start_platform(table, extensions=MODES[request.param])
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_faults(request):
    if "platform" in request.fixturenames:  # only tests using it are run in both modes
        request.getfixturevalue("platform").faults.reset()


@pytest.fixture(params=sorted(MODES))
def mode(request):
    """The ``extensions`` of a server a test starts itself: none (deployed), or the project's."""
    return MODES[request.param]


@pytest.fixture
def fresh_platform(table, mode):
    server = start_platform(table, extensions=mode)
    yield server
    server.stop()


@pytest.fixture
def deployed_platform(table):
    server = start_platform(table)
    yield server
    server.stop()


@pytest.fixture
def extended_platform(table):
    server = start_extended(table)
    yield server
    server.stop()


@pytest.fixture
def client(platform):
    c = client_for(platform)
    yield c
    c.close()
