"""Reference data: the framework catalogue's quality statements and the people file (locations,
people and their roles). Callers wrap each call in one `unit_of_work()`.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from models import directory
from models.catalogue import Framework, builtin_framework
from models.errors import InvalidInput
from models.people import slug
from models.planfile import PeopleFile
from recovery.adapters import audit_log
from recovery.adapters.tables import (
    FrameworkRow,
    LocationRow,
    PersonRow,
    ProviderRow,
    StatementRow,
)


def load_framework(session: Session, framework: Framework) -> bool:
    """Load a framework beside the others; an existing id is left untouched."""
    if not framework.framework_id.strip():
        raise InvalidInput("framework_id", "must not be empty")
    if not framework.quality_statements:
        raise InvalidInput("quality_statements", "a framework needs at least one statement")
    seen: set[str] = set()
    for statement in framework.quality_statements:
        if statement.id in seen:
            raise InvalidInput("quality_statements", f"'{statement.id}' is listed twice")
        seen.add(statement.id)
    if session.get(FrameworkRow, framework.framework_id) is not None:
        return False
    session.add(
        FrameworkRow(framework_id=framework.framework_id, name=framework.name,
                     version=framework.version)
    )
    session.flush()
    for statement in framework.quality_statements:
        session.add(
            StatementRow(framework_id=framework.framework_id, statement_id=statement.id,
                         key_question=statement.key_question, title=statement.title)
        )
    audit_log.append(
        session, actor="system", event="catalogue.loaded", action_ref=None,
        details={"framework_id": framework.framework_id,
                 "statements": len(framework.quality_statements)},
        dedupe_key=f"catalogue:{framework.framework_id}",
    )
    return True


def initialise(session: Session) -> None:
    load_framework(session, builtin_framework())


def statements(session: Session, framework_id: str | None = None) -> list[StatementRow]:
    query = select(StatementRow).order_by(col(StatementRow.framework_id))
    if framework_id:
        query = query.where(StatementRow.framework_id == framework_id)
    return list(session.exec(query))


def _location_code(name: str, taken: set[str]) -> str:
    base = slug(name).split("-")[0].upper()[:6] or "LOC"
    code, n = base, 2
    while code in taken:
        code, n = f"{base}{n}", n + 1
    return code


class _Places:
    """The stored locations, found by name or code, and the codes taken."""

    def __init__(self, session: Session) -> None:
        self.locations = {row.name.lower(): row for row in session.exec(select(LocationRow))}
        self.by_code = {row.code.lower(): row for row in self.locations.values()}
        self.codes = {row.code for row in self.locations.values()}

    def known(self, name: str) -> LocationRow | None:
        # a location is named by its name or its code, trimmed, in any case (as in plans)
        key = name.strip().lower()
        return self.locations.get(key) or self.by_code.get(key)


def _provider(session: Session, people: PeopleFile) -> ProviderRow:
    providers = {row.name: row for row in session.exec(select(ProviderRow))}
    stored = directory.provider_of(people, providers)
    directory.check_locations(people, ((row.name, row.code)
                                       for row in session.exec(select(LocationRow))))
    provider = providers[stored] if stored is not None else None
    if provider is None:
        provider = ProviderRow(name=people.provider)
        session.add(provider)
        session.flush()
    return provider


def _add_locations(session: Session, people: PeopleFile, provider_id: int,
                   places: _Places) -> int:
    wanted: list[tuple[str, str | None]] = []
    for index, loc in enumerate(people.locations):
        if not str(loc.get("name", "")).strip():
            raise InvalidInput(f"locations.{index}.name", "is required")
        wanted.append((loc["name"], loc.get("code")))
    wanted += [(p.location, None) for p in people.people if p.location]
    added_locations = 0
    for name, code in wanted:
        if places.known(name) is not None:
            continue
        if code and code.strip().upper() in places.codes:
            raise InvalidInput(f"locations.{name.strip()}.code",
                               f"code {code.strip().upper()} is already used by another location")
        code = (code.strip() if code else _location_code(name, places.codes)).upper()
        place = LocationRow(provider_id=provider_id, name=name.strip(), code=code)
        session.add(place)
        session.flush()
        places.locations[place.name.lower()] = place
        places.by_code[code.lower()] = place
        places.codes.add(code)
        added_locations += 1
    return added_locations


def _upsert_people(session: Session, people: PeopleFile, places: _Places) -> tuple[int, int]:
    added = updated = 0
    for person in people.people:
        if person.location is None and not person.is_provider_level:
            raise InvalidInput(
                f"people.{person.email}.location",
                f"a {person.role.label} must belong to a location",
            )
        home = places.known(person.location) if person.location else None
        location_id = home.id if home is not None else None
        row = session.exec(select(PersonRow).where(PersonRow.email == person.email)).first()
        if row is None:
            session.add(PersonRow(email=person.email, name=person.name, role=person.role.value,
                                  location_id=location_id))
            added += 1
        else:
            row.name, row.role, row.location_id = person.name, person.role.value, location_id
            session.add(row)
            updated += 1
    return added, updated


def import_people(session: Session, people: PeopleFile, *, actor: str = "system") -> dict[str, int]:
    provider = _provider(session, people)
    assert provider.id is not None
    places = _Places(session)
    added_locations = _add_locations(session, people, provider.id, places)
    added, updated = _upsert_people(session, people, places)
    session.flush()
    audit_log.append(
        session, actor=actor, event="people.imported", action_ref=None,
        details={"provider": people.provider, "added": added, "updated": updated,
                 "locations_added": added_locations},
    )
    return {"people_added": added, "people_updated": updated, "locations_added": added_locations}
