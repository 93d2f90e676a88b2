"""Operating recovery from the Prefect UI: automations, `recovery doctor`, the SMTP Secret
block and the Runs page, against real Prefect servers.

Each module gets its own Prefect server (automations, blocks and deployments are
server-wide, so modules must not see each other's), and, where it needs the product
running, its own app database (a copy of the run's ``template_database``,
tests/conftest.py), mail sink and `recovery serve` (tests/support); its `recovery`
commands run in-process (the UI, not the shell, is the subject here).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.prefect_server import PrefectServer, start_prefect_server
from tests.support.recovery_stack import REPO_ROOT, RecoveryStack

PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


@pytest.fixture(scope="module")
def prefect_server(request: pytest.FixtureRequest) -> Iterator[PrefectServer]:
    """A Prefect server for this module only; a module may set SERVER_ENV."""
    server = start_prefect_server(extra_env=getattr(request.module, "SERVER_ENV", None))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(
    prefect_server: PrefectServer, template_database: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RecoveryStack]:
    recovery = RecoveryStack(prefect_server, tmp_path_factory.mktemp("ui-home"),
                             template=template_database, in_process=True)
    recovery.start()
    try:
        yield recovery
    finally:
        recovery.stop()


def run_python(code: str, env: Mapping[str, str], timeout: float = 180) -> str:
    """Run `code` with the project's interpreter in `env` (a fresh process reads its
    Prefect and RECOVERY_ settings from the environment, as the CLI does); its stdout."""
    proc = subprocess.run([str(PYTHON), "-c", code], env=dict(env), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"python -c {code!r}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        recovery = getattr(item, "funcargs", {}).get("stack")
        if isinstance(recovery, RecoveryStack):
            report.sections.append(("recovery stack", recovery.diagnostics()))
    return report
