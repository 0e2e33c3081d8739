"""Fixtures: real local platform servers on 127.0.0.1 (ephemeral ports) and clients.

``platform`` is shared by a module's read-only tests (faults are reset before each test);
``fresh_platform`` is a server of its own for a test that changes data. Both answer like the
deployed playground; ``extended_platform`` also serves the project's extensions (predictions,
task creation).
"""

from __future__ import annotations

import pytest

from tests.platform.helpers import client_for, make_table, start_extended, start_platform


@pytest.fixture(scope="session")
def table():
    return make_table()


@pytest.fixture(scope="module")
def platform(table):
    server = start_platform(table)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_faults(platform):
    platform.faults.reset()


@pytest.fixture
def fresh_platform(table):
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
