"""Commands: each loads what it needs, asks the domain, writes, and audits.

Callers (CLI, Prefect tasks) wrap each call in one `unit_of_work()`, so a refused command
leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from models import directory
from models.action import (
    MAX_TEXT,
    ActionPlan,
    check_accountability,
)
from models.cadence import Cadence, review_cadence
from models.catalogue import Framework, builtin_framework
from models.dates import check_extension_deadline, check_plan_dates
from models.errors import InvalidInput, NotFound, NotInDirectory, RuleRefused
from models.evidence import Evidence, new_evidence
from models.gate import GateVerdict, gate_snapshot, triangulation_gate
from models.lifecycle import Event, Facts, Status, transition
from models.people import normalise_email, slug
from models.planfile import PeopleFile
from models.recovery_action import RecoveryAction
from models.review import (
    DEFAULT_FRESHNESS_DAYS,
    Assessment,
    Rating,
    rating_label,
    rating_rag,
)
from models.risk import RiskLevel, RiskRating, rate_risk
from models.text import text_field
from recovery.adapters import audit_log
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    ActionStatementRow,
    AuditRow,
    ControlChangeRow,
    EscalationRow,
    EvidenceRow,
    FrameworkRow,
    LocationRow,
    PersonRow,
    ProviderRow,
    ReviewRow,
    RevisionRow,
    StatementRow,
    as_utc,
    utcnow,
)

# ---------------------------------------------------------------- catalogue


def load_framework(session: Session, framework: Framework) -> bool:
    """Load a framework beside the others; an existing id is left untouched."""
    if not framework.framework_id.strip():
        raise InvalidInput("framework_id", "must not be empty")
    if not framework.quality_statements:
        raise InvalidInput("quality_statements", "a framework needs at least one statement")
    seen: set[str] = set()
    for statement in framework.quality_statements:
        if statement.id in seen:
            raise InvalidInput("quality_statements", f"'{statement.id}' is listed twice")
        seen.add(statement.id)
    if session.get(FrameworkRow, framework.framework_id) is not None:
        return False
    session.add(
        FrameworkRow(framework_id=framework.framework_id, name=framework.name,
                     version=framework.version)
    )
    session.flush()
    for statement in framework.quality_statements:
        session.add(
            StatementRow(framework_id=framework.framework_id, statement_id=statement.id,
                         key_question=statement.key_question, title=statement.title)
        )
    audit_log.append(
        session, actor="system", event="catalogue.loaded", action_ref=None,
        details={"framework_id": framework.framework_id,
                 "statements": len(framework.quality_statements)},
        dedupe_key=f"catalogue:{framework.framework_id}",
    )
    return True


def initialise(session: Session) -> None:
    load_framework(session, builtin_framework())


def statements(session: Session, framework_id: str | None = None) -> list[StatementRow]:
    query = select(StatementRow).order_by(col(StatementRow.framework_id))
    if framework_id:
        query = query.where(StatementRow.framework_id == framework_id)
    return list(session.exec(query))


# ---------------------------------------------------------------- people


def _location_code(name: str, taken: set[str]) -> str:
    base = slug(name).split("-")[0].upper()[:6] or "LOC"
    code, n = base, 2
    while code in taken:
        code, n = f"{base}{n}", n + 1
    return code


def import_people(session: Session, people: PeopleFile, *, actor: str = "system") -> dict[str, int]:
    providers = {row.name: row for row in session.exec(select(ProviderRow))}
    stored = directory.provider_of(people, providers)
    directory.check_locations(people, ((row.name, row.code)
                                       for row in session.exec(select(LocationRow))))
    provider = providers[stored] if stored is not None else None
    if provider is None:
        provider = ProviderRow(name=people.provider)
        session.add(provider)
        session.flush()
    assert provider.id is not None
    locations = {row.name.lower(): row for row in session.exec(select(LocationRow))}
    by_code = {row.code.lower(): row for row in locations.values()}
    codes = {row.code for row in locations.values()}

    def known(name: str) -> LocationRow | None:
        # a location is named by its name or its code, trimmed, in any case (as in plans)
        key = name.strip().lower()
        return locations.get(key) or by_code.get(key)

    wanted: list[tuple[str, str | None]] = []
    for index, loc in enumerate(people.locations):
        if not str(loc.get("name", "")).strip():
            raise InvalidInput(f"locations.{index}.name", "is required")
        wanted.append((loc["name"], loc.get("code")))
    wanted += [(p.location, None) for p in people.people if p.location]
    added_locations = 0
    for name, code in wanted:
        if known(name) is not None:
            continue
        if code and code.strip().upper() in codes:
            raise InvalidInput(f"locations.{name.strip()}.code",
                               f"code {code.strip().upper()} is already used by another location")
        code = (code.strip() if code else _location_code(name, codes)).upper()
        place = LocationRow(provider_id=provider.id, name=name.strip(), code=code)
        session.add(place)
        session.flush()
        locations[place.name.lower()] = place
        by_code[code.lower()] = place
        codes.add(code)
        added_locations += 1
    added = updated = 0
    for person in people.people:
        if person.location is None and not person.is_provider_level:
            raise InvalidInput(
                f"people.{person.email}.location",
                f"a {person.role.label} must belong to a location",
            )
        home = known(person.location) if person.location else None
        location_id = home.id if home is not None else None
        row = session.exec(select(PersonRow).where(PersonRow.email == person.email)).first()
        if row is None:
            session.add(PersonRow(email=person.email, name=person.name, role=person.role.value,
                                  location_id=location_id))
            added += 1
        else:
            row.name, row.role, row.location_id = person.name, person.role.value, location_id
            session.add(row)
            updated += 1
    session.flush()
    audit_log.append(
        session, actor=actor, event="people.imported", action_ref=None,
        details={"provider": people.provider, "added": added, "updated": updated,
                 "locations_added": added_locations},
    )
    return {"people_added": added, "people_updated": updated, "locations_added": added_locations}


# ---------------------------------------------------------------- actions


class RiskView(BaseModel):
    level: str
    score: int
    reasons: list[str]
    factors: dict[str, int]


class RatingView(BaseModel):
    """The latest review's rating as every surface shows it (the rule: `models.review`)."""

    value: str
    label: str
    rag: str
    as_of: date | None
    measured: float | None
    triggers: list[str]
    reasons: list[str]


NOT_REVIEWED = RatingView(value="not_reviewed", label="not reviewed yet", rag="grey",
                          as_of=None, measured=None, triggers=[], reasons=[])


class ActionSummary(BaseModel):
    ref: str
    title: str
    location: str
    risk_domain: str
    status: str
    risk: RiskView
    review_cadence: str
    accountable_lead: str
    senior_reviewer: str
    baseline: dict[str, Any]
    target: dict[str, Any]
    quality_statements: list[str]
    interim_controls: list[str]
    escalated: bool
    flow_run_id: str | None
    opened_on: date | None = None
    rating: RatingView = NOT_REVIEWED


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


def business_day() -> str:
    """The business day a fact is recorded on (RECOVERY_BUSINESS_DATE, else the real date),
    kept as `on` in the audit entries a pack as of a past date reads the past from."""
    from recovery.settings import get_settings

    return get_settings().today().isoformat()


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


class _Cadenced(Protocol):
    """What a review cadence is set from: an `ActionRow`, or the daily cycle's plain row."""

    @property
    def risk_level(self) -> str: ...
    @property
    def recovery_started_on(self) -> date | None: ...
    @property
    def escalated(self) -> bool: ...


def cadence_of(row: _Cadenced, as_of: date, *, last_rating: str | None = None) -> Cadence:
    """The review cadence on a date; `last_rating` is the latest review's rating when the
    caller has read it (an action not yet evidenced is reviewed daily)."""
    return review_cadence(
        RiskLevel(row.risk_level), recovery_started_on=row.recovery_started_on, as_of=as_of,
        escalated=row.escalated, unevidenced=last_rating == Rating.NOT_EVIDENCED.value,
    )


def summary(session: Session, row: ActionRow, *, as_of: date) -> ActionSummary:
    plan = repo.plan_of(row)
    lead = repo.person_by_id(session, row.accountable_lead_id)
    reviewer = repo.person_by_id(session, row.senior_reviewer_id)
    rating = latest_rating(session, row, as_of=as_of)
    return ActionSummary(
        ref=row.ref, title=row.title,
        location=repo.location_by_id(session, row.location_id).name,
        risk_domain=row.risk_domain, status=row.status,
        risk=RiskView(level=row.risk_level, score=row.risk_score, reasons=row.risk_reasons,
                      factors=plan.risk.model_dump()),
        review_cadence=cadence_of(row, as_of, last_rating=rating.value).value,
        accountable_lead=lead.email, senior_reviewer=reviewer.email,
        baseline=plan.baseline.model_dump(mode="json"),
        target=plan.target.model_dump(mode="json"),
        quality_statements=list(plan.quality_statements),
        interim_controls=list(plan.interim_controls),
        escalated=row.escalated, flow_run_id=row.flow_run_id, opened_on=opened_on(row),
        rating=rating,
    )


def opened_on(row: ActionRow) -> date:
    """The local day an action was opened (recorded)."""
    from recovery.settings import get_settings

    return as_utc(row.created_at).astimezone(get_settings().tz).date()


def latest_rating(session: Session, row: ActionRow, *, as_of: date) -> RatingView:
    """The rating of the latest review held on or before `as_of`."""
    review = session.exec(
        select(ReviewRow).where(ReviewRow.action_id == row.id, ReviewRow.as_of <= as_of)
        .order_by(col(ReviewRow.as_of).desc()).limit(1)).first()
    if review is None:
        return NOT_REVIEWED
    return RatingView(value=review.rating, label=rating_label(review.rating),
                      rag=rating_rag(review.rating), as_of=review.as_of,
                      measured=review.measured_value, triggers=list(review.triggers),
                      reasons=list(review.reasons))


def list_actions(
    session: Session, *, status: str | None = None, level: str | None = None,
    location: str | None = None,
) -> list[ActionRow]:
    query = select(ActionRow).order_by(col(ActionRow.ref))
    if status:
        try:
            query = query.where(ActionRow.status == Status(status).value)
        except ValueError:
            allowed = ", ".join(s.value for s in Status)
            raise InvalidInput("status", f"'{status}' is not a status ({allowed})") from None
    if level:
        try:
            query = query.where(ActionRow.risk_level == RiskLevel(level).value)
        except ValueError:
            raise InvalidInput("level", f"'{level}' is not high, medium or low") from None
    if location:
        query = query.where(ActionRow.location_id == repo.get_location(session, location).id)
    return list(session.exec(query))


# ---------------------------------------------------------------- evidence and gate


def check_evidence(
    action: ActionRow, recorder: PersonRow, *, source: str, value: float | None,
    sample_size: int | None, observed_on: date, reference: str, today: date,
) -> Evidence:
    """The rules one evidence item passes, however it arrives (`evidence add`, the
    record-evidence form, a row of an evidence import): the action is not closed, the one
    who recorded it is in the staff directory (`recorder`, looked up by the caller), and
    the item itself is valid (`models.evidence.new_evidence`: source, value and sample,
    observed neither in the future nor before the baseline, a one-line reference)."""
    if action.status == Status.CLOSED.value:
        raise RuleRefused("evidence", [
            f"{action.ref} is closed; a registered manager, nominated individual or provider "
            f"lead reopens it to add evidence: `recovery action reopen {action.ref} --by EMAIL "
            "--reason TEXT`"])
    return new_evidence(
        source=source, value=value, sample_size=sample_size, observed_on=observed_on,
        recorded_by=recorder.email, reference=reference, today=today,
        baseline_on=action.baseline_on,
    )


def _evidence_values(action_id: int, item: Evidence, now: datetime) -> dict[str, Any]:
    return {"action_id": action_id, "source": item.source.value, "pillar": item.pillar.value,
            "value": item.value, "sample_size": item.sample_size,
            "observed_on": item.observed_on, "recorded_by": item.recorded_by,
            "reference": item.reference, "recorded_at": now}


def _evidence_added(ref: str, item: Evidence, evidence_id: int | None,
                    extra: dict[str, Any] | None = None) -> audit_log.Entry:
    """The audit entry of one item, recorded as the one who recorded it (references are
    kept out of the chain's details, as in every entry)."""
    return audit_log.Entry(
        actor=item.recorded_by, event="evidence.added", action_ref=ref,
        details={"evidence_id": evidence_id, "source": item.source.value,
                 "pillar": item.pillar.value, "value": item.value,
                 "sample_size": item.sample_size, "observed_on": item.observed_on.isoformat(),
                 **(extra or {})})


def add_evidence(
    session: Session, ref: str, *, source: str, value: float | None, sample_size: int | None,
    observed_on: date, reference: str, by: str, today: date,
) -> EvidenceRow:
    row = repo.get_action(session, ref)
    person = repo.get_person(session, by, field="by")
    item = check_evidence(row, person, source=source, value=value, sample_size=sample_size,
                          observed_on=observed_on, reference=reference, today=today)
    assert row.id is not None
    evidence = EvidenceRow(**_evidence_values(row.id, item, utcnow()))
    session.add(evidence)
    session.flush()
    entry = _evidence_added(row.ref, item, evidence.id)
    audit_log.append(session, actor=entry.actor, event=entry.event,
                     action_ref=entry.action_ref, details=entry.details)
    return evidence


@dataclass(frozen=True)
class CheckedEvidence:
    """One item that passed `check_evidence`, ready to write with `add_evidence_many`."""

    action_id: int
    ref: str
    item: Evidence


def add_evidence_many(session: Session, items: Sequence[CheckedEvidence], *,
                      audit_extra: dict[str, Any] | None = None) -> list[int]:
    """Write checked items, in order, as add_evidence writes each (the row, then its
    `evidence.added` entry) in two multi-row INSERTs: the rows, then the entries, chained
    in the same order. Returns the new rows' ids."""
    if not items:
        return []
    now = utcnow()
    ids: list[int] = list(session.connection().execute(
        insert(EvidenceRow.__table__).returning(  # type: ignore[attr-defined]
            EvidenceRow.__table__.c.id, sort_by_parameter_order=True),  # type: ignore[attr-defined]
        [_evidence_values(c.action_id, c.item, now) for c in items]).scalars().all())
    audit_log.append_many(session, [_evidence_added(c.ref, c.item, evidence_id, audit_extra)
                                    for c, evidence_id in zip(items, ids, strict=True)])
    return ids


def gate_verdict(
    session: Session, ref: str, *, as_of: date, freshness_days: int = DEFAULT_FRESHNESS_DAYS
) -> GateVerdict:
    return gate_with_snapshot(session, ref, as_of=as_of, freshness_days=freshness_days)[0]


def gate_with_snapshot(
    session: Session, ref: str, *, as_of: date, freshness_days: int = DEFAULT_FRESHNESS_DAYS
) -> tuple[GateVerdict, str]:
    """The triangulation gate's verdict now, and the reference of the snapshot it counted
    (`models.gate.gate_snapshot`): a closure decision is bound to it."""
    row = repo.get_action(session, ref)
    assert row.id is not None
    evidence = repo.evidence_of(session, row.id)
    reviews = [(r.id or 0, repo.to_review(r)) for r in repo.reviews_of(session, row.id)]
    escalations = [f"opened {e.opened_on.isoformat()}: " + "; ".join(e.reasons)
                   for e in repo.open_escalations(session, row.id)]
    triggers = [f"{t.description} (raised {t.raised_on.isoformat()} by {t.raised_by})"
                for t in repo.open_triggers(session, row.id)]
    reopened = reopened_on(session, row)
    verdict = triangulation_gate(
        repo.plan_of(row), evidence, [r for _, r in reviews],
        as_of=as_of, reopened_on=reopened, open_escalations=escalations,
        open_triggers=triggers, freshness_days=freshness_days,
    )
    return verdict, gate_snapshot(verdict, evidence, reviews,
                                  open_items=[*escalations, *triggers],
                                  freshness_days=freshness_days, reopened_on=reopened)


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


# ---------------------------------------------------------------- reviews


def review_values(
    action_id: int, assessment: Assessment[Any], cadence: Cadence,
    reviewed_by: str,
) -> dict[str, Any]:
    """The columns of a stored review, as the daily cycle's bulk INSERT writes them."""
    # the columns' order is models.audit.REVIEW_COLUMNS (the audit digest's), and numbers
    # go in as the float columns give them back, so a review's digest can be recomputed
    measured = assessment.measured_value
    return {
        "action_id": action_id, "as_of": assessment.as_of, "cadence": cadence.value,
        "measured_value": None if measured is None else float(measured),
        "trajectory_value": float(assessment.trajectory_value),
        "target_met": bool(assessment.target_met),
        "rating": assessment.rating.value, "days_to_deadline": assessment.days_to_deadline,
        "triggers": [t.value for t in assessment.triggers_fired],
        "reasons": list(assessment.reasons),
        "pillars": [
            {"pillar": p.pillar.value,
             "last_observed_on": p.last_observed_on.isoformat() if p.last_observed_on else None,
             "latest_value": p.latest.value if p.latest else None, "fresh": p.fresh}
            for p in assessment.pillars
        ],
        "reviewed_by": reviewed_by,
    }


def summaries(session: Session, rows: list[ActionRow], *, as_of: date) -> list[ActionSummary]:
    """Summaries of many actions with people and locations read once, not per action."""
    people = {p.id: p for p in session.exec(select(PersonRow))}
    locations = {loc.id: loc for loc in session.exec(select(LocationRow))}
    out = []
    for row in rows:
        plan = row.plan
        out.append(ActionSummary(
            ref=row.ref, title=row.title, location=locations[row.location_id].name,
            risk_domain=row.risk_domain, status=row.status,
            risk=RiskView(level=row.risk_level, score=row.risk_score, reasons=row.risk_reasons,
                          factors=plan["risk"]),
            review_cadence=cadence_of(row, as_of).value,
            accountable_lead=people[row.accountable_lead_id].email,
            senior_reviewer=people[row.senior_reviewer_id].email,
            baseline=plan["baseline"], target=plan["target"],
            quality_statements=list(plan["quality_statements"]),
            interim_controls=list(plan["interim_controls"]),
            escalated=row.escalated, flow_run_id=row.flow_run_id, opened_on=opened_on(row),
        ))
    return out


# ---------------------------------------------------------------- reopening

_REOPENED = repo.REOPENED_EVENT


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


def reopened_on(session: Session, row: ActionRow) -> date | None:
    """The day the action was last reopened by a person (None if never): where its fresh
    closure path starts."""
    details = session.exec(
        select(AuditRow.details).where(AuditRow.action_ref == row.ref,
                                       AuditRow.event == _REOPENED)
        .order_by(col(AuditRow.seq).desc())).first()
    return date.fromisoformat(details["reopened_on"]) if details else None

