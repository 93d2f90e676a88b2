"""Shared by the fault, concurrency and production tests: a generated provider (people file
and plan files), an app database of the test's own, the product code pointed at it from
this process, and reads of the database for assertions.

Setting up many actions through 50 CLI subprocesses would take minutes here (each one
imports Prefect); the same services the CLI calls are used in-process instead, with the
product's own environment variables (``RECOVERY_*``) and its settings cache cleared.
What a test is about (restart, kill, SMTP down, a lock, two cycles at once) always runs
through the real processes: ``recovery serve``, ``recovery`` subprocesses, workers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from devstack.mailsink import MailSink, read_message
from tests.support.prefect_server import PrefectServer, ServeProcess, wait_until
from tests.support.recovery_stack import Result

REPO_ROOT = Path(__file__).resolve().parents[2]
RECOVERY_BIN = REPO_ROOT / ".venv" / "bin" / "recovery"
TODAY = datetime.now(ZoneInfo("Europe/London")).date()
CODE_RE = re.compile(r"code:\s*(\d{6})")

PROVIDER = "Faultline Care"
NI = "ni@faultline.example"
PROVIDER_LEAD = "provider.lead@faultline.example"
RATIONALE = "Interim controls are proportionate and the steps are clear"


# --------------------------------------------------------------------------- the provider


def site_code(site: int) -> str:
    return f"S{site:02d}"


def lead_of(site: int) -> str:
    return f"sg.lead.{site:02d}@faultline.example"


def reviewer_of(site: int) -> str:
    """The registered manager of the site: the senior reviewer of its actions."""
    return f"rm.{site:02d}@faultline.example"


def people_file(sites: int) -> dict[str, Any]:
    """A provider with `sites` locations, each with a registered manager (the reviewer), a
    safeguarding lead (the accountable lead) and a duty manager."""
    people: list[dict[str, Any]] = [
        {"name": "Nia Idris", "email": NI, "role": "nominated_individual"},
        {"name": "Pat Lowe", "email": PROVIDER_LEAD, "role": "provider_lead"},
    ]
    locations = []
    for site in range(1, sites + 1):
        name = f"Site {site:02d}"
        locations.append({"name": name, "code": site_code(site)})
        people += [
            {"name": f"Manager {site:02d}", "email": reviewer_of(site),
             "role": "registered_manager", "location": name},
            {"name": f"Lead {site:02d}", "email": lead_of(site), "role": "safeguarding_lead",
             "location": name},
            {"name": f"Duty {site:02d}", "email": f"duty.{site:02d}@faultline.example",
             "role": "duty_manager", "location": name},
        ]
    return {"provider": PROVIDER, "locations": locations, "people": people}


def plan_file(site: int, number: int, *, baseline_on: date | None = None,
              deadline: date | None = None, risk: dict[str, int] | None = None
              ) -> dict[str, Any]:
    """A safeguarding plan at a site (high risk unless `risk` says otherwise). With a
    baseline more than 14 days back and no evidence, the first daily review rates it off
    track and escalates it."""
    baseline_on = baseline_on or TODAY - timedelta(days=3)
    return {
        "location": f"Site {site:02d}",
        "title": f"Same-day review of safeguarding concerns, plan {number}",
        "template": "safeguarding-same-day-review",
        "risk_domain": "safeguarding",
        "quality_statements": ["safe.safeguarding"],
        "risk": risk or {"potential_harm": 5, "people_affected": 3,
                         "likelihood_of_recurrence": 4, "regulatory_impact": 4,
                         "control_strength": 4},
        "accountable_lead": lead_of(site),
        "senior_reviewer": reviewer_of(site),
        "baseline": {"issue": "Safeguarding records show delayed escalation decisions",
                     "value": 62, "as_of": baseline_on.isoformat()},
        "target": {"measure": "Concerns with same-day management review", "direction":
                   "at_least", "value": 100,
                   "deadline": (deadline or TODAY + timedelta(days=60)).isoformat()},
        "interim_controls": ["Registered manager reviews every open concern daily"],
    }


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_plans(directory: Path, count: int, sites: int, **kwargs: Any) -> list[Path]:
    """`count` plan files spread over the sites, in the order their refs are allocated."""
    return [write_yaml(directory / f"plan-{n:03d}.yaml",
                       plan_file((n - 1) % sites + 1, n, **kwargs))
            for n in range(1, count + 1)]


# --------------------------------------------------------------------------- environment


def clean_environ() -> dict[str, str]:
    """os.environ without anything that would point a child at another installation."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RECOVERY_", "PREFECT_"))}


@contextlib.contextmanager
def product_env(env: Mapping[str, str]) -> Iterator[None]:
    """Point the product code in this process (settings, database, SMTP, Prefect client)
    at `env` for the block; everything is restored afterwards."""
    import pytest

    from recovery.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("RECOVERY_"):
                mp.delenv(key)
        for key, value in env.items():
            if key.startswith("RECOVERY_") or key == "PREFECT_API_URL":
                mp.setenv(key, value)
        if "PREFECT_API_URL" not in env:
            mp.delenv("PREFECT_API_URL", raising=False)
        get_settings.cache_clear()
        try:
            if "PREFECT_API_URL" in env:
                from prefect.settings import PREFECT_API_URL, temporary_settings

                with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
                    yield
            else:
                yield
        finally:
            get_settings.cache_clear()


def make_database(url: str, people: dict[str, Any]) -> None:
    """Migrate an empty app database, load the quality statements and the people."""
    from models.planfile import parse_people
    from recovery.adapters import db
    from recovery.application import registry

    db.upgrade(url)
    with product_env({"RECOVERY_DATABASE_URL": url}), db.unit_of_work() as session:
        registry.initialise(session)
        registry.import_people(session, parse_people(yaml.safe_dump(people).encode()))
    db.engine_for(url).dispose()


# --------------------------------------------------------------------------- an app


@dataclass
class App:
    """One app database (SQLite file or PostgreSQL), a mail sink, and the environment
    every process of the test gets; optionally on a Prefect server, with `recovery serve`."""

    home: Path
    database_url: str
    server: PrefectServer | None = None
    sink: MailSink | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    serve: ServeProcess | None = None
    _engine: Engine | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {
            **clean_environ(),
            "RECOVERY_HOME": str(self.home),
            "RECOVERY_DATABASE_URL": self.database_url,
            "RECOVERY_SMTP_HOST": "127.0.0.1",
            "RECOVERY_SMTP_PORT": str(self.sink.port if self.sink else 9),
            "RECOVERY_SMTP_TIMEOUT": "10",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "COLUMNS": "200",
        }
        if self.server is not None:
            env.update(self.server.env)
            env.update({
                "RECOVERY_PREFECT_API_URL": self.server.api_url,
                "RECOVERY_PREFECT_UI_URL": self.server.ui_url,
                "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            })
        env.update(self.extra_env)
        return env

    @contextlib.contextmanager
    def inprocess(self, **extra: str) -> Iterator[None]:
        with product_env({**self.env, **extra}):
            yield

    def start_serve(self, *, limit: int | None = None, **extra: str) -> ServeProcess:
        """`recovery serve` (or, with `limit`, the same serve running at most `limit` flow
        runs at once: tests/faults/serve_limited.py)."""
        argv = [str(RECOVERY_BIN), "serve"] if limit is None else \
            [str(RECOVERY_BIN.with_name("python")), "-m", "tests.faults.serve_limited",
             str(limit)]
        self.serve = ServeProcess(argv, env={**self.env, **extra}, cwd=REPO_ROOT,
                                  log_path=self.home / "serve.log")
        self.serve.start()
        self.serve.wait_for_output("being served", timeout=120)
        return self.serve

    def stop_serve(self) -> None:
        """Stop `recovery serve` (waiting for its flow-run processes first). Only one serve
        process may run per Prefect server: they all serve the same deployment names, and a
        run goes to whichever polls first."""
        if self.serve is not None:
            self.serve.stop(idle_timeout=10)
            self.serve = None

    def dispose(self) -> None:
        """Close the connections of the assertion reads."""
        if self._engine is not None:
            self._engine.dispose()

    def stop(self) -> None:
        if self.serve is not None:
            with contextlib.suppress(Exception):
                self.serve.stop(idle_timeout=10)
        if self.sink is not None:
            self.sink.stop()
        if self._engine is not None:
            self._engine.dispose()

    # ------------------------------------------------------------------ the CLI

    def cli(self, *args: Any, timeout: float = 240, env: Mapping[str, str] | None = None
            ) -> Result:
        argv = [str(a) for a in args]
        started = time.monotonic()
        proc = subprocess.run([str(RECOVERY_BIN), *argv], env={**self.env, **(env or {})},
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                              check=False)
        return Result(argv, proc.returncode, proc.stdout, proc.stderr,
                      time.monotonic() - started)

    def cli_parallel(self, *commands: Sequence[Any], timeout: float = 240,
                     env: Mapping[str, str] | None = None) -> list[Result]:
        """Start every command at the same moment; wait for all."""
        started = time.monotonic()
        procs = [(subprocess.Popen([str(RECOVERY_BIN), *[str(a) for a in cmd]],
                                   env={**self.env, **(env or {})}, cwd=REPO_ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                  [str(a) for a in cmd]) for cmd in commands]
        results = []
        for proc, argv in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append(Result(argv, proc.returncode, out, err, time.monotonic() - started))
        return results

    def diagnostics(self) -> str:
        serve = self.serve.output(since_start=False)[-6000:] if self.serve else ""
        return f"--- serve log (tail) ---\n{serve}"

    # ------------------------------------------------------------------ reads

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        if self._engine is None:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://"):]
            self._engine = create_engine(url)
        with self._engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params).all()]

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.query(sql, **params)[0][0]

    def per_action(self, sql: str, **params: Any) -> dict[str, int]:
        """{ref: count} from a query returning (ref, count) rows."""
        return {str(ref): int(n) for ref, n in self.query(sql, **params)}

    def audit_events(self, event: str) -> dict[str, int]:
        return self.per_action("SELECT action_ref, COUNT(*) FROM audit_log WHERE event = :e "
                               "GROUP BY action_ref", e=event)

    def status_of(self, refs: Sequence[str]) -> dict[str, str]:
        rows = self.query("SELECT ref, status FROM recovery_action")
        wanted = set(refs)
        return {str(r): str(s) for r, s in rows if r in wanted}

    # ------------------------------------------------------------------ mail

    def mails(self, subject: str = "") -> list[EmailMessage]:
        assert self.sink is not None
        return [m for m in self.sink.messages() if subject in str(m["Subject"])]

    def mail_keys(self) -> list[str]:
        """The outbox key of every message the sink received (X-Recovery-Key), in order."""
        assert self.sink is not None
        return [str(read_message(p)["X-Recovery-Key"]) for p in self.sink.paths()]


#: recovery.adapters.audit_log._CHAIN_LOCK: a test that holds it stops every audit append there.
CHAIN_LOCK = 7_204_161


def waiting_on_chain_lock(app: App) -> bool:
    """A backend of the app database (PostgreSQL) that has written (it has a transaction
    id) and now waits for the audit chain's advisory lock."""
    name = app.database_url.rsplit("/", 1)[1]
    return bool(app.scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = :d AND wait_event_type = "
        "'Lock' AND wait_event = 'advisory' AND backend_xid IS NOT NULL", d=name))


def new_sqlite_app(home: Path, template: Path, **kwargs: Any) -> App:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, home / "recovery.db")
    return App(home=home, database_url=f"sqlite:///{home / 'recovery.db'}", **kwargs)


def code_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None, f"no text/plain part in {message['Subject']}"
    found = CODE_RE.search(body.get_content())
    assert found, f"no code in {message['Subject']}"
    return found.group(1)


def signoff_codes(app: App, kind: str = "plan") -> dict[str, list[str]]:
    """{ref: [code of the 1st request, 2nd, ...]} from the sign-off emails in the sink."""
    found: dict[str, list[str]] = {}
    for message in app.mails(f"your {kind} sign-off is needed"):
        ref = str(message["Subject"]).split(":", 1)[0].strip()
        found.setdefault(ref, []).append(code_in(message))
    return found


# --------------------------------------------------------------------------- in-process


def open_actions(plans: Sequence[Path], *, by: str = NI) -> list[str]:
    """Open each plan exactly as `recovery action open --no-flow` does; the refs."""
    from models.planfile import parse_plan
    from recovery.adapters import db
    from recovery.application import action_plans

    refs = []
    for path in plans:
        plan = parse_plan(path.read_bytes())
        with db.unit_of_work() as session:
            refs.append(action_plans.open_action(session, plan, actor=by).ref)
    return refs


def outbox_code(ref: str, kind: str = "plan", attempt: int = 1) -> str:
    """The one-time code in the queued sign-off email (as the reviewer would read it)."""
    from sqlmodel import select

    from recovery.adapters import db, mail
    from recovery.adapters.tables import OutboxRow

    with db.unit_of_work() as session:
        row = session.exec(select(OutboxRow).where(
            OutboxRow.dedupe_key == f"signoff:{ref}:{kind}:{attempt}")).one()
        text = mail.outgoing(row)[1]  # the code is put in as the email is sent
        found = CODE_RE.search(text)
        assert found, text
        return found.group(1)


def approve_plans(refs: Sequence[str]) -> None:
    """Submit each plan and approve it with the emailed code, through the same domain
    calls the lifecycle's tasks make (no flow run): the actions are then in recovery."""
    from models.signoff import SignoffKind, Submission
    from recovery.adapters import db
    from recovery.adapters import repository as repo
    from recovery.application import signoff_codes, signoffs, transitions

    for ref in refs:
        with db.unit_of_work() as session:
            transitions.submit_plan(session, ref, actor="lifecycle")
            wait = signoff_codes.open_signoff(session, ref, SignoffKind.PLAN, flow_run_id=None)
            reviewer = repo.person_by_id(session, repo.get_action(session, ref)
                                         .senior_reviewer_id).email
        code = outbox_code(ref)
        with db.unit_of_work() as session:
            outcome = signoffs.apply_signoff(
                session, ref, SignoffKind.PLAN, pause_key=wait.pause_key,
                submission=Submission(reviewer_email=reviewer, code=code,
                                      decision="approve", rationale=RATIONALE))
        assert outcome.applied, outcome


def prefect_client(server: PrefectServer) -> Any:
    """A sync Prefect client for `server` (use as a context manager inside
    `server.settings()`)."""
    from prefect import get_client

    return get_client(sync_client=True)


def read_runs(client: Any, run_ids: Sequence[str]) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs: list[Any] = []
    ids = list(run_ids)
    for start in range(0, len(ids), 200):
        runs += client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids[start:start + 200])),
            limit=200)
    return runs


def wait_all_paused(client: Any, run_ids: Sequence[str], key_prefix: str, *,
                    timeout: float, app: App | None = None) -> dict[str, Any]:
    """Wait until every run is suspended under a key starting with `key_prefix` with its
    input schema stored (a resume before that is refused). {run id: run}."""
    ready: dict[str, Any] = {}

    def check() -> bool:
        waiting = [r for r in read_runs(client, [i for i in run_ids if i not in ready])
                   if r.state is not None and r.state.is_paused()
                   and (r.state.state_details.pause_key or "").startswith(key_prefix)]
        for run in waiting:
            keyset = run.state.state_details.run_input_keyset
            try:
                client.read_flow_run_input(flow_run_id=run.id, key=keyset["schema"])
            except Exception:  # noqa: BLE001 - 404 until the flow has stored it
                continue
            ready[str(run.id)] = run
        return len(ready) == len(run_ids)

    try:
        wait_until(check, timeout=timeout, interval=1.0,
                   message=f"{len(run_ids)} runs waiting under {key_prefix}*")
    except TimeoutError as exc:
        states: dict[str, int] = {}
        for run in read_runs(client, [i for i in run_ids if i not in ready]):
            state = run.state
            label = (f"{state.type.value} {state.name} {state.state_details.pause_key}"
                     if state else "no state")
            states[label] = states.get(label, 0) + 1
        raise AssertionError(f"{exc}: {len(ready)} ready; the others: {states}\n"
                             f"{app.diagnostics() if app else ''}") from None
    return ready


# --------------------------------------------------------------------------- PostgreSQL

PG_ADMIN_URL = os.environ.get("RECOVERY_TEST_PG_ADMIN_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def postgres_app_database(people: dict[str, Any], prefix: str = "rg_faults_"
                          ) -> Iterator[str]:
    """A fresh PostgreSQL app database (migrated, statements and people loaded), dropped
    afterwards. Yields its ``postgresql://`` URL (RECOVERY_DATABASE_URL)."""
    import uuid

    import psycopg

    from recovery.adapters import db

    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    server = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{server}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        make_database(url, people)
        yield url
    finally:
        db.engine_for(url).dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- a stalled SMTP


class Tarpit:
    """A mail server that accepts TCP connections and then never says a word: the client
    waits for the greeting until its own timeout. `accepted` is set on the first
    connection, so a test knows the product is stuck exactly there."""

    def __init__(self) -> None:
        import socket
        import threading

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self.accepted = threading.Event()
        self.connections: list[Any] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            self.accepted.set()

    def stop(self) -> None:
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.close()
        with contextlib.suppress(OSError):
            self._sock.close()


def escalation_events(client: Any, since: datetime, refs: Sequence[str]) -> list[str]:
    """Resource ids of `recovery.action.escalated` events for `refs` since `since` (every
    page: the events API returns at most 50 at a time)."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    page = client.read_events(filter=EventFilter(
        occurred=EventOccurredFilter(since=since),
        event=EventNameFilter(name=["recovery.action.escalated"])), limit=50)
    found = []
    while True:
        found += [e.resource.id for e in page.events
                  if e.resource.id.removeprefix("recovery.action.") in refs]
        if not page.next_page:
            return found
        page = client.read_events_page(page.next_page)
