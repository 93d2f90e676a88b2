"""`recovery serve` SIGKILLed (with its flow-run process) in the middle of a lifecycle stage
and in the middle of a daily review cycle: the next run completes with no duplicate
review, email, audit entry or decision.

Prefect leaves a SIGKILLed run "Running" for ever; `recovery.application.reconcile.reconcile`
finds it
(no heartbeat for the threshold), marks it Crashed and schedules it again, and the next
`recovery serve` runs it from the top. Each kill happens at a point the test controls, so
the test is deterministic:

- lifecycle, stage "request sign-off": the request and its email are committed, then the
  email flush hangs on a mail server that accepts the connection and never answers;
- lifecycle, after the reviewer's answer: the run is back and waits for the database,
  which the test holds locked (SQLite BEGIN IMMEDIATE);
- daily review on PostgreSQL, inside the cycle's transaction: the reviews and the first
  escalation are written and the audit append waits for the chain lock, which the test
  holds (the transaction is then lost with the process);
- daily review, after its transaction committed: the escalation emails hang as above.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from devstack.mailsink import MailSink
from tests.faults.conftest import SITES
from tests.faults.helpers import (
    CHAIN_LOCK,
    RATIONALE,
    TODAY,
    App,
    Tarpit,
    approve_plans,
    escalation_events,
    new_sqlite_app,
    open_actions,
    people_file,
    postgres_app_database,
    prefect_client,
    reviewer_of,
    signoff_codes,
    wait_all_paused,
    waiting_on_chain_lock,
    write_plans,
)
from tests.support.prefect_server import PrefectServer, wait_for_final, wait_until

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

#: A run is declared lost after this many seconds without a sign of life (the test waits
#: a little longer after each kill; nothing else runs meanwhile).
LOST_AFTER = 2.0
SERVE_ENV = {
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "RECOVERY_SMTP_TIMEOUT": "120",
    "RECOVERY_DB_BUSY_TIMEOUT": "120",
}
CYCLE_ACTIONS = 40


def _reconcile(app: App) -> list[str]:
    from recovery.application.reconcile import reconcile

    with app.inprocess():
        assert reconcile(600) == []  # a run that was alive a moment ago is left alone
        time.sleep(LOST_AFTER + 1.5)
        return reconcile(LOST_AFTER)


def _state(client: Any, run_id: str) -> Any:
    return client.read_flow_run(UUID(run_id)).state


def _wait_running(client: Any, run_id: str, timeout: float = 240) -> None:
    wait_until(lambda: _state(client, run_id).is_running(), timeout=timeout,
               message=f"run {run_id} Running")


def _still_beating_is_left_alone(app: App, client: Any, run_id: str) -> None:
    """Wait for a heartbeat well after the run started (they come every 30 s here), then
    reconcile with a threshold the run's Running state is older than but its last
    heartbeat is not: the run must stay Running, untouched."""
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    from recovery.application.reconcile import reconcile

    since = _state(client, run_id).timestamp
    assert _state(client, run_id).is_running()

    def late_beat() -> Any:
        page = client.read_events(filter=EventFilter(
            occurred=EventOccurredFilter(since=since + timedelta(seconds=10)),
            event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"])), limit=1)
        return page.events[0] if page.events else None

    beat = wait_until(late_beat, timeout=120, interval=1, message="a second heartbeat")
    now = datetime.now(UTC)
    threshold = ((now - since) + (now - beat.occurred)).total_seconds() / 2
    assert (now - beat.occurred).total_seconds() < threshold < (now - since).total_seconds()
    with app.inprocess():
        assert reconcile(threshold) == []
    assert _state(client, run_id).is_running()


def _state_names(client: Any, run_id: str) -> list[str]:
    return [s.name for s in client.read_flow_run_states(UUID(run_id))]


# --------------------------------------------------------------------------- lifecycle


@pytest.fixture(scope="module")
def lifecycle_app(faults_server: PrefectServer, app_template: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    home = tmp_path_factory.mktemp("kill-lifecycle")
    app = new_sqlite_app(home, app_template, server=faults_server,
                         sink=MailSink(home / "mail", port=None))
    assert app.sink is not None
    app.sink.start()
    try:
        yield app
    finally:
        app.stop()


@pytest.mark.timeout(900)
def test_serve_killed_in_lifecycle_stages(lifecycle_app: App, tmp_path: Path) -> None:
    from prefect.flow_runs import resume_flow_run

    app = lifecycle_app
    server = app.server
    assert server is not None
    [plan] = write_plans(tmp_path, 1, SITES)
    tarpit = Tarpit()
    try:
        app.start_serve(**SERVE_ENV, RECOVERY_SMTP_PORT=str(tarpit.port))
        opened = app.cli("action", "open", plan, "--json")
        assert opened.exit_code == 0, f"{opened}\n{app.diagnostics()}"
        ref, run_id = opened.json()["ref"], opened.json()["flow_run_id"]

        # ---- kill 1: the sign-off request is committed, its email flush hangs
        assert tarpit.accepted.wait(300), app.diagnostics()
        assert app.scalar("SELECT COUNT(*) FROM signoff_request") == 1
        assert app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == 1
        # a run that is slow but alive keeps sending heartbeats: never taken for lost
        with server.settings(), prefect_client(server) as client:
            _still_beating_is_left_alone(app, client, run_id)
        assert app.serve is not None
        app.serve.kill()
    finally:
        tarpit.stop()
    with server.settings(), prefect_client(server) as client:
        assert _state(client, run_id).is_running()  # Prefect cannot tell
        assert run_id in _reconcile(app)
        assert _state(client, run_id).is_scheduled()

        app.start_serve(**SERVE_ENV)  # mail works again
        wait_all_paused(client, [run_id], "plan-signoff-1-", timeout=300, app=app)
        assert app.status_of([ref]) == {ref: "awaiting_plan_signoff"}
        codes = signoff_codes(app)
        assert list(codes) == [ref] and len(codes[ref]) == 1, codes  # the same code, once

        # ---- kill 2: the reviewer answers; the run is back and waits for the database
        holder = sqlite3.connect(app.home / "recovery.db", timeout=30, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            resume_flow_run(UUID(run_id), run_input={
                "reviewer_email": reviewer_of(int(ref[1:3])), "code": codes[ref][0],
                "decision": "approve", "rationale": RATIONALE})
            _wait_running(client, run_id)
            time.sleep(3)
            assert _state(client, run_id).is_running()
            app.serve.kill()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert app.scalar("SELECT COUNT(*) FROM decision") == 0
        assert run_id in _reconcile(app)

        app.start_serve(**SERVE_ENV)
        wait_all_paused(client, [run_id], "closure-request-1-", timeout=300, app=app)
        names = _state_names(client, run_id)
        app.stop_serve()
    assert names.count("Crashed") == 2 and names.count("Rescheduled") == 2, names

    # ---- exactly once: every stage, the request, its email, the decision
    assert app.status_of([ref]) == {ref: "in_recovery"}
    assert app.query("SELECT kind, attempt, decision FROM decision") == [("plan", 1, "approve")]
    assert app.scalar("SELECT COUNT(*) FROM signoff_request") == 1
    events = app.query("SELECT event, COUNT(*) FROM audit_log WHERE action_ref = :r "
                       "GROUP BY event", r=ref)
    counts = dict(events)
    for event in ("action.opened", "stage.risk_rated", "stage.accountability_confirmed",
                  "stage.baseline_recorded", "stage.cadence_set", "status.submit_plan",
                  "signoff.requested", "status.approve_plan"):
        assert counts.get(event) == 1, (event, counts)
    assert set(counts) <= {"action.opened", "stage.risk_rated", "stage.accountability_confirmed",
                           "stage.baseline_recorded", "stage.cadence_set", "status.submit_plan",
                           "signoff.requested", "status.approve_plan"}, counts
    # the code email once, and the decision told once to each: the reviewer, the lead and
    # (high risk) the location's registered manager
    keys = app.mail_keys()
    assert keys[0] == f"signoff:{ref}:plan:1" and len(keys) == len(set(keys)), keys
    told = app.query(
        "SELECT p.email, p.role FROM person p JOIN recovery_action a ON a.ref = :r "
        "WHERE p.id IN (a.accountable_lead_id, a.senior_reviewer_id) OR "
        "(p.role = 'registered_manager' AND p.location_id = a.location_id "
        " AND a.risk_level = 'high')", r=ref)
    assert sorted(keys[1:]) == sorted(f"signoff.decided:{ref}:plan:1:{email}"
                                      for email, _ in told), (keys, told)
    assert app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == 0
    verified = app.cli("audit", "verify", "--json")
    assert verified.exit_code == 0 and verified.json()["ok"] is True, str(verified)


# --------------------------------------------------------------------------- daily review


@pytest.fixture(scope="module")
def cycle_app(faults_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[App]:
    home = tmp_path_factory.mktemp("kill-cycle")
    with postgres_app_database(people_file(SITES)) as url:
        app = App(home=home, database_url=url, server=faults_server,
                  sink=MailSink(home / "mail", port=None))
        assert app.sink is not None
        app.sink.start()
        try:
            yield app
        finally:
            app.stop()


@pytest.mark.timeout(900)
def test_serve_killed_in_a_daily_review(cycle_app: App, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    from recovery.adapters import mail

    app = cycle_app
    server = app.server
    assert server is not None
    # In recovery for a month without any evidence: the first review escalates every one.
    plans = write_plans(tmp_path, CYCLE_ACTIONS, SITES, baseline_on=TODAY - timedelta(days=30))
    with app.inprocess():
        refs = open_actions(plans)
        approve_plans(refs)
        mail.flush()  # the sign-off requests, out of the way
    app.sink.clear()  # type: ignore[union-attr]
    day = TODAY.isoformat()
    started = datetime.now(UTC)

    def reviews() -> int:
        return int(app.scalar("SELECT COUNT(*) FROM review WHERE as_of = :d", d=TODAY))

    with server.settings(), prefect_client(server) as client:
        # ---- kill 1: inside the cycle's transaction (reviews and an escalation written)
        app.start_serve(**SERVE_ENV)
        chain = psycopg.connect(app.database_url, autocommit=True)
        try:
            chain.execute("SELECT pg_advisory_lock(%s)", (CHAIN_LOCK,))
            run = run_deployment("daily-review/daily-review", parameters={"as_of": day},
                                 timeout=0)
            run_id = str(run.id)
            wait_until(lambda: waiting_on_chain_lock(app), timeout=300, interval=0.1,
                       message=f"the cycle's transaction at the audit append\n"
                               f"{app.diagnostics()}")
            assert app.serve is not None
            app.serve.kill()
        finally:
            chain.close()  # releases the lock
        assert _state(client, run_id).is_running()
        wait_until(lambda: not waiting_on_chain_lock(app), timeout=30, message="abort")
        assert reviews() == 0  # the lost transaction left nothing behind
        assert app.scalar("SELECT COUNT(*) FROM escalation") == 0
        assert app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == 0
        assert run_id in _reconcile(app)

        # ---- kill 2: the cycle's transaction committed; its email flush hangs
        tarpit = Tarpit()
        try:
            app.start_serve(**SERVE_ENV, RECOVERY_SMTP_PORT=str(tarpit.port))
            assert tarpit.accepted.wait(300), app.diagnostics()
            assert reviews() == CYCLE_ACTIONS
            assert app.scalar("SELECT COUNT(*) FROM escalation") == CYCLE_ACTIONS
            app.serve.kill()
        finally:
            tarpit.stop()
        assert _state(client, run_id).is_running()
        assert run_id in _reconcile(app)

        # ---- the next run completes
        app.start_serve(**SERVE_ENV)
        final = wait_for_final(client, UUID(run_id), timeout=300)
        assert final.state.is_completed(), f"{final.state}\n{app.diagnostics()}"
        app.stop_serve()
        names = _state_names(client, run_id)
        assert names.count("Crashed") == 2 and names.count("Rescheduled") == 2, names

        again = app.cli("review", "run", "daily", "--as-of", day, "--json")
        assert again.exit_code == 0, str(again)
        assert again.json()["reviewed"] == 0 and again.json()["escalated"] == [], str(again)

        wait_until(lambda: len(escalation_events(client, started, refs)) >= CYCLE_ACTIONS,
                   timeout=60, message="escalation events")
        time.sleep(1.5)
        emitted = escalation_events(client, started, refs)
    assert sorted(emitted) == sorted(f"recovery.action.{r}" for r in refs)

    # ---- exactly once: one review per action for the day, one escalation, one email
    assert app.per_action("SELECT a.ref, COUNT(*) FROM review r JOIN recovery_action a "
                          "ON a.id = r.action_id WHERE r.as_of = :d GROUP BY a.ref",
                          d=TODAY) == dict.fromkeys(refs, 1)
    assert app.per_action("SELECT a.ref, COUNT(*) FROM escalation e JOIN recovery_action a "
                          "ON a.id = e.action_id GROUP BY a.ref") == dict.fromkeys(refs, 1)
    assert app.audit_events("action.escalated") == dict.fromkeys(refs, 1)
    assert app.scalar("SELECT COUNT(*) FROM audit_log WHERE event = 'cycle.daily_review'") == 1
    keys = app.mail_keys()
    assert len(keys) == len(set(keys)), keys
    assert all(k.startswith("escalation:") for k in keys)
    # one escalation per action, one message per person told (`escalation:REF:ID:address`)
    assert len({k.rsplit(":", 1)[0] for k in keys}) == CYCLE_ACTIONS, keys
    assert app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == 0
    verified = app.cli("audit", "verify", "--json")
    assert verified.exit_code == 0 and verified.json()["ok"] is True, str(verified)
