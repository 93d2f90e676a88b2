"""Browser fixtures: the same stack as tests/e2e (the worker's shared Prefect server, a fresh
app database, mail sink and `recovery serve`; see tests/support/stack_fixtures.py)."""

from tests.support.stack_fixtures import pytest_runtest_makereport, stack  # noqa: F401
