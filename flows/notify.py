"""`recovery-notify`: the one flow the automations run (deployments/automations.py).

Started by an automation with parameters rendered from the triggering event (its resource
id, event id and payload), it queues the email in the product's outbox under a dedupe key
and flushes: when SMTP is down the email stays queued for the next flush, and a trigger
that fires twice sends one email. Staff may also run it from the UI to re-send a notice.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.notify import flush_outbox

Kind = Literal["signoff-waiting", "escalation", "cycle-failed"]


def _name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    subject = str(params.get("subject", ""))
    short = subject.removeprefix("prefect.flow-run.").removeprefix("recovery.action.")
    return f"notify · {params.get('kind', '')} · {short[:40]}"


@task(name="queue-notification", retries=3, retry_delay_seconds=[5, 30, 120],
      cache_policy=NO_CACHE)
def queue_notification(kind: str, subject: str, event_id: str, payload: dict[str, Any],
                       wait_seconds: float | None) -> dict[str, Any]:
    """Who is told what, queued once (retried while the database is unreachable)."""
    from recovery.application.notify import notify

    outcome = notify(kind, subject, event_id=event_id, payload=payload,
                     wait_seconds=wait_seconds)
    logger = get_run_logger()
    if outcome.skipped:
        logger.info("nothing to send: %s", outcome.skipped)
    else:
        logger.info("queued for %s: %s", ", ".join(outcome.recipients),
                    ", ".join(outcome.queued))
    return outcome.model_dump()


@flow(name="recovery-notify", flow_run_name=_name, persist_result=False, log_prints=False)
def recovery_notify(
    kind: Kind,
    subject: str,
    event_id: str = "",
    payload: dict[str, Any] | None = None,
    wait_seconds: float | None = None,
) -> dict[str, Any]:
    """Tell the right person about a wait, an escalation or a failed cycle.

    Args:
        kind: signoff-waiting (email the nominated individual), escalation (the location's
            registered manager) or cycle-failed (the provider lead).
        subject: what it is about: `prefect.flow-run.<id>` of the waiting lifecycle run or
            the failed cycle run, or `recovery.action.<REF>` for an escalation.
        event_id: the triggering event (part of the email's dedupe key).
        payload: the triggering event's payload (an escalation's reasons).
        wait_seconds: the sign-off wait the automation allows (shown in the email).
    """
    outcome = queue_notification(kind, subject, event_id, payload or {}, wait_seconds)
    outcome["mail"] = flush_outbox()
    return outcome
