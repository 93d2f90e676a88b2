"""The `recovery` command line.

Exit codes: 0 done; 2 bad input (one line naming the field and the rule); 3 refused by a
rule (every reason listed); 1 unexpected. Every command takes --json.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click import exceptions as usage  # typer vendors click (pinned 0.29.2)
from typer.core import TyperGroup

from models.catalogue import Framework, builtin_framework
from models.dates import DATE_HELP, check_as_of, parse_day
from models.errors import DomainError, InvalidInput, NotFound, RuleRefused
from models.planfile import MAX_FILE_BYTES, first_error, load_yaml, parse_people, parse_plan
from models.templates import builtin_templates
from recovery.adapters import audit_log, db
from recovery.adapters import repository as repo
from recovery.adapters.orchestration import PrefectBusy, PrefectUnavailable
from recovery.application import services
from recovery.settings import get_settings, settings_error

T = TypeVar("T")


def lazy_module(name: str) -> ModuleType:
    """The module `name`, executed at its first attribute access (importlib's LazyLoader).
    For modules a few commands need and whose imports are heavy (reports: Jinja2, the
    packs' models, WeasyPrint when printing; spreadsheets: openpyxl): every other command
    starts without them."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


#: An error line echoes at most this much of what was typed (a 1 MB field stays one line).
MAX_ERROR_CHARS = 500


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """What a person typed, fit for one line of stderr: control characters (newlines, ANSI
    escapes) shown escaped, and capped."""
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return flat if len(flat) <= limit else flat[:limit] + f"... ({len(flat)} characters)"


class OneLineErrors(TyperGroup):
    """Click's own usage errors (a non-numeric --value, a missing --by, an unknown option)
    keep the CLI's contract: exit 2 with one line naming the field, or `{"error", "field"}`
    on stderr with --json, instead of a boxed usage message."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        undecodable = _not_utf8(argv)
        if undecodable is not None:
            _usage_error(usage.UsageError(undecodable[1]), as_json="--json" in argv,
                         field=undecodable[0])
        try:
            get_settings()
        except ValidationError as exc:
            # a bad setting (an undeliverable RECOVERY_MAIL_FROM) is bad input, said once,
            # before any command reads it
            try:
                fail(settings_error(exc), "--json" in argv)
            except typer.Exit as stop:
                sys.exit(stop.exit_code)
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except usage.NoArgsIsHelpError:
            return super().main(argv, prog_name, complete_var, True, **extra)
        except usage.UsageError as exc:
            _usage_error(exc, as_json="--json" in argv)
        except usage.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            err.print("Aborted.")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _not_utf8(argv: list[str]) -> tuple[str, str] | None:
    """(field, message) for the first argument that was not UTF-8 on the command line
    (Python keeps such bytes as lone surrogates, which no database accepts)."""
    for index, arg in enumerate(argv):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raw = arg.encode("utf-8", "surrogateescape")
            option, _, _ = arg.partition("=")
            before = argv[index - 1] if index else ""
            name = option if arg.startswith("--") and "=" in arg else \
                before if before.startswith("--") else ""
            field = name.lstrip("-").replace("-", "_") or f"argument {index + 1}"
            return field, f"is not UTF-8 text: {str(raw)[2:-1]}"
    return None


def _usage_error(exc: usage.UsageError, *, as_json: bool, field: str | None = None
                 ) -> NoReturn:
    param = getattr(exc, "param", None)
    if field is not None:
        message = exc.format_message()
    elif isinstance(exc, usage.NoSuchOption):
        field = exc.option_name.lstrip("-").replace("-", "_")
        message = f"is not an option of this command: {exc.option_name}"
        if exc.possibilities:
            message += f" (did you mean {', '.join(sorted(exc.possibilities))}?)"
    elif isinstance(exc, usage.BadParameter) and param is not None and param.name:
        field = param.name
        message = (exc.format_message() if isinstance(exc, usage.MissingParameter)
                   else exc.message)
    else:
        field, message = "command", exc.format_message()
    if as_json:
        sys.stderr.write(json.dumps({"error": one_line(message), "field": field}) + "\n")
    else:
        err.print(f"[red]error[/red] {escape(field)}: {escape(one_line(message))}",
                  highlight=False)
    sys.exit(2)


app = typer.Typer(no_args_is_help=True, add_completion=False, cls=OneLineErrors,
                  help="Run high-risk CQC recovery actions: rate, assign, review, gate, sign off.")
action_app = typer.Typer(no_args_is_help=True, help="Open, show, list, revise and extend actions.")
evidence_app = typer.Typer(no_args_is_help=True, help="Record evidence against an action.")
people_app = typer.Typer(no_args_is_help=True, help="The staff directory.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit trail.")
catalogue_app = typer.Typer(invoke_without_command=True,
                            help="Quality statement frameworks (list, load).")
app.add_typer(action_app, name="action")
app.add_typer(evidence_app, name="evidence")
app.add_typer(people_app, name="people")
app.add_typer(audit_app, name="audit")
app.add_typer(catalogue_app, name="catalogue")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    else:
        human()


def fail(exc: BaseException, as_json: bool) -> NoReturn:
    # messages echo what people typed: never let it be read as rich markup, break the
    # line or run to a megabyte
    if isinstance(exc, InvalidInput | NotFound):
        field, rule = one_line(exc.field, 200), one_line(exc.rule)
        if as_json:
            sys.stderr.write(json.dumps({"error": rule, "field": field}) + "\n")
        else:
            err.print(f"[red]error[/red] {escape(field)}: {escape(rule)}", highlight=False)
        raise typer.Exit(2)
    if isinstance(exc, RuleRefused):
        reasons = [one_line(r) for r in exc.reasons]
        if as_json:
            sys.stderr.write(json.dumps({"error": f"refused by {exc.rule}", "field": exc.rule,
                                         "reasons": reasons}) + "\n")
        else:
            err.print(f"[red]refused[/red] by {escape(exc.rule)}:", highlight=False)
            for reason in reasons:
                err.print(f"  - {reason}", highlight=False, markup=False)
        raise typer.Exit(3)
    if isinstance(exc, PrefectUnavailable):
        prefect_line(str(exc), as_json)
        raise typer.Exit(4)
    if isinstance(exc, db.DatabaseBusy | PrefectBusy):
        # another writer held the database past the busy timeout and every retry, or the
        # Prefect server answered "busy" to every retry: nothing was written, and saying so
        # is the whole message
        field = "database" if isinstance(exc, db.DatabaseBusy) else "prefect"
        if as_json:
            sys.stderr.write(json.dumps({"error": one_line(str(exc)), "field": field}) + "\n")
        else:
            err.print(f"[red]error[/red] {field}: {escape(one_line(str(exc)))}",
                      highlight=False)
        raise typer.Exit(1)
    if _no_tables(exc):
        message = "the database has no tables yet: run `recovery init` first"
        if as_json:
            sys.stderr.write(json.dumps({"error": message, "field": "database"}) + "\n")
        else:
            err.print(f"[red]error[/red] database: {message}", highlight=False)
        raise typer.Exit(1)
    if as_json:
        sys.stderr.write(json.dumps({"error": f"unexpected: {one_line(str(exc))}",
                                     "field": None}) + "\n")
    else:
        err.print(f"[red]unexpected error[/red]: {escape(one_line(repr(exc)))}",
                  highlight=False)
    raise typer.Exit(1)


def _no_tables(exc: BaseException) -> bool:
    """A command run before `recovery init`: SQLite says "no such table", PostgreSQL
    "relation ... does not exist" (UndefinedTable)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    text = str(exc)
    return (isinstance(exc, OperationalError) and "no such table" in text) or (
        isinstance(exc, ProgrammingError) and "UndefinedTable" in type(exc.orig).__name__)


def prefect_line(message: str, as_json: bool) -> None:
    """What Prefect lacks and how to start it: one line on stderr (exit 4 follows)."""
    if as_json:
        sys.stderr.write(json.dumps({"error": one_line(message), "field": "prefect"}) + "\n")
    else:
        err.print(f"[red]error[/red] prefect: {escape(one_line(message))}", highlight=False)


def run(work: Callable[[], T], as_json: bool) -> T:
    try:
        return work()
    except typer.Exit:
        raise
    except DomainError as exc:
        fail(exc, as_json)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        fail(exc, as_json)


def as_of_day(value: str | None) -> date:
    """`--as-of` given (within the horizon of `models.dates.check_as_of`, held against the
    real calendar), else the business date."""
    settings = get_settings()
    if value is None:
        return settings.today()
    return check_as_of(parse_day(value, "as_of"), today=settings.now().date())


def read_file(path: Path, field: str = "file", *, limit: int) -> bytes:
    """At most limit + 1 bytes: enough for the parser to refuse a file over its bound
    without holding a huge one (or an endless one, such as /dev/zero) in memory."""
    try:
        with path.open("rb") as handle:
            return handle.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(field, f"cannot read {path}: {exc.strerror}") from None


def parse_file(parse: Callable[[bytes], T], path: Path) -> T:
    """Read and parse a plan or people file; a value YAML itself cannot construct (PyYAML
    raises a bare ValueError for a date like 2026-11-31) is bad input, not unexpected."""
    data = read_file(path, limit=MAX_FILE_BYTES)
    try:
        return parse(data)
    except DomainError:
        raise
    except ValueError as exc:
        raise InvalidInput("file", f"is not valid YAML: {exc}") from None


# ---------------------------------------------------------------- setup


@app.command()
def init(as_json: JsonOpt = False) -> None:
    """Create or upgrade the database and load the built-in quality statements."""

    def work() -> dict[str, Any]:
        db.upgrade()
        with db.unit_of_work() as session:
            services.initialise(session)
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
                for s in services.statements(session, framework)
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
            loaded = services.load_framework(session, framework)
        return {"framework_id": framework.framework_id, "loaded": loaded,
                "statements": len(framework.quality_statements)}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(
        f"{result['framework_id']}: {'loaded' if result['loaded'] else 'already loaded'}"))


@app.command("templates")
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


# ---------------------------------------------------------------- people


@people_app.command("import")
def people_import(path: Path, as_json: JsonOpt = False) -> None:
    """Load the provider, its locations and staff from a YAML people file."""

    def work() -> dict[str, int]:
        people = parse_file(parse_people, path)
        with db.unit_of_work() as session:
            return services.import_people(session, people)

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
    from pydantic import ValidationError

    from models.planfile import PeopleFile, first_error

    def work() -> dict[str, int]:
        try:
            people = PeopleFile.model_validate({"provider": provider, "people": [
                {"name": name, "email": email, "role": role, "location": location}]})
        except ValidationError as exc:
            error = first_error(exc)  # named after the option, not the file's key
            raise InvalidInput(error.field.removeprefix("people.0."), error.rule) from None
        try:
            with db.unit_of_work() as session:
                return services.import_people(session, people)
        except InvalidInput as exc:
            if exc.field == "people.0.location":  # there is no file here, only the option
                raise InvalidInput("location", (
                    f"'{location}' is not a location in the directory: add it under "
                    "locations (name and code) in a people file and import that")) from None
            raise InvalidInput(exc.field.removeprefix("people.0."), exc.rule) from None

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print("saved"))


# ---------------------------------------------------------------- actions


def _print_summary(s: services.ActionSummary) -> None:
    # titles, locations and emails are typed by people: shown as text, never as markup
    out.print(f"[bold]{s.ref}[/bold] · {escape(s.title)}", highlight=False)
    out.print(f"  location: {escape(s.location)}   domain: {s.risk_domain}   "
              f"status: {s.status}")
    out.print(f"  risk: [bold]{s.risk.level}[/bold] (score {s.risk.score})   "
              f"review: {s.review_cadence}")
    for reason in s.risk.reasons:
        out.print(f"    - {reason}", highlight=False, markup=False)
    out.print(f"  accountable lead: {escape(s.accountable_lead)}   senior reviewer: "
              f"{escape(s.senior_reviewer)}")
    out.print(f"  baseline: {s.baseline['value']}% on {s.baseline['as_of']}   target: "
              f"{s.target['direction'].replace('_', ' ')} {s.target['value']}% by "
              f"{s.target['deadline']}")
    r = s.rating
    measured = f"measured {r.measured:g}%" if r.measured is not None else "no measure recorded"
    when = f" at the review of {r.as_of:%d/%m/%Y}" if r.as_of else ""
    out.print(f"  rating: [bold]{r.label}[/bold] ({r.rag}){when}: {measured}", highlight=False)
    if r.triggers:
        out.print(f"  open triggers: {', '.join(t.replace('_', ' ') for t in r.triggers)}",
                  highlight=False)
    for reason in r.reasons:
        out.print(f"    - {reason}", highlight=False, markup=False)
    if s.flow_run_id:
        out.print(f"  run: {get_settings().run_url(s.flow_run_id)}")


@action_app.command("open")
def action_open(
    path: Path,
    no_flow: Annotated[bool, typer.Option("--no-flow", help="Do not start the lifecycle run.")]
    = False,
    by: Annotated[str, typer.Option(help="Who opens it (audit trail).")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Validate a plan file, rate the risk and record the action."""
    settings = get_settings()

    flags: list[str] = []

    def work() -> services.ActionSummary:
        from recovery.application import absences

        plan = parse_file(parse_plan, path)
        with db.unit_of_work() as session:
            row = services.open_action(session, plan, actor=by)
            flag = absences.reviewer_away_at_opening(session, row)
            if flag:
                flags.append(flag)
                audit_log.append(session, actor="system", event="signoff.reviewer_away",
                                 action_ref=row.ref, details={"flag": flag},
                                 dedupe_key=f"signoff.reviewer_away:{row.ref}:opened")
            return services.summary(session, row, as_of=settings.today())

    summary = run(work, as_json)
    for flag in flags:
        err.print(f"[yellow]flag[/yellow] {escape(flag)}", highlight=False)
    message = None
    if not no_flow:
        from recovery.adapters import prefect_api

        message = prefect_api.start_or_explain(summary.ref)
        if message is None:
            with db.unit_of_work() as session:
                summary = services.summary(session, repo.get_action(session, summary.ref),
                                           as_of=settings.today())
    data = summary.model_dump(mode="json")
    data["flags"] = flags
    if message:
        data["flow"] = message

    emit(data, as_json, lambda: _print_summary(summary))
    if message:  # recorded as a draft, but its run did not start
        prefect_line(message, as_json)
        raise typer.Exit(4)


@action_app.command("show")
def action_show(ref: str, as_json: JsonOpt = False) -> None:
    """Everything about one action."""
    settings = get_settings()

    def work() -> services.ActionSummary:
        with db.unit_of_work() as session:
            return services.summary(session, repo.get_action(session, ref),
                                    as_of=settings.today())

    summary = run(work, as_json)
    emit(summary.model_dump(mode="json"), as_json, lambda: _print_summary(summary))


@action_app.command("list")
def action_list(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    level: Annotated[str | None, typer.Option(help="Only this risk level.")] = None,
    location: Annotated[str | None, typer.Option(help="Only this location.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The risk-rated tracker."""
    settings = get_settings()

    def work() -> list[services.ActionSummary]:
        with db.unit_of_work() as session:
            rows = services.list_actions(session, status=status, level=level, location=location)
            return services.summaries(session, rows, as_of=settings.today())

    items = run(work, as_json)

    def human() -> None:
        table = Table("ref", "title", "location", "risk", "score", "status", "review")
        for s in items:
            not_started = s.status == "draft" and s.flow_run_id is None
            table.add_row(s.ref, escape(s.title), escape(s.location), s.risk.level,
                          str(s.risk.score), "not started" if not_started else s.status,
                          s.review_cadence)
        out.print(table)
        for s in items:  # identified but never started: say since when and why
            if s.status == "draft" and s.flow_run_id is None:
                out.print(f"{s.ref}: not started (draft since {s.opened_on:%d/%m/%Y}, no "
                          f"lifecycle run); start it with: recovery action start {s.ref}",
                          soft_wrap=True, highlight=False)

    emit([s.model_dump(mode="json") for s in items], as_json, human)


@action_app.command("extend")
def action_extend(
    ref: str,
    deadline: Annotated[str, typer.Option(help=f"New deadline: {DATE_HELP}.")],
    control_change: Annotated[str, typer.Option(help="The operational control that changes.")],
    by: Annotated[str, typer.Option(help="Who decided (email).")],
    as_json: JsonOpt = False,
) -> None:
    """Extend a deadline: refused for a high-risk action without a change of control."""
    settings = get_settings()

    def work() -> dict[str, str]:
        new = parse_day(deadline, "deadline")
        with db.unit_of_work() as session:
            row = services.extend_deadline(session, ref, new_deadline=new,
                                           control_change=control_change, by=by,
                                           today=settings.today())
            return {"ref": row.ref, "deadline": row.deadline.isoformat()}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(f"{result['ref']}: deadline {result['deadline']}"))


@action_app.command("revise")
def action_revise(
    ref: str, path: Path,
    by: Annotated[str, typer.Option(help="The accountable lead (email).")],
    as_json: JsonOpt = False,
) -> None:
    """Record a revised plan after the reviewer rejected it; sign-off is asked again."""
    settings = get_settings()

    def work() -> services.ActionSummary:
        plan = parse_file(parse_plan, path)
        with db.unit_of_work() as session:
            row = services.revise_plan(session, ref, plan, actor=by)
            return services.summary(session, row, as_of=settings.today())

    summary = run(work, as_json)
    from recovery.adapters import prefect_api

    message = run(lambda: prefect_api.nudge(summary.ref), as_json)
    emit(summary.model_dump(mode="json"), as_json, lambda: _print_summary(summary))
    if message:  # recorded, but the run waiting for it was not woken
        prefect_line(message, as_json)
        raise typer.Exit(4)


@action_app.command("start")
def action_start(ref: str, as_json: JsonOpt = False) -> None:
    """Start the lifecycle run of an action left as a draft (or wake the run of a revision
    recorded while the Prefect server was down)."""
    from recovery.adapters import prefect_api

    def work() -> dict[str, str]:
        with db.unit_of_work() as session:
            row = repo.get_action(session, ref)
        prefect_api.start_lifecycle(row.ref)
        prefect_api.nudge_lifecycle(row.ref)
        with db.unit_of_work() as session:
            row = repo.get_action(session, ref)
        return {"ref": row.ref, "flow_run_id": row.flow_run_id or "",
                "url": get_settings().run_url(row.flow_run_id)}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(f"{result['ref']}: run {result['url']}"))


@action_app.command("reopen")
def action_reopen(
    ref: str,
    by: Annotated[str, typer.Option(help="Who reopens it (email): a registered manager, "
                                         "nominated individual or provider lead.")],
    reason: Annotated[str, typer.Option(help="Why it is reopened (at least 20 characters).")],
    as_json: JsonOpt = False,
) -> None:
    """Reopen a closed action: back to recovery in a new lifecycle run, with a fresh closure
    path (the gate counts evidence observed from today). The old run's history is kept."""
    from recovery.adapters import prefect_api

    settings = get_settings()

    def work() -> dict[str, Any]:
        with db.unit_of_work() as session:
            row = services.reopen_action(session, ref, by=by, reason=reason,
                                         today=settings.today())
            return {"ref": row.ref, "status": row.status, "reopened_on": settings.today()}

    result = run(work, as_json)
    try:
        prefect_api.start_lifecycle(result["ref"])
    except PrefectUnavailable as exc:
        emit(result, as_json, lambda: out.print(f"{result['ref']} reopened", highlight=False))
        prefect_line(f"{exc}; {result['ref']} is reopened but its new run did not start: "
                     f"then run `recovery action start {result['ref']}`", as_json)
        raise typer.Exit(4) from None
    with db.unit_of_work() as session:
        run_id = repo.get_action(session, result["ref"]).flow_run_id or ""
    result |= {"flow_run_id": run_id, "url": settings.run_url(run_id)}
    emit(result, as_json, lambda: out.print(
        f"{result['ref']} reopened on {result['reopened_on']:%d/%m/%Y}: back in recovery; "
        f"only evidence observed from that day counts toward closing it. New run "
        f"{result['url']}", highlight=False))


# ---------------------------------------------------------------- evidence and gate


@evidence_app.command("add")
def evidence_add(
    ref: str,
    source: Annotated[str, typer.Option(help="care_records, audits, feedback, staff_practice, "
                                             "incident_trends, safeguarding_logs, "
                                             "medicines_records, rota_evidence, "
                                             "governance_minutes")],
    observed_on: Annotated[str, typer.Option(help=f"Date observed: {DATE_HELP}.")],
    reference: Annotated[str, typer.Option(help="Where the record lives (no personal details).")],
    by: Annotated[str, typer.Option(help="Who recorded it (email).")],
    value: Annotated[float | None, typer.Option(help="Measured percentage 0-100.")] = None,
    sample: Annotated[int | None, typer.Option(help="Sample size behind the value.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one evidence item."""
    settings = get_settings()

    def work() -> dict[str, Any]:
        observed = parse_day(observed_on, "observed_on")
        with db.unit_of_work() as session:
            row = services.add_evidence(
                session, ref, source=source, value=value, sample_size=sample,
                observed_on=observed, reference=reference, by=by, today=settings.today(),
            )
            return {"id": row.id, "ref": repo.normalise_ref(ref), "source": row.source,
                    "pillar": row.pillar, "value": row.value, "observed_on": row.observed_on}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(
        f"evidence {result['id']} recorded ({result['pillar']})"))


@app.command()
def gate(
    ref: str,
    as_of: Annotated[str | None, typer.Option("--as-of", help=f"Evaluate as of: {DATE_HELP}.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate the triangulation gate now (exit 3 when closure would be refused)."""
    settings = get_settings()

    def work() -> Any:
        day = as_of_day(as_of)
        with db.unit_of_work() as session:
            return services.gate_verdict(session, ref, as_of=day,
                                         freshness_days=settings.evidence_freshness_days)

    verdict = run(work, as_json)
    data = {"ref": repo.normalise_ref(ref), "passed": verdict.passed,
            "reasons": list(verdict.reasons), "as_of": verdict.as_of.isoformat()}

    def human() -> None:
        if verdict.passed:
            out.print(f"[green]gate passed[/green] for {data['ref']}")
        else:
            out.print(f"[red]closure refused[/red] for {data['ref']}:")
            for reason in verdict.reasons:
                out.print(f"  - {reason}", highlight=False, markup=False)

    emit(data, as_json, human)
    if not verdict.passed:
        raise typer.Exit(3)


# ---------------------------------------------------------------- audit


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[list[str] | None, typer.Option(
        "--anchor", help="An anchor SEQ:HASH kept elsewhere (e.g. from a weekly email); "
                         "repeatable.")] = None,
    prefect: Annotated[bool, typer.Option(
        help="Also read the audit-anchor artifacts from the Prefect server.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the hash chain and hold it against every anchor kept outside the database
    (the anchor file, Prefect's audit-anchor artifacts, --anchor); exit 3 if any entry was
    altered, or entries were deleted."""
    from recovery.adapters import anchors as anchoring
    from recovery.adapters import prefect_api

    sources: list[str] = []

    def work() -> Any:
        known = [anchoring.parse(a) for a in anchor or []]
        if known:
            sources.append(f"{len(known)} given")
        from_file = anchoring.read_file()
        known += from_file
        sources.append(f"{len(from_file)} in {anchoring.anchor_file()}")
        if prefect:
            try:
                prefect_api.check_server()
                from_prefect = anchoring.read_artifacts()
                known += from_prefect
                sources.append(f"{len(from_prefect)} Prefect artifacts")
            except ConnectionError as exc:
                sources.append(f"{exc}: its anchors not read")
        with db.unit_of_work() as session:
            return audit_log.verify(session, known)

    result = run(work, as_json)
    emit({**result.model_dump(), "anchor_sources": sources}, as_json, lambda: out.print(
        (f"audit chain verified: {result.entries} entries, {result.anchors_checked} "
         f"anchors held ({'; '.join(sources)})") if result.ok
        else f"[red]audit chain broken[/red]: {result.reason}"))
    if not result.ok:
        raise typer.Exit(3)


@audit_app.command("anchor")
def audit_anchor(as_json: JsonOpt = False) -> None:
    """Copy the chain's head (entry number and hash) to the anchor file and, when the
    Prefect server answers, to an audit-anchor artifact. Review cycles do this on every
    run; this is for an anchor now (before a migration, at a governance meeting)."""
    from recovery.adapters import anchors as anchoring
    from recovery.adapters import prefect_api

    where: list[str] = []

    def work() -> Any:
        with db.unit_of_work() as session:
            head = anchoring.head(session)
        if head is None:
            return None
        anchoring.record(head)
        where.append(str(anchoring.anchor_file()))
        try:
            prefect_api.check_server()
            anchoring.publish_artifact(head)
            where.append("Prefect artifact audit-anchor")
        except ConnectionError as exc:
            where.append(f"not in Prefect ({exc})")
        return head

    head = run(work, as_json)
    data = None if head is None else {"seq": head.seq, "hash": head.hash, "where": where}
    emit(data, as_json, lambda: out.print(
        "the audit chain is empty: nothing to anchor" if head is None
        else f"audit anchor {head.seq}:{head.hash} ({'; '.join(where)})"))


@audit_app.command("show")
def audit_show(
    ref: Annotated[str | None, typer.Argument(help="Only this action.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The decision log."""

    def work() -> Any:
        with db.unit_of_work() as session:
            return audit_log.entries(session, repo.normalise_ref(ref) if ref else None)

    entries = run(work, as_json)

    def human() -> None:
        table = Table("seq", "at", "actor", "action", "event", "details")
        for e in entries:
            table.add_row(str(e.seq), e.at.strftime("%d/%m/%Y %H:%M"), escape(e.actor),
                          e.action_ref or "", e.event, escape(json.dumps(e.details)[:80]))
        out.print(table)

    emit([e.model_dump(mode="json") for e in entries], as_json, human)


# ---------------------------------------------------------------- people's decisions

closure_app = typer.Typer(no_args_is_help=True, help="Closure requests by the accountable lead.")
mail_app = typer.Typer(no_args_is_help=True, help="The email outbox.")
app.add_typer(closure_app, name="closure")
app.add_typer(mail_app, name="mail")


def _report_outcome(ref: str, key: str, as_json: bool, what: str, gate: bool = False) -> None:
    from recovery.adapters import prefect_api

    outcome = prefect_api.wait_for_outcome(ref, key)
    if gate and outcome is not None and outcome[0] == "applied":
        verdict = prefect_api.wait_for_gate(ref)
        if verdict is not None and not verdict[0]:
            outcome = ["refused", "the triangulation gate refused closure; the action stays "
                                  "in recovery", *verdict[1]]
    with db.unit_of_work() as session:
        status = repo.get_action(session, ref).status
    if outcome is None:
        data = {"ref": repo.normalise_ref(ref), "submitted": True, "applied": None,
                "status": status, "reasons": ["the run has not processed it yet"]}
        emit(data, as_json, lambda: out.print(
            f"{what} submitted; the run has not processed it yet (status {status})"))
        return
    applied = outcome[0] == "applied"
    data = {"ref": repo.normalise_ref(ref), "submitted": True, "applied": applied,
            "status": status, "reasons": [] if applied else outcome[1:]}
    if applied:
        emit(data, as_json, lambda: out.print(f"{what} applied: {data['ref']} is now "
                                              f"{status.replace('_', ' ')}"))
        return
    if as_json:
        sys.stderr.write(json.dumps({"error": f"{what} refused", "field": what,
                                     "reasons": outcome[1:]}) + "\n")
    else:
        err.print(f"[red]{what} refused[/red]; the run waits again:")
        for reason in outcome[1:]:
            err.print(f"  - {reason}", highlight=False, markup=False)
    raise typer.Exit(3)


class SignoffGroup(TyperGroup):
    """`recovery signoff REF ...` decides; `recovery signoff reassign REF ...` hands the
    waiting sign-off to a stand-in. A first word that is no subcommand is the reference."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "decide", self.commands["decide"], args
        return super().resolve_command(ctx, args)


signoff_app = typer.Typer(
    cls=SignoffGroup, no_args_is_help=True,
    help="Sign off a plan or a closure (`recovery signoff REF --by ... --code ...`), or hand "
         "the waiting sign-off to a stand-in (`recovery signoff reassign REF ...`).")
app.add_typer(signoff_app, name="signoff")


@signoff_app.command("decide", hidden=True)
def signoff(
    ref: str,
    by: Annotated[str, typer.Option(help="Your email (the named senior reviewer).")],
    code: Annotated[str, typer.Option(help="The one-time code from your sign-off email.")],
    decision: Annotated[str, typer.Option(help="approve or reject")],
    rationale: Annotated[str, typer.Option(help=(
        "Why (at least 20 characters). It is stored in Prefect as the form's answer: "
        "never a person's name or details, only the action and the evidence in service "
        "terms."))],
    as_json: JsonOpt = False,
) -> None:
    """Sign off a plan or a closure: resumes the waiting run, as the UI form does."""
    from recovery.adapters import prefect_api

    def work() -> str:
        with db.unit_of_work() as session:
            status = repo.get_action(session, ref).status
        prefix = "closure-signoff-" if status == "awaiting_closure_signoff" else "plan-signoff-"
        return prefect_api.resume_wait(ref, prefix, {
            "reviewer_email": by, "code": code, "decision": decision, "rationale": rationale})

    key = run(work, as_json)
    _report_outcome(ref, key, as_json, "sign-off")


@signoff_app.command("reassign")
def signoff_reassign(
    ref: str,
    to: Annotated[str, typer.Option(help="The stand-in (email): a registered manager of the "
                                         "action's location, the nominated individual or "
                                         "the provider lead, not the accountable lead, "
                                         "not away.")],
    by: Annotated[str, typer.Option(help="The nominated individual or the provider lead "
                                         "(email).")],
    reason: Annotated[str, typer.Option(help="Why (at least 20 characters).")],
    as_json: JsonOpt = False,
) -> None:
    """Hand the sign-off that waits (on a reviewer who is away, or longer than
    RECOVERY_SIGNOFF_WAIT_HOURS) to a stand-in: the old code stops working, the stand-in
    is sent a new one, the run waits again under a new key, and the original reviewer
    and the accountable lead are told. Refused (exit 3) with nothing changed when a rule
    is not met."""
    from recovery.adapters import mail, prefect_api
    from recovery.application import standins

    def work() -> dict[str, Any]:
        with db.unit_of_work() as session:
            done = standins.reassign(session, ref, to=to, by=by, reason=reason)
        mail.flush()  # SMTP down: the emails wait in the outbox and are sent later
        return done.model_dump()

    result = run(work, as_json)
    message = None
    try:
        prefect_api.wake_answered_wait(result["ref"])
    except PrefectUnavailable as exc:
        message = (f"{exc}; the reassignment is recorded: `recovery action start "
                   f"{result['ref']}` wakes its run")
    emit(result, as_json, lambda: out.print(
        f"{result['ref']}: the {result['kind']} sign-off is reassigned from "
        f"{result['reviewer_before']} to {result['standin']}, who is sent a new code; the "
        "old code no longer works"))
    if message:
        prefect_line(message, as_json)
        raise typer.Exit(4)


@app.command("reissue-code")
def reissue_code(
    ref: str,
    by: Annotated[str, typer.Option(help="A registered manager, nominated individual or "
                                         "provider lead (email).")],
    as_json: JsonOpt = False,
) -> None:
    """Send the reviewer a new sign-off code for the request that waits (locked after wrong
    codes, or its email lost): the old code stops working and the count of wrong codes
    starts again. Refused (exit 3) when no sign-off waits."""
    from recovery.adapters import mail
    from recovery.application import signoffs

    def work() -> dict[str, str]:
        with db.unit_of_work() as session:
            kind = signoffs.reissue(session, ref, by=by)
        mail.flush()  # SMTP down: the code's email waits in the outbox and is sent later
        return {"ref": repo.normalise_ref(ref), "reissued": kind}

    result = run(work, as_json)
    emit(result, as_json, lambda: out.print(
        f"{result['ref']}: a new {result['reissued']} sign-off code is sent to the reviewer; "
        "the old one no longer works"))


@closure_app.command("request")
def closure_request(
    ref: str,
    by: Annotated[str, typer.Option(help="The accountable lead's email.")],
    summary: Annotated[str, typer.Option(help=(
        "What improved and where the evidence is. It is stored in Prefect as the form's "
        "answer: never a person's name or details."))],
    as_json: JsonOpt = False,
) -> None:
    """Ask for closure; the triangulation gate decides whether it reaches sign-off."""
    from recovery.adapters import prefect_api

    key = run(lambda: prefect_api.resume_wait(
        ref, "closure-request-", {"requested_by": by, "summary": summary}), as_json)
    _report_outcome(ref, key, as_json, "closure request", gate=True)


@app.command()
def approvals(as_json: JsonOpt = False) -> None:
    """Everything waiting on a person: what, from whom, since when, and the run link."""
    from recovery.application import signoffs

    def work() -> list[Any]:
        with db.unit_of_work() as session:
            return signoffs.approvals(session)

    items = run(work, as_json)

    def human() -> None:
        table = Table("action", "location", "awaiting", "from", "role", "since", "run")
        tz = get_settings().tz
        for a in items:
            since = a.since.astimezone(tz).strftime("%d/%m/%Y %H:%M") if a.since else ""
            table.add_row(a.ref, escape(a.location), a.awaiting, escape(a.from_whom), a.role,
                          since, a.url)
        out.print(table)

    emit([a.model_dump(mode="json") for a in items], as_json, human)


@mail_app.command("flush")
def mail_flush(
    retry_all: Annotated[bool, typer.Option(
        "--all", help="Retry every queued email now, even one still waiting out its backoff.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Send queued email now (failed sends stay queued with backoff)."""
    from recovery.adapters import mail

    result = run(lambda: mail.flush(ignore_backoff=retry_all), as_json)

    def human() -> None:
        line = (f"sent {result['sent']}, failed {result['failed']}, undeliverable "
                f"{result['dead']}; still queued {result['queued']}")
        if result["waiting"]:
            from datetime import datetime

            at = mail.uk_datetime(datetime.fromisoformat(result["next_attempt_at"]))
            line += (f", {result['waiting']} waiting out a backoff (next attempt {at}; "
                     "`recovery mail flush --all` tries now)")
        out.print(line, highlight=False, markup=False)

    emit(result, as_json, human)


review_app = typer.Typer(no_args_is_help=True, help="Review cycles.")
app.add_typer(review_app, name="review")


@review_app.command("run")
def review_run(
    cycle: Annotated[str, typer.Argument(help="daily, weekly or monthly")],
    as_of: Annotated[str | None, typer.Option("--as-of", help=f"Run as of: {DATE_HELP}.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a review cycle now, as of a date (a second run for the same date changes
    nothing). Runs as a Prefect flow run when the server is reachable."""
    from recovery.cli import cycle_runner

    def work() -> dict[str, Any]:
        if cycle not in {"daily", "weekly", "monthly"}:
            raise InvalidInput("cycle", f"'{cycle}' is not daily, weekly or monthly")
        day = as_of_day(as_of)
        return cycle_runner.run_cycle(cycle, day)

    result = run(work, as_json)

    emit(result, as_json, lambda: out.print(cycle_summary(cycle, result), highlight=False,
                                            markup=False))


def cycle_summary(cycle: str, result: dict[str, Any]) -> str:
    """A cycle's result in words, one line a part (`--json` gives the structure)."""
    lines = [f"{cycle} cycle done"]
    for key, value in result.items():
        label = key.replace("_", " ")
        if value is None or key == "flow_run_id":
            continue
        if isinstance(value, dict):
            words = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in value.items() if n)
            lines.append(f"{label}: {words or 'none'}")
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value[:20])
            more = f" and {len(value) - 20} more" if len(value) > 20 else ""
            lines.append(f"{label}: {shown}{more}" if value else f"{label}: none")
        elif isinstance(value, bool):
            lines.append(f"{label}: {'yes' if value else 'no'}")
        elif key == "as_of":
            day = value if isinstance(value, date) else date.fromisoformat(str(value))
            lines.append(f"as of {day:%d/%m/%Y}")
        else:
            lines.append(f"{label}: {value}")
    return "\n".join(lines)


@action_app.command("control-change")
def action_control_change(
    ref: str,
    what: Annotated[str, typer.Option(help="What changes in the operational control.")],
    by: Annotated[str, typer.Option(help="Who decided (email).")],
    as_json: JsonOpt = False,
) -> None:
    """Record a change of operational control (what resolves an escalation, with evidence
    back on trajectory)."""
    from recovery.application import reviews as cycles

    def work() -> dict[str, Any]:
        from sqlmodel import select

        from models.action import MAX_TEXT
        from recovery.adapters.tables import EscalationRow

        if len(what.strip()) > MAX_TEXT:  # the column holds 2000; PostgreSQL would refuse
            raise InvalidInput("what", f"must be at most {MAX_TEXT} characters")
        with db.unit_of_work() as session:
            change = cycles.record_control_change(session, ref, what=what, by=by,
                                                  today=get_settings().today())
            escalation = session.exec(select(EscalationRow).where(
                EscalationRow.control_change_id == change.id)).first()
            return {"ref": repo.normalise_ref(ref), "control_change_id": change.id,
                    "escalation_id": escalation.id if escalation else None,
                    "escalation_opened_on": escalation.opened_on if escalation else None}

    def human() -> None:
        counted = (f"; it counts toward the escalation opened "
                   f"{result['escalation_opened_on']:%d/%m/%Y}, resolved once a review shows "
                   "evidence back on trajectory" if result["escalation_id"] is not None
                   else "; no escalation is waiting for one")
        out.print(f"control change recorded for {result['ref']}{counted}", highlight=False)

    result = run(work, as_json)
    emit(result, as_json, human)


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Check the database, the Prefect server, the served deployments, SMTP and the
    automations."""
    from recovery.cli.doctor import run_checks

    results = run_checks()

    def human() -> None:
        for check in results:
            mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
            out.print(f"{mark} {check.name}: {escape(check.detail)}", highlight=False)

    emit([c.model_dump() for c in results], as_json, human)
    if not all(c.ok for c in results):
        raise typer.Exit(1)


automations_app = typer.Typer(no_args_is_help=True,
                              help="Prefect automations that make waiting visible.")
smtp_app = typer.Typer(no_args_is_help=True, help="SMTP settings kept in Prefect.")
app.add_typer(automations_app, name="automations")
app.add_typer(smtp_app, name="smtp")


@automations_app.command("apply")
def automations_apply(
    signoff_wait_hours: Annotated[float | None, typer.Option(
        "--signoff-wait-hours",
        help="Hours a plan or closure sign-off may wait before the nominated individual is "
             "emailed (default RECOVERY_SIGNOFF_WAIT_HOURS, else 48).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or update, by name, the waiting-time automations on the Prefect server (safe
    to repeat: an unchanged automation is left alone)."""
    from datetime import timedelta

    from deployments.sync import apply_automations

    wait = timedelta(hours=signoff_wait_hours) if signoff_wait_hours is not None else None
    lines = run(lambda: apply_automations(wait), as_json)

    def human() -> None:
        for line in lines:
            out.print(line, highlight=False)

    emit(lines, as_json, human)


@smtp_app.command("set-secret")
def smtp_set_secret(
    name: Annotated[str, typer.Argument(help="Block name: lowercase letters, digits, dashes.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store the SMTP password in a Prefect Secret block; then set
    RECOVERY_SMTP_SECRET_BLOCK=NAME wherever email is sent."""
    from recovery.adapters.smtp_secret import save_smtp_secret

    password = (sys.stdin.readline().rstrip("\n") if password_stdin
                else typer.prompt("SMTP password", hide_input=True, confirmation_prompt=True))
    saved = run(lambda: save_smtp_secret(name, password), as_json)
    emit({"block": saved, "setting": f"RECOVERY_SMTP_SECRET_BLOCK={saved}"}, as_json,
         lambda: out.print(f"saved Secret block '{saved}'; set "
                           f"RECOVERY_SMTP_SECRET_BLOCK={saved}", highlight=False))


@app.command()
def reconcile(
    older_than: Annotated[float, typer.Option(
        "--older-than", help="Seconds without a heartbeat after which a Running run counts "
                             "as lost.")] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Run again the lifecycle and review-cycle runs whose process was lost (a serve process
    or worker killed): each is marked Crashed and scheduled to run from the top."""
    from recovery.application.reconcile import reconcile as reconcile_runs

    changed = run(lambda: reconcile_runs(older_than), as_json)
    emit({"rescheduled": changed}, as_json, lambda: out.print(
        "\n".join(f"rescheduled {run_id}: {get_settings().run_url(run_id)}"
                   for run_id in changed) or "no lost runs"))


@app.command()
def serve() -> None:
    """Serve every deployment from this process (lifecycle, cycles, UI forms)."""
    import contextlib
    import math
    import os

    from recovery.adapters import prefect_api

    prefect_api.api_url()
    # The runner polls every RECOVERY_RUNNER_POLL_SECONDS (default 0.5 s): a resumed run
    # (a sign-off) waits for the next poll. PREFECT_RUNNER_POLL_FREQUENCY counts only when
    # ours is not set. Prefect's setting is whole seconds, so it gets the interval rounded
    # up (before Prefect is imported) and the runner the exact interval.
    settings = get_settings()
    poll = settings.runner_poll_seconds
    given = os.environ.get("PREFECT_RUNNER_POLL_FREQUENCY", "")
    if given and "runner_poll_seconds" not in settings.model_fields_set:
        with contextlib.suppress(ValueError):
            poll = max(0.1, float(given))
    os.environ["PREFECT_RUNNER_POLL_FREQUENCY"] = str(max(1, math.ceil(poll)))
    from deployments.serve import main as serve_main

    serve_main(poll_seconds=poll)


# Reports, tracker import and export live in recovery/cli/reports.py; imported here, at the
# end, because that module imports the helpers above.
from recovery.cli.reports import export_app, import_app, report_app  # noqa: E402

app.add_typer(report_app, name="report")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
