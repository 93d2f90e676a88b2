"""Progress against the target, the straight-line trajectory, evidence freshness and the
triggers a review detects. Pure: the cycle loads rows, this decides."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from models.action import ActionPlan, Direction, TriggerKind
from models.cadence import Cadence, next_review_due
from models.evidence import TRIANGULATION_PILLARS, Evidence, Pillar

DEFAULT_FRESHNESS_DAYS = 28
#: Points below trajectory beyond which an action is off track rather than at risk.
OFF_TRACK_MARGIN = 10.0
#: Days after the baseline before missing or stale evidence counts against an action.
EVIDENCE_GRACE_DAYS = 14

#: Triggers every action is watched for, whatever its template says.
UNIVERSAL_TRIGGERS: frozenset[TriggerKind] = frozenset(
    {
        TriggerKind.OVERDUE,
        TriggerKind.DELAYED_REVIEW,
        TriggerKind.STALE_PILLAR,
        TriggerKind.BELOW_TRAJECTORY,
    }
)

SOURCE_NOUN = {
    "care_records": "care record review",
    "audits": "audit",
    "feedback": "feedback",
    "staff_practice": "staff practice observation",
    "incident_trends": "incident trend review",
    "safeguarding_logs": "safeguarding log review",
    "medicines_records": "medicines record review",
    "rota_evidence": "rota review",
    "governance_minutes": "governance minute",
}


class Rating(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    OVERDUE = "overdue"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")

    @property
    def rag(self) -> str:
        return {"on_track": "green", "at_risk": "amber", "off_track": "red", "overdue": "red"}[
            self.value
        ]


class PillarPosition(BaseModel):
    model_config = ConfigDict(frozen=True)

    pillar: Pillar
    last_observed_on: date | None
    latest: Evidence | None  # latest measured evidence within the freshness window
    previous: Evidence | None  # the measured item before it, any age
    fresh: bool


class ReviewRecord(BaseModel):
    """What a stored review says (the gate and trend need only this)."""

    model_config = ConfigDict(frozen=True)

    as_of: date
    measured_value: float | None
    target_met: bool
    rating: Rating


class ReviewAssessment(BaseModel):
    model_config = ConfigDict(frozen=True)

    as_of: date
    measured_value: float | None
    trajectory_value: float
    target_met: bool
    days_to_deadline: int
    pillars: tuple[PillarPosition, ...]
    triggers_fired: tuple[TriggerKind, ...]
    rating: Rating
    reasons: tuple[str, ...]


def trajectory_value(plan: ActionPlan, as_of: date) -> float:
    """Where a straight line from baseline to target says the measure should be today."""
    start, end = plan.baseline.as_of, plan.target.deadline
    if as_of <= start:
        return plan.baseline.value
    if as_of >= end:
        return plan.target.value
    share = (as_of - start).days / (end - start).days
    return plan.baseline.value + (plan.target.value - plan.baseline.value) * share


def _sort_key(e: Evidence) -> tuple[date, int]:
    return (e.observed_on, e.id or 0)


def pillar_positions(
    evidence: Iterable[Evidence], as_of: date, freshness_days: int = DEFAULT_FRESHNESS_DAYS
) -> tuple[PillarPosition, ...]:
    cutoff = as_of - timedelta(days=freshness_days)
    by_pillar: dict[Pillar, list[Evidence]] = {p: [] for p in TRIANGULATION_PILLARS}
    for item in evidence:
        if item.pillar in by_pillar and item.observed_on <= as_of:
            by_pillar[item.pillar].append(item)
    out = []
    for pillar in TRIANGULATION_PILLARS:
        items = sorted(by_pillar[pillar], key=_sort_key)
        measured = [e for e in items if e.value is not None]
        latest = measured[-1] if measured and measured[-1].observed_on >= cutoff else None
        previous = measured[-2] if len(measured) >= 2 else None
        last_seen = items[-1].observed_on if items else None
        out.append(
            PillarPosition(
                pillar=pillar,
                last_observed_on=last_seen,
                latest=latest,
                previous=previous,
                fresh=last_seen is not None and last_seen >= cutoff,
            )
        )
    return tuple(out)


def describe(e: Evidence) -> str:
    return f"{SOURCE_NOUN[e.source.value]} of {e.observed_on.isoformat()} shows {e.value:g}%"


def assess_progress(
    plan: ActionPlan,
    evidence: Sequence[Evidence],
    *,
    as_of: date,
    cadence: Cadence,
    last_review: ReviewRecord | None,
    previous_below_trajectory: bool = False,
    freshness_days: int = DEFAULT_FRESHNESS_DAYS,
    reviews_start: date | None = None,
) -> ReviewAssessment:
    """One review: progress against target and trajectory, freshness, triggers, rating."""
    target = plan.target
    pillars = pillar_positions(evidence, as_of, freshness_days)
    values = [p.latest.value for p in pillars if p.latest and p.latest.value is not None]
    measured: float | None = None
    if values:
        measured = min(values) if target.direction == Direction.AT_LEAST else max(values)
    target_met = all(p.latest is not None and target.met_by(p.latest.value or 0.0)
                     for p in pillars) and all(
        p.latest is not None and p.latest.value is not None for p in pillars
    )
    expected = trajectory_value(plan, as_of)
    days_left = (target.deadline - as_of).days
    past_grace = (as_of - plan.baseline.as_of).days > EVIDENCE_GRACE_DAYS

    detected: dict[TriggerKind, str] = {}
    if days_left < 0 and not target_met:
        detected[TriggerKind.OVERDUE] = (
            f"deadline {target.deadline.isoformat()} passed {-days_left} days ago "
            f"without the target met"
        )
    below = measured is not None and target.better(expected, measured)
    if below and measured is not None:
        detected[TriggerKind.BELOW_TRAJECTORY] = (
            f"evidence shows {measured:g}%, trajectory expects {expected:.0f}% by "
            f"{as_of.isoformat()}"
        )
    if measured is None and past_grace:
        detected[TriggerKind.MISSING_OUTCOME_EVIDENCE] = (
            f"no measured outcome evidence in the last {freshness_days} days"
        )
    stale = [p for p in pillars if not p.fresh]
    if stale and past_grace:
        detected[TriggerKind.STALE_PILLAR] = "no fresh evidence for " + ", ".join(
            p.pillar.label for p in stale
        )
    feedback = next(p for p in pillars if p.pillar == Pillar.FEEDBACK)
    if feedback.latest and feedback.latest.value is not None and (
        target.better(plan.baseline.value, feedback.latest.value)
        or target.better(expected, feedback.latest.value)
    ):
        detected[TriggerKind.POOR_FEEDBACK] = describe(feedback.latest) + " (below trajectory)"
    records = next(p for p in pillars if p.pillar == Pillar.CARE_RECORDS)
    if (
        records.latest
        and records.previous
        and records.latest.value is not None
        and records.previous.value is not None
        and not target.met_by(records.latest.value)
        and not target.met_by(records.previous.value)
        and not target.better(records.latest.value, records.previous.value)
    ):
        detected[TriggerKind.REPEATED_GAPS] = (
            f"gaps repeated: {describe(records.previous)}, then {describe(records.latest)}"
        )
    if below and previous_below_trajectory:
        detected[TriggerKind.REPEATED_UNMET_NEED] = (
            "below trajectory at two reviews in a row"
        )
    if last_review is not None:
        due = next_review_due(cadence, last_review.as_of, plan.baseline.as_of)
        if due < as_of:
            detected[TriggerKind.DELAYED_REVIEW] = (
                f"review was due {due.isoformat()}, last held {last_review.as_of.isoformat()}"
            )
    elif reviews_start is not None:
        # no review yet: the first one was due when reviews started
        first_due = next_review_due(cadence, reviews_start, reviews_start)
        if first_due < as_of:
            detected[TriggerKind.DELAYED_REVIEW] = (
                f"first review was due by {first_due.isoformat()} and none was held"
            )

    applicable = UNIVERSAL_TRIGGERS | {t.kind for t in plan.triggers}
    fired = tuple(kind for kind in TriggerKind if kind in detected and kind in applicable)
    reasons = [detected[k] for k in fired]

    declined = [
        p for p in pillars
        if p.latest and p.latest.value is not None
        and target.better(plan.baseline.value, p.latest.value)
    ]
    for p in declined:
        assert p.latest is not None
        reasons.append(f"{describe(p.latest)}, worse than the baseline {plan.baseline.value:g}%")

    if TriggerKind.OVERDUE in fired:
        rating = Rating.OVERDUE
    elif (
        (measured is None and past_grace)
        or (measured is not None and abs(expected - measured) > OFF_TRACK_MARGIN and below)
        or declined
        or TriggerKind.REPEATED_UNMET_NEED in fired
    ):
        rating = Rating.OFF_TRACK
    elif fired:
        rating = Rating.AT_RISK
    else:
        rating = Rating.ON_TRACK
    return ReviewAssessment(
        as_of=as_of,
        measured_value=measured,
        trajectory_value=round(expected, 2),
        target_met=target_met,
        days_to_deadline=days_left,
        pillars=pillars,
        triggers_fired=fired,
        rating=rating,
        reasons=tuple(reasons),
    )
