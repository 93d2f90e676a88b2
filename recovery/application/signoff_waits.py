"""What every human wait of the lifecycle shares: the wait's key and its record, the last refusal
shown to the person, and telling the people concerned about a refusal. Every function is
idempotent against the database, because a Prefect run restarts from the top after each resume.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import Session, col, select

from models.lifecycle import Status
from models.refusal import Refusal, RefusalCode, codes, messages
from models.signoff import (
    MAX_WRONG_CODES,
    counts_toward_lockout,
)
from recovery.adapters import mail
from recovery.adapters import repository as repo
from recovery.adapters.repository import already_processed
from recovery.adapters.tables import (
    ActionRow,
    ClosureRequestRow,
    WaitRow,
)
from recovery.settings import get_settings


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


def tell_gate_refused(session: Session, row: ActionRow, request: ClosureRequestRow,
                       reasons: list[str], as_of: Any) -> None:
    lead = repo.person_by_id(session, row.accountable_lead_id)
    mail.enqueue(
        session, dedupe_key=f"gate.refused:{row.ref}:{request.attempt}", to=[lead.email],
        template="gate_refused", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "lead_name": lead.name,
                 "reasons": reasons, "as_of": as_of,
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )


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
