"""`recovery init`, `recovery catalogue [load]` and `recovery templates`: the database, the
quality-statement frameworks and the built-in action templates a provider starts with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from models.catalogue import Framework, builtin_framework
from models.errors import InvalidInput
from models.planfile import first_error, load_yaml
from models.templates import builtin_templates
from recovery.adapters import db
from recovery.application import registry
from recovery.cli.common import (
    JsonOpt,
    emit,
    out,
    parse_file,
    run,
)
from recovery.settings import get_settings

catalogue_app = typer.Typer(invoke_without_command=True,
                            help="Quality statement frameworks (list, load).")


def init(as_json: JsonOpt = False) -> None:
    """Create or upgrade the database and load the built-in quality statements."""

    def work() -> dict[str, Any]:
        db.upgrade()
        with db.unit_of_work() as session:
            registry.initialise(session)
        return {"database": get_settings().db_url, "framework": builtin_framework().framework_id}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(f"Database ready: {result['database']}"))


@catalogue_app.callback()
def catalogue(
    ctx: typer.Context,
    framework: Annotated[str | None, typer.Option(help="Only this framework id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the quality statements of every loaded framework."""
    if ctx.invoked_subcommand:
        return

    def work() -> list[dict[str, str]]:
        with db.unit_of_work() as session:
            return [
                {"framework_id": s.framework_id, "id": s.statement_id,
                 "key_question": s.key_question, "title": s.title}
                for s in registry.statements(session, framework)
            ]

    rows = run(work, as_json)

    def human() -> None:
        table = Table("framework", "id", "key question", "quality statement")
        for r in rows:
            table.add_row(*(escape(r[k]) for k in ("framework_id", "id", "key_question",
                                                   "title")))
        out.print(table)

    emit(rows, as_json, human)


@catalogue_app.command("load")
def catalogue_load(path: Path, as_json: JsonOpt = False) -> None:
    """Load another framework version beside the existing ones."""

    def work() -> dict[str, Any]:
        # the plan files' loader: safe, no aliases (no "billion laughs"), size-capped; and
        # the first validation error as one line naming the field
        raw = parse_file(load_yaml, path)
        if not isinstance(raw, dict):
            raise InvalidInput("file", "a framework file must be a YAML mapping")
        try:
            framework = Framework.model_validate(raw)
        except ValidationError as exc:
            raise first_error(exc) from None
        with db.unit_of_work() as session:
            loaded = registry.load_framework(session, framework)
        return {"framework_id": framework.framework_id, "loaded": loaded,
                "statements": len(framework.quality_statements)}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(
        f"{result['framework_id']}: {'loaded' if result['loaded'] else 'already loaded'}"))


def templates_cmd(as_json: JsonOpt = False) -> None:
    """The built-in action templates (the seed's operational examples)."""
    data = [t.model_dump(mode="json") for t in builtin_templates().values()]

    def human() -> None:
        for t in builtin_templates().values():
            out.print(f"[bold]{t.id}[/bold] ({t.risk_domain.label}): {t.title}")
            for i, step in enumerate(t.steps, 1):
                out.print(f"  {i}. {step.role.label}: {step.action} -> {step.record}",
                          highlight=False)

    emit(data, as_json, human)
