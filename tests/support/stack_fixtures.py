"""Fixtures for tests that run the whole product (tests/e2e, tests/browser): one real
Prefect server per session; per test module a fresh app database (copied from one made by
`recovery init` + `recovery people import`), its own mail sink and its own `recovery serve`.

Import them into a conftest.py::

    from tests.support.stack_fixtures import (  # noqa: F401
        prefect_server, pytest_runtest_makereport, stack, template_database)

A test module may set a module-level ``STACK_ENV`` dict: extra environment for every
process of its stack (e.g. ``RECOVERY_BUSINESS_DATE``). A failing test's report gets the
stack's command log, serve log and mail subjects.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.prefect_server import PrefectServer, start_prefect_server
from tests.support.recovery_stack import RecoveryStack, make_template_database


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    server = start_prefect_server()
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
                             template=template_database, extra_env=extra)
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
