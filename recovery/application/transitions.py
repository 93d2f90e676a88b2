"""Moving an action through its lifecycle: every status change goes through `move`, which asks
the domain's transition table, writes and audits. Callers wrap each call in one `unit_of_work()`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from models.lifecycle import Event, Facts, Status, transition
from models.recovery_action import RecoveryAction
from models.risk import RiskLevel
from recovery.adapters import audit_log
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    AuditRow,
    utcnow,
)


def business_day() -> str:
    """The business day a fact is recorded on (RECOVERY_BUSINESS_DATE, else the real date),
    kept as `on` in the audit entries a pack as of a past date reads the past from."""
    from recovery.settings import get_settings

    return get_settings().today().isoformat()


def move(
    session: Session, row: ActionRow, event: Event, *, actor: str,
    details: dict[str, Any] | None = None, dedupe_key: str | None = None,
    audit: list[audit_log.Entry] | None = None,
) -> Status:
    """The one way an action's status changes: a lifecycle transition plus an audit entry
    (appended now, or added to `audit` for the caller's `audit_log.append_many`)."""
    before = Status(row.status)
    after = transition(before, event, Facts(
        is_high_risk=row.risk_level == RiskLevel.HIGH.value,
        has_interim_controls=bool((row.plan or {}).get("interim_controls"))))
    row.status = after.value
    row.updated_at = utcnow()
    session.add(row)
    entry = audit_log.Entry(
        actor=actor, event=f"status.{event.value}", action_ref=row.ref,
        details={"from": before.value, "to": after.value, "on": business_day(),
                 **(details or {})},
        dedupe_key=dedupe_key,
    )
    if audit is not None:
        audit.append(entry)
    else:
        audit_log.append(session, actor=entry.actor, event=entry.event,
                         action_ref=entry.action_ref, details=entry.details,
                         dedupe_key=entry.dedupe_key)
    return after


def aggregate(session: Session, row: ActionRow) -> RecoveryAction:
    """The domain's view of a stored action, to ask a decision of."""
    lead = repo.person_by_id(session, row.accountable_lead_id)
    return RecoveryAction(ref=row.ref, status=Status(row.status), accountable_lead=lead.email,
                          is_high_risk=row.risk_level == RiskLevel.HIGH.value,
                          deadline=row.deadline)


def submit_plan(session: Session, ref: str, *, actor: str) -> ActionRow:
    row = repo.get_action(session, ref, for_update=True)
    move(session, row, Event.SUBMIT_PLAN, actor=actor)
    return row


_REOPENED = repo.REOPENED_EVENT


def reopened_on(session: Session, row: ActionRow) -> date | None:
    """The day the action was last reopened by a person (None if never): where its fresh
    closure path starts."""
    details = session.exec(
        select(AuditRow.details).where(AuditRow.action_ref == row.ref,
                                       AuditRow.event == _REOPENED)
        .order_by(col(AuditRow.seq).desc())).first()
    return date.fromisoformat(details["reopened_on"]) if details else None
