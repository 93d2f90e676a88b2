"""What a people file may add to the staff directory already stored: one provider per
database, and no location that the file does not declare."""

from __future__ import annotations

from collections.abc import Iterable

from models.errors import InvalidInput
from models.planfile import PeopleFile


def _key(name: str) -> str:
    """Names and codes are matched trimmed, in any case (as plans name them)."""
    return name.strip().lower()


def provider_of(people: PeopleFile, stored: Iterable[str]) -> str | None:
    """The stored provider the file is for, or None when the database has none yet. A
    file naming another provider is refused: a second provider in one database would mix
    two organisations' locations, staff and reviewers."""
    names = list(stored)
    for name in names:
        if _key(name) == _key(people.provider):
            return name
    if names:
        raise InvalidInput("provider", (
            f"'{people.provider}' is not the provider of this database "
            f"({', '.join(repr(n) for n in names)}): one database holds one provider's "
            "directory"))
    return None


def check_locations(people: PeopleFile, stored: Iterable[tuple[str, str]]) -> None:
    """Every person's location is among the file's `locations` or a stored location (by
    name or code), so a misspelt location is refused instead of becoming a new one."""
    known = {_key(part) for pair in stored for part in pair}
    for entry in people.locations:
        known.update(_key(str(entry[k])) for k in ("name", "code") if entry.get(k))
    for index, person in enumerate(people.people):
        if person.location is not None and _key(person.location) not in known:
            raise InvalidInput(f"people.{index}.location", (
                f"'{person.location}' is not among the file's locations nor a location "
                "already in the directory: list it under locations (name and code)"))
