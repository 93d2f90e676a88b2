"""Sign-off decisions: applying a signer's decision and code, and what is awaiting whom. Every
function is idempotent against the database, because a Prefect run restarts from the top after
each resume.
"""

from __future__ import annotations

from datetime import date, datetime, time

from pydantic import BaseModel
from sqlmodel import Session, col, select

from models.action import accountability_reasons
from models.gate import EVIDENCE_CHANGED, verdict_changed
from models.lifecycle import WAITS, Event, Status
from models.people import Role, normalise_email
from models.recovery_action import RecoveryAction
from models.refusal import Refusal, RefusalCode, codes, messages
from models.signoff import (
    MAX_WRONG_CODES,
    Decision,
    SignoffKind,
    Submission,
    code_disclosed,
    code_withdrawn,
    counts_toward_lockout,
    next_step,
    not_in_directory,
    signoff_refusals,
)
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.repository import already_processed, latest_closure_request
from recovery.adapters.tables import (
    ActionRow,
    ClosureRequestRow,
    DecisionRow,
    PersonRow,
    SignoffRequestRow,
    as_utc,
    utcnow,
)
from recovery.application import evidence_gate, transitions
from recovery.application.signoff_codes import (
    alert_disclosed,
    alert_lockout,
    current_request,
    request_state,
    signoff_base,
)
from recovery.application.signoff_waits import (
    SignoffOutcome,
    record_wait,
    tell_gate_refused,
    tell_refused,
)
from recovery.settings import get_settings


def apply_signoff(
    session: Session, ref: str, kind: SignoffKind, *, pause_key: str, submission: Submission,
    now: datetime | None = None,
) -> SignoffOutcome:
    """Validate a sign-off in the domain and apply it exactly once. A refused attempt is
    recorded (audit, wait row) and changes nothing else."""
    # the gate is asked again as of the business day (a replayed moment: that moment's day)
    as_of = (get_settings().today() if now is None
             else now.astimezone(get_settings().tz).date())
    now = now or utcnow()
    row = repo.get_action(session, ref, for_update=True)
    assert row.id is not None
    seen = already_processed(session, row.id, pause_key)
    if seen is not None:
        return SignoffOutcome(applied=seen.outcome == "applied", decision=None,
                              status=row.status, reasons=list(seen.detail),
                              codes=[RefusalCode(c) for c in seen.codes])
    request = current_request(session, row.id, kind)
    expected_status = (Status.AWAITING_PLAN_SIGNOFF if kind == SignoffKind.PLAN
                       else Status.AWAITING_CLOSURE_SIGNOFF)
    base = pause_key.rsplit("-", 1)[0]
    if request is None or row.status != expected_status.value or base != signoff_base(
            kind, request.attempt):
        stale = [Refusal(code=RefusalCode.WRONG_STATUS, message=(
            f"{ref} is no longer awaiting {kind.value} sign-off (status {row.status})"))]
        record_wait(session, row.id, base=base, pause_key=pause_key, outcome="ignored",
                    detail=messages(stale), codes=codes(stale))
        return SignoffOutcome.refused(row.status, stale)
    lead = repo.person_by_id(session, row.accountable_lead_id)
    known = repo.find_person(session, submission.reviewer_email) is not None
    refusals = signoff_refusals(request_state(request), submission, accountable_lead=lead.email,
                                now=now, presenter_known=known)
    refusals += _signer_refusals(session, row, lead, request, submission)
    closure = (latest_closure_request(session, row.id) if kind == SignoffKind.CLOSURE
               else None)
    if not refusals and closure is not None and submission.decision == Decision.APPROVE.value:
        changed = _evidence_changed(session, row, closure, request, pause_key=pause_key,
                                    base=base, submission=submission, now=now, as_of=as_of)
        if changed is not None:
            return changed
    if refusals:
        return _refused(session, row, request, kind, submission, refusals, known=known,
                        base=base, pause_key=pause_key, now=now)
    return _decided(session, row, request, kind, submission, closure, base=base,
                    pause_key=pause_key, now=now)


def _refused(
    session: Session, row: ActionRow, request: SignoffRequestRow, kind: SignoffKind,
    submission: Submission, refusals: list[Refusal], *, known: bool, base: str, pause_key: str,
    now: datetime,
) -> SignoffOutcome:
    """Record a refused sign-off: a disclosed code is withdrawn, wrong codes count toward the
    lockout, and the signer is told why."""
    assert row.id is not None
    if code_disclosed(request_state(request), submission, presenter_known=known):
        request.expires_at = min(as_utc(request.expires_at), now)
        refusals.append(code_withdrawn(request.reviewer_email))
        alert_disclosed(session, row, request, submission.reviewer_email)
    reasons = messages(refusals)
    if counts_toward_lockout(refusals):
        request.wrong_attempts += 1
        if request.wrong_attempts >= MAX_WRONG_CODES and not request.locked:
            request.locked = True
            alert_lockout(session, row, request)
    request.refusals += 1
    request.last_refusal = "; ".join(reasons)[:2000]
    session.add(request)
    record_wait(session, row.id, base=base, pause_key=pause_key, outcome="refused",
                detail=reasons, codes=codes(refusals))
    audit_log.append(
        session, actor=normalise_email(submission.reviewer_email) or "unknown",
        event="signoff.refused", action_ref=row.ref,
        details={"kind": kind.value, "attempt": request.attempt, "reasons": reasons,
                 "status": row.status},
        dedupe_key=f"signoff.refused:{row.ref}:{pause_key}",
    )
    tell_refused(session, row, f"{kind.value} sign-off", to=request.reviewer_email,
                 refusals=refusals, pause_key=pause_key, now=now,
                 attempts_left=MAX_WRONG_CODES - request.wrong_attempts,
                 locked=request.locked)
    return SignoffOutcome.refused(row.status, refusals)


def _decided(
    session: Session, row: ActionRow, request: SignoffRequestRow, kind: SignoffKind,
    submission: Submission, closure: ClosureRequestRow | None, *, base: str, pause_key: str,
    now: datetime,
) -> SignoffOutcome:
    """Apply an accepted decision: the decision row, the transition and the confirmation."""
    assert row.id is not None
    decision = Decision(submission.decision)
    status_before = row.status
    request.used_at = now
    session.add(request)
    snapshot = closure.snapshot_ref if closure is not None else None
    session.add(DecisionRow(
        action_id=row.id, kind=kind.value, attempt=request.attempt, decision=decision.value,
        reviewer_email=request.reviewer_email, rationale=submission.rationale.strip(),
        status_before=status_before, decided_at=now, snapshot_ref=snapshot,
    ))
    record_wait(session, row.id, base=base, pause_key=pause_key, outcome="applied",
                detail=[decision.value])
    after = transitions.move(
        session, row, RecoveryAction.decide_signoff(kind, decision),
        actor=request.reviewer_email,
        details={"decision": decision.value, "kind": kind.value, "attempt": request.attempt,
                 "rationale": submission.rationale.strip(), "status_before": status_before,
                 **({"snapshot": snapshot} if snapshot else {})},
        dedupe_key=f"signoff.decided:{row.ref}:{kind.value}:{request.attempt}",
    )
    today = now.astimezone(get_settings().tz).date()
    if after == Status.IN_RECOVERY and kind == SignoffKind.PLAN:
        row.recovery_started_on = today
    if after == Status.ROUTINE_MONITORING:
        row.monitoring_since = today
    session.add(row)
    _confirm_decision(session, row, request, decision, submission.rationale.strip(), after,
                      now=now)
    return SignoffOutcome(applied=True, decision=decision.value, status=after.value, reasons=[])


def _evidence_changed(
    session: Session, row: ActionRow, closure: ClosureRequestRow, request: SignoffRequestRow,
    *, pause_key: str, base: str, submission: Submission, now: datetime, as_of: date,
) -> SignoffOutcome | None:
    """A closure approval is bound to the gate verdict the request was made on. When the
    evidence or reviews recorded since make the gate say otherwise, the approval is
    refused, the request goes back through the gate (its new verdict recorded), the action
    is back in recovery, the reviewer is told and the lead gets the gate's reasons. None
    when the verdict stands (evidence that keeps it changes nothing)."""
    settings = get_settings()
    verdict, snapshot = evidence_gate.gate_with_snapshot(
        session, row.ref, as_of=as_of, freshness_days=settings.evidence_freshness_days)
    if not verdict_changed(bool(closure.gate_passed), verdict):
        return None
    assert row.id is not None
    refusals = [Refusal(code=RefusalCode.EVIDENCE_CHANGED, message=EVIDENCE_CHANGED),
                *(Refusal(code=RefusalCode.GATE_REFUSED, message=r) for r in verdict.reasons)]
    reasons = messages(refusals)
    bound_to = closure.snapshot_ref
    closure.gate_passed, closure.gate_reasons = verdict.passed, list(verdict.reasons)
    closure.snapshot_ref, closure.evaluated_at = snapshot, now
    session.add(closure)
    request.used_at = now  # this request's code is spent: a new request gets a new one
    request.refusals += 1
    request.last_refusal = "; ".join(reasons)[:2000]
    session.add(request)
    record_wait(session, row.id, base=base, pause_key=pause_key, outcome="refused",
                detail=reasons, codes=codes(refusals))
    actor = normalise_email(submission.reviewer_email)
    audit_log.append(
        session, actor=actor, event="signoff.refused", action_ref=row.ref,
        details={"kind": request.kind, "attempt": request.attempt, "reasons": reasons,
                 "status": row.status, "snapshot": bound_to, "snapshot_now": snapshot},
        dedupe_key=f"signoff.refused:{row.ref}:{pause_key}")
    after = transitions.move(
        session, row, Event.EVIDENCE_CHANGED, actor="triangulation-gate",
        details={"attempt": closure.attempt, "passed": verdict.passed,
                 "reasons": list(verdict.reasons), "snapshot": snapshot,
                 "was": bound_to},
        dedupe_key=f"gate.changed:{row.ref}:{closure.attempt}")
    tell_refused(session, row, "closure sign-off", to=request.reviewer_email,
                 refusals=refusals, pause_key=pause_key, now=now)
    tell_gate_refused(session, row, closure, list(verdict.reasons), verdict.as_of)
    return SignoffOutcome.refused(after.value, refusals)


def _signer_refusals(session: Session, row: ActionRow, lead: PersonRow,
                     request: SignoffRequestRow, submission: Submission) -> list[Refusal]:
    """The request's reviewer (named or stand-in) still meets the separation-of-duties
    rules as they stand in the directory now: a role changed since, or an assignment made
    any other way, cannot let the lead or a junior sign."""
    if normalise_email(submission.reviewer_email) != request.reviewer_email:
        return []  # refused already as not the reviewer
    signer = repo.find_person(session, request.reviewer_email)
    if signer is None:
        return [Refusal(code=RefusalCode.NOT_IN_DIRECTORY,
                        message=not_in_directory(request.reviewer_email))]
    return [Refusal(code=RefusalCode.SEPARATION_OF_DUTIES, message=reason)
            for reason in accountability_reasons(repo.to_person(lead), repo.to_person(signer))]


def _confirm_decision(session: Session, row: ActionRow, request: SignoffRequestRow,
                      decision: Decision, rationale: str, after: Status, *,
                      now: datetime) -> None:
    """The reviewer, the accountable lead and, for a high-risk action, the location's
    registered manager(s) are told what was decided and what happens next."""
    reviewer = repo.get_person(session, request.reviewer_email, field="reviewer")
    lead = repo.person_by_id(session, row.accountable_lead_id)
    to = [reviewer.email, lead.email]
    if row.risk_level == "high":
        to += [p.email for p in session.exec(select(PersonRow).where(
            PersonRow.role == Role.REGISTERED_MANAGER.value,
            PersonRow.location_id == row.location_id))]
    mail.enqueue(
        session, dedupe_key=f"signoff.decided:{row.ref}:{request.kind}:{request.attempt}",
        to=list(dict.fromkeys(to)), template="signoff_decided", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "risk_level": row.risk_level,
                 "location": repo.location_by_id(session, row.location_id).name,
                 "kind": request.kind, "decision": decision.value,
                 "reviewer_name": reviewer.name, "reviewer_email": reviewer.email,
                 "rationale": rationale, "at": now.astimezone(get_settings().tz),
                 "next_step": next_step(request.kind, decision.value, ref=row.ref),
                 "status_label": after.label,
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )


class Awaiting(BaseModel):
    ref: str
    title: str
    location: str
    awaiting: str
    tag: str
    from_whom: str
    name: str
    role: str
    since: datetime | None
    how: str
    command: str
    flow_run_id: str | None
    url: str


def _answer(row: ActionRow, who: PersonRow, status: Status) -> tuple[str, str]:
    """How the person answers this wait: in words (the Prefect UI), and the command."""
    if status in (Status.AWAITING_PLAN_SIGNOFF, Status.AWAITING_CLOSURE_SIGNOFF):
        return (f"{who.name} presses Resume on this run and fills in the form with the "
                "six-digit code from their sign-off email, or runs:",
                f"recovery signoff {row.ref} --by {who.email} --code CODE "
                "--decision approve|reject --rationale TEXT")
    if status == Status.PLAN_REJECTED:
        return (f"{who.name} records the revised plan:",
                f"recovery action revise {row.ref} PLAN.yaml --by {who.email}")
    return (f"{who.name} asks for closure (or presses Resume on this run); the triangulation "
            "gate then decides whether it goes to closure sign-off:",
            f"recovery closure request {row.ref} --by {who.email} --summary TEXT")


def awaiting(session: Session, row: ActionRow) -> Awaiting | None:
    """What the action's lifecycle run waits for, from whom (name and role), since when and
    how to answer; None when it waits on nobody (models.lifecycle.WAITS)."""
    status = Status(row.status)
    if status not in WAITS:
        return None
    assert row.id is not None
    tag, what, whose = WAITS[status]
    person = repo.person_by_id(
        session, row.senior_reviewer_id if whose == "reviewer" else row.accountable_lead_id)
    since: datetime | None = row.updated_at
    if status in (Status.AWAITING_PLAN_SIGNOFF, Status.AWAITING_CLOSURE_SIGNOFF):
        kind = (SignoffKind.PLAN if status == Status.AWAITING_PLAN_SIGNOFF
                else SignoffKind.CLOSURE)
        request = current_request(session, row.id, kind)
        since = request.issued_at if request else since
        if request is not None and request.used_at is None:  # a stand-in may hold it
            person = repo.find_person(session, request.reviewer_email) or person
    elif status in (Status.IN_RECOVERY, Status.REOPENED):
        day = (transitions.reopened_on(session, row) if status == Status.REOPENED
               else row.recovery_started_on)
        if day is not None:
            since = datetime.combine(day, time(), get_settings().tz)
    how, command = _answer(row, person, status)
    return Awaiting(
        ref=row.ref, title=row.title,
        location=repo.location_by_id(session, row.location_id).name, awaiting=what, tag=tag,
        from_whom=f"{person.name} <{person.email}>", name=person.name,
        role=Role(person.role).label, since=as_utc(since) if since else None,
        how=how, command=command, flow_run_id=row.flow_run_id,
        url=get_settings().run_url(row.flow_run_id))


def approvals(session: Session) -> list[Awaiting]:
    """Everything waiting on a person: sign-offs on senior reviewers, revisions and closure
    requests on accountable leads."""
    rows = session.exec(select(ActionRow).where(col(ActionRow.status).in_(
        [s.value for s in WAITS])).order_by(col(ActionRow.ref))).all()
    return [w for w in (awaiting(session, row) for row in rows) if w is not None]
