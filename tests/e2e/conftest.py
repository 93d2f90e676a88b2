"""End-to-end fixtures: a real Prefect server for the session; per module a fresh app
database, mail sink and `recovery serve` (see tests/support/stack_fixtures.py)."""

from tests.support.stack_fixtures import (  # noqa: F401
    prefect_server,
    pytest_runtest_makereport,
    stack,
    template_database,
)
