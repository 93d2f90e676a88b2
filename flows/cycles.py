"""Scheduled review cycles: daily review, weekly governance, monthly assurance."""

from __future__ import annotations

from datetime import date

from prefect import flow

from recovery.settings import get_settings
from tasks import cycles as stage
from tasks.notify import flush_outbox


def _day(as_of: date | None) -> date:
    return as_of or get_settings().today()


def _daily_name() -> str:
    from prefect.runtime import flow_run

    as_of = flow_run.parameters.get("as_of") or get_settings().today()
    return f"daily review · {as_of}"


@flow(name="daily-review", flow_run_name=_daily_name, persist_result=False)
def daily_review(as_of: date | None = None) -> dict[str, object]:
    """Review every open action that is due, rate it, escalate weak progress."""
    day = _day(as_of)
    result = stage.review_due_actions(day)
    stage.emit_escalation_events()
    if result.reopened:
        stage.restart_reopened(result.reopened)
    flush_outbox()
    return result.model_dump(mode="json")
