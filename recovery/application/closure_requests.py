"""Closure requests: the closure wait, recording a request and evaluating the triangulation gate
on it. Every function is idempotent against the database, because a Prefect run restarts from
the top after each resume.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from models.errors import RuleRefused
from models.lifecycle import Event
from models.people import normalise_email
from models.recovery_action import RecoveryAction
from models.refusal import RefusalCode, codes, messages
from models.signoff import (
    closure_requester,
)
from recovery.adapters import audit_log
from recovery.adapters import repository as repo
from recovery.adapters.repository import already_processed, latest_closure_request
from recovery.adapters.tables import (
    ClosureRequestRow,
    utcnow,
)
from recovery.application import evidence_gate, transitions
from recovery.application.signoff_waits import (
    SignoffOutcome,
    WaitInfo,
    last_refusal,
    record_wait,
    tell_gate_refused,
    tell_refused,
    wait_key,
)
from recovery.settings import get_settings


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
    refusals = transitions.aggregate(session, row).closure_request_refusals(
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
    after = transitions.move(session, row, Event.REQUEST_CLOSURE, actor=lead.email,
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
    verdict, snapshot = evidence_gate.gate_with_snapshot(
        session, row.ref, as_of=as_of or settings.today(),
        freshness_days=settings.evidence_freshness_days)
    request.gate_passed = verdict.passed
    request.gate_reasons = list(verdict.reasons)
    request.snapshot_ref = snapshot
    request.evaluated_at = utcnow()
    session.add(request)
    event = RecoveryAction.gate_decides(verdict.passed)
    after = transitions.move(session, row, event, actor="triangulation-gate",
                          details={"attempt": request.attempt, "passed": verdict.passed,
                                   "reasons": list(verdict.reasons), "snapshot": snapshot},
                          dedupe_key=f"gate:{row.ref}:{request.attempt}")
    if not verdict.passed:
        tell_gate_refused(session, row, request, list(verdict.reasons), verdict.as_of)
    return SignoffOutcome(applied=verdict.passed, decision=None, status=after.value,
                          reasons=list(verdict.reasons))
