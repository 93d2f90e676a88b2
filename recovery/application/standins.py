"""Absences and stand-in reviewers: recording who is away, and handing a waiting sign-off
to a stand-in (`recovery signoff reassign`). The rules are `models/standin.py`'s."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from models.errors import RuleRefused
from models.lifecycle import Status
from models.people import PROVIDER_LEVEL_ROLES, SENIOR_ROLES, Person
from models.signoff import MIN_RATIONALE, SignoffKind
from models.standin import (
    Absence,
    absence_recorder_refusals,
    away_on,
    check_absence,
    eligible_standins,
    reassign_refusals,
    standin_refusals,
)
from models.text import text_field
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.tables import AbsenceRow, ActionRow, LocationRow, PersonRow, as_utc, utcnow
from recovery.application import signoffs
from recovery.settings import get_settings

#: The sign-off a status waits on.
WAITING_KIND = {Status.AWAITING_PLAN_SIGNOFF.value: SignoffKind.PLAN,
                Status.AWAITING_CLOSURE_SIGNOFF.value: SignoffKind.CLOSURE}


def absences(session: Session, *, ending_from: date | None = None) -> list[Absence]:
    """Recorded absences (those ending on or after `ending_from`), by email."""
    query = select(AbsenceRow, PersonRow).where(AbsenceRow.person_id == PersonRow.id)
    if ending_from is not None:
        query = query.where(col(AbsenceRow.ends_on) >= ending_from)
    return [Absence(email=p.email, starts_on=a.starts_on, ends_on=a.ends_on)
            for a, p in session.exec(query)]


def away(session: Session, email: str, day: date) -> Absence | None:
    return away_on(email, absences(session, ending_from=day), day)


def record_absence(session: Session, email: str, *, starts_on: date, ends_on: date, by: str,
                   today: date) -> AbsenceRow:
    """`email` is away from `starts_on` to `ends_on`: recorded by them or a senior role,
    audited (`person.away`)."""
    person = repo.get_person(session, email, field="email")
    recorder = repo.get_person(session, by, field="by")
    check_absence(starts_on, ends_on, today=today)
    refusals = absence_recorder_refusals(_person(session, person), _person(session, recorder))
    if refusals:
        raise RuleRefused("absence", refusals)
    assert person.id is not None
    row = AbsenceRow(person_id=person.id, starts_on=starts_on, ends_on=ends_on,
                     recorded_by=recorder.email)
    session.add(row)
    session.flush()
    audit_log.append(session, actor=recorder.email, event="person.away", action_ref=None,
                     details={"email": person.email, "from": starts_on.isoformat(),
                              "to": ends_on.isoformat(), "absence_id": row.id})
    return row


def _person(session: Session, row: PersonRow) -> Person:
    location = session.get(LocationRow, row.location_id) if row.location_id else None
    return repo.to_person(row, location.name if location else None)


def standins_for(session: Session, row: ActionRow, reviewer_email: str,
                 day: date) -> list[Person]:
    """Who could take over the sign-off waiting on `reviewer_email` today (not away)."""
    lead = _person(session, repo.person_by_id(session, row.accountable_lead_id))
    people = [_person(session, p) for p in session.exec(select(PersonRow).where(
        col(PersonRow.role).in_(sorted(r.value for r in SENIOR_ROLES))))]
    return eligible_standins(
        lead=lead, reviewer_email=reviewer_email,
        action_location=repo.location_by_id(session, row.location_id).name, people=people,
        absences=absences(session, ending_from=day), day=day)


class Reassigned(BaseModel):
    ref: str
    kind: str
    attempt: int
    reviewer_before: str
    standin: str
    pause_key: str
    """The key the run waited under: answered as reassigned, so the run waits again under
    the next one."""
    flow_run_id: str | None


def reassign(session: Session, ref: str, *, to: str, by: str, reason: str,
             now: datetime | None = None, today: date | None = None) -> Reassigned:
    """Hand the waiting sign-off to a stand-in. Every rule is checked before anything is
    written; then the request's reviewer becomes the stand-in with a new code (the old one
    stops working), the wait the run is in is recorded as answered (`reassigned`), so the
    run waits again under the next key once woken, and the original reviewer and the
    accountable lead are told."""
    now = now or utcnow()
    settings = get_settings()
    today = today or settings.today()
    reason = text_field("reason", reason, 2000)
    row = repo.get_action(session, ref, for_update=True)
    assert row.id is not None
    by_row = repo.get_person(session, by, field="by")
    standin_row = repo.get_person(session, to, field="to")
    kind = WAITING_KIND.get(row.status)
    request = signoffs.current_request(session, row.id, kind) if kind else None
    if kind is None or request is None or request.used_at is not None:
        raise RuleRefused("sign-off reassignment",
                          [f"{row.ref} has no sign-off waiting (status {row.status})"])
    lead = repo.person_by_id(session, row.accountable_lead_id)
    reasons = reassign_refusals(
        by=_person(session, by_row), reviewer_away=away(session, request.reviewer_email, today),
        waited=now - as_utc(request.issued_at), wait_limit=wait_limit(),
        reason=reason, min_reason=MIN_RATIONALE)
    reasons += standin_refusals(
        lead=_person(session, lead), standin=_person(session, standin_row),
        reviewer_email=request.reviewer_email,
        action_location=repo.location_by_id(session, row.location_id).name,
        standin_away=away(session, standin_row.email, today))
    if reasons:
        raise RuleRefused("sign-off reassignment", reasons)

    before = request.reviewer_email
    base = signoffs.signoff_base(kind, request.attempt)
    answered = signoffs.wait_key(session, row.id, base)
    signoffs.record_wait(session, row.id, base=base, pause_key=answered, outcome="reassigned",
                         detail=[f"the sign-off was reassigned from {before} to "
                                 f"{standin_row.email}: the code sent to {before} was "
                                 "withdrawn"])
    request.reviewer_email = standin_row.email
    request.locked = False
    request.wrong_attempts = 0
    signoffs.send_code(session, row, standin_row, request, now)
    details = {"kind": kind.value, "attempt": request.attempt, "from": before,
               "to": standin_row.email, "reason": reason.strip(), "pause_key": answered}
    audit_log.append(session, actor=by_row.email, event="signoff.reassigned",
                     action_ref=row.ref, details=details,
                     dedupe_key=f"signoff.reassigned:{row.ref}:{answered}")
    reviewer_before = repo.find_person(session, before)
    told = [p for p in (reviewer_before, lead) if p is not None]
    mail.enqueue(
        session, dedupe_key=f"signoff.reassigned:{row.ref}:{answered}",
        to=list(dict.fromkeys(p.email for p in told)), template="signoff_reassigned",
        action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "kind": kind.value,
                 "before": before, "standin_name": standin_row.name,
                 "standin_email": standin_row.email, "by": by_row.email,
                 "reason": reason.strip(), "at": now.astimezone(settings.tz),
                 "run_url": settings.run_url(row.flow_run_id)})
    return Reassigned(ref=row.ref, kind=kind.value, attempt=request.attempt,
                      reviewer_before=before, standin=standin_row.email, pause_key=answered,
                      flow_run_id=row.flow_run_id)


def wait_limit() -> timedelta:
    """The configured waiting time (RECOVERY_SIGNOFF_WAIT_HOURS, else 48 hours); a bad
    value counts as the default rather than opening reassignment to every wait."""
    from deployments.automations import DEFAULT_SIGNOFF_WAIT, signoff_wait_from_env

    try:
        return signoff_wait_from_env()
    except ValueError:
        return DEFAULT_SIGNOFF_WAIT


def reviewer_away_at_opening(session: Session, row: ActionRow) -> str | None:
    """The flag an opened plan carries when its named reviewer is away today."""
    reviewer = repo.person_by_id(session, row.senior_reviewer_id)
    absence = away(session, reviewer.email, get_settings().today())
    if absence is None:
        return None
    return (f"the senior reviewer {reviewer.email} is away until "
            f"{absence.ends_on.strftime('%d/%m/%Y')}: no code is sent to them; the plan "
            f"sign-off waits until the nominated individual or the provider lead reassigns it "
            f"(`recovery signoff reassign {row.ref} --to EMAIL --by EMAIL --reason TEXT`)")


def tell_held(session: Session, row: ActionRow, request: Any, reviewer: PersonRow,
              until: date) -> None:
    """A sign-off asked of a reviewer who is away waits with no live code: the nominated
    individual(s) and provider lead(s) are told who could stand in and how to reassign."""
    settings = get_settings()
    today = settings.today()
    seniors = list(session.exec(select(PersonRow).where(col(PersonRow.role).in_(
        sorted(r.value for r in PROVIDER_LEVEL_ROLES)))))
    key = f"signoff.held:{row.ref}:{request.kind}:{request.attempt}"
    audit_log.append(session, actor="system", event="signoff.held_reviewer_away",
                     action_ref=row.ref,
                     details={"kind": request.kind, "attempt": request.attempt,
                              "reviewer": reviewer.email, "away_until": until.isoformat()},
                     dedupe_key=key)
    if not seniors:
        return
    mail.enqueue(
        session, dedupe_key=key, to=[p.email for p in seniors], template="signoff_held",
        action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "kind": request.kind,
                 "reviewer_name": reviewer.name, "reviewer_email": reviewer.email,
                 "away_until": until,
                 "standins": [{"name": p.name, "email": p.email, "role": p.role.label}
                              for p in standins_for(session, row, reviewer.email, today)],
                 "reassign_cli": f"recovery signoff reassign {row.ref} --to EMAIL --by "
                                 "YOUR-EMAIL --reason TEXT",
                 "run_url": settings.run_url(row.flow_run_id)})
