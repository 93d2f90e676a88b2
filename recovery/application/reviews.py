"""The daily review cycle, escalation and de-escalation, reopening and sustained closure.

Set-based and in chunks: the open actions' ids are read in the cycle's order, then, for
each chunk of up to 2,000 of them, one statement reads the actions' columns, plan targets
and latest reviews (`open_rows`) and one the evidence a review looks at
(`_review_items`); the pure domain assesses each
(`models.review.assess`, plain records); reviews, escalations, emails and audit entries
are written in bulk. Memory stays that of one chunk whatever the provider's size. Re-running
a cycle for the same date finds every review already held and changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, insert, text
from sqlalchemy import select as columns
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from models.action import Baseline, Target, TriggerKind
from models.audit import ReviewsDigest
from models.cadence import Cadence, review_due
from models.evidence import Evidence
from models.lifecycle import OPEN, Event, Status
from models.recovery_action import (
    FollowUp,
    follow_up,
    may_close_sustained,
    may_de_escalate,
    sustained_by,
)
from models.review import (
    Assessment,
    assess,
    escalation_reasons,
    watched_triggers,
)
from recovery.adapters import audit_log, db, mail
from recovery.adapters.tables import (
    ActionRow,
    EscalationRow,
    ReviewRow,
    utcnow,
)
from recovery.application import summaries, transitions
from recovery.application.follow_ups import CYCLE_ACTOR, de_escalated, escalation_notices
from recovery.application.review_rows import Lookups, OpenAction, open_rows, review_items_of
from recovery.settings import get_settings

_TRIGGERS = {t.value: t for t in TriggerKind}


#: Ids per IN list and open actions per chunk: far below SQLite's and PostgreSQL's
#: bind-parameter limits, and few enough that a chunk's rows take little memory.
ID_CHUNK = 2000


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


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


def _review_items(
    session: Session, ids: list[int], as_of: date, *, whole: bool = False
) -> dict[int, list[Any]]:
    """The evidence a review reads, per action: for each triangulation pillar its latest
    item and its latest two measured items up to the date. That is all `positions` looks
    at (supporting evidence counts toward no pillar), so the assessment is the same as over
    the whole history; a provider's months of evidence are never loaded into Python. Each
    pick is a correlated `ORDER BY observed_on DESC, id DESC LIMIT 1` that walks the
    (action_id, observed_on) index backwards from the date, a few index entries per pick.
    Ordered as the domain orders evidence: (observed_on, id). With `whole`, domain
    `Evidence` with every column instead of the few a review reads."""
    out: dict[int, list[Any]] = defaultdict(list)
    for chunk in _chunks(ids):
        review_items_of(session, chunk, as_of, out, whole)
    return out


def _review_evidence(session: Session, ids: list[int], as_of: date) -> dict[int, list[Evidence]]:
    """`_review_items` as domain `Evidence`, every column (for the benchmark's correctness
    guard, which assesses them beside each action's whole history)."""
    return _review_items(session, ids, as_of, whole=True)


def _last_reviews(session: Session, ids: list[int], as_of: date) -> dict[int, Any]:
    """Each action's latest review before the date: action_id, as_of, measured_value,
    target_met, rating, triggers (what `repo.to_review` reads; the benchmark's correctness
    guard compares the cycle with reviews assessed from these)."""
    out: dict[int, Any] = {}
    x = aliased(ReviewRow)
    last_day = (select(func.max(x.as_of)).where(x.action_id == ActionRow.id, x.as_of < as_of)
                .scalar_subquery())
    for chunk in _chunks(ids):
        rows = session.connection().execute(
            columns(col(ReviewRow.action_id), col(ReviewRow.as_of),
                    col(ReviewRow.measured_value), col(ReviewRow.target_met),
                    col(ReviewRow.rating), col(ReviewRow.triggers))
            .select_from(ActionRow)
            .join(ReviewRow, (col(ReviewRow.action_id) == col(ActionRow.id))
                  & (col(ReviewRow.as_of) == last_day))
            .where(col(ActionRow.id).in_(chunk))
        ).all()
        out.update((r.action_id, r) for r in rows)
    return out


def run_daily(session: Session, *, as_of: date, actor: str = "daily-review") -> DailyResult:
    """Review every open action that is due under its cadence, as of a date."""
    if db.is_postgres(session):
        # Two cycles for the same date at once (a retry, two workers, an operator): the
        # second waits here for the first to commit, then finds every review held,
        # instead of colliding on uq_review_action_day half-way and failing.
        session.execute(text("SELECT pg_advisory_xact_lock(:k, :d)"),
                        {"k": _CYCLE_LOCK, "d": as_of.toordinal()})
        # The evidence picks are thousands of index look-ups of a row or two that the
        # planner costs as one large query, so PostgreSQL JIT-compiles it: 0.65 s of the
        # 1.1 s a chunk of 2,000 actions took. Off for the cycle, then as it was (a
        # failed cycle's transaction is rolled back, which restores it too).
        jit = session.execute(text("SELECT current_setting('jit')")).scalar_one()
        session.execute(text("SELECT set_config('jit', 'off', true)"))
        result = _run_daily(session, as_of, actor)
        session.execute(text("SELECT set_config('jit', :v, true)"), {"v": jit})
        return result
    return _run_daily(session, as_of, actor)


def _run_daily(session: Session, as_of: date, actor: str) -> DailyResult:
    # the cycle reads through the session's connection (plain rows, no ORM loading),
    # which does not autoflush: whatever the caller has pending is written first
    session.flush()
    opened = session.connection().execute(
        select(ActionRow.id)
        .where(col(ActionRow.status).in_([s.value for s in OPEN]),
               ActionRow.baseline_on <= as_of)
        .order_by(col(ActionRow.risk_level), col(ActionRow.id))
    ).scalars().all()
    result = DailyResult(as_of=as_of, open_actions=len(opened), reviewed=0,
                         already_reviewed=0, not_due=0, ratings={}, escalated=[],
                         de_escalated=[], reopened=[], closed_sustained=[])
    ratings: dict[str, int] = defaultdict(int)
    cycle = _Cycle(session, as_of, actor, result, ratings)
    for ids in _chunks(list(opened)):
        rows = open_rows(session, ids, as_of)
        due: list[tuple[OpenAction, Cadence]] = []  # in the cycle's order
        for action_id in ids:
            row = rows[action_id]
            if row.last_on == as_of:
                result.already_reviewed += 1
                continue
            start_on = row.recovery_started_on or row.baseline_on
            cadence = summaries.cadence_of(row, as_of, last_rating=row.last_rating)
            if review_due(cadence, row.last_on, start_on, as_of):
                due.append((row, cadence))
            else:
                result.not_due += 1
        if due:
            cycle.review(due)
    result.ratings = dict(ratings)

    if not result.reviewed:
        # nothing was due or every review for the date is already held: a re-run (or an
        # empty day) records nothing, not even a cycle entry in the audit trail
        return result
    audit_log.append(
        session, actor=actor, event="cycle.daily_review", action_ref=None,
        details={"as_of": as_of.isoformat(), "reviewed": result.reviewed,
                 "ratings": result.ratings, "escalated": result.escalated,
                 "de_escalated": result.de_escalated, "reopened": result.reopened,
                 "closed_sustained": result.closed_sustained,
                 "reviews": {"created_at": cycle.created_at.isoformat(),
                             "count": cycle.digest.count,
                             "sha256": cycle.digest.hexdigest()}},
        dedupe_key=f"cycle.daily:{as_of.isoformat()}:{result.reviewed}:"
                   f"{result.already_reviewed}",
    )
    return result


@dataclass(slots=True)
class _Outcome:
    """What follows one review: relapse (reopen and escalate), sustained closure,
    escalation or de-escalation."""

    kind: str
    action_id: int
    assessment: Assessment[Any]
    reasons: list[str]
    escalation: EscalationRow | None = None


class _Cycle:
    """One daily cycle, one chunk of due actions at a time."""

    def __init__(self, session: Session, as_of: date, actor: str, result: DailyResult,
                 ratings: dict[str, int]) -> None:
        self.session = session
        self.as_of = as_of
        self.actor = actor
        self.result = result
        self.ratings = ratings
        self.settings = get_settings()
        self.lookups = Lookups(session)
        self.created_at = utcnow()  # of every review of this run: what its digest covers
        self.digest = ReviewsDigest()

    def review(self, due: list[tuple[OpenAction, Cadence]]) -> None:
        """Assess and record the reviews of due actions (in the cycle's order, each with the
        cadence it was found due under), then escalate, de-escalate, reopen and close as
        the reviews say."""
        session, as_of = self.session, self.as_of
        items = _review_items(session, [row.id for row, _ in due], as_of)
        freshness = self.settings.evidence_freshness_days
        reviews: list[dict[str, Any]] = []
        assessed: list[tuple[OpenAction, Assessment[Any], list[str]]] = []
        for row, cadence in due:
            target = Target.model_validate(row.target)
            watched = watched_triggers(
                {_TRIGGERS[t.get("kind", TriggerKind.MANUAL.value)] for t in row.triggers},
                row.risk_domain)
            assessment = assess(
                target, Baseline.model_validate(row.baseline), watched,
                items.get(row.id, ()), as_of=as_of, cadence=cadence,
                last_review_on=row.last_on,
                previous_below_trajectory=row.last_triggers is not None
                and "below_trajectory" in row.last_triggers,
                freshness_days=freshness, reviews_start=row.recovery_started_on,
            )
            reviews.append(summaries.review_values(row.id, assessment, cadence, self.actor))
            assessed.append((row, assessment, escalation_reasons(
                assessment, watched, target, previous_measured=row.last_measured)))
            self.ratings[assessment.rating.value] += 1
        # the day's audit entry carries the digest of every review written (one encoding
        # per chunk), so `audit verify` catches an edited review without an entry each
        self.digest.add(reviews)
        for values in reviews:
            values["created_at"] = self.created_at
        session.connection().execute(insert(ReviewRow.__table__), reviews)  # type: ignore[attr-defined]
        self.result.reviewed += len(reviews)
        self.follow_up(assessed)

    def follow_up(self, assessed: Sequence[tuple[OpenAction, Assessment[Any], list[str]]]) -> None:
        """Everything the chunk's reviews set off, in the cycle's order, with the rows it
        changes read at once, one flush for the new escalations, and the emails and audit
        entries written in bulk (the same rows, in the same order, as one by one)."""
        session, as_of = self.session, self.as_of
        outcomes = self.decide(assessed)
        if not outcomes:
            return
        rows = {r.id: r for r in session.exec(select(ActionRow).where(
            col(ActionRow.id).in_([o.action_id for o in outcomes])))}
        for outcome in outcomes:
            row = rows[outcome.action_id]
            if outcome.kind in ("relapse", "escalate"):
                outcome.escalation = EscalationRow(action_id=outcome.action_id,
                                                   opened_on=as_of, reasons=outcome.reasons)
                session.add(outcome.escalation)
                row.escalated = True
            elif outcome.kind == "de_escalate":
                if outcome.escalation is not None:
                    outcome.escalation.resolved_on = as_of
                    session.add(outcome.escalation)
                row.escalated = False
            else:
                continue
            row.updated_at = utcnow()
            session.add(row)
        session.flush()  # the new escalations' ids name their emails and audit entries
        audit: list[audit_log.Entry] = []
        emails: list[mail.Email] = []
        day = as_of.isoformat()
        for outcome in outcomes:
            row = rows[outcome.action_id]
            if outcome.kind == "relapse":
                transitions.move(session, row, Event.RELAPSE, actor=CYCLE_ACTOR,
                              details={"as_of": day,
                                       "reasons": list(outcome.assessment.reasons)
                                       or ["evidence fell back below target"]},
                              dedupe_key=f"relapse:{row.ref}:{day}", audit=audit)
                self.result.reopened.append(row.ref)
            if outcome.kind in ("relapse", "escalate"):
                assert outcome.escalation is not None
                self.escalated(row, outcome.escalation, audit, emails)
                self.result.escalated.append(row.ref)
            elif outcome.kind == "sustained":
                transitions.move(session, row, Event.CLOSE_SUSTAINED, actor=CYCLE_ACTOR,
                              details={"as_of": day,
                                       "monitoring_since": str(row.monitoring_since)},
                              dedupe_key=f"sustained:{row.ref}:{day}", audit=audit)
                self.result.closed_sustained.append(row.ref)
            elif outcome.kind == "de_escalate":
                audit.append(de_escalated(row, outcome.escalation, as_of))
                self.result.de_escalated.append(row.ref)
        mail.enqueue_many(session, emails)
        audit_log.append_many(session, audit)
        session.flush()

    def decide(self, assessed: Sequence[tuple[OpenAction, Assessment[Any], list[str]]]
               ) -> list[_Outcome]:
        """What follows each review, decided for the whole chunk: in routine monitoring,
        relapse when evidence is back below target or progress weak, else closure once
        sustained; otherwise escalation when the review gives a reason to escalate
        (`models.review.escalation_reasons`), de-escalation when on track after a
        control change."""
        as_of = self.as_of
        sustained = self.sustained([
            row.id for row, a, _ in assessed
            if row.status == _MONITORING and may_close_sustained(a, row.monitoring_since, as_of)])
        open_escalations = self.open_escalations([
            row.id for row, a, _ in assessed
            if row.status != _MONITORING and may_de_escalate(a, escalated=row.escalated)])
        out: list[_Outcome] = []
        for row, a, escalation in assessed:
            open_escalation = open_escalations.get(row.id)
            next_step = follow_up(
                a, in_monitoring=row.status == _MONITORING, escalated=row.escalated,
                escalation=escalation, sustained=row.id in sustained,
                control_changed=None if open_escalation is None
                else open_escalation.control_change_id is not None)
            if next_step == FollowUp.RELAPSE:
                out.append(_Outcome("relapse", row.id, a, [
                    "evidence fell back below target in routine monitoring", *a.reasons]))
            elif next_step == FollowUp.SUSTAINED:
                out.append(_Outcome("sustained", row.id, a, []))
            elif next_step == FollowUp.ESCALATE:
                out.append(_Outcome("escalate", row.id, a, escalation))
            elif next_step == FollowUp.DE_ESCALATE:
                out.append(_Outcome("de_escalate", row.id, a, [], escalation=open_escalation))
        return out

    def sustained(self, ids: list[int]) -> set[int]:
        """Which actions have been in routine monitoring long enough with every review
        since it began on target and without a trigger (the rule of `_sustained`)."""
        if not ids:
            return set()
        since: dict[int, list[tuple[bool, list[str]]]] = defaultdict(list)
        for chunk in _chunks(ids):
            for action_id, met, triggers in self.session.connection().execute(
                    select(ReviewRow.action_id, ReviewRow.target_met, ReviewRow.triggers)
                    .join(ActionRow, col(ActionRow.id) == col(ReviewRow.action_id))
                    .where(col(ReviewRow.action_id).in_(chunk),
                           col(ReviewRow.as_of) >= col(ActionRow.monitoring_since),
                           ReviewRow.as_of <= self.as_of)).all():
                since[action_id].append((met, triggers))
        return {action_id for action_id in ids
                if sustained_by(since.get(action_id, []))}

    def open_escalations(self, ids: list[int]) -> dict[int, EscalationRow]:
        """The open escalation of each action (the earliest, when there is more than one)."""
        out: dict[int, EscalationRow] = {}
        for chunk in _chunks(ids):
            for escalation in self.session.exec(
                    select(EscalationRow).where(col(EscalationRow.action_id).in_(chunk),
                                                col(EscalationRow.resolved_on).is_(None))
                    .order_by(col(EscalationRow.id))):
                out.setdefault(escalation.action_id, escalation)
        return out

    def escalated(self, row: ActionRow, escalation: EscalationRow,
                  audit: list[audit_log.Entry], emails: list[mail.Email]) -> None:
        escalation_notices(row, escalation, self.as_of, self.lookups, audit, emails)


_MONITORING = Status.ROUTINE_MONITORING.value  # a row's status column
