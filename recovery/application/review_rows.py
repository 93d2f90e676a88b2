"""What the daily review cycle loads in bulk: each open action's row with its people, the
evidence items a review weighs, and the lookups shared across a run.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import func, literal, union_all
from sqlalchemy import select as columns
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from models.evidence import TRIANGULATION_PILLARS, Evidence, EvidenceSource, Pillar
from models.people import Role
from recovery.adapters.tables import (
    ActionRow,
    EvidenceRow,
    LocationRow,
    PersonRow,
    ReviewRow,
)

SOURCES = {s.value: s for s in EvidenceSource}


PILLARS = {p.value: p for p in Pillar}


class ReviewItem(NamedTuple):
    """An evidence item as a review reads it (a `models.review.Observation`)."""

    id: int | None
    source: EvidenceSource
    pillar: Pillar
    value: float | None
    observed_on: date


def review_items_of(
    session: Session, ids: list[int], as_of: date, out: dict[int, list[Any]], whole: bool
) -> None:
    pillars = union_all(*[select(literal(p.value).label("pillar"))
                          for p in TRIANGULATION_PILLARS]).subquery("p")
    x = aliased(EvidenceRow)

    def pick(measured: bool, offset: int) -> Any:
        query = select(x.id).where(x.action_id == ActionRow.id, x.pillar == pillars.c.pillar,
                                   x.observed_on <= as_of)
        if measured:
            query = query.where(col(x.value).is_not(None))
        return (query.order_by(col(x.observed_on).desc(), col(x.id).desc())
                .limit(1).offset(offset).scalar_subquery())

    picks = (
        select(pick(False, 0).label("latest"), pick(True, 0).label("measured"),
               pick(True, 1).label("before"))
        .select_from(ActionRow).join(pillars, literal(True))
        .where(col(ActionRow.id).in_(ids))
        .cte("picks")
    )
    e = EvidenceRow
    # one (action, pillar) row of picks names each of its items once: no duplicates
    picked = col(e.id).in_([picks.c.latest, picks.c.measured, picks.c.before])
    order = (col(e.action_id), col(e.observed_on), col(e.id))
    if whole:
        for action_id, eid, source, pillar, value, sample, observed, by, ref in session.execute(
                columns(col(e.action_id), col(e.id), col(e.source), col(e.pillar),
                        col(e.value), col(e.sample_size), col(e.observed_on),
                        col(e.recorded_by), col(e.reference))
                .select_from(picks).join(e, picked).order_by(*order)):
            out[action_id].append(Evidence.model_construct(
                id=eid, source=SOURCES[source], pillar=PILLARS[pillar], value=value,
                sample_size=sample, observed_on=observed, recorded_by=by, reference=ref))
        return
    for action_id, eid, source, pillar, value, observed in session.connection().execute(
            columns(col(e.action_id), col(e.id), col(e.source), col(e.pillar), col(e.value),
                    col(e.observed_on))
            .select_from(picks).join(e, picked).order_by(*order)).all():
        out[action_id].append(ReviewItem(eid, SOURCES[source], PILLARS[pillar], value, observed))


class OpenAction(NamedTuple):
    """An open action as the cycle reads it: the columns its review and what follows read,
    and its latest review on or before the date (`last_on` None: never reviewed)."""

    id: int
    status: str
    risk_level: str
    risk_domain: str
    recovery_started_on: date | None
    baseline_on: date
    monitoring_since: date | None
    escalated: bool
    target: dict[str, Any]
    baseline: dict[str, Any]
    triggers: list[dict[str, Any]]
    last_on: date | None
    last_triggers: list[str] | None
    last_rating: str | None
    last_measured: float | None


def open_rows(session: Session, ids: list[int], as_of: date) -> dict[int, OpenAction]:
    """One chunk's open actions with their latest review on or before the date, in one
    statement: per action one max() on the (action_id, as_of) unique index, a single seek.
    A review held on the date itself means the action is already reviewed for it; any
    other is the previous review that cadence and triggers count from."""
    a, r, x = ActionRow, ReviewRow, aliased(ReviewRow)
    latest = (select(func.max(x.as_of)).where(x.action_id == a.id, x.as_of <= as_of)
              .scalar_subquery())
    return {row.id: OpenAction(*row) for row in session.connection().execute(
        columns(col(a.id), col(a.status), col(a.risk_level), col(a.risk_domain),
                col(a.recovery_started_on), col(a.baseline_on), col(a.monitoring_since),
                col(a.escalated), col(a.plan)["target"], col(a.plan)["baseline"],
                col(a.plan)["triggers"], col(r.as_of), col(r.triggers), col(r.rating),
                col(r.measured_value))
        .select_from(a)
        .outerjoin(r, (col(r.action_id) == col(a.id)) & (col(r.as_of) == latest))
        .where(col(a.id).in_(ids))).all()}


class Lookups:
    """What escalation reads about many actions, loaded once per cycle on first use
    instead of a few queries per escalated action: each person's email, each location's
    name and registered managers."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._emails: dict[int, str] | None = None
        self._names: dict[int, str] = {}
        self._managers: dict[int | None, list[str]] = defaultdict(list)

    def _load(self) -> dict[int, str]:
        if self._emails is None:
            self._emails = {}
            for pid, email, role, location_id in self.session.execute(
                    select(PersonRow.id, PersonRow.email, PersonRow.role,
                           PersonRow.location_id).order_by(col(PersonRow.id))):
                self._emails[pid] = email
                if role == Role.REGISTERED_MANAGER.value:
                    self._managers[location_id].append(email)
            self._names = dict(self.session.execute(
                select(LocationRow.id, LocationRow.name)).all())
        return self._emails

    def recipients(self, row: ActionRow) -> list[str]:
        emails = self._load()
        return sorted({emails[row.accountable_lead_id], emails[row.senior_reviewer_id],
                       *self._managers.get(row.location_id, [])})

    def location_name(self, location_id: int) -> str:
        self._load()
        return self._names.get(location_id, "")
