"""Security fixtures: a small "world" (catalogue, the example staff directory, one draft
high-risk action dated around today) on SQLite or PostgreSQL, and a byte-for-byte dump.

- SQLite: the world is built once per session through the services, then each test gets
  its own copy of the file; the dump is `sqlite3`'s own `iterdump()` (every table, every
  row, the schema) as one string.
- PostgreSQL: the integration tests' per-session database, truncated and seeded again for
  each test; the dump is every table read in full and sorted.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from devstack.mailsink import MailSink
from models.planfile import plan_from_mapping
from recovery.adapters import db
from recovery.application import action_plans
from recovery.settings import get_settings
from tests.integration.conftest import (  # noqa: F401 - fixtures reused from integration
    _truncate_postgres,
    postgres_url,
    sqlite_template,
)
from tests.integration.helpers import dump_tables, relative_plan, seed_directory

#: The world's one action: Rose House safeguarding, high risk, a draft.
REF = "ROSE-SG-001"
LEAD = "sg.lead@rose.example"
REVIEWER = "ni@harbourcare.example"
MANAGER = "rm@rose.example"
PWNED = Path("/tmp/recovery-gates-security-pwned")
#: The production profile's Prefect API credentials (user:password).
AUTH = "recovery-admin:correct horse battery staple"


def seed_world(today: date) -> None:
    """Catalogue, staff directory and ROSE-SG-001 (baseline ten days ago)."""
    seed_directory()
    with db.unit_of_work() as session:
        ref = action_plans.open_action(session, plan_from_mapping(relative_plan(today)),
                                   actor="test").ref
    assert ref == REF


@dataclass
class World:
    kind: str  # "sqlite" | "postgresql"
    url: str
    path: Path | None = None

    def dump(self) -> Any:
        """The whole database: for SQLite the SQL text of `iterdump()`, for PostgreSQL
        every row of every table, ordered."""
        if self.path is not None:
            conn = sqlite3.connect(self.path)
            try:
                return "\n".join(conn.iterdump())
            finally:
                conn.close()
        return dump_tables(self.url)


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str, home: Path) -> None:
    monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
    monkeypatch.setenv("RECOVERY_HOME", str(home))
    monkeypatch.delenv("RECOVERY_BUSINESS_DATE", raising=False)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def world_template(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
) -> Path:
    path = tmp_path_factory.mktemp("security-world") / "world.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    with pytest.MonkeyPatch.context() as patch:
        _point_at(patch, url, path.parent / "home")
        try:
            seed_world(get_settings().today())
        finally:
            get_settings.cache_clear()
    db.engine_for(url).dispose()  # folds the WAL into the file
    return path


def _sqlite_world(world_template: Path, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    path = tmp_path / "recovery.db"
    shutil.copyfile(world_template, path)
    url = f"sqlite:///{path}"
    _point_at(monkeypatch, url, tmp_path / "home")
    try:
        yield World("sqlite", url, path)
    finally:
        get_settings.cache_clear()
        db.engine_for(url).dispose()


@pytest.fixture
def sqlite_world(world_template: Path, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from _sqlite_world(world_template, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def seeded_postgres(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session's PostgreSQL database, emptied and seeded once per module: the corpus
    writes nothing (that is what each row asserts), so its rows can share one world."""
    url: str = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    with pytest.MonkeyPatch.context() as patch:
        _point_at(patch, url, tmp_path_factory.mktemp("pg-home"))
        try:
            seed_world(get_settings().today())
        finally:
            get_settings.cache_clear()
    return url


@pytest.fixture
def postgres_world(seeded_postgres: str, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    _point_at(monkeypatch, seeded_postgres, tmp_path / "home")
    try:
        yield World("postgresql", seeded_postgres)
    finally:
        get_settings.cache_clear()


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) on loopback the product sends to."""
    with MailSink(tmp_path / "mail", port=None) as running:
        monkeypatch.setenv("RECOVERY_SMTP_HOST", running.host)
        monkeypatch.setenv("RECOVERY_SMTP_PORT", str(running.port))
        get_settings.cache_clear()
        yield running
    get_settings.cache_clear()


@pytest.fixture
def no_pwned_file() -> Iterator[None]:
    """A YAML tag that ran code would leave this file behind."""
    if PWNED.exists():
        os.unlink(PWNED)
    yield
    assert not PWNED.exists(), "a YAML tag constructed an object and ran code"


@pytest.fixture(scope="session")
def auth_server() -> Iterator[Any]:
    """A real Prefect server (SQLite in its own PREFECT_HOME) with API auth on, as the
    production profile runs it; every client must send PREFECT_API_AUTH_STRING."""
    from tests.support.prefect_server import start_prefect_server

    server = start_prefect_server(extra_env={"PREFECT_SERVER_API_AUTH_STRING": AUTH})
    try:
        yield server
    finally:
        server.stop()
