"""Local processes for the demo and the tests: ports, waits, process trees and a
long-running "serve" child that a test can stop, SIGKILL and restart.

Nothing here knows about Prefect or the project's flows. Typical use::

    serve = ServeProcess([sys.executable, "-m", "my.flows"], env=server.subprocess_env())
    serve.start()
    ...
    serve.stop()                         # waits for flow-run children, then SIGTERM
    serve.kill()                         # SIGKILL the runner and its flow-run children
    serve.restart()

Children are started in their own session, so a Ctrl-C at the terminal reaches only the
parent, which decides how to stop them (see ``ServeProcess.stop``). Linux only (/proc).
The Prefect server itself is started by ``devstack.prefect_server``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"


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
