"""Read models of an action: its risk, latest rating, cadence and the row a list or report shows,
plus the columns a stored review is written with.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel
from sqlmodel import Session, col, select

from models.cadence import Cadence, review_cadence
from models.errors import InvalidInput
from models.lifecycle import Status
from models.review import (
    Assessment,
    Rating,
    rating_label,
    rating_rag,
)
from models.risk import RiskLevel
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    LocationRow,
    PersonRow,
    ReviewRow,
    as_utc,
)


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
