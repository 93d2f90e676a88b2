"""Human waits of the lifecycle: sign-off requests with one-time codes, decisions, closure
requests and plan revisions. Every function is idempotent against the database, because a
Prefect run restarts from the top after each resume."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, col, select

from models.action import accountability_reasons
from models.errors import RuleRefused
from models.gate import EVIDENCE_CHANGED, verdict_changed
from models.lifecycle import WAITS, Event, Status
from models.people import Role, normalise_email
from models.recovery_action import RecoveryAction
from models.refusal import Refusal, RefusalCode, codes, messages
from models.signoff import (
    CODE_TTL,
    MAX_WRONG_CODES,
    Decision,
    SignoffKind,
    SignoffRequestState,
    Submission,
    closure_requester,
    code_disclosed,
    code_withdrawn,
    counts_toward_lockout,
    hash_code,
    new_code,
    new_salt,
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
    WaitRow,
    as_utc,
    utcnow,
)
from recovery.application import services
from recovery.settings import get_settings

# ---------------------------------------------------------------- wait keys


def wait_key(session: Session, action_id: int, base: str) -> str:
    """`<base>-<n>`: n counts the inputs already processed under this base, plus one."""
    done = session.exec(
        select(func.count()).select_from(WaitRow)
        .where(WaitRow.action_id == action_id, WaitRow.base == base)
    ).one()
    return f"{base}-{done + 1}"


def record_wait(
    session: Session, action_id: int, *, base: str, pause_key: str, outcome: str,
    detail: list[str], codes: list[RefusalCode] | None = None,
) -> WaitRow:
    row = WaitRow(action_id=action_id, base=base, pause_key=pause_key, outcome=outcome,
                  detail=detail, codes=[c.value for c in codes or []])
    session.add(row)
    session.flush()
    return row


def last_refusal(session: Session, action_id: int, base: str) -> list[str]:
    row = session.exec(
        select(WaitRow).where(WaitRow.action_id == action_id, WaitRow.base == base,
                              WaitRow.outcome != "applied")
        .order_by(col(WaitRow.id).desc())
    ).first()
    return list(row.detail) if row else []


# ---------------------------------------------------------------- sign-off requests

#: Refusals after which an expired request is replaced by a new one.
_REISSUE_AFTER = frozenset({RefusalCode.CODE_EXPIRED.value, RefusalCode.CODE_WITHDRAWN.value})


class WaitInfo(BaseModel):
    """What the flow needs to suspend: the key and the words above the form."""

    ref: str
    kind: str
    attempt: int
    base: str
    pause_key: str
    reviewer_email: str
    refused_before: list[str]
    locked: bool = False
    expires_at: datetime | None = None
    """When the sign-off code expires (sign-off waits only)."""


def signoff_base(kind: SignoffKind, attempt: int) -> str:
    return f"{kind.value}-signoff-{attempt}"


def _state(row: SignoffRequestRow) -> SignoffRequestState:
    return SignoffRequestState(
        kind=SignoffKind(row.kind), reviewer_email=row.reviewer_email, code_salt=row.code_salt,
        code_hash=row.code_hash, issued_at=as_utc(row.issued_at),
        expires_at=as_utc(row.expires_at),
        used_at=as_utc(row.used_at) if row.used_at else None,
        wrong_attempts=row.wrong_attempts, locked=row.locked,
    )


def current_request(
    session: Session, action_id: int, kind: SignoffKind
) -> SignoffRequestRow | None:
    return session.exec(
        select(SignoffRequestRow)
        .where(SignoffRequestRow.action_id == action_id, SignoffRequestRow.kind == kind.value)
        .order_by(col(SignoffRequestRow.attempt).desc())
    ).first()


def open_signoff(
    session: Session, ref: str, kind: SignoffKind, *, flow_run_id: str | None,
    now: datetime | None = None, context: dict[str, Any] | None = None,
) -> WaitInfo:
    """The live sign-off request for this stage, issuing a new one (new code, one email to
    the named senior reviewer) only when none is live: first time, after a decision, or
    after the code expired."""
    now = now or utcnow()
    row = repo.get_action(session, ref, for_update=True)
    assert row.id is not None
    reviewer = repo.person_by_id(session, row.senior_reviewer_id)
    request = current_request(session, row.id, kind)
    decided = request is not None and session.exec(
        select(DecisionRow).where(DecisionRow.action_id == row.id, DecisionRow.kind == kind.value,
                                  DecisionRow.attempt == request.attempt)
    ).first() is not None
    # An expired code is replaced only once an answer has been refused for it: reissuing
    # sooner moves the run to a new key and silently drops the answer that woke it.
    expired = request is not None and as_utc(request.expires_at) <= now and any(
        code in _REISSUE_AFTER
        for wait in session.exec(select(WaitRow).where(
            WaitRow.action_id == row.id, WaitRow.outcome == "refused",
            WaitRow.base == signoff_base(kind, request.attempt)))
        for code in wait.codes
    )
    # a request whose code was used without a decision (an approval refused because the
    # evidence changed) is finished too: the next one carries a new code
    finished = request is not None and request.used_at is not None
    if request is None or decided or finished or (expired and not request.locked):
        attempt = 1 if request is None else request.attempt + 1
        if request is not None and not decided and not finished:
            # the same decision asked again (code expired or withdrawn): it stays with
            # whoever holds it, a stand-in included, never back to a reviewer who is away
            reviewer = repo.find_person(session, request.reviewer_email) or reviewer
        request = _issue(session, row, reviewer, kind, attempt, flow_run_id, now, context or {})
    base = signoff_base(kind, request.attempt)
    return WaitInfo(
        ref=row.ref, kind=kind.value, attempt=request.attempt, base=base,
        pause_key=wait_key(session, row.id, base), reviewer_email=request.reviewer_email,
        refused_before=last_refusal(session, row.id, base), locked=request.locked,
        expires_at=as_utc(request.expires_at),
    )


def _issue(
    session: Session, row: ActionRow, reviewer: PersonRow, kind: SignoffKind, attempt: int,
    flow_run_id: str | None, now: datetime, context: dict[str, Any],
) -> SignoffRequestRow:
    assert row.id is not None
    request = SignoffRequestRow(
        action_id=row.id, kind=kind.value, attempt=attempt,
        pause_key=signoff_base(kind, attempt), reviewer_email=reviewer.email, code_salt="",
        code_hash="", issued_at=now, expires_at=now + CODE_TTL, flow_run_id=flow_run_id,
    )
    closure = latest_closure_request(session, row.id) if kind == SignoffKind.CLOSURE else None
    snapshot = closure.snapshot_ref if closure is not None else None
    from recovery.application import absences

    away = absences.away(session, reviewer.email, get_settings().today())
    if away is not None:
        # nobody away is chosen by an automatic path: the request waits with no live code
        # until it is reassigned to a stand-in (or a new code is sent once they are back)
        session.add(request)
        session.flush()
        absences.tell_held(session, row, request, reviewer, away.ends_on)
    else:
        _send_code(session, row, reviewer, request, now, {"snapshot_ref": snapshot, **context},
                   dedupe_key=f"signoff:{row.ref}:{kind.value}:{attempt}")
    audit_log.append(
        session, actor="system", event="signoff.requested", action_ref=row.ref,
        details={"kind": kind.value, "attempt": attempt, "reviewer": reviewer.email,
                 "expires_at": (now + CODE_TTL).isoformat(), "flow_run_id": flow_run_id},
        dedupe_key=f"signoff.requested:{row.ref}:{kind.value}:{attempt}",
    )
    return request


def _send_code(
    session: Session, row: ActionRow, reviewer: PersonRow, request: SignoffRequestRow,
    now: datetime, context: dict[str, Any], *, dedupe_key: str | None,
) -> None:
    """Put a new code on the request (the one it held stops working) and queue the email
    that carries it to the named reviewer (keyed by the new code's tag unless given)."""
    code, salt = new_code(), new_salt()
    request.code_salt, request.code_hash = salt, hash_code(code, salt)
    request.issued_at, request.expires_at = now, now + CODE_TTL
    session.add(request)
    session.flush()
    settings = get_settings()
    kind = request.kind
    if dedupe_key is None:
        dedupe_key = f"signoff:{row.ref}:{kind}:{request.attempt}:{_code_tag(request)}"
    mail.enqueue(
        session, dedupe_key=dedupe_key, to=[reviewer.email],
        template="signoff_request", action_ref=row.ref, one_time_code=code,
        context={
            "ref": row.ref, "title": row.title, "kind": kind,
            "reviewer_name": reviewer.name, "code": code,
            "expires_at": (now + CODE_TTL).astimezone(settings.tz),
            "run_url": settings.run_url(request.flow_run_id), "risk_level": row.risk_level,
            "cli": f"recovery signoff {row.ref} --by {reviewer.email} --code {code} "
                   f"--decision approve --rationale \"...\"",
            "snapshot_ref": None,
            **context,
        },
    )


def send_code(session: Session, row: ActionRow, reviewer: PersonRow,
              request: SignoffRequestRow, now: datetime) -> None:
    """A new code on the request for `reviewer` (reissue, reassignment): the old one stops
    working; the email is keyed by the new code's tag."""
    _send_code(session, row, reviewer, request, now, {}, dedupe_key=None)


def _code_tag(request: SignoffRequestRow) -> str:
    """Names the code a request holds now (a reissue gives it another), so each lockout
    of each code is its own alert and audit entry; derived from the salt, which says
    nothing about the code."""
    return hashlib.blake2s(request.code_salt.encode("utf-8"), digest_size=4).hexdigest()


class SignoffOutcome(BaseModel):
    applied: bool
    decision: str | None
    status: str
    reasons: list[str]
    codes: list[RefusalCode] = []
    """The code of each refusal in `reasons` (callers branch on these, never the words)."""

    @classmethod
    def refused(cls, status: str, refusals: list[Refusal]) -> SignoffOutcome:
        return cls(applied=False, decision=None, status=status, reasons=messages(refusals),
                   codes=codes(refusals))


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
    refusals = signoff_refusals(_state(request), submission, accountable_lead=lead.email,
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
        if code_disclosed(_state(request), submission, presenter_known=known):
            request.expires_at = min(as_utc(request.expires_at), now)
            refusals.append(code_withdrawn(request.reviewer_email))
            _alert_disclosed(session, row, request, submission.reviewer_email)
        reasons = messages(refusals)
        if counts_toward_lockout(refusals):
            request.wrong_attempts += 1
            if request.wrong_attempts >= MAX_WRONG_CODES and not request.locked:
                request.locked = True
                _alert_lockout(session, row, request)
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
    after = services.move(
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
    verdict, snapshot = services.gate_with_snapshot(
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
    after = services.move(
        session, row, Event.EVIDENCE_CHANGED, actor="triangulation-gate",
        details={"attempt": closure.attempt, "passed": verdict.passed,
                 "reasons": list(verdict.reasons), "snapshot": snapshot,
                 "was": bound_to},
        dedupe_key=f"gate.changed:{row.ref}:{closure.attempt}")
    tell_refused(session, row, "closure sign-off", to=request.reviewer_email,
                 refusals=refusals, pause_key=pause_key, now=now)
    _tell_gate_refused(session, row, closure, list(verdict.reasons), verdict.as_of)
    return SignoffOutcome.refused(after.value, refusals)


def _tell_gate_refused(session: Session, row: ActionRow, request: ClosureRequestRow,
                       reasons: list[str], as_of: Any) -> None:
    lead = repo.person_by_id(session, row.accountable_lead_id)
    mail.enqueue(
        session, dedupe_key=f"gate.refused:{row.ref}:{request.attempt}", to=[lead.email],
        template="gate_refused", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "lead_name": lead.name,
                 "reasons": reasons, "as_of": as_of,
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )


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


def tell_refused(session: Session, row: ActionRow, what: str, *, to: str,
                 refusals: list[Refusal],
                 pause_key: str, now: datetime, attempts_left: int | None = None,
                 locked: bool = False) -> None:
    """The named person learns within the minute that a submission was not accepted: which
    rule, the attempts left before the lock; never a code (reasons carry none). Sent to the
    person the wait is for, whoever submitted, so a code in the wrong hands is seen."""
    person = repo.find_person(session, to)
    mail.enqueue(
        session, dedupe_key=f"signoff.refused:{row.ref}:{pause_key}", to=[to],
        template="signoff_refused", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "what": what,
                 "name": person.name if person else to, "reasons": messages(refusals),
                 "at": now.astimezone(get_settings().tz),
                 "attempts_left": attempts_left if counts_toward_lockout(refusals) else None,
                 "locked": locked, "max_wrong": MAX_WRONG_CODES,
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )


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


def _manager_and_ni(session: Session, row: ActionRow) -> list[PersonRow]:
    """Who hears of a sign-off in trouble: the location's registered manager(s) and the
    provider's nominated individual(s)."""
    return list(session.exec(
        select(PersonRow).where(
            (PersonRow.role == Role.NOMINATED_INDIVIDUAL.value)
            | ((PersonRow.role == Role.REGISTERED_MANAGER.value)
               & (PersonRow.location_id == row.location_id))
        )
    ).all())


def _alert_lockout(session: Session, row: ActionRow, request: SignoffRequestRow) -> None:
    location_people = _manager_and_ni(session, row)
    key = f"signoff.locked:{row.ref}:{request.kind}:{request.attempt}:{_code_tag(request)}"
    mail.enqueue(
        session, dedupe_key=key,
        to=[p.email for p in location_people], template="signoff_locked", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "kind": request.kind,
                 "attempts": request.wrong_attempts, "reviewer_email": request.reviewer_email,
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )
    audit_log.append(
        session, actor="system", event="signoff.locked", action_ref=row.ref,
        details={"kind": request.kind, "attempt": request.attempt,
                 "wrong_attempts": request.wrong_attempts},
        dedupe_key=key,
    )


def _alert_disclosed(session: Session, row: ActionRow, request: SignoffRequestRow,
                     presented_by: str) -> None:
    """The registered manager and nominated individual learn that a live code reached
    someone it was not sent to (once per request)."""
    location_people = _manager_and_ni(session, row)
    who = normalise_email(presented_by) or "someone unnamed"
    key = f"signoff.withdrawn:{row.ref}:{request.kind}:{request.attempt}"
    mail.enqueue(
        session, dedupe_key=key, to=[p.email for p in location_people],
        template="signoff_withdrawn", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "kind": request.kind,
                 "presented_by": who, "reviewer_email": request.reviewer_email,
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )
    audit_log.append(
        session, actor="system", event="signoff.code_withdrawn", action_ref=row.ref,
        details={"kind": request.kind, "attempt": request.attempt, "presented_by": who,
                 "reviewer": request.reviewer_email},
        dedupe_key=key,
    )


def reissue(session: Session, ref: str, *, by: str, now: datetime | None = None) -> str:
    """A registered manager, nominated individual or provider lead has a new code sent to
    the reviewer of the request that waits (locked after wrong codes, or its email lost):
    the old code stops working, the count of wrong codes starts again, and the run's wait
    takes the new code as it is. Refused when no sign-off waits. Returns the kind."""
    now = now or utcnow()
    row = repo.get_action(session, ref, for_update=True)
    assert row.id is not None
    person = repo.get_person(session, by, field="by")
    RecoveryAction.may_reissue(repo.to_person(person))
    waiting = {Status.AWAITING_PLAN_SIGNOFF.value: SignoffKind.PLAN,
               Status.AWAITING_CLOSURE_SIGNOFF.value: SignoffKind.CLOSURE}
    kind = waiting.get(row.status)
    request = current_request(session, row.id, kind) if kind else None
    if kind is None or request is None or request.used_at is not None:
        raise RuleRefused("sign-off reissue",
                          [f"{row.ref} has no sign-off waiting (status {row.status})"])
    from recovery.application import absences

    away = absences.away(session, request.reviewer_email, get_settings().today())
    if away is not None:
        raise RuleRefused("sign-off reissue", [
            f"{request.reviewer_email} is away until {away.ends_on.strftime('%d/%m/%Y')}: "
            f"hand the sign-off to a stand-in with `recovery signoff reassign {row.ref} "
            "--to EMAIL --by EMAIL --reason TEXT`"])
    was_locked = request.locked
    request.locked = False
    request.wrong_attempts = 0
    reviewer = repo.get_person(session, request.reviewer_email, field="reviewer")
    _send_code(session, row, reviewer, request, now, {}, dedupe_key=None)
    key = f"{row.ref}:{kind.value}:{request.attempt}:{_code_tag(request)}"
    audit_log.append(session, actor=person.email, event="signoff.reissued",
                     action_ref=row.ref, details={"kind": kind.value,
                                                  "attempt": request.attempt,
                                                  "was_locked": was_locked},
                     dedupe_key=f"signoff.reissued:{key}")
    return kind.value


# ---------------------------------------------------------------- closure requests


def closure_base(session: Session, action_id: int) -> str:
    count = session.exec(
        select(func.count()).select_from(ClosureRequestRow)
        .where(ClosureRequestRow.action_id == action_id)
    ).one()
    return f"closure-request-{count + 1}"


def closure_wait(session: Session, ref: str) -> WaitInfo:
    row = repo.get_action(session, ref)
    assert row.id is not None
    base = closure_base(session, row.id)
    lead = repo.person_by_id(session, row.accountable_lead_id)
    return WaitInfo(ref=row.ref, kind="closure-request", attempt=int(base.rsplit("-", 1)[1]),
                    base=base, pause_key=wait_key(session, row.id, base),
                    reviewer_email=lead.email,
                    refused_before=last_refusal(session, row.id, base))


def record_closure_request(
    session: Session, ref: str, *, pause_key: str, requested_by: str, summary: str,
) -> SignoffOutcome:
    """The accountable lead asks for closure: recorded once; the gate decides next."""
    row = repo.get_action(session, ref, for_update=True)
    assert row.id is not None
    seen = already_processed(session, row.id, pause_key)
    if seen is not None:
        return SignoffOutcome(applied=seen.outcome == "applied", decision=None,
                              status=row.status, reasons=list(seen.detail),
                              codes=[RefusalCode(c) for c in seen.codes])
    base = pause_key.rsplit("-", 1)[0]
    lead = repo.person_by_id(session, row.accountable_lead_id)
    refusals = services.aggregate(session, row).closure_request_refusals(
        requested_by=requested_by, summary=summary)
    if refusals:
        reasons = messages(refusals)
        record_wait(session, row.id, base=base, pause_key=pause_key, outcome="refused",
                    detail=reasons, codes=codes(refusals))
        audit_log.append(
            session, actor=normalise_email(requested_by) or "unknown",
            event="closure.request_refused", action_ref=row.ref, details={"reasons": reasons},
            dedupe_key=f"closure.refused:{row.ref}:{pause_key}",
        )
        tell_refused(session, row, "closure request", to=lead.email, refusals=refusals,
                     pause_key=pause_key, now=utcnow())
        return SignoffOutcome.refused(row.status, refusals)
    attempt = int(base.rsplit("-", 1)[1])
    session.add(ClosureRequestRow(action_id=row.id, attempt=attempt, requested_by=lead.email,
                                  summary=summary.strip()))
    record_wait(session, row.id, base=base, pause_key=pause_key, outcome="applied",
                detail=["closure requested"])
    after = services.move(session, row, Event.REQUEST_CLOSURE, actor=lead.email,
                          details={"attempt": attempt, "summary": summary.strip(),
                                   "requester": closure_requester(lead.email)},
                          dedupe_key=f"closure.requested:{row.ref}:{attempt}")
    return SignoffOutcome(applied=True, decision=None, status=after.value, reasons=[])


def evaluate_closure_gate(session: Session, ref: str, *, as_of: Any = None) -> SignoffOutcome:
    """Run the triangulation gate for the pending closure request, once. Refused: back to
    in recovery and the lead is told what is missing. Passed: on to closure sign-off."""
    settings = get_settings()
    row = repo.get_action(session, ref, for_update=True)
    assert row.id is not None
    request = latest_closure_request(session, row.id)
    if request is None:
        raise RuleRefused("triangulation gate", [f"{row.ref} has no closure request"])
    if request.gate_passed is not None:
        return SignoffOutcome(applied=bool(request.gate_passed), decision=None, status=row.status,
                              reasons=list(request.gate_reasons))
    verdict, snapshot = services.gate_with_snapshot(
        session, row.ref, as_of=as_of or settings.today(),
        freshness_days=settings.evidence_freshness_days)
    request.gate_passed = verdict.passed
    request.gate_reasons = list(verdict.reasons)
    request.snapshot_ref = snapshot
    request.evaluated_at = utcnow()
    session.add(request)
    event = RecoveryAction.gate_decides(verdict.passed)
    after = services.move(session, row, event, actor="triangulation-gate",
                          details={"attempt": request.attempt, "passed": verdict.passed,
                                   "reasons": list(verdict.reasons), "snapshot": snapshot},
                          dedupe_key=f"gate:{row.ref}:{request.attempt}")
    if not verdict.passed:
        _tell_gate_refused(session, row, request, list(verdict.reasons), verdict.as_of)
    return SignoffOutcome(applied=verdict.passed, decision=None, status=after.value,
                          reasons=list(verdict.reasons))


# ---------------------------------------------------------------- plan revision


def revision_wait(session: Session, ref: str) -> WaitInfo:
    row = repo.get_action(session, ref)
    assert row.id is not None
    base = f"plan-revision-{row.plan_version}"
    lead = repo.person_by_id(session, row.accountable_lead_id)
    return WaitInfo(ref=row.ref, kind="plan-revision", attempt=row.plan_version, base=base,
                    pause_key=wait_key(session, row.id, base), reviewer_email=lead.email,
                    refused_before=last_refusal(session, row.id, base))


def note_revision_wake(session: Session, ref: str, *, pause_key: str) -> None:
    """A resume of the revision wait: record it so the next wait has a fresh key."""
    row = repo.get_action(session, ref)
    assert row.id is not None
    if already_processed(session, row.id, pause_key) is None:
        outcome = "applied" if row.status != Status.PLAN_REJECTED.value else "ignored"
        record_wait(session, row.id, base=pause_key.rsplit("-", 1)[0], pause_key=pause_key,
                    outcome=outcome,
                    detail=["no revision has been recorded yet: run `recovery action revise`"]
                    if outcome == "ignored" else ["revision recorded"])


# ---------------------------------------------------------------- approvals


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
        day = (services.reopened_on(session, row) if status == Status.REOPENED
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
