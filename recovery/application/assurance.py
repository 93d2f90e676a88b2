"""Monthly provider assurance by the nominated individual: assurance, challenge or further
action recorded for every high-risk action, proven by a one-time code, kept as governance
minutes that count as provider-level oversight."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert
from sqlalchemy import select as columns
from sqlmodel import Session, col, select

from models.assurance import entry_refusals
from models.lifecycle import OPEN
from models.people import Role, normalise_email
from models.refusal import messages
from models.risk import RiskLevel
from models.signoff import (
    CODE_TTL,
    MAX_WRONG_CODES,
    SignoffKind,
    SignoffRequestState,
    Submission,
    counts_toward_lockout,
    hash_code,
    new_code,
    new_salt,
    signoff_refusals,
)
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    AssuranceEntryRow,
    AssuranceRequestRow,
    EvidenceRow,
    PersonRow,
    as_utc,
    utcnow,
)
from recovery.settings import get_settings

#: action references per IN list (far below SQLite's and PostgreSQL's bind-parameter limits)
_REF_CHUNK = 2000


def field_name(ref: str) -> str:
    return ref.lower().replace("-", "_")


class AssuranceWait(BaseModel):
    month: str
    pause_key: str
    refs: list[str]
    reviewer_email: str
    completed: bool
    description: str


def _nominated(session: Session) -> PersonRow | None:
    return session.exec(select(PersonRow).where(
        PersonRow.role == Role.NOMINATED_INDIVIDUAL.value).order_by(col(PersonRow.id))).first()


def _email_code(
    session: Session, request: AssuranceRequestRow, person: PersonRow | None, code: str,
    flow_run_id: str | None, dedupe_key: str,
) -> None:
    settings = get_settings()
    mail.enqueue(
        session, dedupe_key=dedupe_key, to=[request.reviewer_email],
        template="assurance_request", one_time_code=code,
        context={"name": person.name if person else request.reviewer_email,
                 "month": request.month, "refs": list(request.action_refs), "code": code,
                 "expires_at": as_utc(request.expires_at).astimezone(settings.tz),
                 "run_url": settings.run_url(flow_run_id)},
    )


def open_request(
    session: Session, *, as_of: date, flow_run_id: str | None, now: datetime | None = None
) -> AssuranceWait:
    """The month's assurance request, issued once (code emailed to the nominated
    individual) over a snapshot of the open high-risk actions. As with sign-offs, a code
    that expired unused (and not locked) is replaced: a new code, emailed again."""
    now = now or utcnow()
    month = as_of.strftime("%Y-%m")
    request = session.exec(select(AssuranceRequestRow).where(
        AssuranceRequestRow.month == month)).first()
    if request is None:
        person = _nominated(session)
        if person is None:
            raise LookupError("no nominated individual in the staff directory")
        refs = list(session.exec(select(ActionRow.ref).where(
            ActionRow.risk_level == RiskLevel.HIGH.value,
            col(ActionRow.status).in_([s.value for s in OPEN])).order_by(col(ActionRow.ref))))
        code, salt = new_code(), new_salt()
        request = AssuranceRequestRow(
            month=month, as_of=as_of, reviewer_email=person.email, action_refs=refs,
            code_salt=salt, code_hash=hash_code(code, salt), issued_at=now,
            expires_at=now + CODE_TTL)
        session.add(request)
        session.flush()
        _email_code(session, request, person, code, flow_run_id, f"assurance:{month}")
        audit_log.append(session, actor="system", event="assurance.requested", action_ref=None,
                         details={"month": month, "actions": refs,
                                  "nominated_individual": person.email},
                         dedupe_key=f"assurance.requested:{month}")
    elif request.used_at is None and not request.locked and as_utc(request.expires_at) <= now:
        code, salt = new_code(), new_salt()
        request.code_salt, request.code_hash = salt, hash_code(code, salt)
        request.issued_at, request.expires_at = now, now + CODE_TTL
        request.wrong_attempts = 0
        session.add(request)
        person = session.exec(select(PersonRow).where(
            PersonRow.email == request.reviewer_email)).first()
        key = f"assurance:{month}:reissued:{now.isoformat()}"
        _email_code(session, request, person, code, flow_run_id, key)
        audit_log.append(session, actor="system", event="assurance.reissued", action_ref=None,
                         details={"month": month, "nominated_individual": request.reviewer_email,
                                  "expires_at": (now + CODE_TTL).isoformat()},
                         dedupe_key=f"assurance.reissued:{month}:{now.isoformat()}")
    description = mail.environment().get_template("forms/assurance.md").render(
        month=month, reviewer_email=request.reviewer_email, refusals=request.refusals,
        refs=request.action_refs)
    return AssuranceWait(
        month=month, pause_key=f"assurance-{month}-{request.refusals + 1}",
        refs=list(request.action_refs), reviewer_email=request.reviewer_email,
        completed=request.used_at is not None, description=description)


def apply(
    session: Session, *, month: str, answer: dict[str, Any], now: datetime | None = None
) -> list[str]:
    """Record the minutes; [] when applied, else every reason (nothing else changes).

    Long on purpose (a little): the code check, every action's outcome and note, and the
    writes happen under one row lock on the month's request, in the order they are
    audited; a helper would have to carry the lock, the request and the reasons."""
    now = now or utcnow()
    request = session.exec(select(AssuranceRequestRow).where(
        AssuranceRequestRow.month == month).with_for_update()).one()
    if request.used_at is not None:
        return []
    state = SignoffRequestState(
        kind=SignoffKind.ASSURANCE, reviewer_email=request.reviewer_email,
        code_salt=request.code_salt, code_hash=request.code_hash,
        issued_at=as_utc(request.issued_at), expires_at=as_utc(request.expires_at),
        used_at=None, wrong_attempts=request.wrong_attempts, locked=request.locked)
    submission = Submission(reviewer_email=str(answer.get("reviewer_email", "")),
                            code=str(answer.get("code", "")), decision="approve",
                            rationale="monthly provider assurance minutes")
    known = repo.find_person(session, submission.reviewer_email) is not None
    refusals = signoff_refusals(state, submission, accountable_lead="", now=now,
                                presenter_known=known)
    notes = {}
    for ref in request.action_refs:
        outcome = answer.get(f"{field_name(ref)}_outcome")
        note = str(answer.get(f"{field_name(ref)}_note", "")).strip()
        refusals += entry_refusals(ref, outcome, note)
        notes[ref] = (outcome, note)
    reasons = messages(refusals)
    if refusals:
        if counts_toward_lockout(refusals):  # a wrong code, or an address in nobody's name
            request.wrong_attempts += 1
            request.locked = request.wrong_attempts >= MAX_WRONG_CODES
        request.refusals += 1
        session.add(request)
        audit_log.append(session, actor=normalise_email(submission.reviewer_email) or "unknown",
                         event="assurance.refused", action_ref=None,
                         details={"month": month, "reasons": reasons},
                         dedupe_key=f"assurance.refused:{month}:{request.refusals}")
        return reasons
    request.used_at = now
    session.add(request)
    today = now.astimezone(get_settings().tz).date()
    refs = list(request.action_refs)
    actions: dict[str, tuple[int, date]] = {}
    for i in range(0, len(refs), _REF_CHUNK):
        actions.update((ref, (action_id, baseline_on)) for ref, action_id, baseline_on in
                       session.execute(columns(col(ActionRow.ref), col(ActionRow.id),
                                               col(ActionRow.baseline_on))
                                       .where(col(ActionRow.ref).in_(refs[i:i + _REF_CHUNK]))))
    assert request.id is not None
    entries: list[dict[str, Any]] = []
    minutes: list[dict[str, Any]] = []
    audit: list[audit_log.Entry] = []
    for ref, (outcome, note) in notes.items():
        action_id, baseline_on = actions[ref]
        entries.append({"request_id": request.id, "action_id": action_id,
                        "outcome": str(outcome), "note": note,
                        "recorded_by": request.reviewer_email, "recorded_on": today})
        minutes.append({
            "action_id": action_id, "source": "governance_minutes", "pillar": "supporting",
            "value": None, "sample_size": None, "observed_on": max(today, baseline_on),
            "recorded_by": request.reviewer_email,
            "reference": f"Provider assurance minutes {month}: "
                         f"{str(outcome).replace('_', ' ')}",
            "recorded_at": now})
        audit.append(audit_log.Entry(
            actor=request.reviewer_email, event="assurance.recorded", action_ref=ref,
            details={"month": month, "outcome": outcome, "note": note},
            dedupe_key=f"assurance.recorded:{month}:{ref}"))
    # the month's minutes as two bulk INSERTs and one `append_many` to the audit chain (a
    # third), not a flush and two chain reads per action (1,953 actions: 2.7 s CPU before)
    session.flush()
    if entries:
        session.execute(insert(AssuranceEntryRow), entries)
        session.execute(insert(EvidenceRow), minutes)
    audit_log.append_many(session, audit)
    return []
