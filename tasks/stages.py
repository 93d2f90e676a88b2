"""Stages of a high-risk action's lifecycle as Prefect tasks.

Each task is thin: one unit of work, one call into
recovery.application.services / recovery.application.signoffs,
a small return value. Each is idempotent against the database, because the flow restarts
from the top after every resume: a re-run finds the work done and changes nothing.
"""

from __future__ import annotations

from datetime import time
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact
from prefect.cache_policies import NO_CACHE

from models.lifecycle import Status
from models.signoff import SignoffKind, Submission
from recovery.adapters import audit_log, db, mail
from recovery.adapters import repository as repo
from recovery.application import signoffs
from recovery.application.forms import action_brief
from recovery.settings import get_settings
from tasks.notify import flush_outbox

DB_TASK = {"retries": 2, "retry_delay_seconds": 2, "cache_policy": NO_CACHE}


def _artifact_key(prefix: str, ref: str) -> str:
    return f"{prefix}-{ref.lower()}"


def _since(at: Any) -> str:
    """A wait that began on a day (recovery started, reopened) is shown as the day."""
    from recovery.adapters import mail

    local = at.astimezone(get_settings().tz)
    return local.strftime("%d/%m/%Y") if local.time() == time() else mail.uk_datetime(at)


def publish_wait(session: Any, action_ref: str) -> None:
    """The run's `waiting-<ref>` artifact, updated in place at every wait: what the run waits
    for, from whom (name and role), since when and how to answer, readable on the run's
    page without pressing Resume (or that it waits on nobody)."""
    from recovery.adapters import mail

    row = repo.get_action(session, action_ref)
    wait = signoffs.awaiting(session, row)
    body = mail.environment().get_template("artifacts/waiting.md").render(
        w=wait, ref=row.ref, status=row.status.replace("_", " "),
        since=_since(wait.since) if wait and wait.since else "")
    create_markdown_artifact(
        key=_artifact_key("waiting", action_ref), markdown=body,
        description=(f"{action_ref} waits for {wait.awaiting} from {wait.name}" if wait
                     else f"{action_ref} waits on nobody"))


@task(name="current-status", **DB_TASK)
def current_status(action_ref: str) -> Status:
    """Where the action stands now; the run's tags follow it (status, risk, location), so
    the Runs page filters answer recovery questions directly."""
    from prefect import get_client
    from prefect.runtime import flow_run

    from recovery.adapters import tags

    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        wanted = tags.for_action(session, row)
    run_id = flow_run.get_id()
    if run_id:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(run_id).tags
            desired = sorted({t for t in current if t.split(":", 1)[0] not in _MANAGED}
                             | set(wanted))
            if sorted(current) != desired:
                client.update_flow_run(run_id, tags=desired)
    return Status(row.status)


_MANAGED = {"action", "location", "risk", "domain", "status", "awaiting"}



@task(name="rate-risk", **DB_TASK)
def rate_risk(action_ref: str) -> str:
    """1. Rate the risk from the five factors (rated when the plan was opened)."""
    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        audit_log.append(
            session, actor="lifecycle", event="stage.risk_rated", action_ref=row.ref,
            details={"level": row.risk_level, "score": row.risk_score,
                     "reasons": row.risk_reasons},
            dedupe_key=f"stage.risk_rated:{row.ref}:{row.plan_version}",
        )
        get_run_logger().info("%s rated %s (score %s)", row.ref, row.risk_level, row.risk_score)
        return row.risk_level


@task(name="confirm-accountability", **DB_TASK)
def confirm_accountability(action_ref: str) -> str:
    """2. One accountable lead and a different, senior reviewer (checked again here)."""
    from models.action import check_accountability

    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        lead = repo.person_by_id(session, row.accountable_lead_id)
        reviewer = repo.person_by_id(session, row.senior_reviewer_id)
        check_accountability(repo.to_person(lead), repo.to_person(reviewer))
        audit_log.append(
            session, actor="lifecycle", event="stage.accountability_confirmed",
            action_ref=row.ref,
            details={"accountable_lead": lead.email, "senior_reviewer": reviewer.email},
            dedupe_key=f"stage.accountability:{row.ref}:{row.plan_version}",
        )
        get_run_logger().info("%s: lead %s, senior reviewer %s", row.ref, lead.name,
                              reviewer.name)
        return reviewer.email


@task(name="record-baseline-and-controls", **DB_TASK)
def record_baseline(action_ref: str) -> int:
    """3. The baseline and the interim controls that protect people meanwhile."""
    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        plan = repo.plan_of(row)
        audit_log.append(
            session, actor="lifecycle", event="stage.baseline_recorded", action_ref=row.ref,
            details={"baseline_value": plan.baseline.value,
                     "baseline_on": plan.baseline.as_of.isoformat(),
                     "interim_controls": list(plan.interim_controls)},
            dedupe_key=f"stage.baseline:{row.ref}:{row.plan_version}",
        )
        return len(plan.interim_controls)


@task(name="set-review-cadence", **DB_TASK)
def set_review_cadence(action_ref: str) -> str:
    """4. Review frequency that matches the risk."""
    from recovery.application.services import cadence_of

    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        cadence = cadence_of(row, get_settings().today())
        audit_log.append(
            session, actor="lifecycle", event="stage.cadence_set", action_ref=row.ref,
            details={"cadence": cadence.value},
            dedupe_key=f"stage.cadence:{row.ref}:{row.plan_version}",
        )
        return cadence.value


@task(name="submit-plan-for-signoff", **DB_TASK)
def submit_plan(action_ref: str) -> Status:
    """A draft plan goes to its senior reviewer (interim controls required if high)."""
    from recovery.application.services import submit_plan as submit

    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        if row.status == Status.DRAFT.value:
            submit(session, action_ref, actor="lifecycle")
        return Status(row.status)


@task(name="request-signoff", **DB_TASK)
def request_signoff(action_ref: str, kind: SignoffKind, flow_run_id: str | None) -> dict[str, str]:
    """Issue (once) a one-time code to the named senior reviewer and build the form text."""
    with db.unit_of_work() as session:
        wait = signoffs.open_signoff(session, action_ref, kind, flow_run_id=flow_run_id)
        description = action_brief(session, action_ref, wait=wait)
        publish_wait(session, action_ref)
    flush_outbox()
    return {"pause_key": wait.pause_key, "description": description}


@task(name="apply-signoff", **DB_TASK)
def apply_signoff(
    action_ref: str, kind: SignoffKind, pause_key: str, submission: Submission
) -> signoffs.SignoffOutcome:
    """Validate the reviewer's decision in the domain and apply it exactly once."""
    with db.unit_of_work() as session:
        outcome = signoffs.apply_signoff(session, action_ref, kind, pause_key=pause_key,
                                         submission=submission)
    logger = get_run_logger()
    if outcome.applied:
        logger.info("%s: %s sign-off %s by %s", action_ref, kind.value, outcome.decision,
                    submission.reviewer_email)
    else:
        logger.warning("%s: %s sign-off refused: %s", action_ref, kind.value,
                       "; ".join(outcome.reasons))
    flush_outbox()
    return outcome


@task(name="closure-request-wait", **DB_TASK)
def closure_request_wait(action_ref: str) -> dict[str, str]:
    """The key and form text for waiting on the lead's closure request."""
    with db.unit_of_work() as session:
        wait = signoffs.closure_wait(session, action_ref)
        description = action_brief(session, action_ref, wait=wait)
        progress, wording = _progress(session, action_ref)
        publish_wait(session, action_ref)
    create_progress_artifact(
        progress=progress, key=_artifact_key("progress", action_ref),
        description=f"{action_ref}: {wording}")
    return {"pause_key": wait.pause_key, "description": description}


def _progress(session: Any, action_ref: str) -> tuple[float, str]:
    """How far the latest review's measure has come from the baseline toward the target."""
    row = repo.get_action(session, action_ref)
    reviews = repo.reviews_of(session, row.id or 0)
    measured = next((r.measured_value for r in reversed(reviews)
                     if r.measured_value is not None), None)
    span = row.target_value - row.baseline_value
    if measured is None or span == 0:
        return 0.0, f"no measured review yet; baseline {row.baseline_value:g}%"
    share = max(0.0, min(100.0, (measured - row.baseline_value) / span * 100))
    return share, (f"{measured:g}% at the last review, from a baseline of "
                   f"{row.baseline_value:g}% toward {row.target_value:g}%")


@task(name="record-closure-request", **DB_TASK)
def record_closure_request(
    action_ref: str, pause_key: str, requested_by: str, summary: str
) -> signoffs.SignoffOutcome:
    """6. The accountable lead asks for closure (recorded once)."""
    with db.unit_of_work() as session:
        outcome = signoffs.record_closure_request(session, action_ref, pause_key=pause_key,
                                                  requested_by=requested_by, summary=summary)
    flush_outbox()  # a refusal is told to the lead at once
    return outcome


class ClosureRefused(Exception):
    """The triangulation gate refused closure: the task ends Failed with every reason."""


@task(name="triangulation-gate", retries=0, cache_policy=NO_CACHE)
def triangulation_gate(action_ref: str) -> str:
    """7. Closure only when care records, audits, feedback and staff practice agree."""
    with db.unit_of_work() as session:
        outcome = signoffs.evaluate_closure_gate(session, action_ref)
        row = repo.get_action(session, action_ref)
        attempt = repo.latest_closure_request(session, row.id or 0)
    number = attempt.attempt if attempt else 0
    body = mail.environment().get_template("artifacts/gate_verdict.md").render(
        ref=action_ref, attempt=number, passed=outcome.applied, reasons=outcome.reasons)
    create_markdown_artifact(key=_artifact_key("gate", action_ref), markdown=body,
                             description=f"Triangulation gate verdict for {action_ref}")
    flush_outbox()
    if not outcome.applied:
        raise ClosureRefused(f"{action_ref}: closure refused: " + "; ".join(outcome.reasons))
    return "passed"


@task(name="note-revision-wake", **DB_TASK)
def note_revision_wake(action_ref: str, pause_key: str) -> None:
    with db.unit_of_work() as session:
        signoffs.note_revision_wake(session, action_ref, pause_key=pause_key)


@task(name="revision-wait", **DB_TASK)
def revision_wait(action_ref: str) -> dict[str, str]:
    with db.unit_of_work() as session:
        wait = signoffs.revision_wait(session, action_ref)
        description = action_brief(session, action_ref, wait=wait)
        publish_wait(session, action_ref)
    return {"pause_key": wait.pause_key, "description": description}


@task(name="enter-routine-monitoring", **DB_TASK)
def enter_routine_monitoring(action_ref: str) -> None:
    """9. Routine monitoring: controls stay active until the improvement is sustained."""
    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        audit_log.append(
            session, actor="lifecycle", event="stage.routine_monitoring", action_ref=row.ref,
            details={"since": row.monitoring_since.isoformat() if row.monitoring_since else None},
            dedupe_key=f"stage.monitoring:{row.ref}:{row.monitoring_since}",
        )
        publish_wait(session, action_ref)
