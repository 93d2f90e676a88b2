"""What follows a review: escalation notices, de-escalation, and a control change recorded
against an action.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from models.action import MAX_TEXT
from models.text import text_field
from recovery.adapters import audit_log, mail
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    ControlChangeRow,
    EscalationRow,
)
from recovery.application import action_changes, transitions
from recovery.application.review_rows import Lookups
from recovery.settings import get_settings

CYCLE_ACTOR = "daily-review"  # who escalates, reopens and closes (whoever runs the cycle)


def escalation_notices(
    row: ActionRow, escalation: EscalationRow, as_of: date, lookups: Lookups,
    audit: list[audit_log.Entry], emails: list[mail.Email],
) -> None:
    """Everyone responsible told why (email), and the escalation audited. The plan's
    escalation actions are read from the stored plan, validated when it was written
    (`repo.plan_of` would validate the whole plan again for each of a day's escalations)."""
    reasons = list(escalation.reasons)
    emails.append(mail.Email(
        dedupe_key=f"escalation:{row.ref}:{escalation.id}", to=lookups.recipients(row),
        template="escalation", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title,
                 "location": lookups.location_name(row.location_id), "reasons": reasons,
                 "as_of": as_of,
                 "escalation_actions": list(row.plan.get("escalation_actions") or ()),
                 "run_url": get_settings().run_url(row.flow_run_id)},
    ))
    audit.append(audit_log.Entry(
        actor=CYCLE_ACTOR, event="action.escalated", action_ref=row.ref,
        details={"escalation_id": escalation.id, "as_of": as_of.isoformat(),
                 "reasons": reasons, "cadence": "daily"},
        dedupe_key=f"escalated:{row.ref}:{escalation.id}",
    ))


def de_escalated(row: ActionRow, escalation: EscalationRow | None, as_of: date
                  ) -> audit_log.Entry:
    return audit_log.Entry(
        actor=CYCLE_ACTOR, event="action.de_escalated", action_ref=row.ref,
        details={"as_of": as_of.isoformat(),
                 "escalation_id": escalation.id if escalation else None,
                 "control_change_id": escalation.control_change_id if escalation else None},
        dedupe_key=f"de_escalated:{row.ref}:{escalation.id if escalation else as_of}",
    )


def record_control_change(
    session: Session, ref: str, *, what: str, by: str, today: date
) -> ControlChangeRow:
    """Escalation asks for a change of operational control, not more time."""
    row = repo.get_action(session, ref, for_update=True)
    person = repo.get_person(session, by, field="by")
    transitions.aggregate(session, row).change_control(repo.to_person(person), what=what)
    what = text_field("what", what, MAX_TEXT)
    assert row.id is not None
    change = ControlChangeRow(action_id=row.id, what=what.strip(), decided_by=person.email,
                              decided_on=today, reason="escalation")
    escalation = action_changes.attach_control_change(session, row, change)
    audit_log.append(session, actor=person.email, event="action.control_changed",
                     action_ref=row.ref,
                     details={"what": what.strip(), "control_change_id": change.id,
                              "escalation_id": escalation.id if escalation else None})
    return change
