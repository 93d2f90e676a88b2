"""Opening actions and revising their plans: each loads what it needs, asks the domain, writes,
and audits.

Callers (CLI, Prefect tasks) wrap each call in one `unit_of_work()`, so a refused command
leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from models.action import (
    ActionPlan,
    check_accountability,
)
from models.dates import check_plan_dates
from models.errors import InvalidInput, NotFound, NotInDirectory
from models.lifecycle import Event, Status
from models.people import normalise_email
from models.risk import RiskRating, rate_risk
from recovery.adapters import audit_log
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    ActionStatementRow,
    FrameworkRow,
    LocationRow,
    PersonRow,
    RevisionRow,
    StatementRow,
    utcnow,
)
from recovery.application.transitions import aggregate, business_day, move


def _resolve_people(session: Session, plan: ActionPlan) -> tuple[PersonRow, PersonRow]:
    lead = repo.get_person(session, plan.accountable_lead, field="accountable_lead")
    reviewer = repo.get_person(session, plan.senior_reviewer, field="senior_reviewer")
    check_accountability(repo.to_person(lead), repo.to_person(reviewer))
    return lead, reviewer


def _check_baseline_date(plan: ActionPlan, today: date | None) -> None:
    """A plan entering the system keeps to the date horizons (`models/dates.py`)."""
    from recovery.settings import get_settings

    check_plan_dates(plan.baseline.as_of, plan.target.deadline,
                     today=today or get_settings().today())


def _check_statements(session: Session, plan: ActionPlan) -> None:
    if session.get(FrameworkRow, plan.framework_id) is None:
        raise InvalidInput("framework_id", f"framework '{plan.framework_id}' is not loaded")
    if not plan.quality_statements:
        raise InvalidInput("quality_statements", "at least one quality statement is required")
    if len(set(plan.quality_statements)) != len(plan.quality_statements):
        raise InvalidInput("quality_statements", "a quality statement is listed twice")
    for statement_id in plan.quality_statements:
        if session.get(StatementRow, (plan.framework_id, statement_id)) is None:
            raise InvalidInput(
                "quality_statements",
                f"unknown quality statement '{statement_id}' in framework {plan.framework_id}",
            )


def _next_ref(session: Session, location: LocationRow, plan: ActionPlan) -> tuple[int, str]:
    # Serialise reference allocation per location: without the row lock, concurrent opens on
    # PostgreSQL read the same max(seq) and all but one fail on uq_action_seq. (SQLite
    # already serialises writers with BEGIN IMMEDIATE; FOR UPDATE is not rendered there.)
    session.exec(
        select(LocationRow.id).where(LocationRow.id == location.id).with_for_update()
    ).one()
    last = session.exec(
        select(func.max(ActionRow.seq)).where(
            ActionRow.location_id == location.id, ActionRow.risk_domain == plan.risk_domain.value
        )
    ).one()
    seq = (last or 0) + 1
    return seq, f"{location.code}-{plan.risk_domain.code}-{seq:03d}"


def _apply_plan(row: ActionRow, plan: ActionPlan, rating: RiskRating) -> None:
    row.title = plan.title
    row.risk_domain = plan.risk_domain.value
    row.risk_level = rating.level.value
    row.risk_score = rating.score
    row.risk_reasons = list(rating.reasons)
    row.plan = plan.model_dump(mode="json")
    row.baseline_value = plan.baseline.value
    row.baseline_on = plan.baseline.as_of
    row.target_direction = plan.target.direction.value
    row.target_value = plan.target.value
    row.deadline = plan.target.deadline
    row.updated_at = utcnow()


@dataclass(frozen=True)
class CheckedPlan:
    """A plan that passed open_action's checks against the database, with what writing
    it needs: the rows it names and its rating."""

    plan: ActionPlan
    location: LocationRow
    lead: PersonRow
    reviewer: PersonRow
    rating: RiskRating


class PlanChecks:
    """open_action's checks for many plans, each location and person read once: checking
    a tracker of 4,000 rows asks the database a few dozen questions. Reads only, so the
    checks can run before the write transaction begins."""

    def __init__(self, session: Session, today: date | None = None) -> None:
        self.session = session
        self.today = today
        self._locations: dict[str, LocationRow | NotFound] = {}
        self._people: dict[str, PersonRow | NotFound] = {}

    def _location(self, name: str) -> LocationRow:
        key = name.strip().lower()
        if key not in self._locations:
            try:
                self._locations[key] = repo.get_location(self.session, name)
            except NotFound as exc:
                self._locations[key] = exc
        return _found(self._locations[key])

    def _person(self, email: str, field: str) -> PersonRow:
        key = normalise_email(email)
        if key not in self._people:
            try:
                self._people[key] = repo.get_person(self.session, email, field=field)
            except NotFound as exc:
                self._people[key] = exc
        found = self._people[key]
        if isinstance(found, NotFound):
            raise NotInDirectory(field, key)
        return found

    def check(self, plan: ActionPlan) -> CheckedPlan:
        _check_baseline_date(plan, self.today)
        location = self._location(plan.location)
        lead = self._person(plan.accountable_lead, "accountable_lead")
        reviewer = self._person(plan.senior_reviewer, "senior_reviewer")
        check_accountability(repo.to_person(lead), repo.to_person(reviewer))
        _check_statements(self.session, plan)
        return CheckedPlan(plan=plan, location=location, lead=lead, reviewer=reviewer,
                           rating=rate_risk(plan.risk))


def _found(value: LocationRow | NotFound) -> LocationRow:
    if isinstance(value, NotFound):
        raise value
    return value


def _action_values(checked: CheckedPlan, now: datetime) -> dict[str, Any]:
    """A new draft's columns, all but its id, seq and ref (what _apply_plan sets, and
    who is accountable where)."""
    plan, rating = checked.plan, checked.rating
    return {
        "title": plan.title, "location_id": checked.location.id,
        "risk_domain": plan.risk_domain.value, "status": Status.DRAFT.value,
        "risk_level": rating.level.value, "risk_score": rating.score,
        "risk_reasons": list(rating.reasons), "plan": plan.model_dump(mode="json"),
        "plan_version": 1, "accountable_lead_id": checked.lead.id,
        "senior_reviewer_id": checked.reviewer.id, "baseline_value": plan.baseline.value,
        "baseline_on": plan.baseline.as_of, "target_direction": plan.target.direction.value,
        "target_value": plan.target.value, "deadline": plan.target.deadline,
        "escalated": False, "created_at": now, "updated_at": now,
    }


def _opened(ref: str, checked: CheckedPlan, actor: str) -> audit_log.Entry:
    return audit_log.Entry(
        actor=actor, event="action.opened", action_ref=ref,
        details={"on": business_day(),
                 "risk_level": checked.rating.level.value, "risk_score": checked.rating.score,
                 "accountable_lead": checked.lead.email,
                 "senior_reviewer": checked.reviewer.email,
                 "reasons": list(checked.rating.reasons)})


def open_action(
    session: Session, plan: ActionPlan, *, actor: str, today: date | None = None
) -> ActionRow:
    """Validate, rate and persist a new action as a draft."""
    checked = PlanChecks(session, today).check(plan)
    seq, ref = _next_ref(session, checked.location, plan)
    row = ActionRow(seq=seq, ref=ref, **_action_values(checked, utcnow()))
    session.add(row)
    session.flush()
    assert row.id is not None
    for statement_id in plan.quality_statements:
        session.add(ActionStatementRow(action_id=row.id, framework_id=plan.framework_id,
                                       statement_id=statement_id))
    session.add(RevisionRow(action_id=row.id, version=1, plan=row.plan, revised_by=actor))
    entry = _opened(row.ref, checked, actor)
    audit_log.append(session, actor=entry.actor, event=entry.event,
                     action_ref=entry.action_ref, details=entry.details)
    return row


def lock_locations(session: Session, ids: Sequence[int]) -> None:
    """Serialise opening actions at these locations (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serialises every writer), in id order so two importers cannot deadlock."""
    if ids:
        session.exec(select(LocationRow.id).where(col(LocationRow.id).in_(sorted(ids)))
                     .order_by(col(LocationRow.id)).with_for_update()).all()


def next_refs(session: Session, plans: Sequence[CheckedPlan], *,
              lock: bool = False) -> list[tuple[int, str]]:
    """The (seq, ref) each plan gets when opened in this order (as open_action would give
    them one by one); with lock, the locations are locked first (PostgreSQL), as in
    _next_ref."""
    place_ids = sorted({c.location.id for c in plans if c.location.id is not None})
    if lock:
        lock_locations(session, place_ids)
    last: dict[tuple[int, str], int] = {
        (place, domain): seq or 0 for place, domain, seq in session.exec(
            select(ActionRow.location_id, ActionRow.risk_domain, func.max(ActionRow.seq))
            .where(col(ActionRow.location_id).in_(place_ids))
            .group_by(col(ActionRow.location_id), col(ActionRow.risk_domain)))}
    out = []
    for checked in plans:
        assert checked.location.id is not None
        key = (checked.location.id, checked.plan.risk_domain.value)
        last[key] = last.get(key, 0) + 1
        out.append((last[key], f"{checked.location.code}-{checked.plan.risk_domain.code}-"
                               f"{last[key]:03d}"))
    return out


@dataclass(frozen=True)
class NewActions:
    """Checked plans made ready to write (`new_actions`), before any write lock is taken:
    each action's columns and audit details; open_actions adds refs, ids and the chain."""

    plans: tuple[CheckedPlan, ...]
    values: tuple[dict[str, Any], ...]
    audit: tuple[dict[str, Any], ...]
    actor: str


def new_actions(plans: Sequence[CheckedPlan], *, actor: str) -> NewActions:
    now = utcnow()
    return NewActions(plans=tuple(plans), values=tuple(_action_values(c, now) for c in plans),
                      audit=tuple(_opened("", c, actor).details for c in plans), actor=actor)


def open_actions(session: Session, new: NewActions) -> list[str]:
    """Open checked plans as drafts, in order, in bulk: the rows, links, revisions and
    audit entries open_action writes for each, in a handful of multi-row INSERTs of plain
    values (building 12,000 SQLModel objects instead took most of a 4,000-row import's
    write lock)."""
    if not new.plans:
        return []
    refs = next_refs(session, new.plans, lock=True)
    values = [{**v, "seq": seq, "ref": ref} for v, (seq, ref) in zip(
        new.values, refs, strict=True)]
    conn = session.connection()
    ids = conn.execute(insert(ActionRow.__table__).returning(  # type: ignore[attr-defined]
        ActionRow.__table__.c.id, sort_by_parameter_order=True),  # type: ignore[attr-defined]
        values).scalars().all()
    links: list[dict[str, Any]] = []
    revisions: list[dict[str, Any]] = []
    for action_id, row, checked in zip(ids, values, new.plans, strict=True):
        plan = checked.plan
        links += [{"action_id": action_id, "framework_id": plan.framework_id,
                   "statement_id": s} for s in plan.quality_statements]
        revisions.append({"action_id": action_id, "version": 1, "plan": row["plan"],
                          "revised_by": new.actor, "revised_at": row["created_at"]})
    conn.execute(insert(ActionStatementRow.__table__), links)  # type: ignore[attr-defined]
    conn.execute(insert(RevisionRow.__table__), revisions)  # type: ignore[attr-defined]
    audit_log.append_many(session, [
        audit_log.Entry(actor=new.actor, event="action.opened", action_ref=row["ref"],
                        details=details)
        for row, details in zip(values, new.audit, strict=True)])
    return [row["ref"] for row in values]


def revise_plan(session: Session, ref: str, plan: ActionPlan, *, actor: str) -> ActionRow:
    """A rejected plan comes back from the lead; the flow asks for sign-off again."""
    row = repo.get_action(session, ref, for_update=True)
    by = repo.get_person(session, actor, field="by")
    aggregate(session, row).may_revise(repo.to_person(by))
    location = repo.location_by_id(session, row.location_id)
    if repo.get_location(session, plan.location).id != location.id:
        raise InvalidInput("location", "a revision cannot move the action to another location")
    _check_baseline_date(plan, None)
    new_lead, new_reviewer = _resolve_people(session, plan)
    _check_statements(session, plan)
    rating = rate_risk(plan.risk)
    _apply_plan(row, plan, rating)
    assert new_lead.id is not None and new_reviewer.id is not None and row.id is not None
    row.accountable_lead_id, row.senior_reviewer_id = new_lead.id, new_reviewer.id
    row.plan_version += 1
    session.add(RevisionRow(action_id=row.id, version=row.plan_version, plan=row.plan,
                            revised_by=by.email))
    for link in session.exec(select(ActionStatementRow).where(
            ActionStatementRow.action_id == row.id)):
        session.delete(link)
    session.flush()
    for statement_id in plan.quality_statements:
        session.add(ActionStatementRow(action_id=row.id, framework_id=plan.framework_id,
                                       statement_id=statement_id))
    move(session, row, Event.REVISE_PLAN, actor=by.email,
         details={"plan_version": row.plan_version, "risk_level": rating.level.value})
    return row
