"""Prefect Automations that make waiting visible, shipped as code.

Applied (updated or created by name, so re-applying changes nothing else) with
`recovery automations apply` (`deployments.sync.apply_automations`). Every one of them
runs the `recovery-notify` deployment (flows/notify.py), which writes the email to the
product's outbox with a dedupe key and then flushes it: when SMTP is down the email stays
queued and goes with the next flush, and a trigger that fires twice sends one email.

1. **Sign-off waiting too long** (proactive): a lifecycle run (flow `high-risk-action`)
   entered `Suspended` and no further state change of that run followed within the wait
   (48 hours; `RECOVERY_SIGNOFF_WAIT_HOURS`). Prefect emits `prefect.flow-run.Suspended`
   when `suspend_flow_run` suspends it and `prefect.flow-run.Resuming` when it is resumed
   (then `Pending`, `Running`, ...; a `pause_flow_run` pause would be
   `prefect.flow-run.Paused` then `Running`). The notify run checks that the run is still
   waiting for a sign-off (pause key `plan-signoff-...` or `closure-signoff-...`), not for
   the lead's closure request, before it emails the nominated individual.
2. **Escalation** (reactive): the daily review emits `recovery.action.escalated` (resource
   `recovery.action.<REF>`); the registered manager of the action's location is told.
3. **Failed review cycle** (reactive): a `daily-review`, `weekly-governance` or
   `monthly-assurance` flow run ends `Failed`, `Crashed` or `TimedOut`; the provider lead
   is told, with the command that re-runs the date.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, RunDeployment

NOTIFY_FLOW = "recovery-notify"
NOTIFY_DEPLOYMENT = f"{NOTIFY_FLOW}/{NOTIFY_FLOW}"
TAG = "recovery"

SIGNOFF_WAITING = "recovery · sign-off waiting too long"
ESCALATED = "recovery · escalation tells the registered manager"
CYCLE_FAILED = "recovery · failed review cycle tells the provider lead"
NAMES = (SIGNOFF_WAITING, ESCALATED, CYCLE_FAILED)

#: Prefect refuses a proactive trigger with a window under 10 seconds.
MIN_SIGNOFF_WAIT = timedelta(seconds=10)

LIFECYCLE_FLOW = "high-risk-action"
CYCLE_FLOWS = ["daily-review", "weekly-governance", "monthly-assurance"]
CYCLE_FAILURES = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed",
                  "prefect.flow-run.TimedOut"}


def _text(template: str) -> dict[str, str]:
    """A Jinja parameter rendered as text (a bare `{{ x }}` would be rendered `| tojson`,
    which a UUID does not survive)."""
    return {"__prefect_kind": "jinja", "template": template}


def _notify(deployment_id: UUID, kind: str, **extra: object) -> RunDeployment:
    # Single-expression templates are rendered from the triggering event (for the
    # proactive trigger, the `prefect.flow-run.Suspended` event that opened the window).
    return RunDeployment(
        source="selected",
        deployment_id=deployment_id,
        parameters={
            "kind": kind,
            "subject": _text("{{ event.resource.id }}"),
            "event_id": _text("{{ event.id }}"),
            "payload": "{{ event.payload }}",  # a dict: Prefect renders it `| tojson`
            **extra,
        },
    )


def automations(deployment_id: UUID, signoff_wait: timedelta) -> list[Automation]:
    """The three automations, pointing at the `recovery-notify` deployment.

    Long because it is a declaration: three automations with their triggers and actions
    written out as Prefect takes them, read and reviewed as one list."""
    if signoff_wait < MIN_SIGNOFF_WAIT:
        raise ValueError(f"the sign-off wait must be at least {MIN_SIGNOFF_WAIT.seconds} "
                         f"seconds (Prefect's minimum for a proactive trigger)")
    hours = signoff_wait.total_seconds() / 3600
    wait_text = f"{hours:g} hours" if hours >= 1 else f"{signoff_wait.total_seconds():g} s"
    return [
        Automation(
            name=SIGNOFF_WAITING,
            description=(
                f"A lifecycle run suspended for a plan or closure sign-off and not resumed "
                f"within {wait_text}: email the nominated individual (recovery-notify, "
                "through the outbox). Waits for the lead's closure request are ignored."
            ),
            tags=[TAG],
            trigger=EventTrigger(
                after={"prefect.flow-run.Suspended"},
                # any later state change of the same run ends the wait (a new Suspended
                # opens a new window)
                expect={"prefect.flow-run.*"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related={"prefect.resource.role": "flow",
                               "prefect.resource.name": LIFECYCLE_FLOW},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=signoff_wait,
            ),
            actions=[_notify(deployment_id, "signoff-waiting",
                             wait_seconds=signoff_wait.total_seconds())],
        ),
        Automation(
            name=ESCALATED,
            description=(
                "`recovery.action.escalated` (emitted by the daily review): email the "
                "registered manager of the action's location (recovery-notify, through the "
                "outbox; no second email when the daily review already told them)."
            ),
            tags=[TAG],
            trigger=EventTrigger(
                expect={"recovery.action.escalated"},
                match={"prefect.resource.id": "recovery.action.*"},
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[_notify(deployment_id, "escalation")],
        ),
        Automation(
            name=CYCLE_FAILED,
            description=(
                "A daily review, weekly governance or monthly assurance run ended Failed, "
                "Crashed or TimedOut: email the provider lead with the command that re-runs "
                "the date (recovery-notify, through the outbox)."
            ),
            tags=[TAG],
            trigger=EventTrigger(
                expect=set(CYCLE_FAILURES),
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related={"prefect.resource.role": "flow",
                               "prefect.resource.name": list(CYCLE_FLOWS)},
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[_notify(deployment_id, "cycle-failed")],
        ),
    ]
