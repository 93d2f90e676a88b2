"""Integration fixtures: every test here runs once on SQLite and once on PostgreSQL, but
those marked `sqlite_only` (pure CLI wording and argument errors) on SQLite alone.

- SQLite: a fresh database file per test, copied from one migrated template (fast).
- PostgreSQL: one fresh database per test session on 127.0.0.1:5432 (`rg_test_<random>`),
  migrated with `recovery.adapters.db.upgrade`, truncated before every test and dropped at the end.
  A missing PostgreSQL server FAILS the PostgreSQL tests (never a skip): it is always there
  on this machine and CI must prove both databases.

`database_url` points the product at the test database through RECOVERY_DATABASE_URL and
clears the cached settings, so services, the in-process CLI and subprocesses all agree.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from recovery.adapters import db
from recovery.settings import get_settings
from tests.integration.helpers import TABLES

#: Maintenance database used to create and drop the per-session test database.
PG_ADMIN_URL = os.environ.get(
    "RECOVERY_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PG_SERVER = PG_ADMIN_URL.rsplit("/", 1)[0]


def _dispose(url: str) -> None:
    db.engine_for(url).dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One SQLite file migrated to head; each test gets its own copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    # closing the last connection folds the WAL into the main file
    db.engine_for(url).dispose()
    assert not path.with_name(path.name + "-wal").exists()
    yield path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated, dropped at the end."""
    name = f"rg_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        ci = " (CI=true)" if os.environ.get("CI", "").lower() == "true" else ""
        pytest.fail(
            f"PostgreSQL is required for the integration tests{ci} but {PG_ADMIN_URL} is not "
            f"reachable: {exc}".strip(),
            pytrace=False,
        )
    url = f"{PG_SERVER}/{name}"
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        db.upgrade(url)
        yield url
    finally:
        _dispose(url)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _truncate_postgres(url: str) -> None:
    with db.engine_for(url).begin() as conn:
        conn.execute(text(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE"
        ))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test using `database_url` runs on SQLite, then PostgreSQL; a test marked
    `sqlite_only` (CLI wording and argument errors, where the database adds nothing) on
    SQLite alone."""
    if "database_url" not in metafunc.fixturenames:
        return
    kinds: list[Any] = ["sqlite"]
    if metafunc.definition.get_closest_marker("sqlite_only") is None:
        kinds.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    metafunc.parametrize("database_url", kinds, indirect=True)


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sqlite_template: Path,
) -> Iterator[str]:
    """An empty, migrated database the product is pointed at (SQLite, then PostgreSQL)."""
    if request.param == "sqlite":
        path = tmp_path / "recovery.db"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
        _truncate_postgres(url)
    monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
    monkeypatch.setenv("RECOVERY_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        yield url
    finally:
        get_settings.cache_clear()
        if request.param == "sqlite":
            _dispose(url)


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")

