"""The automations of deployments/automations.py put on the Prefect server
(`recovery automations apply`): created when missing, updated when they differ, left alone
when they match, so it can run on every deploy; and checked (`recovery doctor`).

Prefect is imported after `prefect_api.check_server()`, which settles the API URL Prefect
reads once.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from models.errors import InvalidInput
from recovery.adapters import prefect_api
from recovery.application.notify import humanise
from recovery.settings import signoff_wait_from_env

_COMPARED = {"name", "description", "enabled", "tags", "trigger", "actions",
             "actions_on_trigger", "actions_on_resolve"}


def notify_deployment_id(*, create: bool = True) -> UUID | None:
    """The `recovery-notify` deployment, registered now (as `recovery serve` would) when it
    is missing, so automations can be applied before the first serve."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from deployments.automations import NOTIFY_DEPLOYMENT

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(NOTIFY_DEPLOYMENT).id
        except ObjectNotFound:
            if not create:
                return None
    from deployments.definitions import notify_deployment  # imports every flow

    return UUID(str(notify_deployment().apply()))


def apply_automations(signoff_wait: timedelta | None = None) -> list[str]:
    """Create or update, by name, the automations of deployments/automations.py; one line
    per automation: `created: NAME`, `updated: NAME` or `unchanged: NAME`.

    The sign-off wait is `signoff_wait`, else `RECOVERY_SIGNOFF_WAIT_HOURS`, else 48 hours.
    An automation is only rewritten when it differs: Prefect gives an updated trigger a
    new id, which restarts the clock of every sign-off wait in flight."""
    from deployments.automations import MIN_SIGNOFF_WAIT

    try:
        wait = signoff_wait if signoff_wait is not None else signoff_wait_from_env()
    except ValueError as exc:
        raise InvalidInput("RECOVERY_SIGNOFF_WAIT_HOURS", str(exc).split(": ", 1)[-1]) \
            from None
    if wait < MIN_SIGNOFF_WAIT:
        raise InvalidInput("signoff_wait", f"{humanise(wait)} is shorter than "
                           f"{humanise(MIN_SIGNOFF_WAIT)}, Prefect's minimum for a "
                           "proactive trigger")
    prefect_api.check_server()  # before Prefect is imported: it reads the URL once
    from prefect import get_client
    from prefect.automations import AutomationCore

    from deployments.automations import automations

    deployment_id = notify_deployment_id()
    assert deployment_id is not None
    lines = []
    with get_client(sync_client=True) as client:
        for wanted in automations(deployment_id, wait):
            core = AutomationCore(**wanted.model_dump(exclude={"id"}))
            found = client.read_automations_by_name(wanted.name)
            if not found:
                client.create_automation(core)
                lines.append(f"created: {wanted.name}")
                continue
            first, *duplicates = found
            for duplicate in duplicates:
                assert duplicate.id is not None
                client.delete_automation(duplicate.id)
            assert first.id is not None
            if first.model_dump(include=_COMPARED) == core.model_dump(include=_COMPARED) \
                    and not duplicates:
                lines.append(f"unchanged: {wanted.name}")
                continue
            client.update_automation(first.id, core)
            lines.append(f"updated: {wanted.name}")
    return lines


def check_automations() -> str:
    """For `recovery doctor`: every automation applied, enabled and pointing at the
    notify deployment; raises with what is wrong."""
    prefect_api.check_server()
    from prefect import get_client

    from deployments.automations import NAMES, SIGNOFF_WAITING

    deployment_id = notify_deployment_id(create=False)
    if deployment_id is None:
        raise RuntimeError("the recovery-notify deployment is missing (run `recovery serve`, "
                           "then `recovery automations apply`)")
    missing, disabled, stale = [], [], []
    wait: timedelta | None = None
    with get_client(sync_client=True) as client:
        for name in NAMES:
            found = client.read_automations_by_name(name)
            if not found:
                missing.append(name)
                continue
            automation = found[0]
            if not automation.enabled:
                disabled.append(name)
            targets = {getattr(a, "deployment_id", None) for a in automation.actions}
            if deployment_id not in targets:
                stale.append(name)
            if name == SIGNOFF_WAITING:
                wait = getattr(automation.trigger, "within", None)
    if missing:
        raise RuntimeError(f"not applied: {', '.join(missing)} (run `recovery automations "
                           "apply`)")
    if stale:
        raise RuntimeError(f"not running recovery-notify: {', '.join(stale)} (run `recovery "
                           "automations apply`)")
    if disabled:
        raise RuntimeError(f"disabled in the Prefect UI: {', '.join(disabled)}")
    return f"{len(NAMES)} automations enabled; sign-off wait {humanise(wait or timedelta())}"
