"""Local processes for the demo and the tests: a real Prefect server and a "serve" process.

Nothing here knows about the project's flows. Typical use::

    with start_prefect_server() as server:
        with server.settings():              # this process talks to the server
            ...
        serve = ServeProcess([sys.executable, "-m", "my.flows"], env=server.subprocess_env())
        serve.start()
        ...
        serve.stop()                         # waits for flow-run children, then SIGTERM
        serve.kill()                         # SIGKILL the runner and its flow-run children
        serve.restart()

The server runs ``prefect server start`` on a loopback port (a free one unless given) with
its own ``PREFECT_HOME`` (SQLite at ``$PREFECT_HOME/prefect.db``; a temporary home that
``stop()`` removes unless one is given), or on PostgreSQL when given a ``database_url``
(``postgresql+asyncpg://...``).

Children are started in their own session, so a Ctrl-C at the terminal reaches only the
parent, which decides how to stop them (see ``ServeProcess.stop``). Linux only (/proc).

Importing this module does not import Prefect.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
SERVER_START_TIMEOUT = 90.0


# --------------------------------------------------------------------------- utilities


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = DEFAULT_HOST) -> bool:
    """True when something listens on ``host:port`` (or otherwise holds it), so a server
    could not bind there. Connections lingering in TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The same option uvicorn and aiosmtpd set: only a live listener blocks the bind.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def command_line(pid: int) -> list[str]:
    """The argv of a live process, or [] when there is none (or it is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    message: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Exceptions raised by ``predicate`` count as "not yet" until the deadline, when the last
    one is chained to the ``TimeoutError``.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {message}") from (
                last_exc
            )
        time.sleep(interval)


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (Linux /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] in ("Z", "X"):  # exited, not yet reaped
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    result: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            result.append(child)
            queue.append(child)
    return result


def signal_tree(process: subprocess.Popen[Any], sig: int) -> None:
    """Send ``sig`` to the process group of ``process`` and to every descendant.

    Descendants may have their own session (Prefect's runner starts each flow run with
    ``start_new_session=True``), so the group alone is not enough.
    """
    pids = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
    for pid in [process.pid, *pids]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_process(process: subprocess.Popen[Any], *, timeout: float, kill: bool) -> int | None:
    """Stop ``process`` and its descendants: SIGTERM then SIGKILL, or SIGKILL at once."""
    if process.poll() is not None:
        # The leader is gone, but its group may live on.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.returncode
    if kill:
        signal_tree(process, signal.SIGKILL)
    else:
        remaining = descendants(process.pid)
        signal_tree(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
        for pid in remaining:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=timeout)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def terminate_tree(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM a process that is not our child (and its descendants); SIGKILL whatever is
    left after ``timeout``."""
    pids = [pid, *descendants(pid)]
    for each in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(each, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(each) for each in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for each in pids:
        if alive(each):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(each, signal.SIGKILL)


def wait_for_idle(
    pid: int,
    timeout: float,
    *,
    quiet: float = 0.0,
    abort: Callable[[], bool] | None = None,
) -> bool:
    """Wait until ``pid`` has had no live descendants for ``quiet`` seconds in a row (or
    has exited); False if some remain after ``timeout`` or once ``abort()`` is True."""
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while True:
        now = time.monotonic()
        if alive(pid) and descendants(pid):
            idle_since = None
        elif idle_since is None:
            idle_since = now
        if idle_since is not None and now - idle_since >= quiet:
            return True
        if now >= deadline or (abort is not None and abort()):
            return False
        time.sleep(0.05)


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- server


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


# --------------------------------------------------------------------------- serve process


class ServeProcess:
    """A long-running child (e.g. a script that calls ``prefect.serve``) that a test can
    stop, SIGKILL and restart. Output goes to ``log_path`` (appended across restarts)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | str | None = None,
        log_path: Path | str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = Path(cwd) if cwd is not None else None
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="serve-", suffix=".log")
            os.close(handle)
            log_path = name
            # Kept for post-mortems while this interpreter lives, removed at exit.
            atexit.register(Path(name).unlink, missing_ok=True)
        self.log_path = Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ServeProcess:
        if self.is_running():
            raise RuntimeError("already running")
        self._log_file = self.log_path.open("ab")
        self._log_offset = self.log_path.stat().st_size
        self._log_file.write(f"\n=== start {self.starts + 1}: {self.argv}\n".encode())
        self._log_file.flush()
        self.process = subprocess.Popen(
            self.argv,
            env={"PYTHONUNBUFFERED": "1", **self.env},
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        return self

    def children(self) -> list[int]:
        """Live descendant pids (for a Prefect runner: its flow-run processes)."""
        return descendants(self.process.pid) if self.is_running() and self.process else []

    def wait_for_idle(
        self,
        timeout: float = 10.0,
        *,
        quiet: float = 0.0,
        abort: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait until the process has had no live descendants for ``quiet`` seconds in a
        row; False if some remain after ``timeout`` or once ``abort()`` returns True.

        A ``quiet`` period longer than the runner's poll interval also covers a run that
        was scheduled a moment ago and is about to be picked up.
        """
        if not self.is_running() or self.process is None:
            return True
        return wait_for_idle(self.process.pid, timeout, quiet=quiet, abort=abort)

    def stop(self, timeout: float = 15.0, *, idle_timeout: float = 5.0) -> int | None:
        """Wait up to ``idle_timeout`` for child processes to finish, then SIGTERM the
        process and its descendants; SIGKILL whatever is left after ``timeout``.

        The wait matters for Prefect's runner: a flow-run process lingers ~1.5 s after its
        run turned Suspended, and a runner stopped in that window marks the run Cancelled
        ("Runner is shutting down.") or, if the child gets the SIGTERM, Crashed, which
        overwrites the Suspended state: the run can no longer be resumed.
        """
        if idle_timeout > 0:
            self.wait_for_idle(idle_timeout)
        return self._finish(kill=False, timeout=timeout)

    def kill(self) -> int | None:
        """SIGKILL the process and all its descendants (flow-run children included): a
        crash, as far as Prefect can tell."""
        return self._finish(kill=True, timeout=10.0)

    def restart(self, *, kill: bool = False, idle_timeout: float = 5.0) -> ServeProcess:
        """Stop (or SIGKILL, with ``kill=True``) and start again."""
        if kill:
            self.kill()
        else:
            self.stop(idle_timeout=idle_timeout)
        return self.start()

    def _finish(self, *, kill: bool, timeout: float) -> int | None:
        code: int | None = None
        if self.process is not None:
            code = stop_process(self.process, timeout=timeout, kill=kill)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def output(self, *, since_start: bool = True) -> str:
        """The log text, by default only since the latest start."""
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return data[self._log_offset if since_start else 0 :].decode(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        """Wait until ``text`` appears in the output since the latest start."""

        def seen() -> bool:
            if text in self.output():
                return True
            if not self.is_running():
                raise RuntimeError(
                    f"process exited ({self.process and self.process.returncode}) before "
                    f"printing {text!r}:\n{self.output()[-4000:]}"
                )
            return False

        deadline = time.monotonic() + timeout
        while not seen():
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{text!r} not printed after {timeout:.0f}s:\n{self.output()[-4000:]}"
                )
            time.sleep(0.1)

    def __enter__(self) -> ServeProcess:
        if not self.is_running():
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
