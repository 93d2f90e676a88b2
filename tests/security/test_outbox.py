"""Email that cannot be delivered never blocks anyone else, and is reported truthfully;
one-time codes are never readable in the database. Through the real `recovery.application.signoffs`
calls, the outbox, the CLI and a real SMTP server (the mail sink) on loopback, on SQLite
and PostgreSQL.

- An address stored before the address rule (a header break) is one of three people an
  alert goes to: the other two get theirs, the bad row is marked dead with its reason and
  never retried, and `recovery doctor`'s outbox line says so.
- SMTP down: `recovery mail flush` counts the email waiting out its backoff and says when
  the next attempt is; the queued sign-off email holds no code, survives a restart (the
  outbox key is outside the database) and, once sent, its code signs.
- A recipient the mail server refuses for good (550) dies; the next email still goes out.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from devstack.mailsink import MailSink, MailSinkHandler
from recovery.adapters import db, mail
from recovery.adapters.tables import OutboxRow, PersonRow, as_utc, utcnow
from recovery.application import transitions
from recovery.cli import doctor
from recovery.settings import get_settings
from tests.integration.helpers import cli, dump_tables
from tests.security.conftest import (
    MANAGER,
    REF,
    REVIEWER,
    World,
    _point_at,
    _truncate_postgres,
    seed_world,
)
from tests.security.driver import other_code
from tests.security.test_identity import code_of, open_plan_signoff, queued_code, sign

BAD = "rm2@rose.example\nbcc:evil@evil.example"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_world(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> World:
    """The world with ROSE-SG-001's plan submitted for sign-off. These tests write, so on
    PostgreSQL the world is seeded again for each (the corpus's is shared per module)."""
    if request.param == "sqlite":
        world: World = request.getfixturevalue("sqlite_world")
    else:
        url = request.getfixturevalue("postgres_url")
        _truncate_postgres(url)
        _point_at(monkeypatch, url, tmp_path / "home")
        seed_world(get_settings().today())
        world = World("postgresql", url)
    with db.unit_of_work() as session:
        transitions.submit_plan(session, REF, actor="lifecycle")
    return world


def add_legacy_manager() -> None:
    """A second Rose House registered manager whose address was accepted before the rule
    (written as the old import wrote it: no check)."""
    with db.unit_of_work() as session:
        rose = session.exec(select(PersonRow).where(PersonRow.email == MANAGER)).one()
        session.add(PersonRow(email=BAD, name="Legacy Manager", role="registered_manager",
                              location_id=rose.location_id))


def lock_out(ref: str = REF) -> None:
    code = queued_code(ref)
    for _ in range(5):
        assert not sign(ref, code=other_code(code)).applied


def outbox(prefix: str) -> list[OutboxRow]:
    with db.unit_of_work() as session:
        return list(session.exec(select(OutboxRow).where(
            col(OutboxRow.dedupe_key).startswith(prefix)).order_by(col(OutboxRow.id))))


def test_one_bad_address_blocks_nobody_else_and_dies_visibly(
    any_world: World, sink: MailSink
) -> None:
    add_legacy_manager()
    open_plan_signoff(REF)
    lock_out()

    rows = outbox("signoff.locked:")
    assert sorted(r.recipients[0] for r in rows) == sorted([BAD, MANAGER, REVIEWER])
    # the reviewer's code email, five refusals told to the reviewer, two alerts, one dead
    result = mail.flush()
    assert (result["sent"], result["dead"], result["queued"]) == (8, 1, 0), result
    refusals = [m for m in sink.messages() if "not accepted" in str(m["Subject"])]
    assert [str(m["X-Envelope-To"]) for m in refusals] == [REVIEWER] * 5

    alerts = [m for m in sink.messages() if "locked" in str(m["Subject"]).lower()]
    assert sorted(str(m["X-Envelope-To"]) for m in alerts) == sorted([MANAGER, REVIEWER])
    assert not any("evil" in str(m["X-Envelope-To"]) or m["Bcc"] for m in sink.messages())
    [dead] = [r for r in outbox("signoff.locked:") if r.dead_at is not None]
    assert dead.recipients == [BAD] and dead.sent_at is None
    assert "undeliverable address" in (dead.last_error or "")
    assert "invalid characters" in (dead.last_error or "")

    # never retried, even when every queued email is forced
    again = mail.flush(ignore_backoff=True)
    assert (again["sent"], again["dead"], again["failed"]) == (0, 0, 0), again
    assert len(sink.messages()) == 8  # the code email, five refusals and the two alerts

    # doctor: not ok, with the count and the reason
    with pytest.raises(RuntimeError) as failure:
        doctor.check_outbox()
    assert str(failure.value).startswith("1 undeliverable in the last 7 days, not retried; "
                                         "last: undeliverable address: "), failure.value


def test_flush_counts_email_waiting_out_a_backoff_and_says_when_it_is_next_tried(
    any_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = MailSink(tmp_path / "mail", port=None)  # created, not started: SMTP is down
    monkeypatch.setenv("RECOVERY_SMTP_HOST", down.host)
    monkeypatch.setenv("RECOVERY_SMTP_PORT", str(down.port))
    get_settings.cache_clear()
    open_plan_signoff(REF)
    code_before = queued_code(REF)

    first = cli("mail", "flush", "--json")
    assert first.exit_code == 0, first.stderr
    report = first.json()
    assert (report["sent"], report["failed"], report["queued"], report["waiting"]) == \
        (0, 1, 1, 1), report
    next_at = datetime.fromisoformat(report["next_attempt_at"])
    assert timedelta(seconds=20) < next_at - utcnow() <= timedelta(seconds=30)

    # nothing due: today's "still queued 0" is now the truth
    second = cli("mail", "flush")
    assert second.exit_code == 0, second.stderr
    assert second.stdout.startswith("sent 0, failed 0, undeliverable 0; still queued 1, 1 "
                                    "waiting out a backoff (next attempt "), second.stdout
    assert mail.uk_datetime(next_at) in second.stdout

    # the queued email holds no code in any table, only its ciphertext
    tables = dump_tables(any_world.url)
    assert not [t for t, rows in tables.items() if code_before in repr(rows)]

    # a restart: a new process has only the database and the key file outside it
    key = get_settings().home / "outbox.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    get_settings.cache_clear()
    db.engine_for(any_world.url).dispose()
    down.start()
    try:
        back = cli("mail", "flush", "--all", "--json").json()
        assert (back["sent"], back["queued"], back["waiting"]) == (1, 0, 0), back
        [email] = down.messages()
    finally:
        down.stop()
    assert code_of(email) == code_before
    tables = dump_tables(any_world.url)
    assert not [t for t, rows in tables.items() if code_before in repr(rows)]
    [row] = outbox("signoff:")
    assert row.code_cipher is None and mail.CODE_PLACEHOLDER in row.text_body
    assert sign(REF, code=code_of(email)).applied


def test_doctor_reports_email_stuck_behind_a_failing_server(
    any_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOVERY_SMTP_PORT", "9")  # nothing listens on discard
    get_settings.cache_clear()
    open_plan_signoff(REF)
    assert doctor.check_outbox() == "1 queued, none stuck or undeliverable"
    for _ in range(3):
        mail.flush(ignore_backoff=True)
    with pytest.raises(RuntimeError) as failure:
        doctor.check_outbox()
    message = str(failure.value)
    assert message.startswith("1 stuck (oldest queued 0 minutes ago, up to 3 failed "
                              "attempts); last failure: ConnectionRefusedError"), message

    # an email queued long ago and never tried (nothing flushes) is stuck too
    with db.unit_of_work() as session:
        session.execute(text("UPDATE outbox SET attempts = 0, last_error = NULL, "
                             "created_at = :old"), {"old": utcnow() - timedelta(hours=2)})
    with pytest.raises(RuntimeError) as failure:
        doctor.check_outbox()
    assert "oldest queued 120 minutes ago" in str(failure.value)
    assert "none tried yet" in str(failure.value)


class RefusingHandler(MailSinkHandler):
    """The sink, with one mailbox that does not exist (550 on RCPT)."""

    async def handle_RCPT(self, server: object, session: object, envelope: object,
                          address: str, rcpt_options: list[str]) -> str:
        if address == REVIEWER:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        return "250 OK"


def test_a_recipient_refused_for_good_dies_and_the_next_email_still_goes(
    any_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = MailSink(tmp_path / "mail", port=None)
    refusing.handler = RefusingHandler(refusing.directory)
    monkeypatch.setenv("RECOVERY_SMTP_HOST", refusing.host)
    monkeypatch.setenv("RECOVERY_SMTP_PORT", str(refusing.port))
    get_settings.cache_clear()
    open_plan_signoff(REF)
    # the reviewer's code email, five refusals told to the reviewer, then alerts to the
    # manager and the reviewer
    lock_out()
    with refusing:
        result = mail.flush()
        delivered = [str(m["X-Envelope-To"]) for m in refusing.messages()]
    assert (result["sent"], result["dead"], result["queued"]) == (1, 7, 0), result
    assert delivered == [MANAGER]
    dead = [r for r in outbox("") if r.dead_at is not None]
    assert sorted(r.dedupe_key.split(":")[0] for r in dead) == \
        ["signoff", "signoff.locked", *["signoff.refused"] * 5]
    assert all("refused by the mail server" in (r.last_error or "") and "550" in
               (r.last_error or "") for r in dead)
    # a dead code email forgets its code too
    assert all(r.code_cipher is None for r in dead)
    assert as_utc(dead[0].dead_at) <= utcnow()  # type: ignore[arg-type]


def test_an_undeliverable_sender_setting_is_refused_before_anything_runs(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sqlite_world.dump()
    for value, says in (("recovery@x.example\nbcc:evil@evil.example", "invalid characters"),
                        ("recovery@x.exampl\u0435", "must be plain ASCII")):
        monkeypatch.setenv("RECOVERY_MAIL_FROM", value)
        get_settings.cache_clear()
        result = cli("mail", "flush", "--json")
        assert result.exit_code == 2, (result.stdout, result.stderr)
        error = result.error_json()
        assert error["field"] == "RECOVERY_MAIL_FROM" and says in error["error"], error
    monkeypatch.delenv("RECOVERY_MAIL_FROM")
    get_settings.cache_clear()
    assert sqlite_world.dump() == before


def test_an_email_queued_for_two_before_migration_0003_becomes_one_row_each(
    any_world: World, sink: MailSink
) -> None:
    from alembic import command

    cfg = db.alembic_config(any_world.url)
    command.downgrade(cfg, "0002")
    try:
        with db.engine_for(any_world.url).begin() as conn:
            conn.execute(text(
                "INSERT INTO outbox (dedupe_key, recipients, subject, text_body, html_body, "
                "created_at, attempts, next_attempt_at) VALUES ('weekly:old:ROSE', :to, "
                "'Weekly', 'text', '<p>html</p>', :now, 3, :now)"),
                {"to": f'["{MANAGER}", "bad@rose.example."]', "now": utcnow()})
    finally:
        command.upgrade(cfg, "head")
    rows = outbox("weekly:old:ROSE")
    assert [(r.dedupe_key, r.recipients, r.attempts) for r in rows] == [
        (f"weekly:old:ROSE:{MANAGER}", [MANAGER], 3),
        ("weekly:old:ROSE:bad@rose.example.", ["bad@rose.example."], 3)]
    result = mail.flush(ignore_backoff=True)
    assert (result["sent"], result["dead"]) == (1, 1), result
    assert [str(m["X-Envelope-To"]) for m in sink.messages()] == [MANAGER]
