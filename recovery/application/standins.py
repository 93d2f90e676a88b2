"""Stand-in reviewers: handing a waiting sign-off to a stand-in (`recovery signoff
reassign`). Who is away is `absences.py`'s; the rules are `models/standin.py`'s."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel
from sqlmodel import Session

from models.errors import RuleRefused
from models.lifecycle import Status
from models.signoff import MIN_RATIONALE, SignoffKind
from models.standin import reassign_refusals, standin_refusals
from models.text import text_field
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.tables import as_utc, utcnow
from recovery.application import absences, signoff_codes, signoff_waits
from recovery.settings import DEFAULT_SIGNOFF_WAIT, get_settings, signoff_wait_from_env

#: The sign-off a status waits on.
WAITING_KIND = {Status.AWAITING_PLAN_SIGNOFF.value: SignoffKind.PLAN,
                Status.AWAITING_CLOSURE_SIGNOFF.value: SignoffKind.CLOSURE}


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
    request = signoff_codes.current_request(session, row.id, kind) if kind else None
    if kind is None or request is None or request.used_at is not None:
        raise RuleRefused("sign-off reassignment",
                          [f"{row.ref} has no sign-off waiting (status {row.status})"])
    lead = repo.person_by_id(session, row.accountable_lead_id)
    reasons = reassign_refusals(
        by=absences.person_of(session, by_row),
        reviewer_away=absences.away(session, request.reviewer_email, today),
        waited=now - as_utc(request.issued_at), wait_limit=wait_limit(),
        reason=reason, min_reason=MIN_RATIONALE)
    reasons += standin_refusals(
        lead=absences.person_of(session, lead), standin=absences.person_of(session, standin_row),
        reviewer_email=request.reviewer_email,
        action_location=repo.location_by_id(session, row.location_id).name,
        standin_away=absences.away(session, standin_row.email, today))
    if reasons:
        raise RuleRefused("sign-off reassignment", reasons)

    before = request.reviewer_email
    base = signoff_codes.signoff_base(kind, request.attempt)
    answered = signoff_waits.wait_key(session, row.id, base)
    signoff_waits.record_wait(session, row.id, base=base, pause_key=answered, outcome="reassigned",
                         detail=[f"the sign-off was reassigned from {before} to "
                                 f"{standin_row.email}: the code sent to {before} was "
                                 "withdrawn"])
    request.reviewer_email = standin_row.email
    request.locked = False
    request.wrong_attempts = 0
    signoff_codes.send_code(session, row, standin_row, request, now)
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
    try:
        return signoff_wait_from_env()
    except ValueError:
        return DEFAULT_SIGNOFF_WAIT
