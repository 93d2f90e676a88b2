"""Review cycle stages as Prefect tasks: one set-based task per cycle step, never one task
per action."""

from __future__ import annotations

from datetime import UTC, date, datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlmodel import col, select

from models.tables import ActionRow, EscalationRow
from recovery import cycles, db

CYCLE_TASK = {"retries": 2, "retry_delay_seconds": 5, "cache_policy": NO_CACHE}


@task(name="daily-review-of-due-actions", **CYCLE_TASK)
def review_due_actions(as_of: date) -> cycles.DailyResult:
    """Record a review for every open action due under its cadence, then escalate,
    de-escalate, reopen or close as the reviews show."""
    with db.unit_of_work() as session:
        result = cycles.run_daily(session, as_of=as_of)
    get_run_logger().info(
        "daily review %s: %s reviewed, %s already reviewed, %s not due; ratings %s; "
        "escalated %s", as_of, result.reviewed, result.already_reviewed, result.not_due,
        result.ratings, result.escalated or "none")
    return result


@task(name="emit-escalation-events", **CYCLE_TASK)
def emit_escalation_events() -> list[str]:
    """`recovery.action.escalated` for every escalation not yet announced (exactly once
    per escalation, even if a run died between recording it and announcing it)."""
    from prefect.events import emit_event

    emitted = []
    with db.unit_of_work() as session:
        rows = session.exec(
            select(EscalationRow, ActionRow.ref, ActionRow.risk_level, ActionRow.risk_domain)
            .join(ActionRow, ActionRow.id == EscalationRow.action_id)
            .where(col(EscalationRow.event_emitted_at).is_(None))
        ).all()
        for escalation, ref, level, domain in rows:
            emit_event(
                event="recovery.action.escalated",
                resource={"prefect.resource.id": f"recovery.action.{ref}",
                          "prefect.resource.name": ref},
                payload={"ref": ref, "opened_on": escalation.opened_on.isoformat(),
                         "reasons": escalation.reasons, "risk_level": level,
                         "risk_domain": domain},
            )
            escalation.event_emitted_at = datetime.now(UTC)
            session.add(escalation)
            emitted.append(ref)
    return emitted


@task(name="restart-lifecycle-of-reopened", **CYCLE_TASK)
def restart_reopened(refs: list[str]) -> list[str]:
    """A reopened action's lifecycle resumes in a new run (the old one completed)."""
    from recovery import prefect_api

    started = []
    for ref in refs:
        with db.unit_of_work() as session:
            row = session.exec(select(ActionRow).where(ActionRow.ref == ref)).one()
            row.flow_run_id = None
            session.add(row)
        started.append(prefect_api.start_lifecycle(ref))
    return started
