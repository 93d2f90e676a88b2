"""Fault and concurrency fixtures: the worker's shared Prefect server (tests/conftest.py) for
the modules that do not restart theirs, and an app database template (migrated, the
quality statements and a generated provider of SITES locations) that each module copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import make_database, people_file
from tests.support.prefect_server import PrefectServer
from tests.support.stack_fixtures import SHARED_SERVER_ENV

SITES = 5
#: Events (heartbeats, escalations) reach the server's database within ~0.5 s, not 5 s
#: (the shared server and test_server_restart's own are started so).
SERVER_ENV = SHARED_SERVER_ENV


@pytest.fixture(scope="session")
def faults_server(prefect_server: PrefectServer) -> PrefectServer:
    """The worker's shared server: each module stops its `recovery serve` at its end."""
    return prefect_server


@pytest.fixture(scope="session")
def app_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults-template") / "recovery.db"
    make_database(f"sqlite:///{path}", people_file(SITES))
    return path


@pytest.fixture(autouse=True)
def _one_serve_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop any `recovery serve` a test left running (a failed test included): the next
    test's serve would otherwise share the deployments and take its runs."""
    from tests.faults.helpers import App

    yield
    for value in request.node.funcargs.values():
        if isinstance(value, App):
            value.stop_serve()
