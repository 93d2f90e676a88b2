"""A real Prefect server for the demo and the tests, and the variables that point a
client at it.

Typical use::

    with start_prefect_server() as server:
        with server.settings():              # this process talks to the server
            ...
        serve = ServeProcess([sys.executable, "-m", "my.flows"], env=server.subprocess_env())

The server runs ``prefect server start`` on a loopback port (a free one unless given) with
its own ``PREFECT_HOME`` (SQLite at ``$PREFECT_HOME/prefect.db``; a temporary home that
``stop()`` removes unless one is given), or on PostgreSQL when given a ``database_url``
(``postgresql+asyncpg://...``). It runs in its own session, like every child started by
``devstack.processes``. Linux only (/proc).

Importing this module does not import Prefect.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devstack.processes import DEFAULT_HOST, free_port, stop_process, tail

SERVER_START_TIMEOUT = 90.0


@dataclass
class PrefectServer:
    """A running ``prefect server start`` subprocess."""

    host: str
    port: int
    home: Path
    log_path: Path
    database_url: str | None
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    """Prefect variables a client process needs (merge into ``os.environ`` yourself, or use
    ``subprocess_env()``)."""
    _owns_home: bool = field(default=False, repr=False)
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def flow_run_url(self, flow_run_id: object) -> str:
        """The UI page of a flow run."""
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}"

    def subprocess_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """``os.environ`` plus :attr:`env` plus ``extra``: pass as ``env=`` to a child."""
        merged = {**os.environ, **self.env}
        if extra:
            merged.update(extra)
        return merged

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        """Point this process's Prefect client at the server for the ``with`` block.

        Prefect reads environment variables once, at import, so changing ``os.environ``
        afterwards has no effect; ``temporary_settings`` does.
        """
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_UI_URL,
            temporary_settings,
        )

        with temporary_settings(
            updates={PREFECT_API_URL: self.api_url, PREFECT_UI_URL: self.ui_url}
        ):
            yield

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0, *, remove_home: bool | None = None) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove a home it created."""
        stop_process(self.process, timeout=timeout, kill=False)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if remove_home if remove_home is not None else self._owns_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PrefectServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def prefect_client_env(api_url: str, ui_url: str, home: Path | str | None = None) -> dict[str, str]:
    """Variables that point a Prefect client process at a server."""
    env = {
        "PREFECT_API_URL": api_url,
        "PREFECT_UI_URL": ui_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Never fall back to a throwaway in-process server if PREFECT_API_URL is lost.
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
    }
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    return env


#: Prefect's own settings for a server on SQLite, where every write transaction is a
#: chance for a resume (which reads, validates, then writes) to be refused "database is
#: locked" (503; the UI's "Failed to resume flow run" does not retry). The task-run
#: recorder writes each task-run event in its own transaction by default (batch size 1)
#: and the event persister 20 at a time: batched, a lifecycle run's start is a few writes,
#: not dozens. `python -m benchmarks.prefect_resume` measures the effect.
SQLITE_SERVER_SETTINGS: dict[str, str] = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "2",
}


def start_prefect_server(
    *,
    database_url: str | None = None,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    home: Path | str | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = SERVER_START_TIMEOUT,
    prefect_executable: Sequence[str] | None = None,
) -> PrefectServer:
    """Start ``prefect server start`` and wait until ``/api/health`` answers.

    Long on purpose: the server's environment, its process and the wait for health are
    one sequence whose failure paths (port taken, early exit, timeout) each stop what was
    started so far; split up, each helper would carry the half-started process.

    Args:
        database_url: SQLAlchemy URL of the server database, e.g.
            ``postgresql+asyncpg://postgres@127.0.0.1:5432/prefect_x``. Default: SQLite in
            the server's ``PREFECT_HOME``.
        host: loopback address to bind.
        port: port to bind; default a free one.
        home: ``PREFECT_HOME`` of the server; default a new temporary directory that
            ``stop()`` removes.
        extra_env: more variables for the server process (and not for clients).
        timeout: seconds to wait for health.
        prefect_executable: command that runs the Prefect CLI; default
            ``[sys.executable, "-m", "prefect"]``.
    """
    owns_home = home is None
    home_path = Path(tempfile.mkdtemp(prefix="prefect-home-")) if home is None else Path(home)
    home_path.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    api_url = f"http://{host}:{port}/api"
    ui_url = f"http://{host}:{port}"

    server_env = {
        **os.environ,
        "PREFECT_HOME": str(home_path),
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": api_url,
        "PREFECT_UI_API_URL": api_url,
        "PREFECT_UI_URL": ui_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url
        or f"sqlite+aiosqlite:///{home_path / 'prefect.db'}",
        "PYTHONUNBUFFERED": "1",
        # each "busy" (503) answer is logged, so contention is seen, not guessed at
        "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
    }
    if database_url is None or database_url.startswith("sqlite"):
        server_env.update(SQLITE_SERVER_SETTINGS)
    if extra_env:
        server_env.update(extra_env)

    command = [*(prefect_executable or [sys.executable, "-m", "prefect"])]
    command += ["server", "start", "--host", host, "--port", str(port), "--analytics-off"]

    log_path = home_path / "server.log"
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        command,
        env=server_env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = PrefectServer(
        host=host,
        port=port,
        home=home_path,
        log_path=log_path,
        database_url=database_url,
        process=process,
        env=prefect_client_env(api_url, ui_url, home_path),
        _owns_home=owns_home,
        _log_file=log_file,
    )

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"prefect server exited with {process.returncode}:\n{tail(log_path)}"
            )
        return server.healthy()

    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"prefect server not healthy after {timeout:.0f}s:\n{tail(log_path)}"
                )
            time.sleep(0.2)
    except BaseException:
        server.stop(timeout=5)
        raise
    return server
