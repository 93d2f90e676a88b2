"""Real Prefect server and "serve" subprocesses for tests.

The process helpers live in ``devstack.processes`` and ``devstack.prefect_server`` (the
demo uses them too) and are re-exported here; this module adds what only tests need: a
throwaway PostgreSQL database for the server and waits on flow-run states. Typical use::

    with start_prefect_server() as server:
        with server.settings():              # this process talks to the server
            ...
        serve = ServeProcess([sys.executable, "-m", "my.flows"], env=server.subprocess_env())
        serve.start()
        ...
        serve.kill()                         # SIGKILL the runner and its flow-run children
        serve.restart()
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from devstack.prefect_server import (
    SERVER_START_TIMEOUT,
    PrefectServer,
    prefect_client_env,
    start_prefect_server,
)
from devstack.processes import DEFAULT_HOST, ServeProcess, free_port, wait_until

__all__ = [
    "DEFAULT_HOST",
    "SERVER_START_TIMEOUT",
    "PrefectServer",
    "ServeProcess",
    "free_port",
    "prefect_client_env",
    "start_prefect_server",
    "temporary_postgres_database",
    "wait_for_final",
    "wait_for_flow_run",
    "wait_for_pause",
    "wait_until",
]


# --------------------------------------------------------------------------- PostgreSQL


@contextlib.contextmanager
def temporary_postgres_database(
    admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres",
    *,
    prefix: str = "prefect_test_",
) -> Iterator[str]:
    """Create an empty PostgreSQL database; yield its ``postgresql+asyncpg://`` URL.

    The database is dropped afterwards (``WITH (FORCE)``, PostgreSQL 13+). Needs psycopg.
    """
    import psycopg
    from psycopg import sql

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    user = info.get("user") or os.environ.get("PGUSER") or "postgres"
    password = info.get("password")
    auth = f"{user}:{password}" if password else f"{user}"
    host = info.get("host") or "127.0.0.1"
    port = info.get("port") or 5432
    url = f"postgresql+asyncpg://{auth}@{host}:{port}/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --------------------------------------------------------------------------- flow runs


def wait_for_flow_run(
    client: Any,
    flow_run_id: Any,
    predicate: Callable[[Any], bool],
    *,
    timeout: float = 60.0,
    interval: float = 0.1,
    message: str = "flow run condition",
) -> Any:
    """Poll ``client.read_flow_run`` (a sync ``PrefectClient``) until ``predicate(run)``."""

    def check() -> Any:
        run = client.read_flow_run(flow_run_id)
        return run if predicate(run) else None

    try:
        return wait_until(check, timeout=timeout, interval=interval, message=message)
    except TimeoutError as exc:
        run = client.read_flow_run(flow_run_id)
        state = run.state
        raise TimeoutError(
            f"{exc}; flow run {flow_run_id} is {state.type.value if state else None} "
            f"{state.name if state else ''}: {state.message if state else ''}"
        ) from exc


def wait_for_final(client: Any, flow_run_id: Any, *, timeout: float = 60.0) -> Any:
    """Wait until the flow run is in a final state; return the run."""
    return wait_for_flow_run(
        client,
        flow_run_id,
        lambda run: run.state is not None and run.state.is_final(),
        timeout=timeout,
        message="final state",
    )


def wait_for_pause(
    client: Any,
    flow_run_id: Any,
    *,
    key: str | None = None,
    timeout: float = 60.0,
    interval: float = 0.1,
) -> Any:
    """Wait until the run is Paused/Suspended (under ``key`` if given) **and**, when it waits
    for input, its schema is stored: a resume before that is refused with "Run input schema
    not found". Returns the run (``run.state.state_details`` has ``pause_key`` and
    ``run_input_keyset``)."""

    def check() -> Any:
        run = client.read_flow_run(flow_run_id)
        state = run.state
        if state is None or not state.is_paused():
            return None
        details = state.state_details
        if key is not None and details.pause_key != key:
            return None
        keyset = details.run_input_keyset
        if keyset:
            try:
                client.read_flow_run_input(flow_run_id=flow_run_id, key=keyset["schema"])
            except Exception:  # noqa: BLE001 - 404 until the flow has saved it
                return None
        return run

    return wait_until(
        check, timeout=timeout, interval=interval, message=f"pause {key or ''} with schema"
    )
