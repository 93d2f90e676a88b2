"""Loading rows and turning them into domain values. Keyword-only, no business rules."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.action import ActionPlan
from models.errors import NotFound, NotInDirectory
from models.evidence import Evidence, EvidenceSource, Pillar
from models.lifecycle import Event
from models.people import Person, Role, check_email, email_address
from models.review import Rating, ReviewRecord
from recovery.adapters.tables import (
    ActionRow,
    AuditRow,
    ClosureRequestRow,
    EscalationRow,
    EvidenceRow,
    LocationRow,
    PersonRow,
    ReviewRow,
    TriggerRow,
    WaitRow,
)

#: The audit event a person's reopening of a closed action records.
REOPENED_EVENT = f"status.{Event.REOPEN.value}"


def normalise_ref(ref: str) -> str:
    return ref.strip().upper()


def get_action(session: Session, ref: str, *, for_update: bool = False) -> ActionRow:
    query = select(ActionRow).where(ActionRow.ref == normalise_ref(ref))
    if for_update:
        query = query.with_for_update()
    row = session.exec(query).first()
    if row is None:
        raise NotFound("action", ref.strip())
    return row


def get_person(session: Session, email: str, *, field: str) -> PersonRow:
    address = email_address(email, field=field)
    row = session.exec(select(PersonRow).where(PersonRow.email == address)).first()
    if row is None:
        raise NotInDirectory(field, address)
    return row


def find_person(session: Session, email: str) -> PersonRow | None:
    """The person with this email, or None (an address that breaks the rule is nobody's)."""
    try:
        address = check_email(email)
    except ValueError:
        return None
    return session.exec(select(PersonRow).where(PersonRow.email == address)).first()


def person_by_id(session: Session, person_id: int) -> PersonRow:
    row = session.get(PersonRow, person_id)
    assert row is not None
    return row


def location_by_id(session: Session, location_id: int) -> LocationRow:
    row = session.get(LocationRow, location_id)
    assert row is not None
    return row


def get_location(session: Session, name: str) -> LocationRow:
    wanted = name.strip().lower()
    for row in session.exec(select(LocationRow)):
        if row.name.lower() == wanted or row.code.lower() == wanted:
            return row
    raise NotFound("location", name.strip())


def to_person(row: PersonRow, location: str | None = None) -> Person:
    return Person(name=row.name, email=row.email, role=Role(row.role), location=location)


def plan_of(row: ActionRow) -> ActionPlan:
    return ActionPlan.model_validate(row.plan)


def to_evidence(row: EvidenceRow) -> Evidence:
    return Evidence(
        id=row.id, source=EvidenceSource(row.source), pillar=Pillar(row.pillar),
        value=row.value, sample_size=row.sample_size, observed_on=row.observed_on,
        recorded_by=row.recorded_by, reference=row.reference,
    )


def evidence_of(session: Session, action_id: int) -> list[Evidence]:
    rows = session.exec(
        select(EvidenceRow).where(EvidenceRow.action_id == action_id)
        .order_by(col(EvidenceRow.observed_on), col(EvidenceRow.id))
    )
    return [to_evidence(r) for r in rows]


def to_review(row: ReviewRow) -> ReviewRecord:
    return ReviewRecord(
        as_of=row.as_of, measured_value=row.measured_value, target_met=row.target_met,
        rating=Rating(row.rating),
    )


def reviews_of(session: Session, action_id: int) -> list[ReviewRow]:
    return list(
        session.exec(
            select(ReviewRow).where(ReviewRow.action_id == action_id).order_by(col(ReviewRow.as_of))
        )
    )


def open_escalations(session: Session, action_id: int) -> list[EscalationRow]:
    return list(
        session.exec(
            select(EscalationRow).where(
                EscalationRow.action_id == action_id, col(EscalationRow.resolved_on).is_(None)
            )
        )
    )


def open_triggers(session: Session, action_id: int) -> list[TriggerRow]:
    return list(
        session.exec(
            select(TriggerRow).where(
                TriggerRow.action_id == action_id, col(TriggerRow.closed_on).is_(None)
            )
        )
    )


def times_reopened(session: Session, ref: str) -> int:
    """How many times a person reopened the action (each one starts a new run)."""
    return int(session.exec(select(func.count()).select_from(AuditRow).where(
        AuditRow.action_ref == ref, AuditRow.event == REOPENED_EVENT)).one())


def latest_closure_request(session: Session, action_id: int) -> ClosureRequestRow | None:
    return session.exec(
        select(ClosureRequestRow).where(ClosureRequestRow.action_id == action_id)
        .order_by(col(ClosureRequestRow.attempt).desc())
    ).first()


def already_processed(session: Session, action_id: int, pause_key: str) -> WaitRow | None:
    """The recorded answer to the wait `pause_key`, if it was answered."""
    return session.exec(
        select(WaitRow).where(WaitRow.action_id == action_id, WaitRow.pause_key == pause_key)
    ).first()
