"""The daily review cycle, escalation and de-escalation, reopening and sustained closure.

Set-based: a handful of queries read every open action, its last review and its evidence
at once; the pure domain assesses each; rows are written in bulk. Re-running a cycle for
the same date finds every review already held and changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, func, insert, or_, text
from sqlmodel import Session, col, select

from models.cadence import Cadence, review_due
from models.evidence import TRIANGULATION_PILLARS, Evidence, EvidenceSource, Pillar
from models.lifecycle import OPEN, Event, Status
from models.review import Rating, ReviewAssessment, ReviewRecord, assess_progress
from models.tables import (
    ActionRow,
    ControlChangeRow,
    EscalationRow,
    EvidenceRow,
    LocationRow,
    PersonRow,
    ReviewRow,
    utcnow,
)
from recovery import audit_log, db, mail, services
from recovery import repository as repo
from recovery.settings import get_settings

_SOURCES = {s.value: s for s in EvidenceSource}
_PILLARS = {p.value: p for p in Pillar}
#: Ids per IN list: far below SQLite's and PostgreSQL's bind-parameter limits at any size.
ID_CHUNK = 2000


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]

#: Weeks in routine monitoring, target met and no trigger, before an action closes.
SUSTAINED_WEEKS = 8
_CYCLE_LOCK = 7_204_162  # advisory lock id (with the date) serialising daily cycles


class DailyResult(BaseModel):
    as_of: date
    open_actions: int
    reviewed: int
    already_reviewed: int
    not_due: int
    ratings: dict[str, int]
    escalated: list[str]
    de_escalated: list[str]
    reopened: list[str]
    closed_sustained: list[str]


def _review_evidence(session: Session, ids: list[int], as_of: date) -> dict[int, list[Evidence]]:
    """The evidence a review reads, per action: for each triangulation pillar its latest item
    and its latest two measured items up to the date. That is all `pillar_positions` looks
    at (supporting evidence counts toward no pillar), so the assessment is the same as over
    the whole history; ranked in the database, a provider's months of evidence are never
    loaded into Python. Ordered as the domain orders evidence: (observed_on, id)."""
    out: dict[int, list[Evidence]] = defaultdict(list)
    for chunk in _chunks(ids):
        _review_evidence_of(session, chunk, as_of, out)
    return out


def _review_evidence_of(
    session: Session, ids: list[int], as_of: date, out: dict[int, list[Evidence]]
) -> None:
    newest_first = (col(EvidenceRow.observed_on).desc(), col(EvidenceRow.id).desc())
    ranked = (
        select(EvidenceRow.action_id, EvidenceRow.id, EvidenceRow.source, EvidenceRow.pillar,
               EvidenceRow.value, EvidenceRow.sample_size, EvidenceRow.observed_on,
               EvidenceRow.recorded_by, EvidenceRow.reference,
               func.row_number().over(
                   partition_by=(col(EvidenceRow.action_id), col(EvidenceRow.pillar)),
                   order_by=newest_first).label("nth"),
               func.row_number().over(
                   partition_by=(col(EvidenceRow.action_id), col(EvidenceRow.pillar),
                                 col(EvidenceRow.value).is_(None)),
                   order_by=newest_first).label("nth_same_kind"))
        .where(col(EvidenceRow.action_id).in_(ids), EvidenceRow.observed_on <= as_of,
               col(EvidenceRow.pillar).in_([p.value for p in TRIANGULATION_PILLARS]))
        .subquery()
    )
    c = ranked.c
    rows = session.connection().execute(
        select(c.action_id, c.id, c.source, c.pillar, c.value, c.sample_size, c.observed_on,
               c.recorded_by, c.reference)
        .where(or_(c.nth == 1, and_(c.value.is_not(None), c.nth_same_kind <= 2)))
        .order_by(c.action_id, c.observed_on, c.id)
    ).all()
    for action_id, eid, source, pillar, value, sample, observed, by, ref in rows:
        out[action_id].append(Evidence.model_construct(
            id=eid, source=_SOURCES[source], pillar=_PILLARS[pillar], value=value,
            sample_size=sample, observed_on=observed, recorded_by=by, reference=ref))


def _last_reviews(session: Session, ids: list[int], as_of: date) -> dict[int, ReviewRow]:
    out: dict[int, ReviewRow] = {}
    for chunk in _chunks(ids):
        latest = (
            select(ReviewRow.action_id, func.max(ReviewRow.as_of).label("last"))
            .where(col(ReviewRow.action_id).in_(chunk), ReviewRow.as_of < as_of)
            .group_by(col(ReviewRow.action_id)).subquery()
        )
        rows = session.exec(
            select(ReviewRow).join(latest, (ReviewRow.action_id == latest.c.action_id)
                                   & (ReviewRow.as_of == latest.c.last))
        ).all()
        out.update((r.action_id, r) for r in rows)
    return out


def _held_on(session: Session, ids: list[int], as_of: date) -> set[int]:
    held: set[int] = set()
    for chunk in _chunks(ids):
        held.update(session.exec(
            select(ReviewRow.action_id).where(col(ReviewRow.action_id).in_(chunk),
                                              ReviewRow.as_of == as_of)).all())
    return held


def _review_values(
    action_id: int, assessment: ReviewAssessment, cadence: Cadence, reviewed_by: str,
    created_at: datetime,
) -> dict[str, Any]:
    """The columns `services.review_row` sets, as a dict for one bulk INSERT: the cycle
    writes thousands of reviews without building an instrumented ORM object for each."""
    return {
        "action_id": action_id, "as_of": assessment.as_of, "cadence": cadence.value,
        "measured_value": assessment.measured_value,
        "trajectory_value": assessment.trajectory_value, "target_met": assessment.target_met,
        "rating": assessment.rating.value, "days_to_deadline": assessment.days_to_deadline,
        "triggers": [t.value for t in assessment.triggers_fired],
        "reasons": list(assessment.reasons),
        "pillars": [
            {"pillar": p.pillar.value,
             "last_observed_on": p.last_observed_on.isoformat() if p.last_observed_on else None,
             "latest_value": p.latest.value if p.latest else None, "fresh": p.fresh}
            for p in assessment.pillars
        ],
        "reviewed_by": reviewed_by, "created_at": created_at,
    }


class _Lookups:
    """What escalation and de-escalation read about many actions, loaded once per cycle
    (on first use) instead of a few queries per escalated action: the staff directory and
    locations (kept in the session's identity map, so `session.get` finds them), the
    registered managers of each location, and the open escalation of each reviewed action
    (the earliest, when there is more than one)."""

    def __init__(self, session: Session, ids: list[int]) -> None:
        self.session = session
        self.ids = ids
        self._people: list[PersonRow] | None = None
        self._locations: list[LocationRow] = []
        self._managers: dict[int | None, list[str]] = defaultdict(list)
        self._open: dict[int, EscalationRow] | None = None

    def managers(self, location_id: int) -> list[str]:
        if self._people is None:
            self._people = list(self.session.exec(select(PersonRow)))
            self._locations = list(self.session.exec(select(LocationRow)))
            for person in self._people:
                if person.role == "registered_manager":
                    self._managers[person.location_id].append(person.email)
        return self._managers.get(location_id, [])

    def open_escalation(self, action_id: int) -> EscalationRow | None:
        if self._open is None:
            self._open = {}
            for chunk in _chunks(self.ids):
                for escalation in self.session.exec(
                        select(EscalationRow).where(col(EscalationRow.action_id).in_(chunk),
                                                    col(EscalationRow.resolved_on).is_(None))
                        .order_by(col(EscalationRow.id))):
                    self._open.setdefault(escalation.action_id, escalation)
        return self._open.get(action_id)


def run_daily(session: Session, *, as_of: date, actor: str = "daily-review") -> DailyResult:
    """Review every open action that is due under its cadence, as of a date."""
    settings = get_settings()
    if db.is_postgres(session):
        # Two cycles for the same date at once (a retry, two workers, an operator): the
        # second waits here for the first to commit, then finds every review held,
        # instead of colliding on uq_review_action_day half-way and failing.
        session.execute(text("SELECT pg_advisory_xact_lock(:k, :d)"),
                        {"k": _CYCLE_LOCK, "d": as_of.toordinal()})
    actions = list(session.exec(
        select(ActionRow).where(col(ActionRow.status).in_([s.value for s in OPEN]),
                                ActionRow.baseline_on <= as_of)
        .order_by(col(ActionRow.risk_level), col(ActionRow.id))
    ))
    ids = [a.id for a in actions if a.id is not None]
    held_today = _held_on(session, ids, as_of)
    last = _last_reviews(session, ids, as_of)
    due: list[ActionRow] = []
    not_due = 0
    for row in actions:
        if row.id in held_today:
            continue
        cadence = services.cadence_of(row, as_of)
        previous = last.get(row.id or 0)
        start = row.recovery_started_on or row.baseline_on
        if review_due(cadence, previous.as_of if previous else None, start, as_of):
            due.append(row)
        else:
            not_due += 1
    evidence = _review_evidence(session, [r.id for r in due if r.id is not None], as_of)
    ratings: dict[str, int] = defaultdict(int)
    result = DailyResult(as_of=as_of, open_actions=len(actions), reviewed=0,
                         already_reviewed=len(held_today), not_due=not_due, ratings={},
                         escalated=[], de_escalated=[], reopened=[], closed_sustained=[])
    reviews: list[dict[str, Any]] = []
    created_at = utcnow()
    assessed: list[tuple[ActionRow, Any]] = []
    for row in due:
        assert row.id is not None
        previous = last.get(row.id)
        cadence = services.cadence_of(row, as_of)
        assessment = assess_progress(
            repo.plan_of(row), evidence.get(row.id, []), as_of=as_of, cadence=cadence,
            last_review=repo.to_review(previous) if previous else None,
            previous_below_trajectory=bool(previous) and "below_trajectory" in previous.triggers,
            freshness_days=settings.evidence_freshness_days,
            reviews_start=row.recovery_started_on,
        )
        reviews.append(_review_values(row.id, assessment, cadence, actor, created_at))
        assessed.append((row, assessment))
        ratings[assessment.rating.value] += 1
    if reviews:
        session.execute(insert(ReviewRow), reviews)
    result.reviewed = len(reviews)
    result.ratings = dict(ratings)

    lookups = _Lookups(session, [row.id for row, _ in assessed if row.id is not None])
    for row, assessment in assessed:
        _after_review(session, row, assessment, as_of, result, lookups)

    if not reviews:
        # nothing was due or every review for the date is already held: a re-run (or an
        # empty day) records nothing, not even a cycle entry in the audit trail
        return result
    audit_log.append(
        session, actor=actor, event="cycle.daily_review", action_ref=None,
        details={"as_of": as_of.isoformat(), "reviewed": result.reviewed,
                 "ratings": result.ratings, "escalated": result.escalated,
                 "de_escalated": result.de_escalated, "reopened": result.reopened,
                 "closed_sustained": result.closed_sustained},
        dedupe_key=f"cycle.daily:{as_of.isoformat()}:{result.reviewed}:{len(held_today)}",
    )
    return result


def _after_review(
    session: Session, row: ActionRow, assessment: Any, as_of: date, result: DailyResult,
    lookups: _Lookups | None = None,
) -> None:
    weak = assessment.rating in (Rating.OFF_TRACK, Rating.OVERDUE)
    status = Status(row.status)
    if status == Status.ROUTINE_MONITORING:
        below_target = assessment.measured_value is not None and not assessment.target_met
        if below_target or weak:
            services.move(session, row, Event.RELAPSE, actor="daily-review",
                          details={"as_of": as_of.isoformat(),
                                   "reasons": list(assessment.reasons)
                                   or ["evidence fell back below target"]},
                          dedupe_key=f"relapse:{row.ref}:{as_of.isoformat()}")
            result.reopened.append(row.ref)
            escalate(session, row, as_of=as_of,
                     reasons=["evidence fell back below target in routine monitoring",
                              *assessment.reasons], lookups=lookups)
            result.escalated.append(row.ref)
            return
        if _sustained(session, row, as_of):
            services.move(session, row, Event.CLOSE_SUSTAINED, actor="daily-review",
                          details={"as_of": as_of.isoformat(),
                                   "monitoring_since": str(row.monitoring_since)},
                          dedupe_key=f"sustained:{row.ref}:{as_of.isoformat()}")
            result.closed_sustained.append(row.ref)
        return
    if weak and not row.escalated:
        escalate(session, row, as_of=as_of, reasons=list(assessment.reasons), lookups=lookups)
        result.escalated.append(row.ref)
    elif row.escalated and assessment.rating == Rating.ON_TRACK and _control_changed(
            session, row, lookups):
        de_escalate(session, row, as_of=as_of, lookups=lookups)
        result.de_escalated.append(row.ref)


def _sustained(session: Session, row: ActionRow, as_of: date) -> bool:
    if row.monitoring_since is None or (as_of - row.monitoring_since).days < SUSTAINED_WEEKS * 7:
        return False
    since = session.exec(
        select(ReviewRow).where(ReviewRow.action_id == row.id,
                                ReviewRow.as_of >= row.monitoring_since,
                                ReviewRow.as_of <= as_of)
    ).all()
    return bool(since) and all(r.target_met and not r.triggers for r in since)


def _open_escalation(
    session: Session, row: ActionRow, lookups: _Lookups | None = None
) -> EscalationRow | None:
    if lookups is not None and row.id is not None:
        return lookups.open_escalation(row.id)
    return session.exec(
        select(EscalationRow).where(EscalationRow.action_id == row.id,
                                    col(EscalationRow.resolved_on).is_(None))
    ).first()


def _control_changed(session: Session, row: ActionRow, lookups: _Lookups | None = None) -> bool:
    escalation = _open_escalation(session, row, lookups)
    if escalation is None:
        return True
    return escalation.control_change_id is not None


def _recipients(session: Session, row: ActionRow, lookups: _Lookups | None = None) -> list[str]:
    managers = lookups.managers(row.location_id) if lookups is not None else session.exec(
        select(PersonRow.email).where(PersonRow.role == "registered_manager",
                                      PersonRow.location_id == row.location_id)
    ).all()
    lead = repo.person_by_id(session, row.accountable_lead_id)
    reviewer = repo.person_by_id(session, row.senior_reviewer_id)
    return sorted({lead.email, reviewer.email, *managers})


def escalate(
    session: Session, row: ActionRow, *, as_of: date, reasons: list[str],
    lookups: _Lookups | None = None,
) -> EscalationRow:
    """Off track or overdue: daily senior review, everyone responsible told why, and an
    escalation kept open until a control change and evidence back on trajectory."""
    assert row.id is not None
    escalation = EscalationRow(action_id=row.id, opened_on=as_of, reasons=reasons)
    session.add(escalation)
    row.escalated = True
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    plan = repo.plan_of(row)
    location = session.get(LocationRow, row.location_id)
    mail.enqueue(
        session, dedupe_key=f"escalation:{row.ref}:{escalation.id}",
        to=_recipients(session, row, lookups), template="escalation", action_ref=row.ref,
        context={"ref": row.ref, "title": row.title, "location": location.name if location
                 else "", "reasons": reasons, "as_of": as_of,
                 "escalation_actions": list(plan.escalation_actions),
                 "run_url": get_settings().run_url(row.flow_run_id)},
    )
    audit_log.append(
        session, actor="daily-review", event="action.escalated", action_ref=row.ref,
        details={"escalation_id": escalation.id, "as_of": as_of.isoformat(), "reasons": reasons,
                 "cadence": "daily"},
        dedupe_key=f"escalated:{row.ref}:{escalation.id}",
    )
    return escalation


def de_escalate(
    session: Session, row: ActionRow, *, as_of: date, lookups: _Lookups | None = None
) -> None:
    escalation = _open_escalation(session, row, lookups)
    if escalation is not None:
        escalation.resolved_on = as_of
        session.add(escalation)
    row.escalated = False
    row.updated_at = utcnow()
    session.add(row)
    audit_log.append(
        session, actor="daily-review", event="action.de_escalated", action_ref=row.ref,
        details={"as_of": as_of.isoformat(),
                 "escalation_id": escalation.id if escalation else None,
                 "control_change_id": escalation.control_change_id if escalation else None},
        dedupe_key=f"de_escalated:{row.ref}:{escalation.id if escalation else as_of}",
    )


def record_control_change(
    session: Session, ref: str, *, what: str, by: str, today: date
) -> ControlChangeRow:
    """Escalation asks for a change of operational control, not more time."""
    from models.errors import InvalidInput, RuleRefused
    from models.people import Role

    row = repo.get_action(session, ref, for_update=True)
    person = repo.get_person(session, by, field="by")
    if Role(person.role) not in {Role.REGISTERED_MANAGER, Role.NOMINATED_INDIVIDUAL,
                                 Role.PROVIDER_LEAD}:
        raise RuleRefused("control change", [
            f"a change of operational control is decided by a registered manager, nominated "
            f"individual or provider lead; {person.email} is a {Role(person.role).label}"])
    if len(what.strip()) < 20:
        raise InvalidInput("what", "say what changes in the operational control "
                                   "(at least 20 characters)")
    assert row.id is not None
    change = ControlChangeRow(action_id=row.id, what=what.strip(), decided_by=person.email,
                              decided_on=today, reason="escalation")
    session.add(change)
    session.flush()
    escalation = _open_escalation(session, row)
    if escalation is not None and escalation.control_change_id is None:
        escalation.control_change_id = change.id
        session.add(escalation)
    audit_log.append(session, actor=person.email, event="action.control_changed",
                     action_ref=row.ref,
                     details={"what": what.strip(), "control_change_id": change.id,
                              "escalation_id": escalation.id if escalation else None})
    return change


def recent_reviews(session: Session, action_id: int, days: int, as_of: date) -> list[ReviewRecord]:
    rows = session.exec(select(ReviewRow).where(
        ReviewRow.action_id == action_id, ReviewRow.as_of > as_of - timedelta(days=days),
        ReviewRow.as_of <= as_of).order_by(col(ReviewRow.as_of))).all()
    return [repo.to_review(r) for r in rows]
