"""What provider governance sees: every open action with its rating, trend, escalations,
decisions needed and governance weaknesses. Built set-based for a whole provider."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, PrivateAttr
from sqlalchemy import func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Mapped
from sqlmodel import Session, col, select

from models.cadence import next_review_due
from models.dates import shift
from models.lifecycle import DECISIONS_AWAITED, OPEN, Status, decision_due
from models.people import PROVIDER_LEVEL_ROLES
from models.review import progress_share
from models.risk import RiskLevel
from recovery.adapters.tables import (
    ActionRow,
    AssuranceEntryRow,
    AuditRow,
    ControlChangeRow,
    DecisionRow,
    EscalationRow,
    EvidenceRow,
    LocationRow,
    PersonRow,
    ProviderRow,
    ReviewRow,
    SignoffRequestRow,
    as_utc,
)
from recovery.application import summaries
from recovery.settings import get_settings

PROVIDER_REVIEW_DAYS = 31
#: Reviews older than this do not show in the snapshot (rating, trend, stale pillars).
HISTORY_DAYS = 60
#: Ids per IN list: far below SQLite's and PostgreSQL's bind-parameter limits at any size.
ID_CHUNK = 2000
LOCAL_ONLY = "serious risk managed only at local team level"

DECISIONS_NEEDED = {
    Status.AWAITING_PLAN_SIGNOFF.value: "plan sign-off by the senior reviewer",
    Status.AWAITING_CLOSURE_SIGNOFF.value: "closure sign-off by the senior reviewer",
    Status.PLAN_REJECTED.value: "a revised plan from the accountable lead",
    Status.DRAFT.value: "start the lifecycle run (recovery action start)",
}
#: What a governance pack says of an action identified but never started.
NOT_STARTED = "not started"


class ActionLine(BaseModel):
    ref: str
    title: str
    location: str
    risk_domain: str
    risk_level: str
    risk_score: int
    risk_reasons: list[str]
    status: str
    rating: str
    measured: float | None
    previous_measured: float | None
    trend: str
    baseline: float
    target: float
    target_wording: str
    deadline: date
    days_to_deadline: int
    progress_pct: int
    escalated: bool
    escalation_reasons: list[str]
    next_review_due: date
    review_overdue: bool
    cadence: str
    accountable_lead: str
    senior_reviewer: str
    decisions_needed: list[str]
    last_provider_review: date | None
    stale_pillars: list[str]
    weaknesses: list[str]


class GovernanceSnapshot(BaseModel):
    as_of: date
    provider: str
    lines: list[ActionLine]
    _by_location: dict[str, list[ActionLine]] | None = PrivateAttr(default=None)
    _indexed: tuple[int, int] = PrivateAttr(default=(0, -1))

    @property
    def high(self) -> list[ActionLine]:
        return [line for line in self.lines if line.risk_level == RiskLevel.HIGH.value]

    def for_location(self, location: str) -> list[ActionLine]:
        # indexed once (the weekly cycle asks for every location of a large provider);
        # rebuilt if the list of lines is replaced or grows
        key = (id(self.lines), len(self.lines))
        if self._by_location is None or self._indexed != key:
            index: dict[str, list[ActionLine]] = defaultdict(list)
            for line in self.lines:
                index[line.location].append(line)
            self._by_location, self._indexed = index, key
        return list(self._by_location.get(location, []))

    @property
    def weaknesses(self) -> list[tuple[str, str]]:
        return [(line.ref, w) for line in self.lines for w in line.weaknesses]


def _trend(now: float | None, before: float | None, direction: str) -> str:
    if now is None:
        return "no evidence"
    if before is None:
        return "new"
    if abs(now - before) < 0.5:
        return "steady"
    better = now > before if direction == "at_least" else now < before
    return "improving" if better else "declining"


def _chunks(ids: list[Any]) -> list[list[Any]]:
    return [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


def _last_review_rows(
    session: Session, ids: list[int], *, after: date, until: date, pillars: bool
) -> dict[int, Any]:
    """Per action, the last review held in (after, until]: only the columns the snapshot
    shows, read in one query per chunk of actions (not every review of the window as ORM
    objects)."""
    out: dict[int, Any] = {}
    columns: list[Mapped[Any]] = [col(ReviewRow.action_id), col(ReviewRow.as_of),
                                  col(ReviewRow.rating), col(ReviewRow.measured_value)]
    if pillars:
        columns.append(col(ReviewRow.pillars))
    for chunk in _chunks(ids):
        last = (
            select(ReviewRow.action_id, func.max(ReviewRow.as_of).label("last"))
            .where(col(ReviewRow.action_id).in_(chunk), ReviewRow.as_of <= until,
                   ReviewRow.as_of > after)
            .group_by(col(ReviewRow.action_id)).subquery()
        )
        for row in session.connection().execute(
                sa_select(*columns).join(last,
                                         (col(ReviewRow.action_id) == last.c.action_id)
                                         & (col(ReviewRow.as_of) == last.c.last))):
            out[row.action_id] = row
    return out


def build_snapshot(
    session: Session, *, as_of: date, location: str | None = None
) -> GovernanceSnapshot:
    """The governance snapshot as of a date: every open action (as of a past date, every
    action as it stood then, unwound from the audit log), one line each, at most one
    location.

    Long on purpose: it reads each table once for all the actions (set-based, in chunks),
    then builds each line from those maps; split up, the maps (reviews, escalations,
    decisions asked, provider reviews, people, locations) would be threaded through
    helpers as a dozen parameters, as `packs/details._details` says of its own pass."""
    provider = session.exec(select(ProviderRow)).first()
    shown = [s.value for s in OPEN] + list(DECISIONS_NEEDED)
    # a pack as of a past date reads every action as it stood then (opened by then, its
    # status and deadline unwound from the audit log); today's pack reads today's rows
    past = as_of < get_settings().today()
    query = select(ActionRow) if past else select(ActionRow).where(
        col(ActionRow.status).in_(shown))
    locations = {loc.id: loc for loc in session.exec(select(LocationRow))}
    if location:
        wanted = [i for i, loc in locations.items() if loc.name.lower() == location.lower()
                  or loc.code.lower() == location.lower()]
        query = query.where(col(ActionRow.location_id).in_(wanted))
    actions = list(session.exec(query))
    then = as_it_stood(session, actions, as_of) if past else {
        a.ref: Then(status=a.status, deadline=a.deadline, since=None) for a in actions}
    actions = [a for a in actions if a.ref in then and then[a.ref].status in shown]
    ids = [a.id for a in actions if a.id is not None]
    people = {p.id: p for p in session.exec(select(PersonRow))}
    senior_emails = {p.email for p in people.values() if p.role in
                     {r.value for r in PROVIDER_LEVEL_ROLES}}

    # the latest review of the last 60 days, and the latest one a week or more before
    window = shift(as_of, -HISTORY_DAYS)
    latest_review = _last_review_rows(session, ids, after=window, until=as_of, pillars=True)
    review_before = _last_review_rows(session, ids, after=window,
                                      until=shift(as_of, -7), pillars=False)
    last_review_on: dict[int, date] = {}
    escalations: dict[int, list[str]] = defaultdict(list)
    # open escalations as they stood on the date (a pack as of a past date reads the past),
    # and whether each has had its change of operational control by then
    awaiting_control: set[int] = set()
    for chunk in _chunks(ids):
        last_review_on.update(session.exec(
            select(ReviewRow.action_id, func.max(ReviewRow.as_of))
            .where(col(ReviewRow.action_id).in_(chunk), ReviewRow.as_of <= as_of)
            .group_by(col(ReviewRow.action_id))).all())
        for e, changed_on in session.exec(
                select(EscalationRow, col(ControlChangeRow.decided_on))
                .outerjoin(ControlChangeRow, col(ControlChangeRow.id)
                           == col(EscalationRow.control_change_id))
                .where(col(EscalationRow.action_id).in_(chunk),
                       EscalationRow.opened_on <= as_of,
                       or_(col(EscalationRow.resolved_on).is_(None),
                           col(EscalationRow.resolved_on) > as_of))
                .order_by(col(EscalationRow.id))):
            escalations[e.action_id].extend(e.reasons)
            if changed_on is None or changed_on > as_of:
                awaiting_control.add(e.action_id)

    asked_on = _decisions_asked_on(session, actions) if not past else {
        a.id: asked for a in actions
        if a.id is not None and (asked := then[a.ref].since) is not None}

    provider_review: dict[int, date] = {}

    def seen(action_id: int, day: date) -> None:
        if day <= as_of and (action_id not in provider_review or day > provider_review[action_id]):
            provider_review[action_id] = day

    for chunk in _chunks(ids):
        for action_id, email, at in session.exec(select(
                col(DecisionRow.action_id), col(DecisionRow.reviewer_email),
                col(DecisionRow.decided_at))
                .where(col(DecisionRow.action_id).in_(chunk))):
            if email in senior_emails:
                seen(action_id, at.date())
        for action_id, day in session.exec(select(
                col(AssuranceEntryRow.action_id), col(AssuranceEntryRow.recorded_on))
                .where(col(AssuranceEntryRow.action_id).in_(chunk))):
            seen(action_id, day)
        for action_id, email, day in session.exec(select(
                col(EvidenceRow.action_id), col(EvidenceRow.recorded_by),
                col(EvidenceRow.observed_on))
                .where(col(EvidenceRow.action_id).in_(chunk),
                       EvidenceRow.source == "governance_minutes")):
            if email in senior_emails:
                seen(action_id, day)

    lines = []
    cutoff = shift(as_of, -PROVIDER_REVIEW_DAYS)
    for row in sorted(actions, key=lambda a: (RiskLevel(a.risk_level).rank, -a.risk_score,
                                              a.ref)):
        assert row.id is not None
        latest = latest_review.get(row.id)
        before = review_before.get(row.id)
        cadence = summaries.cadence_of(row, as_of,
                                      last_rating=latest.rating if latest else None)
        start = row.recovery_started_on or row.baseline_on
        status = Status(then[row.ref].status)
        deadline = then[row.ref].deadline
        # what is due next: a review by the cadence in an open status, a decision in a
        # status that waits on one (the earlier when both); each that has passed counts
        review_due = next_review_due(cadence, last_review_on.get(row.id), start) \
            if status in OPEN else None
        waited = decision_due(status, asked_on[row.id]) if row.id in asked_on else None
        overdue_items: list[str] = []
        if review_due is not None and review_due < as_of:
            overdue_items.append(f"review overdue since {review_due.isoformat()}")
        if waited is not None and waited < as_of:
            what, who, _ = DECISIONS_AWAITED[status]
            name = (people[row.senior_reviewer_id].name if who == "the senior reviewer"
                    else people[row.accountable_lead_id].name
                    if who == "the accountable lead" else who)
            overdue_items.append(f"{what} overdue since {waited.isoformat()}, waiting on "
                                 f"{name}")
        dues = [d for d in (review_due, waited) if d is not None]
        due = min(dues) if dues else as_of
        overdue = bool(overdue_items)
        active = status in OPEN
        measured = latest.measured_value if latest else None
        share = progress_share(row.baseline_value, row.target_value, measured)
        progress = 0 if share is None else int(share)
        stale = [p["pillar"].replace("_", " ") for p in (latest.pillars if latest else [])
                 if not p.get("fresh")]
        weaknesses = []
        last_provider = provider_review.get(row.id)
        if row.risk_level == RiskLevel.HIGH.value and (last_provider is None
                                                       or last_provider < cutoff):
            since = f"since {last_provider.isoformat()}" if last_provider else "ever"
            weaknesses.append(f"{LOCAL_ONLY}: no provider-level review {since}")
        if status == Status.DRAFT and (row.flow_run_id is None or past):
            weaknesses.append(f"{NOT_STARTED} since {row.created_at.date().isoformat()}: no "
                              f"lifecycle run (start it with recovery action start {row.ref})")
        weaknesses.extend(overdue_items)
        if active and latest and stale:
            weaknesses.append("stale evidence: " + ", ".join(stale))
        lines.append(ActionLine(
            ref=row.ref, title=row.title, location=locations[row.location_id].name,
            risk_domain=row.risk_domain, risk_level=row.risk_level, risk_score=row.risk_score,
            risk_reasons=row.risk_reasons, status=status.value,
            rating=latest.rating if latest else (
                "not_started" if status == Status.DRAFT else "not reviewed"),
            measured=measured,
            previous_measured=before.measured_value if before else None,
            trend=_trend(measured, before.measured_value if before else None,
                         row.target_direction),
            baseline=row.baseline_value, target=row.target_value,
            target_wording=f"{row.target_direction.replace('_', ' ')} {row.target_value:g}%",
            deadline=deadline, days_to_deadline=(deadline - as_of).days,
            progress_pct=progress, escalated=row.id in escalations,
            escalation_reasons=escalations.get(row.id, []), next_review_due=due,
            review_overdue=overdue, cadence=cadence.value,
            accountable_lead=people[row.accountable_lead_id].name,
            senior_reviewer=people[row.senior_reviewer_id].name,
            decisions_needed=([DECISIONS_NEEDED[status.value]]
                              if status.value in DECISIONS_NEEDED else [])
            + (["decision on escalation: record a change of operational control"]
               if row.id in awaiting_control else []),
            last_provider_review=last_provider, stale_pillars=stale, weaknesses=weaknesses,
        ))
    return GovernanceSnapshot(as_of=as_of, provider=provider.name if provider else "",
                              lines=lines)


@dataclass(frozen=True)
class Then:
    """An action as it stood on a past date: its status, its deadline, and the day it
    entered that status (None: before the audit log says)."""

    status: str
    deadline: date
    since: date | None


#: The audit entries that change what a pack shows of an action's state.
_STATE_EVENTS = ("action.opened", "action.deadline_extended")


def as_it_stood(session: Session, actions: list[ActionRow], as_of: date) -> dict[str, Then]:
    """Each action as it stood at the end of `as_of`, by its ref; actions opened after that
    day are left out. Status and deadline changes recorded after the day are unwound from
    the audit log (each entry's `on`, the business day it was recorded; before entries
    carried one, the local day of its timestamp)."""
    tz = get_settings().tz
    history: dict[str, list[tuple[str, date, Mapping[str, Any]]]] = defaultdict(list)
    for chunk in _chunks([a.ref for a in actions]):
        for ref, event, at, details in session.exec(
                select(AuditRow.action_ref, AuditRow.event, AuditRow.at, AuditRow.details)
                .where(col(AuditRow.action_ref).in_(chunk),
                       or_(col(AuditRow.event).startswith("status."),
                           col(AuditRow.event).in_(_STATE_EVENTS)))
                .order_by(col(AuditRow.seq))):
            day = (date.fromisoformat(details["on"]) if details.get("on")
                   else datetime.fromisoformat(at).astimezone(tz).date())
            history[ref or ""].append((event, day, details))
    out: dict[str, Then] = {}
    for row in actions:
        entries = _started_by_then(history.get(row.ref, []), row.recovery_started_on)
        opened = next((day for event, day, _ in entries if event == "action.opened"),
                      summaries.opened_on(row))
        if opened > as_of:
            continue
        status, deadline = row.status, row.deadline
        for event, day, details in reversed(entries):
            if day <= as_of:
                break
            if event.startswith("status."):
                status = details["from"]
            elif event == "action.deadline_extended":
                deadline = date.fromisoformat(details["from"])
        since = max((day for event, day, _ in entries
                     if event.startswith("status.") and day <= as_of), default=opened)
        out[row.ref] = Then(status=status, deadline=deadline, since=since)
    return out


def _started_by_then(entries: list[tuple[str, date, Mapping[str, Any]]], started: date | None
                     ) -> list[tuple[str, date, Mapping[str, Any]]]:
    """The action's recovery start day is the business-dated record of its plan's approval:
    the opening, submission and approval that led to it happened by that day, whatever day
    their entries carry (an action recorded late, with the day recovery really began)."""
    if started is None:
        return entries
    out = []
    cut = next((i for i, (event, _, details) in enumerate(entries)
                if event.startswith("status.") and details.get("to") == "in_recovery"), -1)
    for i, (event, day, details) in enumerate(entries):
        out.append((event, min(day, started) if i <= cut else day, details))
    return out


def _decisions_asked_on(session: Session, actions: list[ActionRow]) -> dict[int, date]:
    """When the decision each waiting action waits on was asked: a sign-off when its
    request was issued, a revision when the plan was rejected, a start when the draft was
    opened (the status change's time when nothing else says)."""
    tz = get_settings().tz
    out: dict[int, date] = {}
    waiting = [a for a in actions if Status(a.status) in DECISIONS_AWAITED and a.id]
    for a in waiting:
        assert a.id is not None
        out[a.id] = as_utc(a.created_at if a.status == Status.DRAFT.value
                           else a.updated_at).astimezone(tz).date()
    ids = [a.id for a in waiting if a.id is not None and a.status != Status.DRAFT.value]
    status = {a.id: a.status for a in waiting}
    for chunk in _chunks(ids):
        for action_id, issued in session.exec(
                select(SignoffRequestRow.action_id, func.max(SignoffRequestRow.issued_at))
                .where(col(SignoffRequestRow.action_id).in_(chunk),
                       col(SignoffRequestRow.used_at).is_(None))
                .group_by(col(SignoffRequestRow.action_id))):
            if status[action_id] in (Status.AWAITING_PLAN_SIGNOFF.value,
                                     Status.AWAITING_CLOSURE_SIGNOFF.value):
                out[action_id] = as_utc(issued).astimezone(tz).date()
        for action_id, decided in session.exec(
                select(DecisionRow.action_id, func.max(DecisionRow.decided_at))
                .where(col(DecisionRow.action_id).in_(chunk), DecisionRow.decision == "reject")
                .group_by(col(DecisionRow.action_id))):
            if status[action_id] == Status.PLAN_REJECTED.value:
                out[action_id] = as_utc(decided).astimezone(tz).date()
    return out
