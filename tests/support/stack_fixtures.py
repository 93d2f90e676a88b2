"""Fixtures for tests that run the whole product (tests/e2e, tests/browser, tests/cycles,
tests/faults): ONE real Prefect server per pytest-xdist worker (``prefect_server`` and
``template_database`` are session fixtures registered once, in tests/conftest.py, so every
tier a worker runs shares them); per test module a fresh app database (copied from one
made by `recovery init` + `recovery people import`), its own mail sink and its own
`recovery serve`.

Import the per-module ones into a tier's conftest.py::

    from tests.support.stack_fixtures import pytest_runtest_makereport, stack  # noqa: F401

Deployments are server-wide: each module's `recovery serve` (re)registers the same ones
and is stopped at the module's end, so the next module's serve takes their runs.

A test module may set a module-level ``STACK_ENV`` dict: extra environment for every
process of its stack (e.g. ``RECOVERY_BUSINESS_DATE``). Its `recovery` commands run
in-process (typer's runner, the same environment) unless it sets ``REAL_EXECUTABLE =
True``: the journeys that are about what a user's shell sees keep the real executable.
A failing test's report gets the stack's command log, serve log and mail subjects.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.prefect_server import PrefectServer, start_prefect_server
from tests.support.recovery_stack import RecoveryStack, make_template_database

#: Events (heartbeats, escalations) reach the server's database within ~0.5 s, not 5 s.
SHARED_SERVER_ENV = {"PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5"}


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    """The worker's one shared Prefect server (SQLite in its own PREFECT_HOME)."""
    server = start_prefect_server(extra_env=SHARED_SERVER_ENV)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template_database(tmp_path_factory.mktemp("recovery-template"))


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    prefect_server: PrefectServer,
    template_database: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RecoveryStack]:
    extra = getattr(request.module, "STACK_ENV", None)
    recovery = RecoveryStack(prefect_server, tmp_path_factory.mktemp("recovery-home"),
                             template=template_database, extra_env=extra,
                             in_process=not getattr(request.module, "REAL_EXECUTABLE", False))
    recovery.start()
    try:
        yield recovery
    finally:
        recovery.stop()
        print(f"\n{request.module.__name__}: recovery commands\n" + "\n".join(recovery.log))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call" and report.failed:
        recovery = getattr(item, "funcargs", {}).get("stack")
        if isinstance(recovery, RecoveryStack):
            report.sections.append(("recovery stack", recovery.diagnostics()))
    return report
