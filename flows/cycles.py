"""Scheduled review cycles: daily review, weekly governance, monthly assurance."""

from __future__ import annotations

from datetime import date

from prefect import flow

from models.dates import check_as_of
from recovery.settings import get_settings
from tasks import cycle_steps as stage
from tasks.audit import anchor_audit_chain
from tasks.notify import flush_outbox


def _day(as_of: date | None) -> date:
    """The cycle's date: given (a run started from the UI or the API names any date, so it
    keeps to the same horizon as `--as-of`: the run fails naming it), else today."""
    settings = get_settings()
    if as_of is None:
        return settings.today()
    return check_as_of(as_of, today=settings.now().date())


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
    anchor_audit_chain()
    outcome: dict[str, object] = result.model_dump(mode="json")
    return outcome


def _weekly_name() -> str:
    from prefect.runtime import flow_run

    as_of = flow_run.parameters.get("as_of") or get_settings().today()
    return f"weekly governance · {as_of}"


@flow(name="weekly-governance", flow_run_name=_weekly_name, persist_result=False)
def weekly_governance(as_of: date | None = None) -> dict[str, object]:
    """The registered managers' weekly audit and the provider governance summary."""
    day = _day(as_of)
    summary = stage.weekly_summary(day)
    flush_outbox()
    anchor_audit_chain()
    return summary.model_dump(mode="json")


def _monthly_name() -> str:
    from prefect.runtime import flow_run

    as_of = flow_run.parameters.get("as_of") or get_settings().today()
    return f"monthly assurance · {str(as_of)[:7]}"


@flow(name="monthly-assurance", flow_run_name=_monthly_name, persist_result=False)
def monthly_assurance(as_of: date | None = None) -> dict[str, object]:
    """The nominated individual's provider assurance over every high-risk action."""
    from prefect.flow_runs import suspend_flow_run
    from prefect.runtime import flow_run

    from flows.forms import assurance_form

    day = _day(as_of)
    for _ in range(20):
        wait = stage.open_assurance(day, str(flow_run.get_id() or ""))
        if wait.completed:
            anchor_audit_chain()
            return {"month": wait.month, "recorded": True, "actions": wait.refs}
        form = assurance_form(wait.refs)
        answer = suspend_flow_run(
            wait_for_input=form.with_initial_data(description=wait.description),
            key=wait.pause_key, timeout=None,
        )
        stage.record_assurance(wait.month, answer.model_dump())
    raise RuntimeError("monthly assurance made no progress")


MONTHLY_DEPLOYMENT = "monthly-assurance/monthly-assurance"


def monthly_assurance_start(as_of: date) -> dict[str, object]:
    """From the CLI: start the month's assurance run on the served deployment, once: asked
    again for the same month it returns the run already waiting (or completed) instead of
    starting a second one; only a run that crashed, failed or was cancelled is replaced."""
    from prefect.client.schemas.objects import FlowRun, StateType
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from recovery.adapters.prefect_api import deployment_missing

    month = as_of.strftime("%Y-%m")
    dead = {StateType.CRASHED, StateType.FAILED, StateType.CANCELLED, StateType.CANCELLING}
    for attempt in range(50):
        key = f"monthly-assurance:{month}" + (f":{attempt}" if attempt else "")
        try:
            started = run_deployment(MONTHLY_DEPLOYMENT,
                                     parameters={"as_of": as_of.isoformat()},
                                     timeout=0, idempotency_key=key)
        except ObjectNotFound:
            raise deployment_missing(MONTHLY_DEPLOYMENT) from None
        assert isinstance(started, FlowRun)  # a sync caller gets the run, not a coroutine
        run = started
        if run.state is None or run.state.type not in dead:
            break
    return {"month": month, "flow_run_id": str(run.id),
            "url": get_settings().run_url(str(run.id))}
