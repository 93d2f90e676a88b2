"""Absences: who is away, recorded by them or a senior role, and what that means for a
sign-off asked of someone away (it waits, with no live code, and the seniors who could
reassign it are told). The rules are `models/standin.py`'s; the reassignment itself is
`standins.py`'s."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from models.errors import RuleRefused
from models.people import PROVIDER_LEVEL_ROLES, SENIOR_ROLES, Person
from models.standin import (
    Absence,
    absence_recorder_refusals,
    away_on,
    check_absence,
    eligible_standins,
)
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.tables import AbsenceRow, ActionRow, LocationRow, PersonRow
from recovery.settings import get_settings


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
    refusals = absence_recorder_refusals(person_of(session, person), person_of(session, recorder))
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


def person_of(session: Session, row: PersonRow) -> Person:
    location = session.get(LocationRow, row.location_id) if row.location_id else None
    return repo.to_person(row, location.name if location else None)


def standins_for(session: Session, row: ActionRow, reviewer_email: str,
                 day: date) -> list[Person]:
    """Who could take over the sign-off waiting on `reviewer_email` today (not away)."""
    lead = person_of(session, repo.person_by_id(session, row.accountable_lead_id))
    people = [person_of(session, p) for p in session.exec(select(PersonRow).where(
        col(PersonRow.role).in_(sorted(r.value for r in SENIOR_ROLES))))]
    return eligible_standins(
        lead=lead, reviewer_email=reviewer_email,
        action_location=repo.location_by_id(session, row.location_id).name, people=people,
        absences=absences(session, ending_from=day), day=day)


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
