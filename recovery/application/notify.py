"""`notify()`: what the `recovery-notify` flow run started by an automation
(deployments/automations.py, applied by deployments/sync.py) does: decide who is told
what, and queue it in the outbox under a dedupe key (the flow then flushes)."""

from __future__ import annotations

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
        from recovery.application import absences, signoff_codes

        row = repo.get_action(session, ref)
        outcome.ref = row.ref
        reviewer = repo.person_by_id(session, row.senior_reviewer_id)
        request = signoff_codes.current_request(session, row.id or 0, SignoffKind(kind))
        if request is not None and request.used_at is None:  # a stand-in may hold it
            reviewer = repo.find_person(session, request.reviewer_email) or reviewer
        location = repo.location_by_id(session, row.location_id)
        nominated = _people(session, "nominated_individual")
        if not nominated:
            outcome.skipped = "no nominated individual in the staff directory"
            return outcome
        today = settings.today()
        away = absences.away(session, reviewer.email, today)
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
                         for p in absences.standins_for(session, row, reviewer.email, today)],
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
