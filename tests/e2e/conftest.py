"""End-to-end fixtures: the worker's shared Prefect server (tests/conftest.py); per module a
fresh app database, mail sink and `recovery serve` (see tests/support/stack_fixtures.py)."""

from tests.support.stack_fixtures import pytest_runtest_makereport, stack  # noqa: F401
