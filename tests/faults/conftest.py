"""Fault and concurrency fixtures: one real Prefect server for the modules that do not
restart theirs, and an app database template (migrated, the quality statements and a
generated provider of SITES locations) that each module copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import make_database, people_file
from tests.support.prefect_server import PrefectServer, start_prefect_server

SITES = 5
#: Events (heartbeats, escalations) reach the server's database within ~0.5 s, not 5 s.
SERVER_ENV = {"PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5"}


@pytest.fixture(scope="session")
def faults_server() -> Iterator[PrefectServer]:
    server = start_prefect_server(extra_env=SERVER_ENV)
    try:
        yield server
    finally:
        server.stop()


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
