"""Review cycle stages as Prefect tasks: one set-based task per cycle step, never one task
per action."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

from prefect import get_run_logger
from pydantic import BaseModel
from sqlmodel import col, select

from recovery.adapters import db
from recovery.adapters.tables import ActionRow, EscalationRow
from recovery.application import reviews as cycles
from recovery.application.assurance import AssuranceWait
from tasks.kinds import cycle_task

#: How long a run waits for its escalation events to leave the process before it records
#: them as announced (past it, they stay unannounced and the next run sends them again).
EVENTS_SENT_TIMEOUT = 60.0


def _events_sent(timeout: float) -> bool:
    """Wait until Prefect's events worker has handed every queued event to the server
    connection. `emit_event` only queues: a process killed right after would lose them."""
    from prefect.events.worker import EventsWorker

    waiter = threading.Thread(target=EventsWorker.instance().wait_until_empty, daemon=True)
    waiter.start()
    waiter.join(timeout)
    return not waiter.is_alive()


@cycle_task("daily-review-of-due-actions")
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


@cycle_task("emit-escalation-events")
def emit_escalation_events() -> list[str]:
    """`recovery.action.escalated` for every escalation not yet announced (exactly once
    per escalation, even if a run died between recording it and announcing it). An
    escalation is marked announced only once its event has left this process."""
    from prefect.events import emit_event

    emitted, queued = [], 0
    with db.unit_of_work() as session:
        rows = session.exec(
            select(EscalationRow, ActionRow.ref, ActionRow.risk_level, ActionRow.risk_domain)
            .join(ActionRow, col(ActionRow.id) == col(EscalationRow.action_id))
            .where(col(EscalationRow.event_emitted_at).is_(None))
            # two cycles at once on PostgreSQL: each escalation is announced by one of them
            .with_for_update(of=EscalationRow, skip_locked=True)
        ).all()
        for escalation, ref, level, domain in rows:
            queued += emit_event(
                event="recovery.action.escalated",
                resource={"prefect.resource.id": f"recovery.action.{ref}",
                          "prefect.resource.name": ref},
                payload={"ref": ref, "opened_on": escalation.opened_on.isoformat(),
                         "reasons": escalation.reasons, "risk_level": level,
                         "risk_domain": domain},
            ) is not None  # None: events are off in this process (nothing to wait for)
            emitted.append(ref)
        if queued and not _events_sent(EVENTS_SENT_TIMEOUT):
            get_run_logger().warning(
                "escalation events for %s not sent within %s s: left unannounced for the "
                "next run", ", ".join(emitted), EVENTS_SENT_TIMEOUT)
            return []
        now = datetime.now(UTC)
        for escalation, *_ in rows:
            escalation.event_emitted_at = now
            session.add(escalation)
    return emitted


@cycle_task("restart-lifecycle-of-reopened")
def restart_reopened(refs: list[str]) -> list[str]:
    """A reopened action's lifecycle resumes in a new run (the old one completed)."""
    from recovery.adapters import prefect_api

    started = []
    for ref in refs:
        with db.unit_of_work() as session:
            row = session.exec(select(ActionRow).where(ActionRow.ref == ref)).one()
            row.flow_run_id = None
            session.add(row)
        started.append(prefect_api.start_lifecycle(ref))
    return started


class WeeklySummary(BaseModel):
    """What the weekly governance run did (or found done for the date)."""

    as_of: date
    already_run: bool
    actions: int
    high_risk: int
    weaknesses: int
    emails_queued: int
    escalated: int


@cycle_task("weekly-governance-summary")
def weekly_summary(as_of: date) -> WeeklySummary:
    """Build the tracker and the weekly audit, publish them as artifacts, queue emails.
    A second run for the same date publishes and sends nothing."""
    from prefect.artifacts import (
        create_markdown_artifact,
        create_progress_artifact,
        create_table_artifact,
    )

    from recovery.reporting import snapshot as governance
    from recovery.reporting import weekly

    with db.unit_of_work() as session:
        done = weekly.already_run(session, "weekly", as_of)
        if done is not None:
            return WeeklySummary(as_of=as_of, already_run=True, **done.summary)
        snapshot = governance.build_snapshot(session, as_of=as_of)
    from recovery.reporting import packs as reports
    from recovery.settings import get_settings

    folder = get_settings().home.resolve() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    # the pack starts from the same snapshot (built once: a third of the pack's cost)
    pack = reports.write_report("governance", "html", folder / f"governance-{as_of}.html",
                                as_of=as_of, snapshot=snapshot)
    create_table_artifact(key="high-risk-tracker", table=weekly.tracker_rows(snapshot),
                          description=f"Risk-rated recovery tracker as of {as_of}")
    create_markdown_artifact(
        key="governance-report",
        markdown=weekly.report_markdown(snapshot) + (
            f"\n\n## The governance pack\n\nPrint-ready pack for the provider governance "
            f"meeting: [{pack.out}](file://{pack.out}) ({pack.actions} actions). Any date, "
            f"location or format: `recovery report governance --as-of {as_of} --out FILE`, "
            f"and `recovery report commissioner|inspector` for the other packs.\n"),
        description=f"Provider governance summary {as_of}")
    for line in snapshot.high:
        create_progress_artifact(progress=float(line.progress_pct),
                                 key=f"progress-{line.ref.lower()}",
                                 description=f"{line.ref}: progress from baseline "
                                             f"{line.baseline:g}% toward {line.target_wording}")
    with db.unit_of_work() as session:
        queued = weekly.queue_weekly_emails(session, snapshot)
        summary = WeeklySummary(
            as_of=as_of, already_run=False, actions=len(snapshot.lines),
            high_risk=len(snapshot.high), weaknesses=len(snapshot.weaknesses),
            emails_queued=queued, escalated=sum(1 for a in snapshot.lines if a.escalated))
        weekly.mark_run(session, "weekly", as_of,
                        summary.model_dump(mode="json", exclude={"as_of", "already_run"}))
    return summary


@cycle_task("open-monthly-assurance")
def open_assurance(as_of: date, flow_run_id: str | None) -> AssuranceWait:
    """Issue (once) the month's assurance request and code to the nominated individual."""
    from recovery.application import assurance
    from tasks.notify import flush_outbox

    with db.unit_of_work() as session:
        wait = assurance.open_request(session, as_of=as_of, flow_run_id=flow_run_id)
    flush_outbox()
    return wait


@cycle_task("record-assurance-minutes")
def record_assurance(month: str, answer: dict[str, object]) -> list[str]:
    """Validate identity and every entry; store the minutes as provider-level evidence."""
    from recovery.application import assurance

    with db.unit_of_work() as session:
        reasons = assurance.apply(session, month=month, answer=answer)
    if reasons:
        get_run_logger().warning("assurance %s refused: %s", month, "; ".join(reasons))
    return reasons
