"""Run tags that let the Prefect UI's Runs page answer recovery questions directly."""

from __future__ import annotations

from sqlmodel import Session

from models.lifecycle import WAITS, Status
from models.people import slug
from recovery.adapters import repository as repo
from recovery.adapters.tables import ActionRow


def for_action(session: Session, row: ActionRow) -> list[str]:
    location = repo.location_by_id(session, row.location_id)
    waits = WAITS.get(Status(row.status))
    return [
        "recovery",
        f"action:{row.ref.lower()}",
        f"location:{slug(location.name)}",
        f"risk:{row.risk_level}",
        f"domain:{row.risk_domain}",
        f"status:{row.status}",
        *([waits[0]] if waits else []),  # awaiting:...: what the suspended run waits for
    ]
