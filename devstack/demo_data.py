"""The demo's application data: the database, the staff directory and the three example
plans opened and their lifecycle runs started. Part of `python -m devstack.demo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devstack.demo_config import (
    PEOPLE_FILE,
    PLAN_FILES,
)

# ---------------------------------------------------------------- application data


def prepare_database() -> None:
    """`recovery init` and `recovery people import examples/people.yaml`, once."""
    from sqlmodel import select

    from models.planfile import parse_people
    from recovery.adapters import db
    from recovery.adapters.tables import PersonRow
    from recovery.application import registry

    db.upgrade()
    people = parse_people(PEOPLE_FILE.read_bytes())
    with db.unit_of_work() as session:
        registry.initialise(session)
        known = {row.email for row in session.exec(select(PersonRow))}
        if any(person.email not in known for person in people.people):
            registry.import_people(session, people, actor="demo")


@dataclass
class Opened:
    plan: Path
    ref: str
    new: bool
    has_run: bool
    started: bool = False
    note: str | None = None


def open_examples() -> list[Opened]:
    """`recovery action open --no-flow` for each example plan not open yet. An action is
    the plan's when it has the same location and title."""
    from sqlmodel import select

    from models.planfile import parse_plan
    from recovery.adapters import db
    from recovery.adapters import repository as repo
    from recovery.adapters.tables import ActionRow
    from recovery.application import action_plans

    results = []
    for path in PLAN_FILES:
        plan = parse_plan(path.read_bytes())
        title = " ".join(plan.title.split()).casefold()
        with db.unit_of_work() as session:
            location = repo.get_location(session, plan.location)
            rows = session.exec(select(ActionRow).where(ActionRow.location_id == location.id))
            existing = next((row for row in rows
                             if " ".join(row.title.split()).casefold() == title), None)
            new = existing is None
            if existing is None:
                existing = action_plans.open_action(session, plan, actor="demo")
            results.append(Opened(path, existing.ref, new=new,
                                  has_run=bool(existing.flow_run_id)))
    return results


def prepare_data() -> list[Opened]:
    """Everything that needs only the application database (no Prefect server)."""
    prepare_database()
    return open_examples()


def start_runs(opened: list[Opened]) -> None:
    """`recovery action start` for each action without a lifecycle run (started once: the
    product keys the start, so even a start cut short before its id was stored is not
    repeated)."""
    from recovery.adapters import prefect_api

    for item in opened:
        if not item.has_run:
            item.note = prefect_api.start_or_explain(item.ref)
            item.started = item.note is None


