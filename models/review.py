"""Progress against the target, the straight-line trajectory, evidence freshness and the
triggers a review detects. Pure: the cycle loads rows, this decides."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date
from enum import StrEnum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from models.action import ActionPlan, Baseline, Direction, RiskDomain, Target, TriggerKind
from models.cadence import Cadence, next_review_due
from models.dates import shift
from models.evidence import TRIANGULATION_PILLARS, Evidence, EvidenceSource, Pillar
from models.templates import domain_trigger_kinds

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

#: Where `positions` puts the pillars a trigger reads (it follows TRIANGULATION_PILLARS).
_RECORDS = TRIANGULATION_PILLARS.index(Pillar.CARE_RECORDS)
_FEEDBACK = TRIANGULATION_PILLARS.index(Pillar.FEEDBACK)

#: Triggers in the order a review reports them.
_TRIGGER_ORDER: tuple[TriggerKind, ...] = tuple(TriggerKind)

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
    """A review's verdict. Green (on track) needs a recorded measure at or better than the
    trajectory and no trigger; an action whose measure has never been recorded is *not yet
    evidenced* (amber) during the grace period and off track (red) after it."""

    ON_TRACK = "on_track"
    NOT_EVIDENCED = "unevidenced"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    OVERDUE = "overdue"

    @property
    def label(self) -> str:
        return _RATING_LABELS[self]

    @property
    def rag(self) -> str:
        return _RATING_RAG[self]


_RATING_LABELS = {
    Rating.ON_TRACK: "on track",
    Rating.NOT_EVIDENCED: "not yet evidenced",
    Rating.AT_RISK: "at risk",
    Rating.OFF_TRACK: "off track",
    Rating.OVERDUE: "overdue",
}
_RATING_RAG = {
    Rating.ON_TRACK: "green",
    Rating.NOT_EVIDENCED: "amber",
    Rating.AT_RISK: "amber",
    Rating.OFF_TRACK: "red",
    Rating.OVERDUE: "red",
}


def rating_label(value: str) -> str:
    """How a stored rating reads to people ("not yet evidenced"); other words as they are."""
    try:
        return Rating(value).label
    except ValueError:
        return value.replace("_", " ")


def rating_rag(value: str) -> str:
    """A stored rating as red, amber or green; grey when there is none (not reviewed yet)."""
    try:
        return Rating(value).rag
    except ValueError:
        return "grey"


class ReviewRecord(BaseModel):
    """What a stored review says (the gate and trend need only this)."""

    model_config = ConfigDict(frozen=True)

    as_of: date
    measured_value: float | None
    target_met: bool
    rating: Rating


def trajectory_value(plan: ActionPlan, as_of: date) -> float:
    """Where a straight line from baseline to target says the measure should be today."""
    return _trajectory(plan.baseline, plan.target, as_of)


def _trajectory(baseline: Baseline, target: Target, as_of: date) -> float:
    start, end = baseline.as_of, target.deadline
    if as_of <= start:
        return baseline.value
    if as_of >= end:
        return target.value
    share = (as_of - start).days / (end - start).days
    return baseline.value + (target.value - baseline.value) * share


def progress_share(baseline: float, target: float, measured: float | None) -> float | None:
    """How far `measured` has come from the baseline toward the target, as a percentage
    clamped to 0-100; None when nothing is measured yet or baseline and target coincide."""
    span = target - baseline
    if measured is None or span == 0:
        return None
    return max(0.0, min(100.0, (measured - baseline) / span * 100))


class Observation(Protocol):
    """What a review reads of an evidence item. `Evidence` is one; the daily cycle passes
    lighter records of the same fields (it reviews thousands of actions at once)."""

    @property
    def id(self) -> int | None: ...
    @property
    def source(self) -> EvidenceSource: ...
    @property
    def pillar(self) -> Pillar: ...
    @property
    def value(self) -> float | None: ...
    @property
    def observed_on(self) -> date: ...


Obs = TypeVar("Obs", bound=Observation)


class Position(NamedTuple, Generic[Obs]):
    """A pillar's position: when it was last evidenced, its latest fresh measure and the
    one before it, and whether it is fresh."""

    pillar: Pillar
    last_observed_on: date | None
    latest: Obs | None  # latest measured evidence within the freshness window
    previous: Obs | None  # the measured item before it, any age
    fresh: bool


class Assessment(NamedTuple, Generic[Obs]):
    """One review's outcome. A plain record, so the daily cycle can assess thousands of
    actions without building a validated model per action."""

    as_of: date
    measured_value: float | None
    trajectory_value: float
    target_met: bool
    days_to_deadline: int
    pillars: tuple[Position[Obs], ...]
    triggers_fired: tuple[TriggerKind, ...]
    rating: Rating
    reasons: tuple[str, ...]


def _sort_key(e: Observation) -> tuple[date, int]:
    return (e.observed_on, e.id or 0)


def positions(
    evidence: Iterable[Obs], as_of: date, freshness_days: int = DEFAULT_FRESHNESS_DAYS
) -> tuple[Position[Obs], ...]:
    """Per triangulation pillar: when it was last evidenced, its latest measure within the
    freshness window and the measure before it, and whether it is fresh."""
    cutoff = shift(as_of, -freshness_days)
    by_pillar: dict[Pillar, list[Obs]] = {p: [] for p in TRIANGULATION_PILLARS}
    for item in evidence:
        bucket = by_pillar.get(item.pillar)
        if bucket is not None and item.observed_on <= as_of:
            bucket.append(item)
    out: list[Position[Obs]] = []
    for pillar, items in by_pillar.items():  # in TRIANGULATION_PILLARS order
        if not items:
            out.append(Position(pillar, None, None, None, False))
            continue
        if len(items) > 1:
            items.sort(key=_sort_key)
        # the latest measured item and the one before it, newest first
        latest: Obs | None = None
        previous: Obs | None = None
        for e in reversed(items):
            if e.value is not None:
                if latest is None:
                    latest = e
                else:
                    previous = e
                    break
        last_seen = items[-1].observed_on
        if latest is not None and latest.observed_on < cutoff:
            latest = None  # measured, but too long ago to count
        out.append(Position(pillar, last_seen, latest, previous, last_seen >= cutoff))
    return tuple(out)


def pillar_positions(
    evidence: Iterable[Evidence], as_of: date, freshness_days: int = DEFAULT_FRESHNESS_DAYS
) -> tuple[Position[Evidence], ...]:
    return positions(evidence, as_of, freshness_days)


def describe(e: Observation) -> str:
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
) -> Assessment[Evidence]:
    """One review: progress against target and trajectory, freshness, triggers, rating."""
    return assess(
        plan.target, plan.baseline, watched_triggers({t.kind for t in plan.triggers},
                                                     plan.risk_domain), evidence, as_of=as_of,
        cadence=cadence, last_review_on=last_review.as_of if last_review else None,
        previous_below_trajectory=previous_below_trajectory, freshness_days=freshness_days,
        reviews_start=reviews_start,
    )


def assess(
    target: Target,
    baseline: Baseline,
    watched: Collection[TriggerKind],
    evidence: Iterable[Obs],
    *,
    as_of: date,
    cadence: Cadence,
    last_review_on: date | None,
    previous_below_trajectory: bool = False,
    freshness_days: int = DEFAULT_FRESHNESS_DAYS,
    reviews_start: date | None = None,
) -> Assessment[Obs]:
    """The rules of one review (`assess_progress` is this for a whole plan): progress
    against target and trajectory, freshness, triggers, rating. `watched` are the trigger
    kinds the plan names. Plain records in and out, so the daily cycle can assess
    thousands of actions without building a validated model per action.

    Long on purpose: the seed's review rules in the order it gives them (the measure,
    the trajectory, the triggers, the rating), each step reading what the earlier ones
    found; split up, those values would be passed from helper to helper."""
    pillars = positions(evidence, as_of, freshness_days)
    # the measure is the weakest pillar's latest value; the target is met only when every
    # pillar has a fresh measured value that meets it
    values: list[float] = []
    target_met = True
    for p in pillars:
        value = p.latest.value if p.latest is not None else None
        if value is None:
            target_met = False
        else:
            values.append(value)
            if target_met and not target.met_by(value):
                target_met = False
    measured: float | None = None
    if values:
        measured = min(values) if target.direction == Direction.AT_LEAST else max(values)
    expected = _trajectory(baseline, target, as_of)
    days_left = (target.deadline - as_of).days
    past_grace = (as_of - baseline.as_of).days > EVIDENCE_GRACE_DAYS

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
    no_evidence = (
        f"no evidence after {(as_of - baseline.as_of).days} days: no measured outcome "
        f"evidence in the last {freshness_days} days"
    )
    if measured is None and past_grace:
        detected[TriggerKind.MISSING_OUTCOME_EVIDENCE] = no_evidence
    stale = [p for p in pillars if not p.fresh]
    if stale and past_grace:
        detected[TriggerKind.STALE_PILLAR] = "no fresh evidence for " + ", ".join(
            p.pillar.label for p in stale
        )
    records, feedback = pillars[_RECORDS], pillars[_FEEDBACK]
    if feedback.latest and feedback.latest.value is not None and (
        target.better(baseline.value, feedback.latest.value)
        or target.better(expected, feedback.latest.value)
    ):
        detected[TriggerKind.POOR_FEEDBACK] = describe(feedback.latest) + " (below trajectory)"
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
    if last_review_on is not None:
        due = next_review_due(cadence, last_review_on, baseline.as_of)
        if due < as_of:
            detected[TriggerKind.DELAYED_REVIEW] = (
                f"review was due {due.isoformat()}, last held {last_review_on.isoformat()}"
            )
    elif reviews_start is not None:
        # no review yet: the first one was due when reviews started
        first_due = next_review_due(cadence, reviews_start, reviews_start)
        if first_due < as_of:
            detected[TriggerKind.DELAYED_REVIEW] = (
                f"first review was due by {first_due.isoformat()} and none was held"
            )

    fired = tuple(kind for kind in _TRIGGER_ORDER if kind in detected
                  and (kind in UNIVERSAL_TRIGGERS or kind in watched))
    reasons = [detected[k] for k in fired]

    declined = [
        p for p in pillars
        if p.latest and p.latest.value is not None
        and target.better(baseline.value, p.latest.value)
    ]
    for p in declined:
        assert p.latest is not None
        reasons.append(f"{describe(p.latest)}, worse than the baseline {baseline.value:g}%")

    if measured is None and past_grace and TriggerKind.MISSING_OUTCOME_EVIDENCE not in fired:
        reasons.append(no_evidence)

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
    elif measured is None:
        # green needs a measurement: nothing recorded yet is not progress
        rating = Rating.NOT_EVIDENCED
        reasons.append(
            f"not yet evidenced: no measure recorded "
            f"({(as_of - baseline.as_of).days} of {EVIDENCE_GRACE_DAYS} days' grace)"
        )
    else:
        rating = Rating.ON_TRACK
    return Assessment(
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


# --- escalation ---------------------------------------------------------------------------

#: Ratings that are weak progress in themselves.
WEAK_RATINGS: frozenset[Rating] = frozenset({Rating.OFF_TRACK, Rating.OVERDUE})


def watched_triggers(
    named: Iterable[TriggerKind], domain: RiskDomain | str
) -> frozenset[TriggerKind]:
    """The trigger kinds a review watches beyond the universal ones: those the plan names,
    or, for a plan that names none the cycle can detect, the seed's kinds for its domain
    (the built-in template's triggers: e.g. unexplained gaps and repeated discrepancies for
    medicines; repeated unmet need and poor feedback for staffing)."""
    detected = frozenset(k for k in named if k != TriggerKind.MANUAL)
    return detected or domain_trigger_kinds(RiskDomain(domain))


def escalation_reasons(
    a: Assessment[Any],
    watched: Collection[TriggerKind],
    target: Target,
    *,
    previous_measured: float | None,
) -> list[str]:
    """Why a review escalates an action (empty: it does not). The seed's rule: weak progress
    (off track or overdue); a trigger of a kind the plan names (or its domain's, see
    `watched_triggers`) raised; or evidence showing no improvement since the last review
    while below the trajectory."""
    if a.rating in WEAK_RATINGS:
        return list(a.reasons)
    out = [f"trigger raised, {kind.value.replace('_', ' ')}: {reason}"
           for kind, reason in zip(a.triggers_fired, a.reasons, strict=False)
           if kind in watched]
    measured = a.measured_value
    if (TriggerKind.BELOW_TRAJECTORY in a.triggers_fired and measured is not None
            and previous_measured is not None
            and not target.better(measured, previous_measured)):
        out.append(
            f"no improvement since the last review ({previous_measured:g}%, now "
            f"{measured:g}%) while below the trajectory of {a.trajectory_value:g}%"
        )
    return out
