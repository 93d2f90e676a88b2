"""The whole product running for end-to-end tests: a real Prefect server (shared), a mail
sink, `recovery serve` and a fresh app database, all driven through the real `recovery`
executable in subprocesses.

Typical use (see tests/e2e/conftest.py)::

    template = make_template_database(tmp_dir)          # once per session: init + people
    stack = RecoveryStack(server, home, template=template).start()
    stack.cli_ok("action", "open", plan_path)
    code = stack.signoff_code("ROSE-SG-001", "plan")     # read from the SMTP sink
    ...
    stack.stop()

Every subprocess gets the same environment (:attr:`RecoveryStack.env`): the Prefect server,
the module's own ``RECOVERY_HOME`` and ``RECOVERY_DATABASE_URL``, the sink's SMTP port.
Assertions may read the app database directly (read only); changes go through the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from devstack.mailsink import MailSink
from tests.support.prefect_server import PrefectServer, ServeProcess, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
RECOVERY_BIN = REPO_ROOT / ".venv" / "bin" / "recovery"
LIFECYCLE_DEPLOYMENT = "high-risk-action/high-risk-action"
CODE_RE = re.compile(r"code:\s*(\d{6})")

SEED = {
    "ROSE-SG-001": EXAMPLES / "safeguarding-rose-house.yaml",
    "QUAY-MED-001": EXAMPLES / "medicines-quay-house.yaml",
    "ELM-STF-001": EXAMPLES / "staffing-elm-court.yaml",
}


@dataclass
class Result:
    """One finished `recovery` command."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_json(self) -> Any:
        """The one-line JSON error a failing `--json` command writes to stderr."""
        lines = [line for line in self.stderr.splitlines() if line.startswith("{")]
        assert lines, f"no JSON error on stderr:\n{self}"
        return json.loads(lines[-1])

    def __str__(self) -> str:
        return (f"$ recovery {' '.join(self.args)}\n-> exit {self.exit_code} "
                f"({self.seconds:.1f}s)\nstdout: {self.stdout[-3000:]}\n"
                f"stderr: {self.stderr[-3000:]}")


def _clean_environ() -> dict[str, str]:
    """os.environ without anything that would point a child at another installation."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("RECOVERY_", "PREFECT_"))}


def make_template_database(directory: Path) -> Path:
    """A migrated app database with the catalogue and the example staff directory, made
    once through the CLI (`recovery init`, `recovery people import`); modules copy it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "recovery.db"
    env = {**_clean_environ(), "RECOVERY_HOME": str(directory),
           "RECOVERY_DATABASE_URL": f"sqlite:///{path}"}
    for args in (["init"], ["people", "import", str(EXAMPLES / "people.yaml")]):
        proc = subprocess.run([str(RECOVERY_BIN), *args], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"recovery {args}: {proc.stdout}{proc.stderr}"
    # the last connection closed: the WAL is folded into the file
    assert not path.with_name(path.name + "-wal").exists() or \
        path.with_name(path.name + "-wal").stat().st_size == 0
    return path


class RecoveryStack:
    """One app database + mail sink + `recovery serve`, on a shared Prefect server."""

    def __init__(
        self,
        server: PrefectServer,
        home: Path,
        *,
        template: Path,
        extra_env: Mapping[str, str] | None = None,
        in_process: bool = False,
    ) -> None:
        self.server = server
        self.in_process = in_process
        """:meth:`cli` runs the CLI in this process (typer's runner, the same environment)
        instead of the real executable: ~3 s less per command, for tests whose subject is
        not the process boundary. `recovery serve` and :meth:`cli_parallel` stay real."""
        self.home = home
        self.template = template
        self.db_path = home / "recovery.db"
        self.database_url = f"sqlite:///{self.db_path}"
        self.sink = MailSink(home / "mail", port=None)
        self.env: dict[str, str] = {
            **_clean_environ(),
            **server.env,
            "RECOVERY_HOME": str(home),
            "RECOVERY_DATABASE_URL": self.database_url,
            "RECOVERY_SMTP_HOST": self.sink.host,
            "RECOVERY_SMTP_PORT": str(self.sink.port),
            "RECOVERY_PREFECT_API_URL": server.api_url,
            "RECOVERY_PREFECT_UI_URL": server.ui_url,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "COLUMNS": "200",
            **(extra_env or {}),
        }
        self.serve = ServeProcess([str(RECOVERY_BIN), "serve"], env=self.env, cwd=REPO_ROOT,
                                  log_path=home / "serve.log")
        self._engine: Any = None
        self.log: list[str] = []
        """One line per CLI command: seconds, exit code, arguments."""

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, serve: bool = True) -> RecoveryStack:
        """The app database and mail sink; and `recovery serve` unless `serve` is False
        (the Prefect server then has none of the product's deployments)."""
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.template, self.db_path)
        self.sink.start()
        if serve:
            self.start_serve()
        return self

    def start_serve(self) -> None:
        self.serve.start()
        self.serve.wait_for_output("being served", timeout=90)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.serve.stop()
        self.sink.stop()
        if self._engine is not None:
            self._engine.dispose()
        if self.in_process:
            from recovery.adapters import db

            db.engine_for(self.database_url).dispose()

    def diagnostics(self) -> str:
        return ("--- commands ---\n" + "\n".join(self.log) + "\n"
                f"--- serve log (tail) ---\n{self.serve.output(since_start=False)[-8000:]}\n"
                f"--- mail: {[m['Subject'] for m in self.sink.messages()]}")

    # ------------------------------------------------------------------ the CLI

    def cli(self, *args: Any, timeout: float = 180) -> Result:
        argv = [str(a) for a in args]
        started = time.monotonic()
        if self.in_process:
            exit_code, stdout, stderr = self._invoke(argv)
        else:
            proc = subprocess.run([str(RECOVERY_BIN), *argv], env=self.env, cwd=REPO_ROOT,
                                  capture_output=True, text=True, timeout=timeout,
                                  check=False)
            exit_code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        result = Result(argv, exit_code, stdout, stderr, time.monotonic() - started)
        where = "" if self.in_process else " (exe)"
        self.log.append(f"{result.seconds:5.1f}s exit {result.exit_code} "
                        f"{' '.join(argv)[:90]}{where}")
        return result

    def _invoke(self, argv: list[str]) -> tuple[int, str, str]:
        """The CLI in this process with exactly :attr:`env` as the environment (RECOVERY_
        settings re-read, Prefect settings rebuilt from it); an uncaught exception is
        printed to stderr as the interpreter would, exit 1. It runs in a thread of its own,
        with no event loop, as in `recovery`'s main thread: Playwright's sync API keeps a
        loop running in the test's thread, and Prefect's sync-or-async functions would
        hand back coroutines there."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recovery-cli") as pool:
            return pool.submit(self._invoke_here, argv).result()

    def _invoke_here(self, argv: list[str]) -> tuple[int, str, str]:
        from prefect.context import SettingsContext
        from prefect.settings import Settings
        from typer.testing import CliRunner

        from recovery.cli import app
        from recovery.settings import get_settings

        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        get_settings.cache_clear()
        try:
            profile = SettingsContext.get().profile  # type: ignore[union-attr]
            with SettingsContext(profile=profile, settings=Settings()):
                outcome = CliRunner().invoke(app, argv, catch_exceptions=True)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()
        stderr = outcome.stderr
        if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
            stderr += "".join(traceback.format_exception(outcome.exception))
        return outcome.exit_code, outcome.stdout, stderr

    def cli_ok(self, *args: Any, timeout: float = 180) -> Result:
        result = self.cli(*args, timeout=timeout)
        assert result.exit_code == 0, f"{result}\n{self.diagnostics()}"
        return result

    def cli_json(self, *args: Any, timeout: float = 180) -> Any:
        return self.cli_ok(*args, "--json", timeout=timeout).json()

    def start_cli(self, *args: Any) -> subprocess.Popen[str]:
        return subprocess.Popen([str(RECOVERY_BIN), *[str(a) for a in args]], env=self.env,
                                cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    @staticmethod
    def finish(proc: subprocess.Popen[str], args: list[str], started: float,
               timeout: float = 180) -> Result:
        stdout, stderr = proc.communicate(timeout=timeout)
        return Result(args, proc.returncode, stdout, stderr, time.monotonic() - started)

    def cli_parallel(self, *commands: list[Any], timeout: float = 180) -> list[Result]:
        """Start every command at once; wait for all."""
        started = time.monotonic()
        procs = [(self.start_cli(*cmd), [str(a) for a in cmd]) for cmd in commands]
        results = [self.finish(p, a, started, timeout) for p, a in procs]
        for r in results:
            self.log.append(f"{r.seconds:5.1f}s exit {r.exit_code} {' '.join(r.args)[:90]} (&)")
        return results

    def add_evidence(self, ref: str, observed_on: date, *items: tuple[str, str],
                     value: float = 100) -> None:
        """Record evidence items (source, recorded by), all at once, through the CLI."""
        results = self.cli_parallel(*[
            ["evidence", "add", ref, "--source", source, "--value", value, "--sample", "12",
             "--observed-on", observed_on.isoformat(), "--reference",
             f"{source} audit {observed_on}", "--by", by, "--json"]
            for source, by in items
        ])
        for result in results:
            assert result.exit_code == 0, f"{result}\n{self.diagnostics()}"

    # ------------------------------------------------------------------ domain views

    def action(self, ref: str) -> dict[str, Any]:
        data: dict[str, Any] = self.cli_json("action", "show", ref)
        return data

    def status(self, ref: str) -> str:
        return str(self.query("SELECT status FROM recovery_action WHERE ref = :r", r=ref)[0][0])

    def flow_run_id(self, ref: str) -> str:
        rows = self.query("SELECT flow_run_id FROM recovery_action WHERE ref = :r", r=ref)
        assert rows and rows[0][0], f"{ref} has no lifecycle run"
        return str(rows[0][0])

    def audit(self, ref: str) -> list[dict[str, Any]]:
        """The action's audit trail as `recovery audit show REF --json` prints it."""
        entries: list[dict[str, Any]] = self.cli_json("audit", "show", ref)
        return entries

    def audit_events(self, ref: str) -> list[str]:
        """The action's audit events in order, read from the database (cheaper than the
        CLI when only the events are asserted)."""
        return [r[0] for r in self.query(
            "SELECT event FROM audit_log WHERE action_ref = :r ORDER BY seq", r=ref)]

    def engine(self) -> Any:
        if self._engine is None:
            self._engine = create_engine(self.database_url,
                                         connect_args={"timeout": 30})
        return self._engine

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Read the app database (assertions only)."""
        with self.engine().connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params).all()]

    def execute(self, sql: str, **params: Any) -> None:
        """Write to the app database directly. Only for what no command can do (ageing a
        sign-off code past its expiry); everything else goes through the CLI."""
        with self.engine().begin() as conn:
            conn.execute(text(sql), params)

    def count(self, table: str, ref: str, where: str = "", **params: Any) -> int:
        sql = (f"SELECT COUNT(*) FROM {table} t JOIN recovery_action a ON a.id = t.action_id "
               f"WHERE a.ref = :ref {('AND ' + where) if where else ''}")
        return int(self.query(sql, ref=ref, **params)[0][0])

    # ------------------------------------------------------------------ mail

    def mails(self, *, to: str | None = None, subject: str = "") -> list[EmailMessage]:
        out = []
        for message in self.sink.messages():
            if subject not in str(message["Subject"]):
                continue
            if to is not None and to not in str(message["X-Envelope-To"]):
                continue
            out.append(message)
        return out

    def wait_for_mails(self, count: int, *, to: str | None = None, subject: str = "",
                       timeout: float = 60) -> list[EmailMessage]:
        """Wait until at least `count` matching messages arrived; return them all."""
        def arrived() -> list[EmailMessage] | None:
            found = self.mails(to=to, subject=subject)
            return found if len(found) >= count else None

        return wait_until(arrived, timeout=timeout, interval=0.2,
                          message=f"{count} mail(s) '{subject}' to {to}\n{self.diagnostics()}")

    def signoff_mails(self, ref: str, kind: str) -> list[EmailMessage]:
        return self.mails(subject=f"{ref}: your {kind} sign-off is needed")

    def signoff_code(self, ref: str, kind: str, *, number: int = 1,
                     timeout: float = 60) -> str:
        """The code in the `number`-th sign-off request email for this action and stage."""
        messages = self.wait_for_mails(number, subject=f"{ref}: your {kind} sign-off is needed",
                                       timeout=timeout)
        return code_in(messages[number - 1])

    # ------------------------------------------------------------------ Prefect

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        from prefect import get_client

        with self.server.settings(), get_client(sync_client=True) as client:
            yield client

    def flow_run(self, ref: str) -> Any:
        with self.client() as client:
            return client.read_flow_run(self.flow_run_id(ref))

    def wait_for_run(self, ref: str, predicate: Callable[[Any], bool], *, what: str,
                     timeout: float = 90) -> Any:
        from uuid import UUID

        run_id = UUID(self.flow_run_id(ref))
        with self.client() as client:
            def check() -> Any:
                run = client.read_flow_run(run_id)
                return run if predicate(run) else None

            try:
                return wait_until(check, timeout=timeout, interval=0.2, message=what)
            except TimeoutError as exc:
                state = client.read_flow_run(run_id).state
                raise AssertionError(
                    f"{ref}: {exc}; the run is {state and state.type.value} {state and state.name}"
                    f": {state and state.message}\n{self.diagnostics()}") from None

    def wait_for_wait(self, ref: str, key_prefix: str, *, timeout: float = 90) -> str:
        """Wait until the run is suspended under a key starting with `key_prefix` and its
        input schema is stored (a resume before that is refused); return the key."""
        with self.client() as client:
            def ready(run: Any) -> bool:
                state = run.state
                if state is None or not state.is_paused():
                    return False
                key = state.state_details.pause_key or ""
                keyset = state.state_details.run_input_keyset
                if not key.startswith(key_prefix) or not keyset:
                    return False
                try:
                    client.read_flow_run_input(flow_run_id=run.id, key=keyset["schema"])
                except Exception:  # noqa: BLE001 - 404 until the flow has stored it
                    return False
                return True

            run = self.wait_for_run(ref, ready, what=f"a wait under {key_prefix}*",
                                    timeout=timeout)
        return str(run.state.state_details.pause_key)

    def task_runs(self, ref: str) -> list[Any]:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.client.schemas.sorting import TaskRunSort

        with self.client() as client:
            return list(client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[self.flow_run_id(ref)])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            ))

    def wait_for_task_states(self, ref: str, name_prefix: str, states: list[str], *,
                             timeout: float = 30) -> list[Any]:
        """The run's task runs named `name_prefix...` once their final states, sorted, are
        `states`. The server records task-run states from events, in batches, so a task's
        end can reach the API a moment after the flow's own next state."""
        def check() -> list[Any] | None:
            runs = [t for t in self.task_runs(ref) if t.name.startswith(name_prefix)]
            found = sorted(t.state.type.value for t in runs if t.state is not None)
            return runs if found == sorted(states) else None

        try:
            return wait_until(check, timeout=timeout, interval=0.2,
                              message=f"{name_prefix} task runs {states}")
        except TimeoutError as exc:
            seen = [(t.name, t.state and t.state.type.value) for t in self.task_runs(ref)
                    if t.name.startswith(name_prefix)]
            raise AssertionError(f"{ref}: {exc}; seen {seen}") from None

    def artifacts(self, key: str) -> list[Any]:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        with self.client() as client:
            return list(client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))


def code_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None, f"no text/plain part in {message['Subject']}"
    found = CODE_RE.search(body.get_content())
    assert found, f"no code in {message['Subject']}"
    return found.group(1)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())
