"""Storage: SQLModel tables. Plain columns for what set-based review queries read; JSON
for the parts of a plan that are only ever read whole."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Table, UniqueConstraint, inspect
from sqlmodel import Field, SQLModel


def _json(default: list[Any] | dict[str, Any]) -> Any:
    factory = list if isinstance(default, list) else dict
    return Field(default_factory=factory, sa_column=Column(JSON, nullable=False))


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_of(row: type[SQLModel]) -> Table:
    """The Core table behind a table class, for set-based statements that read or write
    plain rows (SQLModel sets `__table__` on the class but does not declare it for a type
    checker)."""
    table = inspect(row).local_table
    assert isinstance(table, Table)
    return table


def _ts(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class ProviderRow(SQLModel, table=True):
    __tablename__ = "provider"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)


class LocationRow(SQLModel, table=True):
    __tablename__ = "location"
    id: int | None = Field(default=None, primary_key=True)
    provider_id: int = Field(foreign_key="provider.id", index=True)
    name: str = Field(unique=True, max_length=200)
    code: str = Field(unique=True, max_length=12)


class PersonRow(SQLModel, table=True):
    __tablename__ = "person"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=254)
    name: str = Field(max_length=200)
    role: str = Field(max_length=40)
    location_id: int | None = Field(default=None, foreign_key="location.id")


class AbsenceRow(SQLModel, table=True):
    """A person away from `starts_on` to `ends_on` (both included): never chosen as a
    reviewer meanwhile, and a sign-off waiting on them may be reassigned."""

    __tablename__ = "absence"
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    starts_on: date
    ends_on: date
    recorded_by: str = Field(max_length=254)
    recorded_at: datetime = _ts()


class FrameworkRow(SQLModel, table=True):
    __tablename__ = "framework"
    framework_id: str = Field(primary_key=True, max_length=60)
    name: str
    version: str
    loaded_at: datetime = _ts()


class StatementRow(SQLModel, table=True):
    __tablename__ = "quality_statement"
    framework_id: str = Field(foreign_key="framework.framework_id", primary_key=True)
    statement_id: str = Field(primary_key=True, max_length=80)
    key_question: str
    title: str


class ActionRow(SQLModel, table=True):
    __tablename__ = "recovery_action"
    __table_args__ = (
        Index("ix_action_status_level", "status", "risk_level"),
        UniqueConstraint("location_id", "risk_domain", "seq", name="uq_action_seq"),
    )
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True, max_length=40)
    seq: int
    title: str = Field(max_length=200)
    location_id: int = Field(foreign_key="location.id", index=True)
    risk_domain: str = Field(max_length=30)
    status: str = Field(max_length=40)
    risk_level: str = Field(max_length=10)
    risk_score: int
    risk_reasons: list[str] = _json([])
    plan: dict[str, Any] = _json({})
    plan_version: int = 1
    accountable_lead_id: int = Field(foreign_key="person.id")
    senior_reviewer_id: int = Field(foreign_key="person.id")
    baseline_value: float
    baseline_on: date
    target_direction: str = Field(max_length=10)
    target_value: float
    deadline: date
    recovery_started_on: date | None = None
    monitoring_since: date | None = None
    escalated: bool = False
    flow_run_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ActionStatementRow(SQLModel, table=True):
    __tablename__ = "action_statement"
    action_id: int = Field(foreign_key="recovery_action.id", primary_key=True)
    framework_id: str = Field(primary_key=True, max_length=60)
    statement_id: str = Field(primary_key=True, max_length=80)


class EvidenceRow(SQLModel, table=True):
    __tablename__ = "evidence"
    __table_args__ = (
        Index("ix_evidence_action_observed", "action_id", "observed_on"),
        # the per-pillar picks of reviews, gates and packs (migration 0002)
        Index("ix_evidence_action_pillar_observed", "action_id", "pillar", "observed_on"),
    )
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id")
    source: str = Field(max_length=30)
    pillar: str = Field(max_length=20)
    value: float | None = None
    sample_size: int | None = None
    observed_on: date
    recorded_by: str = Field(max_length=254)
    reference: str = Field(max_length=300)
    recorded_at: datetime = _ts()


class ReviewRow(SQLModel, table=True):
    __tablename__ = "review"
    __table_args__ = (UniqueConstraint("action_id", "as_of", name="uq_review_action_day"),)
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    as_of: date
    cadence: str = Field(max_length=10)
    measured_value: float | None = None
    trajectory_value: float
    target_met: bool
    rating: str = Field(max_length=12)
    days_to_deadline: int
    triggers: list[str] = _json([])
    reasons: list[str] = _json([])
    pillars: list[dict[str, Any]] = _json([])
    reviewed_by: str = Field(default="daily-review", max_length=254)
    created_at: datetime = _ts()


class EscalationRow(SQLModel, table=True):
    __tablename__ = "escalation"
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    opened_on: date
    reasons: list[str] = _json([])
    control_change_id: int | None = Field(default=None, foreign_key="control_change.id")
    resolved_on: date | None = None
    event_emitted_at: datetime | None = _ts(nullable=True)


class ControlChangeRow(SQLModel, table=True):
    __tablename__ = "control_change"
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    what: str = Field(max_length=2000)
    decided_by: str = Field(max_length=254)
    decided_on: date
    reason: str = Field(max_length=40)  # extension | escalation
    old_deadline: date | None = None
    new_deadline: date | None = None


class TriggerRow(SQLModel, table=True):
    """A trigger raised by a person (e.g. unclear rationale) and open until closed."""

    __tablename__ = "raised_trigger"
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    description: str = Field(max_length=500)
    raised_by: str = Field(max_length=254)
    raised_on: date
    closed_on: date | None = None


class SignoffRequestRow(SQLModel, table=True):
    __tablename__ = "signoff_request"
    __table_args__ = (UniqueConstraint("action_id", "kind", "attempt", name="uq_signoff_attempt"),)
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    kind: str = Field(max_length=12)
    attempt: int
    pause_key: str = Field(max_length=80)
    reviewer_email: str = Field(max_length=254)
    code_salt: str = Field(max_length=64)
    code_hash: str = Field(max_length=128)
    issued_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)
    wrong_attempts: int = 0
    locked: bool = False
    refusals: int = 0
    last_refusal: str | None = Field(default=None, max_length=2000)
    flow_run_id: str | None = Field(default=None, max_length=40)


class DecisionRow(SQLModel, table=True):
    __tablename__ = "decision"
    __table_args__ = (UniqueConstraint("action_id", "kind", "attempt", name="uq_decision"),)
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    kind: str = Field(max_length=12)
    attempt: int
    decision: str = Field(max_length=10)
    reviewer_email: str = Field(max_length=254)
    rationale: str = Field(max_length=4000)
    status_before: str = Field(max_length=40)
    decided_at: datetime = _ts()
    snapshot_ref: str | None = Field(default=None, max_length=20)
    """A closure decision: the gate snapshot it was made on."""


class ClosureRequestRow(SQLModel, table=True):
    __tablename__ = "closure_request"
    __table_args__ = (UniqueConstraint("action_id", "attempt", name="uq_closure_attempt"),)
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    attempt: int
    requested_by: str = Field(max_length=254)
    summary: str = Field(max_length=4000)
    requested_at: datetime = _ts()
    gate_passed: bool | None = None
    gate_reasons: list[str] = _json([])
    evaluated_at: datetime | None = _ts(nullable=True)
    snapshot_ref: str | None = Field(default=None, max_length=20)
    """What the gate counted (`models.gate.gate_snapshot`); the closure decision names it."""


class WaitRow(SQLModel, table=True):
    """One processed human input to a lifecycle run, keyed by its pause key. The next
    wait's key is derived from these rows, so a run restarted from the top after a resume
    never reads the same input twice."""

    __tablename__ = "lifecycle_wait"
    __table_args__ = (UniqueConstraint("action_id", "pause_key", name="uq_wait_key"),)
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    base: str = Field(max_length=80)
    pause_key: str = Field(max_length=100)
    outcome: str = Field(max_length=20)  # applied | refused | ignored
    detail: list[str] = _json([])
    codes: list[str] = _json([])  # models.refusal.RefusalCode of each refusal (0005)
    processed_at: datetime = _ts()


class RevisionRow(SQLModel, table=True):
    __tablename__ = "plan_revision"
    __table_args__ = (UniqueConstraint("action_id", "version", name="uq_revision"),)
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    version: int
    plan: dict[str, Any] = _json({})
    revised_by: str = Field(max_length=254)
    revised_at: datetime = _ts()


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_log"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: str = Field(max_length=40)  # ISO-8601 with offset, exactly as hashed
    actor: str = Field(max_length=254)
    action_ref: str | None = Field(default=None, max_length=40, index=True)
    event: str = Field(max_length=60)
    details: dict[str, Any] = _json({})
    prev_hash: str = Field(unique=True, max_length=64)
    hash: str = Field(max_length=64)
    dedupe_key: str | None = Field(default=None, unique=True, max_length=200)


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True, max_length=500)
    action_ref: str | None = Field(default=None, max_length=40, index=True)
    recipients: list[str] = _json([])  # one address (rows before migration 0003: several)
    subject: str = Field(max_length=300)
    text_body: str
    html_body: str
    created_at: datetime = _ts()
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(nullable=True)
    sent_at: datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, max_length=1000)
    # never deliverable (an address that breaks the rule, a recipient refused for good):
    # no longer retried, reported by `recovery doctor`
    dead_at: datetime | None = _ts(nullable=True)
    # a one-time code, encrypted with the outbox key (outside the database) until sent
    code_cipher: str | None = Field(default=None, max_length=500)


class CycleRunRow(SQLModel, table=True):
    """A weekly or monthly cycle completed for a date: a second run for it is a no-op."""

    __tablename__ = "cycle_run"
    __table_args__ = (UniqueConstraint("cycle", "as_of", name="uq_cycle_run"),)
    id: int | None = Field(default=None, primary_key=True)
    cycle: str = Field(max_length=12)
    as_of: date
    summary: dict[str, Any] = _json({})
    completed_at: datetime = _ts()


class AssuranceRequestRow(SQLModel, table=True):
    """The nominated individual's monthly provider assurance: one request per month, with a
    one-time code like a sign-off, over a snapshot of the high-risk actions."""

    __tablename__ = "assurance_request"
    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(unique=True, max_length=7)  # YYYY-MM
    as_of: date
    reviewer_email: str = Field(max_length=254)
    action_refs: list[str] = _json([])
    code_salt: str = Field(max_length=64)
    code_hash: str = Field(max_length=128)
    issued_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)
    wrong_attempts: int = 0
    locked: bool = False
    refusals: int = 0


class AssuranceEntryRow(SQLModel, table=True):
    """One line of the provider assurance minutes."""

    __tablename__ = "assurance_entry"
    __table_args__ = (UniqueConstraint("request_id", "action_id", name="uq_assurance_entry"),)
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="assurance_request.id", index=True)
    action_id: int = Field(foreign_key="recovery_action.id", index=True)
    outcome: str = Field(max_length=20)  # assurance | challenge | further_action
    note: str = Field(max_length=2000)
    recorded_by: str = Field(max_length=254)
    recorded_on: date
