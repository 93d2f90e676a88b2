"""At the same moment, on SQLite and on PostgreSQL: two daily review cycles for one date,
evidence recorded while the triangulation gate evaluates, and four sign-off answers for one
request. Exactly-once outcomes, asserted.

"At the same moment" is forced, not hoped for:
- the two cycles are `recovery review run daily --as-of D` processes started together; the
  test holds the database (SQLite: a BEGIN IMMEDIATE lock; PostgreSQL: the audit chain's
  advisory lock) until both are inside it, then lets go;
- the gate and sign-off races are processes (forked, each with its own database
  connections) released by one barrier.

Two `recovery signoff` processes against one suspended run (the Prefect resume race) are
tests/e2e/test_concurrent_signoffs.py.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import pytest

from devstack.mailsink import MailSink
from tests.faults import workers
from tests.faults.conftest import SITES
from tests.faults.helpers import (
    RATIONALE,
    TODAY,
    App,
    approve_plans,
    escalation_events,
    lead_of,
    new_sqlite_app,
    open_actions,
    outbox_code,
    people_file,
    postgres_app_database,
    prefect_client,
    reviewer_of,
    write_plans,
)
from tests.support.prefect_server import PrefectServer, wait_until

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

CYCLE_ACTIONS = 6
CHAIN_LOCK = 7_204_161  # recovery.adapters.audit_log._CHAIN_LOCK


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, faults_server: PrefectServer, app_template: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    home = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    sink = MailSink(home / "mail", port=None)
    if request.param == "sqlite":
        app = new_sqlite_app(home, app_template, server=faults_server, sink=sink)
        sink.start()
        try:
            yield app
        finally:
            app.stop()
        return
    with postgres_app_database(people_file(SITES)) as url:
        app = App(home=home, database_url=url, server=faults_server, sink=sink)
        sink.start()
        try:
            yield app
        finally:
            app.stop()


def _spawn(env: dict[str, str], *calls: tuple[Any, ...]) -> dict[str, Any]:
    """Run worker calls (tests/faults/workers.py) in fresh processes released together by
    one barrier; {name: result}. Each call is (function, name, *args)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(calls))
    results = ctx.Queue()
    procs = [ctx.Process(target=fn, args=(env, barrier, results, name, *args))
             for fn, name, *args in calls]
    for proc in procs:
        proc.start()
    out: dict[str, Any] = {}
    try:
        for _ in procs:
            name, status, value = results.get(timeout=300)
            assert status == "ok", f"{name}: {value}"
            out[name] = value
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return out


# --------------------------------------------------------------------------- two cycles


def _both_inside(app: App, pids: list[int]) -> bool:
    """Both cycle processes have reached the database and wait there."""
    if app.database_url.startswith("sqlite"):
        import os

        path = str(app.home / "recovery.db")

        def has_open(pid: int) -> bool:
            try:
                return any(os.readlink(f"/proc/{pid}/fd/{fd}") == path
                           for fd in os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                return False

        return all(has_open(pid) for pid in pids)
    name = app.database_url.rsplit("/", 1)[1]
    return int(app.scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = :d "
                          "AND wait_event_type = 'Lock'", d=name)) >= 2


@pytest.mark.timeout(600)
def test_two_daily_cycles_for_one_date_at_once(app: App, tmp_path: Path) -> None:
    import subprocess

    from recovery.adapters import mail
    from tests.faults.helpers import RECOVERY_BIN, REPO_ROOT

    plans = write_plans(tmp_path, CYCLE_ACTIONS, SITES, baseline_on=TODAY - timedelta(days=30))
    with app.inprocess():
        refs = open_actions(plans)
        approve_plans(refs)
        mail.flush()
    assert app.sink is not None
    app.sink.clear()
    started = datetime.now(UTC)
    command = [str(RECOVERY_BIN), "review", "run", "daily", "--as-of", TODAY.isoformat(),
               "--json"]

    sqlite = app.database_url.startswith("sqlite")
    holder: Any
    if sqlite:
        holder = sqlite3.connect(app.home / "recovery.db", timeout=30, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        holder = psycopg.connect(app.database_url, autocommit=True)
        holder.execute("SELECT pg_advisory_lock(%s)", (CHAIN_LOCK,))
    try:
        procs = [subprocess.Popen(command, env=app.env, cwd=REPO_ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        wait_until(lambda: _both_inside(app, [p.pid for p in procs]), timeout=240,
                   interval=0.1, message="both cycles inside the database")
    finally:
        if sqlite:
            holder.execute("ROLLBACK")
        holder.close()
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, (out, err)
    import json

    results = [json.loads(out) for out, _ in outputs]
    assert sorted(r["reviewed"] for r in results) == [0, CYCLE_ACTIONS], results
    assert sorted(results[0]["escalated"] + results[1]["escalated"]) == sorted(refs), results

    # one review per action for the day, one escalation, one audit entry, one email
    assert app.per_action("SELECT a.ref, COUNT(*) FROM review r JOIN recovery_action a "
                          "ON a.id = r.action_id WHERE r.as_of = :d GROUP BY a.ref",
                          d=TODAY) == dict.fromkeys(refs, 1)
    assert app.per_action("SELECT a.ref, COUNT(*) FROM escalation e JOIN recovery_action a "
                          "ON a.id = e.action_id GROUP BY a.ref") == dict.fromkeys(refs, 1)
    assert app.audit_events("action.escalated") == dict.fromkeys(refs, 1)
    assert app.scalar("SELECT COUNT(*) FROM audit_log WHERE event = 'cycle.daily_review'") == 1
    # one escalation email per action, as one message to each of its recipients
    keys = app.mail_keys()
    assert len(keys) == len(set(keys)), keys
    per_escalation = Counter(k.rsplit(":", 1)[0] if k.count(":") > 2 else k for k in keys)
    assert len(per_escalation) == CYCLE_ACTIONS, keys
    assert sorted(k.split(":")[1] for k in per_escalation) == sorted(refs), keys
    assert all(n >= 2 for n in per_escalation.values()), per_escalation  # lead and reviewer
    assert app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == 0
    assert app.scalar("SELECT COUNT(*) FROM escalation WHERE event_emitted_at IS NULL") == 0

    # ...and one Prefect event per escalation
    assert app.server is not None
    with app.server.settings(), prefect_client(app.server) as client:
        wait_until(lambda: len(escalation_events(client, started, refs)) >= CYCLE_ACTIONS,
                   timeout=60, message="events")
        time.sleep(1.5)
        assert sorted(escalation_events(client, started, refs)) == \
            sorted(f"recovery.action.{r}" for r in refs)


# --------------------------------------------------------------------------- the gate


def _evidence_items(site: int, count: int) -> list[dict[str, Any]]:
    sources = ["care_records", "audits", "feedback", "staff_practice"]
    people = [lead_of(site), f"duty.{site:02d}@faultline.example"]
    return [{"source": sources[n % 4], "value": 60.0 + n, "sample_size": 10 + n,
             "observed_on": TODAY, "reference": f"Record set {n}", "by": people[n % 2]}
            for n in range(count)]


@pytest.mark.timeout(600)
def test_evidence_added_while_the_gate_evaluates(app: App, tmp_path: Path) -> None:
    from recovery.adapters import audit_log, db
    from recovery.adapters import repository as repo
    from recovery.application import closure_requests, evidence_gate

    [plan] = write_plans(tmp_path, 1, SITES)
    site = 1
    with app.inprocess():
        [ref] = open_actions([plan])
        approve_plans([ref])
        with db.unit_of_work() as session:
            closure_requests.record_closure_request(
                session, ref, pause_key="closure-request-1-1", requested_by=lead_of(site),
                summary="Every concern reviewed the same day for four weeks")
    items = _evidence_items(site, 24)
    done = str(tmp_path / "writer-done")
    seen = _spawn(app.env,
                  (workers.add_evidence, "writer", ref, items, TODAY, done),
                  (workers.evaluate_gate, "gate-1", ref, TODAY, done),
                  (workers.evaluate_gate, "gate-2", ref, TODAY, done),
                  (workers.closure_gate, "closure-gate", ref, 0.2))

    with app.inprocess():
        # every verdict the gate can give over a consistent view: the evidence committed
        # up to some point (the writer commits one item at a time, in id order)
        with db.unit_of_work() as session:
            action = repo.get_action(session, ref)
            ids = [e.id for e in repo.evidence_of(session, action.id or 0)]
        assert ids == sorted(seen["writer"])  # nothing lost
        real = repo.evidence_of
        possible = set()
        for k in range(len(ids) + 1):
            allowed = set(ids[:k])
            with mock.patch.object(repo, "evidence_of", lambda s, a, allowed=allowed: [
                    e for e in real(s, a) if e.id in allowed]), db.unit_of_work() as session:
                verdict = evidence_gate.gate_verdict(session, ref, as_of=TODAY)
            possible.add((verdict.passed, tuple(verdict.reasons)))
        with db.unit_of_work() as session:
            verdict = evidence_gate.gate_verdict(session, ref, as_of=TODAY)
            final_verdict = (verdict.passed, tuple(verdict.reasons))
        with db.unit_of_work() as session:
            request = repo.latest_closure_request(session, action.id or 0)
            assert request is not None
            stored = (bool(request.gate_passed), tuple(request.gate_reasons))
            status = repo.get_action(session, ref).status
            verified = audit_log.verify(session)
        db.get_engine().dispose()

    observed = seen["gate-1"] + seen["gate-2"]
    torn = [v for v in observed if tuple(v) not in possible]
    assert not torn, torn[:3]
    # the evaluations overlapped the writes: they saw the evidence grow, to all of it
    assert len({tuple(v) for v in observed}) >= 2
    assert tuple(seen["gate-1"][-1]) == tuple(seen["gate-2"][-1]) == final_verdict
    assert tuple(seen["closure-gate"]) == stored and stored in possible
    assert status == ("awaiting_closure_signoff" if stored[0] else "in_recovery")
    assert app.scalar("SELECT COUNT(*) FROM audit_log WHERE event = 'evidence.added' "
                      "AND action_ref = :r", r=ref) == len(items)
    assert app.scalar("SELECT COUNT(*) FROM audit_log WHERE event IN "
                      "('status.gate_refused', 'status.gate_passed') AND action_ref = :r",
                      r=ref) == 1
    assert verified.ok, verified


# --------------------------------------------------------------------------- sign-offs


@pytest.mark.timeout(600)
def test_four_signoff_answers_at_once(app: App, tmp_path: Path) -> None:
    from models.signoff import SignoffKind
    from recovery.adapters import audit_log, db
    from recovery.application import signoff_codes, transitions

    [plan] = write_plans(tmp_path, 1, SITES)
    with app.inprocess():
        [ref] = open_actions([plan])
        with db.unit_of_work() as session:
            transitions.submit_plan(session, ref, actor="lifecycle")
            signoff_codes.open_signoff(session, ref, SignoffKind.PLAN, flow_run_id=None)
        code = outbox_code(ref)
    reviewer = reviewer_of(1)
    answers = {f"answer-{n}": (f"plan-signoff-1-{n}", decision)
               for n, decision in enumerate(["approve", "reject", "approve", "reject"], 1)}
    outcomes = _spawn(app.env, *[
        (workers.apply_signoff, name, ref, key,
         {"reviewer_email": reviewer, "code": code, "decision": decision,
          "rationale": f"{RATIONALE} ({name})"})
        for name, (key, decision) in answers.items()])

    applied = [name for name, o in outcomes.items() if o["applied"]]
    assert len(applied) == 1, outcomes
    [winner] = applied
    decision = answers[winner][1]
    for name, outcome in outcomes.items():
        if name != winner:
            assert outcome["reasons"] == [
                f"{ref} is no longer awaiting plan sign-off (status {outcome['status']})"], \
                outcome
    assert app.query("SELECT a.ref, d.decision, d.rationale FROM decision d JOIN "
                     "recovery_action a ON a.id = d.action_id WHERE a.ref = :r", r=ref) == \
        [(ref, decision, f"{RATIONALE} ({winner})")]
    assert app.status_of([ref]) == {
        ref: "in_recovery" if decision == "approve" else "plan_rejected"}
    assert app.scalar("SELECT COUNT(*) FROM audit_log WHERE action_ref = :r AND event IN "
                      "('status.approve_plan', 'status.reject_plan')", r=ref) == 1
    assert app.query("SELECT w.outcome, COUNT(*) FROM lifecycle_wait w JOIN recovery_action a "
                     "ON a.id = w.action_id WHERE a.ref = :r GROUP BY w.outcome "
                     "ORDER BY w.outcome", r=ref) == [("applied", 1), ("ignored", 3)]
    with app.inprocess():
        with db.unit_of_work() as session:
            verified = audit_log.verify(session)
        db.get_engine().dispose()
    assert verified.ok, verified


# --------------------------------------------------------------------------- the outbox


@pytest.mark.timeout(300)
def test_two_mail_flushes_at_once(app: App) -> None:
    """Every lifecycle stage and cycle flushes the outbox; two at once (two workers, a
    cycle and a stage) send each email once."""
    from recovery.adapters import db, mail
    from recovery.adapters.tables import OutboxRow, utcnow

    assert app.sink is not None
    with app.inprocess():
        mail.flush(ignore_backoff=True)  # what earlier tests queued, out of the way
        app.sink.clear()
        with db.unit_of_work() as session:
            session.add_all([OutboxRow(
                dedupe_key=f"concurrency-test:{n}", recipients=[reviewer_of(1)],
                subject=f"Outbox test {n}", text_body=f"Message {n}",
                html_body=f"<p>Message {n}</p>", next_attempt_at=utcnow())
                for n in range(30)])
        db.get_engine().dispose()
    results = _spawn(app.env, *[(workers.flush_mail, f"flush-{n}") for n in range(3)])
    assert sum(r["sent"] for r in results.values()) == 30, results
    assert all(r["failed"] == 0 for r in results.values()), results
    keys = app.mail_keys()
    assert sorted(keys) == sorted(f"concurrency-test:{n}" for n in range(30)), keys
    assert app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == 0
