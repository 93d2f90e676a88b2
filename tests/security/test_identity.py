"""Who signed: one-time sign-off codes through the real
`recovery.application.signoffs` calls, a real
SQLite database and a real SMTP server (the mail sink) on loopback.

Codes are hashed at rest (the reviewer's email is the only place a sent code exists),
single use, expire after 72 hours, are bound to the named senior reviewer and to the one
request they were issued for, and five wrong codes lock the request and alert the
location's registered manager and the nominated individual.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import col, select

from devstack.mailsink import MailSink
from models.planfile import plan_from_mapping
from models.signoff import CODE_TTL, MAX_WRONG_CODES, SignoffKind, Submission, hash_code
from recovery.adapters import db, mail
from recovery.adapters.tables import AuditRow, DecisionRow, OutboxRow, SignoffRequestRow, as_utc
from recovery.application import (
    action_plans,
    closure_requests,
    signoff_codes,
    signoff_waits,
    signoffs,
    transitions,
)
from recovery.settings import get_settings
from tests.integration.helpers import dump_tables, relative_plan
from tests.security.conftest import LEAD, MANAGER, REF, REVIEWER, World
from tests.security.driver import CODE_RE, GOOD_RATIONALE, Driver, other_code
from tests.security.test_properties import happy

SECOND = "ROSE-SG-002"  # a second Rose House action with the same senior reviewer
CODE_IN_MAIL = re.compile(r"sign-off code: (\d{6})")


@pytest.fixture
def world(sqlite_world: World, sink: MailSink) -> World:
    """The world plus ROSE-SG-002 (same reviewer), both plans submitted for sign-off."""
    today = get_settings().today()
    with db.unit_of_work() as session:
        plan = plan_from_mapping(relative_plan(
            today, title="Safeguarding concerns escalated out of hours"))
        assert action_plans.open_action(session, plan, actor="test").ref == SECOND
        for ref in (REF, SECOND):
            transitions.submit_plan(session, ref, actor="lifecycle")
    return sqlite_world


def open_plan_signoff(ref: str, when: object = None) -> signoff_waits.WaitInfo:
    with db.unit_of_work() as session:
        return signoff_codes.open_signoff(session, ref, SignoffKind.PLAN, flow_run_id=None,
                                     now=when)  # type: ignore[arg-type]


def queued_code(ref: str, attempt: int = 1) -> str:
    with db.unit_of_work() as session:
        row = session.exec(select(OutboxRow).where(
            OutboxRow.dedupe_key == f"signoff:{ref}:plan:{attempt}")).one()
    text = mail.outgoing(row)[1]  # the code is put in as the email is sent
    found = CODE_RE.search(text)
    assert found, text
    return found.group(1)


def sign(ref: str, *, code: str, by: str = REVIEWER, decision: str = "approve",
         when: object = None) -> signoff_waits.SignoffOutcome:
    """One answer to the live plan sign-off, under a fresh pause key as the flow asks."""
    wait = open_plan_signoff(ref, when)
    with db.unit_of_work() as session:
        return signoffs.apply_signoff(
            session, ref, SignoffKind.PLAN, pause_key=wait.pause_key,
            submission=Submission(reviewer_email=by, code=code, decision=decision,
                                  rationale=GOOD_RATIONALE),
            now=when)  # type: ignore[arg-type]


def delivered(sink: MailSink, subject: str) -> list[EmailMessage]:
    return [m for m in sink.messages() if subject in str(m["Subject"])]


def code_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = CODE_IN_MAIL.search(body.get_content())
    assert found, body.get_content()
    return found.group(1)


def status(ref: str) -> str:
    from recovery.adapters import repository as repo

    with db.unit_of_work() as session:
        return repo.get_action(session, ref).status


# ---------------------------------------------------------------- at rest


def test_codes_are_hashed_at_rest_and_a_sent_code_exists_only_in_the_email(
    world: World, sink: MailSink
) -> None:
    for ref in (REF, SECOND):
        open_plan_signoff(ref)
    codes = {ref: queued_code(ref) for ref in (REF, SECOND)}
    assert codes[REF] != codes[SECOND]

    # queued (SMTP not reached yet): no table holds a code, only its ciphertext under the
    # outbox key kept outside the database
    dump, tables = world.dump(), dump_tables(world.url)
    for code in codes.values():
        assert code not in dump, [t for t, rows in tables.items() if code in repr(rows)]
    with db.unit_of_work() as session:
        queued = list(session.exec(select(OutboxRow).where(
            col(OutboxRow.dedupe_key).startswith("signoff:"))))
    assert len(queued) == 2 and all(r.code_cipher and mail.CODE_PLACEHOLDER in r.text_body
                                    for r in queued)

    # the requests store a salted PBKDF2 hash, never the code
    with db.unit_of_work() as session:
        requests = list(session.exec(select(SignoffRequestRow)))
    assert len(requests) == 2 and len({r.code_salt for r in requests}) == 2
    by_id = {r.action_id: r for r in requests}
    for request, code in zip(sorted(by_id.values(), key=lambda r: r.action_id),
                             (codes[REF], codes[SECOND]), strict=True):
        assert request.code_hash == hash_code(code, request.code_salt) != code
        assert re.fullmatch(r"[0-9a-f]{64}", request.code_hash)

    # sent: each reviewer's email carries its code, and the database no longer does
    assert mail.flush() == {"sent": 2, "failed": 0, "dead": 0, "queued": 0, "waiting": 0,
                            "next_attempt_at": None}
    emails = delivered(sink, "sign-off is needed")
    assert {code_of(m) for m in emails} == set(codes.values())
    assert all(m["X-Envelope-To"] == REVIEWER for m in emails)
    dump, tables = world.dump(), dump_tables(world.url)
    for code in codes.values():
        assert code not in dump, [t for t, rows in tables.items() if code in repr(rows)]

    # and the code from the email still works (the hash, not the stored email, decides)
    assert sign(REF, code=codes[REF]).applied


# ---------------------------------------------------------------- single use


def test_a_code_is_used_once(world: World) -> None:
    open_plan_signoff(SECOND)
    first = queued_code(SECOND)
    rejected = sign(SECOND, code=first, decision="reject")
    assert rejected.applied and status(SECOND) == "plan_rejected"

    with db.unit_of_work() as session:
        plan = plan_from_mapping(relative_plan(
            get_settings().today(), title="Safeguarding concerns escalated out of hours",
            interim_controls=["Registered manager reviews every open concern daily",
                              "On-call manager reviews concerns raised overnight"]))
        action_plans.revise_plan(session, SECOND, plan, actor=LEAD)
    assert status(SECOND) == "awaiting_plan_signoff"

    # the revision is signed under a new request with a new code; the old one is spent
    wait = open_plan_signoff(SECOND)
    assert wait.attempt == 2
    second = queued_code(SECOND, attempt=2)
    refused = sign(SECOND, code=first)
    if first != second:  # one chance in a million that the new code equals the old
        assert not refused.applied
        assert refused.reasons == ["the sign-off code is wrong"], refused.reasons
    assert sign(SECOND, code=second).applied
    assert status(SECOND) == "in_recovery"
    with db.unit_of_work() as session:
        decisions = list(session.exec(select(DecisionRow).order_by(col(DecisionRow.id))))
        used = [r.used_at is not None for r in session.exec(
            select(SignoffRequestRow).order_by(col(SignoffRequestRow.attempt)))]
    assert [(d.attempt, d.decision) for d in decisions] == [(1, "reject"), (2, "approve")]
    assert used == [True, True]


def test_a_resubmitted_answer_is_applied_once(world: World) -> None:
    wait = open_plan_signoff(REF)
    code = queued_code(REF)
    submission = Submission(reviewer_email=REVIEWER, code=code, decision="approve",
                            rationale=GOOD_RATIONALE)
    outcomes = []
    for _ in range(2):
        with db.unit_of_work() as session:
            outcomes.append(signoffs.apply_signoff(session, REF, SignoffKind.PLAN,
                                                   pause_key=wait.pause_key,
                                                   submission=submission))
    assert [o.applied for o in outcomes] == [True, True]
    with db.unit_of_work() as session:
        assert len(list(session.exec(select(DecisionRow)))) == 1


# ---------------------------------------------------------------- expiry


def test_codes_expire_and_a_new_one_is_issued(world: World, sink: MailSink) -> None:
    issued = open_plan_signoff(REF)
    with db.unit_of_work() as session:
        request = session.exec(select(SignoffRequestRow)).one()
    start = as_utc(request.issued_at)
    code = queued_code(REF)
    late = start + CODE_TTL + timedelta(minutes=1)

    # the run waits under the key it had; the answer comes three days and a minute late
    with db.unit_of_work() as session:
        refused = signoffs.apply_signoff(
            session, REF, SignoffKind.PLAN, pause_key=issued.pause_key,
            submission=Submission(reviewer_email=REVIEWER, code=code, decision="approve",
                                  rationale=GOOD_RATIONALE), now=late)
    assert not refused.applied
    assert any(r.startswith("the sign-off code expired at") for r in refused.reasons)
    # asking again after expiry issued a new request and a new email
    renewed = open_plan_signoff(REF, late)
    assert renewed.attempt == issued.attempt + 1
    fresh = queued_code(REF, attempt=2)
    if fresh != code:
        assert sign(REF, code=code, when=late).reasons == ["the sign-off code is wrong"]
    assert sign(REF, code=fresh, when=late).applied
    mail.flush()
    assert len(delivered(sink, f"{REF}: your plan sign-off is needed")) == 2


# ---------------------------------------------------------------- bound to a person


@pytest.mark.parametrize("by, reasons", [
    (MANAGER, ["only the named senior reviewer"]),
    (LEAD, ["the accountable lead may not", "only the named senior reviewer"]),
    (f" {LEAD.upper()}  ", ["the accountable lead may not", "only the named senior reviewer"]),
])
def test_a_code_is_bound_to_the_named_reviewer(world: World, sink: MailSink, by: str,
                                               reasons: list[str]) -> None:
    open_plan_signoff(REF)
    leaked = queued_code(REF)
    outcome = sign(REF, code=leaked, by=by)
    assert not outcome.applied
    for reason in [*reasons, "the sign-off code was withdrawn: it was presented by someone "
                   f"other than {REVIEWER}, who is sent a new one"]:
        assert any(r.startswith(reason) for r in outcome.reasons), outcome.reasons
    assert status(REF) == "awaiting_plan_signoff"
    # the right code in the wrong hands is spent: not even the named reviewer can use it
    open_plan_signoff(REF)  # the flow asks again: a new request, a new code by email
    fresh = queued_code(REF, attempt=2)
    if fresh != leaked:  # (one chance in a million that the new code is the same)
        assert sign(REF, code=leaked, by=REVIEWER).reasons == ["the sign-off code is wrong"]
    # the named reviewer, however they type their email, signs with the new code
    assert sign(REF, code=fresh, by=f"\t{REVIEWER.upper()} ").applied
    # the registered manager and the nominated individual are told, once, who held it
    mail.flush()
    alerts = delivered(sink, f"{REF}: plan sign-off code withdrawn")
    # one message each (one bad address blocks nobody else): Rose House's registered
    # manager and the NI
    assert sorted(str(a["X-Envelope-To"]) for a in alerts) == sorted([MANAGER, REVIEWER])
    for alert in alerts:
        body = alert.get_body(preferencelist=("plain",))
        assert body is not None and f"presented by {by.strip().lower()}" in body.get_content()
    with db.unit_of_work() as session:
        events = [a.event for a in session.exec(select(AuditRow).where(
            AuditRow.action_ref == REF))]
    assert events.count("signoff.code_withdrawn") == 1


def test_a_mistyped_address_is_a_typo_not_a_disclosure(world: World, sink: MailSink) -> None:
    """The right code under an address in nobody's name (the reviewer's own typo): refused
    as not in the staff directory and counted toward the lockout, but the code stays valid
    and nobody is told of a disclosure."""
    open_plan_signoff(REF)
    code = queued_code(REF)
    typo = REVIEWER.replace("@", "x@")
    outcome = sign(REF, code=code, by=typo)
    assert outcome.reasons == [f"'{typo}' is not in the staff directory: no one there has "
                               "that email (check the address you typed)"]
    with db.unit_of_work() as session:
        request = session.exec(select(SignoffRequestRow)).one()
        withdrawn = session.exec(select(OutboxRow).where(
            col(OutboxRow.dedupe_key).startswith("signoff.withdrawn:"))).all()
        events = [a.event for a in session.exec(select(AuditRow))]
    assert request.wrong_attempts == 1 and not request.locked
    assert withdrawn == [] and "signoff.code_withdrawn" not in events
    assert open_plan_signoff(REF).attempt == 1  # no new request, no new code
    assert sign(REF, code=code).applied  # the same code, the right address
    mail.flush()
    assert delivered(sink, "code withdrawn") == []


def test_addresses_in_nobodys_name_count_toward_the_lockout(world: World) -> None:
    open_plan_signoff(REF)
    code = queued_code(REF)
    for attempt in range(MAX_WRONG_CODES):
        sign(REF, code=code, by=f"guess{attempt}@elsewhere.example")
    outcome = sign(REF, code=code)
    assert "this sign-off request is locked after too many wrong codes" in outcome.reasons


def test_a_right_code_refused_for_the_reviewers_own_slip_stays_theirs(world: World) -> None:
    """The named reviewer with the right code and a rationale too short: refused, and the
    code stays valid for their corrected answer (nobody else has seen it)."""
    open_plan_signoff(REF)
    code = queued_code(REF)
    wait = open_plan_signoff(REF)
    with db.unit_of_work() as session:
        short = signoffs.apply_signoff(
            session, REF, SignoffKind.PLAN, pause_key=wait.pause_key,
            submission=Submission(reviewer_email=REVIEWER, code=code, decision="approve",
                                  rationale="ok"))
    assert short.reasons == ["the rationale must be at least 20 characters"]
    assert sign(REF, code=code).applied


# ---------------------------------------------------------------- bound to a request


def test_a_code_is_bound_to_the_one_request(world: World) -> None:
    for ref in (REF, SECOND):
        open_plan_signoff(ref)
    code_rose_1, code_rose_2 = queued_code(REF), queued_code(SECOND)
    if code_rose_1 != code_rose_2:
        # the same reviewer, the same stage, another action: refused
        outcome = sign(SECOND, code=code_rose_1)
        assert outcome.reasons == ["the sign-off code is wrong"], outcome.reasons
    assert status(SECOND) == "awaiting_plan_signoff"
    assert sign(SECOND, code=code_rose_2).applied


def test_a_plan_code_does_not_sign_off_closure(world_template: Path) -> None:
    from tests.security.driver import fresh_world, outbox_code

    with fresh_world(world_template):
        driver = Driver()
        for op in happy[:-1]:
            op.apply(driver)
        assert driver.status().value == "awaiting_closure_signoff", driver.log
        pause_key, closure_code, _ = driver.open(SignoffKind.CLOSURE)
        with db.unit_of_work() as session:
            plan_code = outbox_code(session, REF, SignoffKind.PLAN, 1)
        if plan_code != closure_code:
            with db.unit_of_work() as session:
                outcome = signoffs.apply_signoff(
                    session, REF, SignoffKind.CLOSURE, pause_key=pause_key,
                    submission=Submission(reviewer_email=REVIEWER, code=plan_code,
                                          decision="approve", rationale=GOOD_RATIONALE),
                    now=driver.now())
            assert outcome.reasons == ["the sign-off code is wrong"], outcome.reasons
        assert driver.status().value == "awaiting_closure_signoff"


# ---------------------------------------------------------------- lockout


def test_five_wrong_codes_lock_the_request_and_alert_manager_and_ni(
    world: World, sink: MailSink
) -> None:
    open_plan_signoff(REF)
    code = queued_code(REF)
    wrong = other_code(code)
    for attempt in range(1, MAX_WRONG_CODES + 1):
        outcome = sign(REF, code=wrong)
        assert "the sign-off code is wrong" in outcome.reasons
        with db.unit_of_work() as session:
            request = session.exec(select(SignoffRequestRow)).one()
            alerts = list(session.exec(select(OutboxRow).where(
                col(OutboxRow.dedupe_key).startswith("signoff.locked:"))))
        assert request.wrong_attempts == attempt
        assert request.locked is (attempt == MAX_WRONG_CODES)
        assert len(alerts) == (2 if attempt == MAX_WRONG_CODES else 0)  # one per person

    # locked: even the right code from the named reviewer is refused now
    outcome = sign(REF, code=code)
    assert not outcome.applied
    assert "this sign-off request is locked after too many wrong codes" in outcome.reasons
    # more wrong codes do not alert again; expiry does not unlock it
    sign(REF, code=wrong)
    later = open_plan_signoff(REF, as_utc(request.issued_at) + CODE_TTL + timedelta(hours=1))
    assert later.locked and later.attempt == 1
    assert status(REF) == "awaiting_plan_signoff"

    mail.flush()
    alerts = [m for m in sink.messages() if "locked" in str(m["Subject"]).lower()]
    # one message each: Rose House's registered manager and the NI
    assert sorted(str(a["X-Envelope-To"]) for a in alerts) == sorted([MANAGER, REVIEWER])
    for alert in alerts:
        body = alert.get_body(preferencelist=("plain",))
        assert body is not None and REF in body.get_content()
    with db.unit_of_work() as session:
        events = [a.event for a in session.exec(select(AuditRow).where(
            AuditRow.action_ref == REF))]
    assert events.count("signoff.locked") == 1
    assert events.count("signoff.refused") == MAX_WRONG_CODES + 2


def lock(ref: str, code: str) -> None:
    """Five wrong codes against the live request (the count starts at nothing)."""
    for _ in range(MAX_WRONG_CODES):
        assert "the sign-off code is wrong" in sign(ref, code=other_code(code)).reasons


def reissued_code(sink: MailSink, ref: str) -> str:
    """Send what is queued; the newest sign-off code that reached the reviewer."""
    mail.flush()
    sent = [m for m in sink.messages() if str(m.get("X-Recovery-Key", "")).startswith(
        f"signoff:{ref}:plan:1:") and str(m["X-Envelope-To"]) == REVIEWER]
    assert sent, "no new code reached the reviewer"
    return code_of(sent[-1])


def test_each_lockout_after_a_reissue_is_alerted_and_audited_and_each_reissue_sends_a_code(
    world: World, sink: MailSink
) -> None:
    from typer.testing import CliRunner

    from recovery.cli import app

    open_plan_signoff(REF)
    first = queued_code(REF)
    lock(REF, first)
    result = CliRunner().invoke(app, ["reissue-code", REF, "--by", MANAGER, "--json"])
    assert result.exit_code == 0, result.output
    second = reissued_code(sink, REF)
    assert second != first
    # the old code is withdrawn; the count of wrong codes starts again
    assert "the sign-off code is wrong" in sign(REF, code=first).reasons
    lock(REF, second)  # four more wrong ones make five since the reissue: locked again
    with db.unit_of_work() as session:
        request = session.exec(select(SignoffRequestRow).where(
            SignoffRequestRow.attempt == 1)).first()
    assert request is not None and request.locked

    with db.unit_of_work() as session:
        third = signoff_codes.reissue(session, REF, by=MANAGER)
    assert third == "plan"
    newest = reissued_code(sink, REF)
    assert newest not in {first, second}
    assert sign(REF, code=newest).applied
    assert status(REF) == "in_recovery"

    alerts = [m for m in sink.messages() if "locked" in str(m["Subject"]).lower()]
    assert len(alerts) == 4  # two lockouts, the registered manager and the NI each time
    with db.unit_of_work() as session:
        events = [a.event for a in session.exec(select(AuditRow).where(
            AuditRow.action_ref == REF).order_by(col(AuditRow.seq)))]
    assert events.count("signoff.locked") == 2
    assert events.count("signoff.reissued") == 2


def test_a_reissue_with_no_sign_off_waiting_is_refused(world: World) -> None:
    from typer.testing import CliRunner

    from recovery.cli import app

    open_plan_signoff(REF)
    assert sign(REF, code=queued_code(REF)).applied  # nothing waits any more
    before = world.dump()
    result = CliRunner().invoke(app, ["reissue-code", REF, "--by", MANAGER])
    assert result.exit_code == 3, result.output
    assert "has no sign-off waiting" in result.output
    assert world.dump() == before


# ---------------------------------------------------------------- closure requests


def test_a_closure_request_is_recorded_as_requested_by_an_unchecked_identity(
    world: World,
) -> None:
    """A closure request carries the lead's email and no code: the audit entry, the
    inspector pack and the closure sign-off form say the identity was not checked."""
    import html
    from types import SimpleNamespace

    from recovery.application import forms
    from recovery.reporting import packs as reports

    open_plan_signoff(REF)
    assert sign(REF, code=queued_code(REF)).applied
    with db.unit_of_work() as session:
        wait = closure_requests.closure_wait(session, REF)
        assert closure_requests.record_closure_request(
            session, REF, pause_key=wait.pause_key, requested_by=f" {LEAD.upper()} ",
            summary="Every pillar shows the improvement over four weeks").applied
    wording = f"requested as {LEAD}, identity not checked"

    with db.unit_of_work() as session:
        [entry] = session.exec(select(AuditRow).where(
            AuditRow.action_ref == REF, AuditRow.event == "status.request_closure")).all()
        assert entry.details["requester"] == wording
        page = reports.render_html(reports.inspector_pack(session, as_of=get_settings().today()))
        brief = forms.action_brief(session, REF, wait=SimpleNamespace(
            kind="closure", reviewer_email=REVIEWER, refused_before=[]))
    assert wording in html.unescape(page)
    assert f"Closure {wording}" in re.sub(r"\\(.)", r"\1", brief)  # Markdown escapes off
