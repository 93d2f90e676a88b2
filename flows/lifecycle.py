"""One flow run per high-risk action: the process a registered manager would describe.

rate -> assign -> baseline and controls -> cadence -> plan sign-off -> in recovery (wait
for the lead's closure request) -> triangulation gate -> closure sign-off -> routine
monitoring.

Every wait is a `suspend_flow_run` (no process is held for weeks) under a key derived from
stored state, and the run restarts from the top after each resume: the loop reads the
action's status each time round and the tasks are idempotent, so nothing happens twice.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.flow_runs import suspend_flow_run
from prefect.runtime import flow_run

from flows.forms import ClosureRequestForm, RevisionNotice, SignoffForm
from models.lifecycle import Status
from models.signoff import SignoffKind, Submission
from tasks import stages as stage

#: Guard against a loop that never suspends (each turn either waits or moves the status).
MAX_TURNS = 50


@flow(name="high-risk-action", log_prints=False, persist_result=False)
def high_risk_action(action_ref: str) -> str:
    """Run one high-risk recovery action from plan to routine monitoring."""
    logger = get_run_logger()
    stage.audit_risk_rating(action_ref)
    stage.confirm_accountability(action_ref)
    stage.audit_baseline_and_controls(action_ref)
    stage.audit_review_cadence(action_ref)

    for _ in range(MAX_TURNS):
        status = stage.sync_run_tags(action_ref)
        if status == Status.DRAFT:
            stage.submit_plan(action_ref)
        elif status == Status.AWAITING_PLAN_SIGNOFF:
            signoff(action_ref, SignoffKind.PLAN)
        elif status == Status.PLAN_REJECTED:
            wait = stage.revision_wait(action_ref)
            suspend_flow_run(
                wait_for_input=RevisionNotice.with_initial_data(description=wait.description),
                key=wait.pause_key, timeout=None,
            )
            stage.note_revision_wake(action_ref, wait.pause_key)
        elif status in (Status.IN_RECOVERY, Status.REOPENED):
            wait = stage.closure_request_wait(action_ref)
            request = suspend_flow_run(
                wait_for_input=ClosureRequestForm.with_initial_data(
                    description=wait.description),
                key=wait.pause_key, timeout=None,
            )
            stage.record_closure_request(action_ref, wait.pause_key, request.requested_by,
                                         request.summary)
        elif status == Status.CLOSURE_REQUESTED:
            verdict = stage.triangulation_gate(action_ref, return_state=True)
            if verdict.is_failed():
                logger.warning("%s: closure refused by the gate; back to recovery", action_ref)
        elif status == Status.AWAITING_CLOSURE_SIGNOFF:
            signoff(action_ref, SignoffKind.CLOSURE)
        elif status == Status.ROUTINE_MONITORING:
            stage.enter_routine_monitoring(action_ref)
            return Status.ROUTINE_MONITORING.value
        else:
            return status.value
    raise RuntimeError(f"{action_ref}: the lifecycle made no progress in {MAX_TURNS} turns")


def signoff(action_ref: str, kind: SignoffKind) -> None:
    """Ask the named senior reviewer; suspend until they answer; apply it once."""
    wait = stage.request_signoff(action_ref, kind, str(flow_run.get_id() or ""))
    answer = suspend_flow_run(
        wait_for_input=SignoffForm.with_initial_data(description=wait.description),
        key=wait.pause_key, timeout=None,
    )
    stage.apply_signoff(
        action_ref, kind, wait.pause_key,
        Submission(reviewer_email=answer.reviewer_email, code=answer.code,
                   decision=answer.decision, rationale=answer.rationale),
    )
