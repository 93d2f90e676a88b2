"""`recovery people import|away|add`: the staff directory and who is away."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from models.dates import DATE_HELP, parse_day
from models.errors import InvalidInput
from models.planfile import first_error, parse_people
from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.application import registry
from recovery.cli.common import (
    JsonOpt,
    emit,
    out,
    parse_file,
    run,
)
from recovery.settings import get_settings

people_app = typer.Typer(no_args_is_help=True, help="The staff directory.")


@people_app.command("import")
def people_import(path: Path, as_json: JsonOpt = False) -> None:
    """Load the provider, its locations and staff from a YAML people file."""

    def work() -> dict[str, int]:
        people = parse_file(parse_people, path)
        with db.unit_of_work() as session:
            return registry.import_people(session, people)

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(
        f"{result['people_added']} added, {result['people_updated']} updated, "
        f"{result['locations_added']} new locations"))


@people_app.command("away")
def people_away(
    email: str,
    from_day: Annotated[str, typer.Option("--from", help=f"First day away: {DATE_HELP}.")],
    to_day: Annotated[str, typer.Option("--to", help=f"Last day away: {DATE_HELP}.")],
    by: Annotated[str, typer.Option(help="Who records it: the person themselves, or a "
                                         "registered manager, nominated individual or "
                                         "provider lead (email).")],
    as_json: JsonOpt = False,
) -> None:
    """Record an absence: nobody away is chosen as a reviewer, and a sign-off waiting on
    them may be reassigned to a stand-in (`recovery signoff reassign`)."""
    from recovery.application import absences

    def work() -> dict[str, str]:
        starts, ends = parse_day(from_day, "from"), parse_day(to_day, "to")
        with db.unit_of_work() as session:
            row = absences.record_absence(session, email, starts_on=starts, ends_on=ends,
                                          by=by, today=get_settings().today())
            person = repo.person_by_id(session, row.person_id)
            return {"email": person.email, "from": starts.isoformat(), "to": ends.isoformat(),
                    "recorded_by": row.recorded_by}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(
        f"{result['email']} is away from {date.fromisoformat(result['from']):%d/%m/%Y} to "
        f"{date.fromisoformat(result['to']):%d/%m/%Y}"))


@people_app.command("add")
def people_add(
    name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option()],
    provider: Annotated[str, typer.Option()],
    location: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or update one person in the staff directory."""

    from models.planfile import PeopleFile

    def work() -> dict[str, int]:
        try:
            people = PeopleFile.model_validate({"provider": provider, "people": [
                {"name": name, "email": email, "role": role, "location": location}]})
        except ValidationError as exc:
            error = first_error(exc)  # named after the option, not the file's key
            raise InvalidInput(error.field.removeprefix("people.0."), error.rule) from None
        try:
            with db.unit_of_work() as session:
                return registry.import_people(session, people)
        except InvalidInput as exc:
            if exc.field == "people.0.location":  # there is no file here, only the option
                raise InvalidInput("location", (
                    f"'{location}' is not a location in the directory: add it under "
                    "locations (name and code) in a people file and import that")) from None
            raise InvalidInput(exc.field.removeprefix("people.0."), exc.rule) from None

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print("saved"))
