"""What every command of the `recovery` command line shares: the consoles, `--json`, how
an error becomes one line and an exit code, reading a file within its bound, and loading a
heavy module only when a command needs it.

Exit codes: 0 done; 2 bad input (one line naming the field and the rule); 3 refused by a
rule (every reason listed); 4 Prefect is not there; 1 unexpected. Every command takes --json.
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
from rich.console import Console
from rich.markup import escape

from models.dates import check_as_of, parse_day
from models.errors import DomainError, InvalidInput, NotFound, RuleRefused
from models.planfile import MAX_FILE_BYTES
from recovery.adapters import db
from recovery.adapters.orchestration import PrefectBusy, PrefectUnavailable
from recovery.settings import get_settings

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
