"""Operations jobs as tasks: the same services the CLI calls, the same messages."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.planfile import plan_from_mapping
from recovery.adapters import db
from recovery.application import action_plans, evidence_gate, summaries
from recovery.settings import get_settings


@task(name="open-action", retries=0, cache_policy=NO_CACHE)
def open_action_task(plan: dict[str, Any], opened_by: str) -> dict[str, Any]:
    """Validate and record the action, then start its lifecycle run."""
    from recovery.adapters import prefect_api

    parsed = plan_from_mapping(plan)
    with db.unit_of_work() as session:
        row = action_plans.open_action(session, parsed, actor=opened_by)
        ref = row.ref
    prefect_api.start_lifecycle(ref)
    with db.unit_of_work() as session:
        from recovery.adapters import repository as repo

        summary = summaries.summary(session, repo.get_action(session, ref),
                                   as_of=get_settings().today())
    return summary.model_dump(mode="json")


@task(name="record-evidence", retries=0, cache_policy=NO_CACHE)
def record_evidence_task(**kwargs: Any) -> dict[str, Any]:
    """Record one evidence item through the domain's validation."""
    today = kwargs.pop("today")
    with db.unit_of_work() as session:
        row = evidence_gate.add_evidence(
            session, kwargs["action_ref"], source=kwargs["source"], value=kwargs["value"],
            sample_size=kwargs["sample_size"], observed_on=kwargs["observed_on"],
            reference=kwargs["reference"], by=kwargs["recorded_by"], today=today,
        )
        return {"id": row.id, "ref": kwargs["action_ref"], "pillar": row.pillar}


@task(name="import-evidence", retries=0, cache_policy=NO_CACHE)
def import_evidence_task(file: str, imported_by: str, dry_run: bool) -> dict[str, Any]:
    """Read a file from the evidence inbox and import it, all or nothing (the CLI's code);
    a refused file fails the task naming every bad row and column, never a cell's text."""
    from recovery.application import evidence_import

    data, name = evidence_import.read_from_inbox(file)
    result = evidence_import.import_evidence(data, name=name, by=imported_by,
                                             dry_run=dry_run)
    return result.model_dump(mode="json")


@task(name="record-absence", retries=0, cache_policy=NO_CACHE)
def record_absence_task(email: str, starts_on: Any, ends_on: Any, by: str) -> dict[str, Any]:
    """Record an absence through the same rules as `recovery people away`."""
    from recovery.application import absences

    with db.unit_of_work() as session:
        row = absences.record_absence(session, email, starts_on=starts_on, ends_on=ends_on,
                                      by=by, today=get_settings().today())
        return {"absence_id": row.id, "email": email.strip().lower(),
                "from": starts_on.isoformat(), "to": ends_on.isoformat()}


@task(name="reassign-signoff", retries=0, cache_policy=NO_CACHE)
def reassign_signoff_task(action_ref: str, to: str, by: str, reason: str) -> dict[str, Any]:
    """Hand the waiting sign-off to a stand-in, as `recovery signoff reassign` does, and
    wake the action's run so it waits under the new key."""
    from recovery.adapters import mail, prefect_api
    from recovery.application import standins

    with db.unit_of_work() as session:
        done = standins.reassign(session, action_ref, to=to, by=by, reason=reason)
    mail.flush()
    prefect_api.wake_answered_wait(done.ref)
    return done.model_dump()
