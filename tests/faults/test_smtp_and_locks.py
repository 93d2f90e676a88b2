"""SMTP down for a whole daily cycle that escalates; the SQLite database locked by another
writer during `recovery evidence add`.

- SMTP down: the cycle completes (exit 0), every escalation is recorded and its email
  queued; when the mail server is back, `recovery mail flush` delivers each one exactly
  once, and a second flush or a second cycle for the day sends nothing more.
- SQLite busy: a writer holding the lock (BEGIN IMMEDIATE in another connection) for a
  few seconds only delays the command, which then succeeds; held past the busy timeout
  (RECOVERY_DB_BUSY_TIMEOUT, retried RECOVERY_DB_BUSY_RETRIES times) the command exits
  non-zero with a clear message and the database is exactly as before.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.mailsink import MailSink
from tests.faults.conftest import SITES
from tests.faults.helpers import (
    RECOVERY_BIN,
    REPO_ROOT,
    TODAY,
    App,
    approve_plans,
    lead_of,
    new_sqlite_app,
    open_actions,
    write_plans,
)
from tests.support.prefect_server import PrefectServer, wait_until

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

ACTIONS = 8


@pytest.fixture(scope="module")
def stack(faults_server: PrefectServer, app_template: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, list[str]]]:
    home = tmp_path_factory.mktemp("smtp-locks")
    # the sink is created (its port is in every process's environment) but not started:
    # SMTP is down until the test starts it
    app = new_sqlite_app(home, app_template, server=faults_server,
                         sink=MailSink(home / "mail", port=None))
    plans = write_plans(home / "plans", ACTIONS, SITES,
                        baseline_on=TODAY - timedelta(days=30))
    with app.inprocess():
        refs = open_actions(plans)
        approve_plans(refs)
    try:
        yield app, refs
    finally:
        app.stop()


@pytest.mark.timeout(600)
def test_smtp_down_for_a_whole_cycle(stack: tuple[App, list[str]]) -> None:
    app, refs = stack
    assert app.sink is not None and not app.sink.running
    queued_before = app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
    # the sign-off requests and the approvals' confirmations, never sent either
    assert app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL "
                      "AND dedupe_key LIKE 'signoff:%'") == ACTIONS
    told = app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL "
                      "AND dedupe_key LIKE 'signoff.decided:%'")
    assert told >= 2 * ACTIONS and queued_before == ACTIONS + told

    cycle = app.cli("review", "run", "daily", "--as-of", TODAY.isoformat(), "--json")
    assert cycle.exit_code == 0, str(cycle)
    result = cycle.json()
    assert result["reviewed"] == ACTIONS, result
    assert sorted(result["escalated"]) == sorted(refs), result

    # one row per person told (the lead, the reviewer, the location's managers)
    escalations = app.query("SELECT dedupe_key, attempts, last_error FROM outbox "
                            "WHERE dedupe_key LIKE 'escalation:%' AND sent_at IS NULL")
    assert {key.split(":")[1] for key, _, _ in escalations} == set(refs)
    assert len(escalations) >= 2 * ACTIONS
    total = queued_before + len(escalations)
    assert all(attempts == 1 and error for _, attempts, error in escalations), escalations
    assert "Connection refused" in escalations[0][2] or "Errno 111" in escalations[0][2]
    assert app.scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL") == 0

    # still down: a flush sends nothing and loses nothing
    down = app.cli("mail", "flush", "--all", "--json")
    assert down.exit_code == 0, str(down)
    assert down.json()["sent"] == 0 and down.json()["failed"] == total, str(down)
    assert down.json()["queued"] == down.json()["waiting"] == total, str(down)

    # the server is back: everything queued goes out, once
    app.sink.start()
    back = app.cli("mail", "flush", "--all", "--json")
    assert back.exit_code == 0, str(back)
    assert back.json() == {"sent": total, "failed": 0, "dead": 0, "queued": 0, "waiting": 0,
                           "next_attempt_at": None}, str(back)
    again = app.cli("mail", "flush", "--all", "--json")
    assert again.json()["sent"] == 0, str(again)
    rerun = app.cli("review", "run", "daily", "--as-of", TODAY.isoformat(), "--json")
    assert rerun.exit_code == 0 and rerun.json()["reviewed"] == 0, str(rerun)
    flushed = app.cli("mail", "flush", "--all", "--json")
    assert flushed.json()["sent"] == 0, str(flushed)

    keys = app.mail_keys()
    assert len(keys) == len(set(keys)) == total, keys
    assert sorted(k for k in keys if k.startswith("escalation:")) == \
        sorted(k for k, _, _ in escalations)
    for ref in refs:
        told = [str(m["X-Envelope-To"]) for m in app.mails()
                if str(m["X-Recovery-Key"]).startswith(f"escalation:{ref}:")]
        assert lead_of(int(ref[1:3])) in told and len(told) == len(set(told)) >= 2, told
    assert app.audit_events("action.escalated") == dict.fromkeys(refs, 1)


# --------------------------------------------------------------------------- SQLite busy


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _has_open(pid: int, path: Path) -> bool:
    """True once process `pid` holds the database file open (it is at the database)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


def _evidence_add(app: App, ref: str, reference: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(RECOVERY_BIN), "evidence", "add", ref, "--source", "audits", "--value", "80",
         "--sample", "10", "--observed-on", TODAY.isoformat(), "--reference", reference,
         "--by", lead_of(int(ref[1:3])), "--json"],
        env={**app.env, "RECOVERY_DB_BUSY_TIMEOUT": "1", "RECOVERY_DB_BUSY_RETRIES": "2"},
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(300)
def test_sqlite_busy_during_evidence_add(stack: tuple[App, list[str]]) -> None:
    app, refs = stack
    ref = refs[0]
    path = app.home / "recovery.db"
    app.dispose()

    # held for a few seconds: the command waits, retries, and succeeds once released
    holder = sqlite3.connect(path, timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    proc = _evidence_add(app, ref, "Medicines audit, week 1")
    try:
        wait_until(lambda: _has_open(proc.pid, path), timeout=120, interval=0.05,
                   message="the command at the database")
        blocked_at = time.monotonic()
        time.sleep(2.5)  # longer than the busy timeout: the first attempt gives up
        assert proc.poll() is None, proc.communicate()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    assert time.monotonic() - blocked_at >= 2.5
    added = app.query("SELECT id FROM evidence WHERE reference = 'Medicines audit, week 1'")
    assert len(added) == 1
    assert app.scalar("SELECT COUNT(*) FROM audit_log WHERE event = 'evidence.added'") == 1
    app.dispose()

    # held past the timeout and every retry: a clear message, non-zero, nothing written
    before = _dump(path)
    holder = sqlite3.connect(path, timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc = _evidence_add(app, ref, "Medicines audit, week 2")
        out, err = proc.communicate(timeout=180)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 1, (out, err)
    assert out == ""
    assert "the database is busy: another writer held it for more than 1 s, 3 times; " \
           "nothing was written" in err, err
    assert "Traceback" not in err
    assert _dump(path) == before
    verified = app.cli("audit", "verify", "--json")
    assert verified.exit_code == 0 and verified.json()["ok"] is True, str(verified)
