"""End-to-end fixtures: one real Prefect server for the session; per test module a fresh
app database (copied from one made by `recovery init` + `recovery people import`), its own
mail sink and its own `recovery serve` process.

A module may set a module-level ``STACK_ENV`` dict: extra environment for every process of
its stack (e.g. ``RECOVERY_BUSINESS_DATE``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call" and report.failed:
        recovery = getattr(item, "funcargs", {}).get("stack")
        if isinstance(recovery, RecoveryStack):
            report.sections.append(("recovery stack", recovery.diagnostics()))
    return report
