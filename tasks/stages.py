"""Stages of a high-risk action's lifecycle as Prefect tasks.

Each task is thin: one unit of work, one call into
recovery.application (transitions, signoff_codes, signoffs, closure_requests, ...),
a small return value. Each is idempotent against the database, because the flow restarts
from the top after every resume: a re-run finds the work done and changes nothing.
"""

from __future__ import annotations

from datetime import time
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from models.lifecycle import Status
from models.review import progress_share
from models.signoff import SignoffKind, Submission
from recovery.adapters import audit_log, db, mail
from recovery.adapters import repository as repo
from recovery.application import closure_requests, signoff_codes, signoff_waits, signoffs
from recovery.application.forms import action_brief
from recovery.settings import get_settings
from tasks.kinds import db_task
from tasks.notify import flush_outbox


class WaitForm(BaseModel):
    """What a flow suspends on: the wait's key and the words above its form."""

    pause_key: str
    description: str


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


@db_task("sync-run-tags")
def sync_run_tags(action_ref: str) -> Status:
    """Rewrite this run's tags to follow the action (status, risk, location, awaiting), so
    the Runs page filters answer recovery questions directly; returns the status read."""
    from prefect import get_client
    from prefect.runtime import flow_run

    from recovery.adapters import tags

    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        wanted = tags.for_action(session, row)
    run_id = flow_run.get_id()
    if run_id:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(UUID(run_id)).tags
            desired = sorted({t for t in current if t.split(":", 1)[0] not in _MANAGED}
                             | set(wanted))
            if sorted(current) != desired:
                client.update_flow_run(UUID(run_id), tags=desired)
    return Status(row.status)


_MANAGED = {"action", "location", "risk", "domain", "status", "awaiting"}



@db_task("audit-risk-rating")
def audit_risk_rating(action_ref: str) -> str:
    """1. Audit the risk rating (rated from the five factors when the plan was opened)."""
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


@db_task("confirm-accountability")
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


@db_task("audit-baseline-and-controls")
def audit_baseline_and_controls(action_ref: str) -> int:
    """3. Audit the baseline and the interim controls that protect people meanwhile (both
    stored with the plan); returns how many interim controls there are."""
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


@db_task("audit-review-cadence")
def audit_review_cadence(action_ref: str) -> str:
    """4. Audit the review frequency that matches the risk (derived from the rating)."""
    from recovery.application.summaries import cadence_of

    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        cadence = cadence_of(row, get_settings().today())
        audit_log.append(
            session, actor="lifecycle", event="stage.cadence_set", action_ref=row.ref,
            details={"cadence": cadence.value},
            dedupe_key=f"stage.cadence:{row.ref}:{row.plan_version}",
        )
        return cadence.value


@db_task("submit-plan-for-signoff")
def submit_plan(action_ref: str) -> Status:
    """A draft plan goes to its senior reviewer (interim controls required if high)."""
    from recovery.application.transitions import submit_plan as submit

    with db.unit_of_work() as session:
        row = repo.get_action(session, action_ref)
        if row.status == Status.DRAFT.value:
            submit(session, action_ref, actor="lifecycle")
        return Status(row.status)


@db_task("request-signoff")
def request_signoff(action_ref: str, kind: SignoffKind, flow_run_id: str | None) -> WaitForm:
    """Issue (once) a one-time code to the named senior reviewer and build the form text."""
    with db.unit_of_work() as session:
        wait = signoff_codes.open_signoff(session, action_ref, kind, flow_run_id=flow_run_id)
        description = action_brief(session, action_ref, wait=wait)
        publish_wait(session, action_ref)
    flush_outbox()
    return WaitForm(pause_key=wait.pause_key, description=description)


@db_task("apply-signoff")
def apply_signoff(
    action_ref: str, kind: SignoffKind, pause_key: str, submission: Submission
) -> signoff_waits.SignoffOutcome:
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


@db_task("closure-request-wait")
def closure_request_wait(action_ref: str) -> WaitForm:
    """The key and form text for waiting on the lead's closure request."""
    with db.unit_of_work() as session:
        wait = closure_requests.closure_wait(session, action_ref)
        description = action_brief(session, action_ref, wait=wait)
        progress, wording = _progress(session, action_ref)
        publish_wait(session, action_ref)
    create_progress_artifact(
        progress=progress, key=_artifact_key("progress", action_ref),
        description=f"{action_ref}: {wording}")
    return WaitForm(pause_key=wait.pause_key, description=description)


def _progress(session: Any, action_ref: str) -> tuple[float, str]:
    """How far the latest review's measure has come from the baseline toward the target."""
    row = repo.get_action(session, action_ref)
    reviews = repo.reviews_of(session, row.id or 0)
    measured = next((r.measured_value for r in reversed(reviews)
                     if r.measured_value is not None), None)
    share = progress_share(row.baseline_value, row.target_value, measured)
    if measured is None or share is None:
        return 0.0, f"no measured review yet; baseline {row.baseline_value:g}%"
    return share, (f"{measured:g}% at the last review, from a baseline of "
                   f"{row.baseline_value:g}% toward {row.target_value:g}%")


@db_task("record-closure-request")
def record_closure_request(
    action_ref: str, pause_key: str, requested_by: str, summary: str
) -> signoff_waits.SignoffOutcome:
    """6. The accountable lead asks for closure (recorded once)."""
    with db.unit_of_work() as session:
        outcome = closure_requests.record_closure_request(session, action_ref, pause_key=pause_key,
                                                  requested_by=requested_by, summary=summary)
    flush_outbox()  # a refusal is told to the lead at once
    return outcome


class ClosureRefused(Exception):
    """The triangulation gate refused closure: the task ends Failed with every reason."""


@task(name="triangulation-gate", retries=0, cache_policy=NO_CACHE)
def triangulation_gate(action_ref: str) -> str:
    """7. Closure only when care records, audits, feedback and staff practice agree."""
    with db.unit_of_work() as session:
        outcome = closure_requests.evaluate_closure_gate(session, action_ref)
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


@db_task("note-revision-wake")
def note_revision_wake(action_ref: str, pause_key: str) -> None:
    with db.unit_of_work() as session:
        signoff_waits.note_revision_wake(session, action_ref, pause_key=pause_key)


@db_task("revision-wait")
def revision_wait(action_ref: str) -> WaitForm:
    with db.unit_of_work() as session:
        wait = signoff_waits.revision_wait(session, action_ref)
        description = action_brief(session, action_ref, wait=wait)
        publish_wait(session, action_ref)
    return WaitForm(pause_key=wait.pause_key, description=description)


@db_task("enter-routine-monitoring")
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
