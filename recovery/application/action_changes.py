"""Changes to an open or closed action after its plan: deadline extensions, control changes and
reopening a closed action. Callers wrap each call in one `unit_of_work()`.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, col, select

from models.action import (
    MAX_TEXT,
)
from models.dates import check_extension_deadline
from models.errors import InvalidInput
from models.lifecycle import Event
from models.text import text_field
from recovery.adapters import audit_log
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    ControlChangeRow,
    EscalationRow,
    utcnow,
)
from recovery.application.transitions import aggregate, move


def extend_deadline(
    session: Session, ref: str, *, new_deadline: date, control_change: str, by: str, today: date
) -> ActionRow:
    row = repo.get_action(session, ref, for_update=True)
    person = repo.get_person(session, by, field="by")
    if len(control_change.strip()) > MAX_TEXT:  # the column holds 2000 characters
        raise InvalidInput("control_change", f"must be at most {MAX_TEXT} characters")
    action = aggregate(session, row)
    action.may_extend(repo.to_person(person))
    check_extension_deadline(new_deadline, today=today)
    action.extend(repo.to_person(person), new_deadline=new_deadline,
                  control_change=control_change, today=today)
    assert row.id is not None
    old = row.deadline
    change = ControlChangeRow(action_id=row.id, what=control_change.strip(),
                              decided_by=person.email, decided_on=today, reason="extension",
                              old_deadline=old, new_deadline=new_deadline)
    escalation = attach_control_change(session, row, change)
    plan = repo.plan_of(row).model_dump(mode="json")
    plan["target"]["deadline"] = new_deadline.isoformat()
    row.plan = plan
    row.deadline = new_deadline
    row.updated_at = utcnow()
    session.add(row)
    audit_log.append(
        session, actor=person.email, event="action.deadline_extended", action_ref=row.ref,
        details={"from": old.isoformat(), "to": new_deadline.isoformat(),
                 "on": today.isoformat(), "control_change": control_change.strip(),
                 "control_change_id": change.id,
                 "escalation_id": escalation.id if escalation else None},
    )
    return row


def attach_control_change(
    session: Session, row: ActionRow, change: ControlChangeRow
) -> EscalationRow | None:
    """Store a change of operational control and count it toward the action's open
    escalation (the earliest one still waiting for a control change), whichever command
    recorded it: one concept, whether it came with an extension or on its own."""
    session.add(change)
    session.flush()
    escalation = session.exec(
        select(EscalationRow).where(EscalationRow.action_id == row.id,
                                    col(EscalationRow.resolved_on).is_(None),
                                    col(EscalationRow.control_change_id).is_(None))
        .order_by(col(EscalationRow.id))).first()
    if escalation is not None:
        escalation.control_change_id = change.id
        session.add(escalation)
    return escalation


def reopen_action(session: Session, ref: str, *, by: str, reason: str, today: date
                  ) -> ActionRow:
    """A closed action back to recovery: a senior role decides, says why, and the audit log
    keeps it. The old lifecycle run's history stays; the caller starts a new run, whose
    closure path is fresh (the gate counts evidence observed from `today` on)."""
    row = repo.get_action(session, ref, for_update=True)
    person = repo.get_person(session, by, field="by")
    action = aggregate(session, row)
    action.may_reopen(repo.to_person(person), reason=reason)
    why = text_field("reason", reason.strip(), MAX_TEXT)
    action.reopen()
    previous_run = row.flow_run_id
    move(session, row, Event.REOPEN, actor=person.email,
         details={"reason": why, "reopened_on": today.isoformat(),
                  "previous_flow_run_id": previous_run})
    row.flow_run_id = None  # a new run starts; the old one's history stays in Prefect
    row.monitoring_since = None  # routine monitoring starts again after the next closure
    session.add(row)
    return row
