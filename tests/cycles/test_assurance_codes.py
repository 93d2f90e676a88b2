"""The monthly assurance code, like a sign-off code, expires; an expired code is replaced
(a new code emailed to the nominated individual) rather than leaving the month's
assurance impossible to record. Domain level, on a fresh app database, no Prefect."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from sqlmodel import col, select

from models.signoff import CODE_TTL
from recovery.adapters import db, mail
from recovery.adapters.tables import AssuranceRequestRow, OutboxRow
from recovery.application import assurance

NOMINATED = "ni@harbourcare.example"
MONTH_START = date(2026, 12, 1)
ISSUED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def code_emails() -> list[OutboxRow]:
    with db.unit_of_work() as session:
        return list(session.exec(select(OutboxRow).where(
            col(OutboxRow.dedupe_key).startswith("assurance:2026-12")).order_by(
            col(OutboxRow.id))))


def code_of(row: OutboxRow) -> str:
    text = mail.outgoing(row)[1]  # the code is put in as the email is sent
    found = re.search(r"code:\s*(\d{6})", text)
    assert found, text
    return found.group(1)


def open_request(now: datetime) -> assurance.AssuranceWait:
    with db.unit_of_work() as session:
        return assurance.open_request(session, as_of=MONTH_START, flow_run_id=None, now=now)


def submit(code: str, now: datetime) -> list[str]:
    with db.unit_of_work() as session:
        return assurance.apply(session, month="2026-12", now=now,
                               answer={"reviewer_email": NOMINATED, "code": code})


def test_an_expired_assurance_code_is_replaced_and_only_the_new_one_works(
    app_database: str,
) -> None:
    first = open_request(ISSUED)
    assert first.pause_key == "assurance-2026-12-1" and not first.completed
    [email] = code_emails()
    assert email.recipients == [NOMINATED]
    old_code = code_of(email)

    # within its lifetime, asking again issues nothing new
    open_request(ISSUED + CODE_TTL - timedelta(minutes=1))
    assert len(code_emails()) == 1

    # too late: refused, and the next wait carries a new code, emailed once
    late = ISSUED + CODE_TTL + timedelta(minutes=1)
    reasons = submit(old_code, late)
    assert any("expired" in r for r in reasons), reasons
    wait = open_request(late)
    assert wait.pause_key == "assurance-2026-12-2" and not wait.completed
    open_request(late + timedelta(minutes=1))  # the wait asked again: no third email
    emails = code_emails()
    assert len(emails) == 2 and emails[1].recipients == [NOMINATED]
    new_code = code_of(emails[1])
    assert new_code != old_code

    # the old code is now simply wrong; the new one records the month's assurance
    assert "the sign-off code is wrong" in submit(old_code, late + timedelta(minutes=2))
    assert submit(new_code, late + timedelta(minutes=3)) == []
    with db.unit_of_work() as session:
        request = session.exec(select(AssuranceRequestRow)).one()
    assert request.used_at is not None and not request.locked

    # once used, nothing is reissued even after the new code's lifetime
    assert open_request(late + 2 * CODE_TTL).completed
    assert len(code_emails()) == 2


def test_a_typo_in_the_assurance_form_is_a_typo_not_a_disclosure(app_database: str) -> None:
    """An address in nobody's name is refused as not in the staff directory and counts
    toward the lockout; the code stays valid and nobody is alerted."""
    open_request(ISSUED)
    [email] = code_emails()
    code = code_of(email)
    with db.unit_of_work() as session:
        reasons = assurance.apply(session, month="2026-12", now=ISSUED,
                                  answer={"reviewer_email": "ni@harbourcare.exmaple",
                                          "code": code})
    assert "'ni@harbourcare.exmaple' is not in the staff directory: no one there has that " \
           "email (check the address you typed)" in reasons, reasons
    assert not any("withdrawn" in r or "someone other" in r for r in reasons), reasons
    with db.unit_of_work() as session:
        request = session.exec(select(AssuranceRequestRow)).one()
        alerts = session.exec(select(OutboxRow).where(
            col(OutboxRow.dedupe_key).startswith("signoff.withdrawn"))).all()
    assert request.wrong_attempts == 1 and not request.locked
    assert alerts == []
    # the same code, typed with the right address, still records the month
    assert submit(code, ISSUED + timedelta(minutes=1)) == []
