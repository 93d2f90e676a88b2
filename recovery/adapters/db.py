"""Engine, units of work and migrations.

SQLite runs in WAL mode with a busy timeout and every transaction starts with
BEGIN IMMEDIATE, so concurrent writers queue instead of failing half-way. A unit of work
takes that lock before its first statement; if another writer holds it past the busy
timeout (RECOVERY_DB_BUSY_TIMEOUT), the unit is retried (RECOVERY_DB_BUSY_RETRIES) and then
refused with DatabaseBusy, having written nothing. PostgreSQL serialises the few hot spots
(the audit chain head) with advisory locks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

import recovery.adapters.tables  # noqa: F401 - registers the tables
from recovery.settings import get_settings

if TYPE_CHECKING:
    from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]
_READING = "recovery_reading"
T = TypeVar("T")


def _dumps(value: Any) -> str:
    """JSON columns written by orjson (several times faster than the standard library's
    encoder, which the daily cycle's 12,000 review columns per 4,000 actions felt)."""
    return orjson.dumps(value).decode()


@cache
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        busy = max(0.0, get_settings().db_busy_timeout)
        engine = create_engine(url, connect_args={"timeout": busy, "check_same_thread": False},
                               json_serializer=_dumps, json_deserializer=orjson.loads)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            # a reading session (see `reading`) begins deferred: it takes no write lock
            read_only = conn.get_execution_options().get(_READING, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                         json_serializer=_dumps, json_deserializer=orjson.loads)


def get_engine() -> Engine:
    return engine_for(get_settings().db_url)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


class DatabaseBusy(Exception):
    """Another writer held the database past the busy timeout, on every attempt. Nothing
    of the unit of work was written."""


def _locked(exc: OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _begin() -> Session:
    """A session whose transaction has begun: on SQLite, BEGIN IMMEDIATE has taken the
    write lock, waiting up to the busy timeout and retrying, so a unit of work never fails
    half-way for want of the lock."""
    settings = get_settings()
    attempts = max(0, settings.db_busy_retries) + 1
    for attempt in range(1, attempts + 1):
        session = Session(get_engine(), expire_on_commit=False)
        try:
            session.connection()
            return session
        except OperationalError as exc:
            session.close()
            if not _locked(exc):
                raise
            if attempt == attempts:
                raise DatabaseBusy(
                    f"the database is busy: another writer held it for more than "
                    f"{settings.db_busy_timeout:g} s, {attempts} times; nothing was written, "
                    f"try again") from None
            time.sleep(min(0.5 * attempt, 2.0))
    raise AssertionError("unreachable")


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: commit on success, roll back everything on any error."""
    with _begin() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def reading() -> Iterator[Session]:
    """A transaction that only reads: on SQLite it begins deferred (no write lock, so
    other writers go on meanwhile, and WAL gives it one snapshot). For the slow checks
    before a write, which then runs in its own short unit_of_work. Closing the session
    ends the transaction without expiring what was loaded, so the rows read stay usable
    (detached) by that write."""
    engine = get_engine().execution_options(**{_READING: True})
    with Session(engine, expire_on_commit=False) as session:
        yield session


def alembic_config(url: str | None = None) -> Config:
    # imported here, not at the top: every flow-run process imports this module, and only
    # `recovery init` (and doctor) need alembic
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url or get_settings().db_url)
    return cfg


def upgrade(url: str | None = None) -> None:
    from alembic import command

    command.upgrade(alembic_config(url), "head")
