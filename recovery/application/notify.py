"""Waiting made visible in Prefect, and configuration where Prefect users look for it.

- `apply_automations()`: put the automations of deployments/automations.py on the Prefect
  server (`recovery automations apply`): created when missing, updated when they differ,
  left alone when they match, so it can run on every deploy.
- `notify()`: what the `recovery-notify` flow run started by an automation does: decide
  who is told what, and queue it in the outbox under a dedupe key (the flow then flushes).
- `save_smtp_secret()`: the SMTP password in a Prefect Secret block
  (`recovery smtp set-secret NAME`), read by recovery.adapters.mail when
  `RECOVERY_SMTP_SECRET_BLOCK` names it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel
from sqlmodel import Session, col, select

from models.errors import InvalidInput, NotFound
from recovery.adapters import db, mail
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    EscalationRow,
    LocationRow,
    OutboxRow,
    PersonRow,
    as_utc,
)
from recovery.settings import get_settings

NotifyKind = Literal["signoff-waiting", "escalation", "cycle-failed"]
KINDS: tuple[str, ...] = ("signoff-waiting", "escalation", "cycle-failed")

_CYCLES = {
    "daily-review": ("daily", "reviewed"),
    "weekly-governance": ("weekly", "audited and summarised"),
    "monthly-assurance": ("monthly", "given the nominated individual's assurance"),
}


class NotifyOutcome(BaseModel):
    kind: str
    subject: str
    ref: str | None = None
    queued: list[str] = []
    """Dedupe keys of the emails queued (or found already queued) by this run."""
    recipients: list[str] = []
    skipped: str | None = None
    """Why nothing was queued (the run is no longer waiting, already told...)."""


# --------------------------------------------------------------------------- notify


def notify(
    kind: str, subject: str, *, event_id: str = "", payload: dict[str, Any] | None = None,
    wait_seconds: float | None = None,
) -> NotifyOutcome:
    """Queue the email an automation asks for. `subject` is the triggering event's
    resource id: `prefect.flow-run.<id>` (sign-off waiting, cycle failed) or
    `recovery.action.<REF>` (escalation); a bare flow run id or reference also works."""
    if kind not in KINDS:
        raise InvalidInput("kind", f"'{kind}' is not one of {', '.join(KINDS)}")
    payload = payload or {}
    if kind == "escalation":
        return _escalation(subject, event_id, payload)
    run_id = _flow_run_id(subject)
    if kind == "signoff-waiting":
        return _signoff_waiting(subject, run_id, wait_seconds)
    return _cycle_failed(subject, run_id)


def _flow_run_id(subject: str) -> UUID:
    raw = subject.strip().removeprefix("prefect.flow-run.")
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidInput("subject", f"'{subject}' is not a flow run") from None


def _read_run(run_id: UUID) -> tuple[Any, str]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        flow = client.read_flow(run.flow_id)
    return run, flow.name


def _people(session: Session, role: str, location_id: int | None = None) -> list[PersonRow]:
    query = select(PersonRow).where(PersonRow.role == role)
    if location_id is not None:
        query = query.where(PersonRow.location_id == location_id)
    return list(session.exec(query.order_by(col(PersonRow.email))))


def _queue_each(
    session: Session, people: list[PersonRow], *, key: str, template: str,
    context: dict[str, Any], ref: str | None, outcome: NotifyOutcome,
) -> NotifyOutcome:
    """One email per person (each is addressed by name), each under its own key."""
    for person in people:
        [row] = mail.enqueue(session, dedupe_key=f"{key}:{person.email}", to=[person.email],
                           template=template, action_ref=ref,
                           context={**context, "recipient_name": person.name})
        outcome.queued.append(row.dedupe_key)
        outcome.recipients.append(person.email)
    return outcome


def humanise(delta: timedelta) -> str:
    """`2 days 3 hours`, `5 hours 10 minutes`, `40 seconds`."""
    seconds = max(0, int(delta.total_seconds()))
    parts = []
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts[:2]) or "0 seconds"


def _signoff_waiting(subject: str, run_id: UUID, wait_seconds: float | None) -> NotifyOutcome:
    outcome = NotifyOutcome(kind="signoff-waiting", subject=subject)
    run, flow_name = _read_run(run_id)
    state = run.state
    if flow_name != "high-risk-action":
        outcome.skipped = f"{run.name} is a {flow_name} run, not a lifecycle run"
        return outcome
    if state is None or not state.is_paused():
        outcome.skipped = (f"{run.name} is no longer waiting "
                           f"({state.name if state else 'no state'})")
        return outcome
    key = state.state_details.pause_key or ""
    if not key.startswith(("plan-signoff-", "closure-signoff-")):
        what = ("the lead's closure request" if key.startswith("closure-request-") else
                "a revised plan" if key.startswith("plan-revision-") else "input")
        outcome.skipped = f"{run.name} waits for {what} ({key}), not for a sign-off"
        return outcome
    kind = key.split("-", 1)[0]
    ref = str(run.parameters.get("action_ref") or "")
    settings = get_settings()
    since = as_utc(state.timestamp)
    waited = datetime.now(UTC) - since
    with db.unit_of_work() as session:
        if not ref:
            found = session.exec(select(ActionRow).where(
                ActionRow.flow_run_id == str(run_id))).first()
            if found is None:
                outcome.skipped = f"no action has lifecycle run {run_id}"
                return outcome
            ref = found.ref
        from models.signoff import SignoffKind
        from recovery.application import signoffs, standins

        row = repo.get_action(session, ref)
        outcome.ref = row.ref
        reviewer = repo.person_by_id(session, row.senior_reviewer_id)
        request = signoffs.current_request(session, row.id or 0, SignoffKind(kind))
        if request is not None and request.used_at is None:  # a stand-in may hold it
            reviewer = repo.find_person(session, request.reviewer_email) or reviewer
        location = repo.location_by_id(session, row.location_id)
        nominated = _people(session, "nominated_individual")
        if not nominated:
            outcome.skipped = "no nominated individual in the staff directory"
            return outcome
        today = settings.today()
        away = standins.away(session, reviewer.email, today)
        context = {
            "ref": row.ref, "title": row.title, "location": location.name, "kind": kind,
            "risk_level": row.risk_level, "reviewer_name": reviewer.name,
            "reviewer_email": reviewer.email, "since": since.astimezone(settings.tz),
            "waited": humanise(waited),
            "limit": humanise(timedelta(seconds=wait_seconds)) if wait_seconds else
            "time",
            "run_url": settings.run_url(str(run_id)),
            "away_until": away.ends_on if away else None,
            "standins": [{"name": p.name, "email": p.email, "role": p.role.label}
                         for p in standins.standins_for(session, row, reviewer.email, today)],
            "reassign_cli": f"recovery signoff reassign {row.ref} --to EMAIL --by "
                            "YOUR-EMAIL --reason TEXT",
        }
        return _queue_each(session, nominated, key=f"notify:signoff-waiting:{row.ref}:{key}",
                           template="signoff_overdue", context=context, ref=row.ref,
                           outcome=outcome)


def _escalation(subject: str, event_id: str, payload: dict[str, Any]) -> NotifyOutcome:
    outcome = NotifyOutcome(kind="escalation", subject=subject)
    ref = str(payload.get("ref") or subject.strip().removeprefix("recovery.action."))
    opened_on = str(payload.get("opened_on") or "")
    settings = get_settings()
    with db.unit_of_work() as session:
        try:
            row = repo.get_action(session, ref)
        except NotFound:
            outcome.skipped = f"no such action '{ref}'"
            return outcome
        outcome.ref = row.ref
        location = session.get(LocationRow, row.location_id)
        managers = _people(session, "registered_manager", row.location_id)
        if not managers:  # nobody registered at the location: the provider lead hears
            managers = _people(session, "provider_lead")
        if not managers:
            outcome.skipped = f"no registered manager for {location.name if location else ''}"
            return outcome
        escalations = list(session.exec(
            select(EscalationRow).where(EscalationRow.action_id == row.id)
            .order_by(col(EscalationRow.id).desc())))
        escalation = next((e for e in escalations if opened_on and
                           e.opened_on.isoformat() == opened_on), None)
        if escalation is None and not opened_on:
            escalation = next((e for e in escalations if e.resolved_on is None), None)
        if escalation is not None:
            # The daily review emails lead, reviewer and registered managers when it
            # escalates; the automation adds nothing for whoever that email reached.
            told = session.exec(select(OutboxRow).where(
                OutboxRow.dedupe_key == f"escalation:{row.ref}:{escalation.id}")).first()
            if told is not None:
                already = set(told.recipients)
                managers = [m for m in managers if m.email not in already]
                if not managers:
                    outcome.skipped = (f"the daily review's escalation email "
                                       f"(outbox {told.id}) already reached the registered "
                                       f"manager")
                    outcome.queued.append(told.dedupe_key)
                    return outcome
        reasons = payload.get("reasons") or (escalation.reasons if escalation else [])
        which = (str(escalation.id) if escalation is not None
                 else opened_on or event_id or "latest")
        context = {
            "ref": row.ref, "title": row.title,
            "location": location.name if location else "",
            "opened_on": opened_on or (escalation.opened_on.isoformat() if escalation else ""),
            "reasons": [str(r) for r in reasons] if isinstance(reasons, list) else [],
            "run_url": settings.run_url(row.flow_run_id),
        }
        return _queue_each(session, managers, key=f"notify:escalation:{row.ref}:{which}",
                           template="escalation_notice", context=context, ref=row.ref,
                           outcome=outcome)


def _cycle_failed(subject: str, run_id: UUID) -> NotifyOutcome:
    outcome = NotifyOutcome(kind="cycle-failed", subject=subject)
    run, flow_name = _read_run(run_id)
    if flow_name not in _CYCLES:
        outcome.skipped = f"{run.name} is a {flow_name} run, not a review cycle"
        return outcome
    state = run.state
    if state is None or not (state.is_failed() or state.is_crashed()):
        outcome.skipped = f"{run.name} did not fail ({state.name if state else 'no state'})"
        return outcome
    settings = get_settings()
    cycle, what = _CYCLES[flow_name]
    as_of = run.parameters.get("as_of")
    if not as_of:
        started = run.expected_start_time or run.start_time or datetime.now(UTC)
        as_of = as_utc(started).astimezone(settings.tz).date().isoformat()
    as_of = str(as_of) if not isinstance(as_of, date) else as_of.isoformat()
    message = (state.message or "").strip().splitlines()
    context = {
        "run_name": run.name, "cycle": cycle, "state_name": state.name or state.type.value,
        "ended": as_utc(state.timestamp).astimezone(settings.tz),
        "message": message[0][:300] if message else "",
        "what": what, "rerun": f"recovery review run {cycle} --as-of {as_of}",
        "run_url": settings.run_url(str(run_id)),
    }
    with db.unit_of_work() as session:
        leads = _people(session, "provider_lead") or _people(session, "nominated_individual")
        if not leads:
            outcome.skipped = "no provider lead in the staff directory"
            return outcome
        return _queue_each(session, leads, key=f"notify:cycle-failed:{run_id}",
                           template="cycle_failed", context=context, ref=None,
                           outcome=outcome)


# --------------------------------------------------------------------------- automations

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
    from deployments.definitions import notify_deployment

    return UUID(str(notify_deployment().apply()))


def apply_automations(signoff_wait: timedelta | None = None) -> list[str]:
    """Create or update, by name, the automations of deployments/automations.py; one line
    per automation: `created: NAME`, `updated: NAME` or `unchanged: NAME`.

    The sign-off wait is `signoff_wait`, else `RECOVERY_SIGNOFF_WAIT_HOURS`, else 48 hours.
    An automation is only rewritten when it differs: Prefect gives an updated trigger a
    new id, which restarts the clock of every sign-off wait in flight."""
    from deployments.automations import MIN_SIGNOFF_WAIT, signoff_wait_from_env
    from recovery.adapters import prefect_api

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
    from recovery.adapters import prefect_api

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


# --------------------------------------------------------------------------- SMTP secret

_BLOCK_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def save_smtp_secret(name: str, password: str) -> str:
    """Store the SMTP password in a Prefect Secret block named `name` (replacing its
    value); returns the name. Set `RECOVERY_SMTP_SECRET_BLOCK=<name>` where mail is sent."""
    name = name.strip()
    if not _BLOCK_NAME.match(name):
        raise InvalidInput("name", f"'{name}' is not a block name: use lowercase letters, "
                                   "digits and dashes")
    if not password:
        raise InvalidInput("password", "is empty")
    from recovery.adapters import prefect_api

    prefect_api.check_server()
    from prefect.blocks.system import Secret

    Secret(value=password).save(name, overwrite=True)
    return name


def load_smtp_secret(name: str) -> str:
    """The password held by the Secret block (what recovery.adapters.mail sends with)."""
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name)
    except ValueError as exc:
        raise RuntimeError(f"Secret block '{name}' not found on the Prefect server "
                           f"(`recovery smtp set-secret {name}`)") from exc
    # called from synchronous code only, where Prefect's dispatch returns the block itself
    assert isinstance(block, Secret), "load_smtp_secret is called outside an event loop"
    return str(block.get())
