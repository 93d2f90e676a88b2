"""`recovery report ...`, `recovery import tracker|evidence` and `recovery export tracker`.

The conventions are `recovery.cli.common`'s: every command takes --json; exit 0 done, 2 bad
input (a tracker with bad rows: every bad row listed, nothing imported), 3 refused by a
rule, 1 unexpected.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from models.dates import DATE_HELP
from models.errors import InvalidInput
from recovery.adapters import db
from recovery.adapters.tablefile import RowsRejected, iter_errors
from recovery.cli.common import (
    JsonOpt,
    as_of_day,
    emit,
    err,
    lazy_module,
    out,
    prefect_line,
    read_file,
    run,
)

report_app = typer.Typer(no_args_is_help=True,
                         help="Governance, commissioner and inspector packs (HTML, PDF, Markdown).")
import_app = typer.Typer(no_args_is_help=True,
                         help="Bring a provider's existing tracker, or its evidence, in.")
export_app = typer.Typer(no_args_is_help=True, help="The risk-rated tracker out to Excel or CSV.")

# Loaded when a report, import or export command first uses them, not on every `recovery`
# start-up.
if TYPE_CHECKING:  # the modules themselves load lazily, at a command's first use
    from recovery.reporting.packs import ReportResult
    from recovery.reporting.spreadsheets import ExportResult

reports = lazy_module("recovery.reporting.packs")
spreadsheets = lazy_module("recovery.reporting.spreadsheets")
evidence_import = lazy_module("recovery.application.evidence_import")

LocationOpt = Annotated[str | None, typer.Option(help="Only this location (name or code).")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of",
                                             help=f"Position as of: {DATE_HELP} (default today).")]
OutOpt = Annotated[Path, typer.Option("--out", help="The file to write.")]

_REPORT_SUFFIXES = {".html": "html", ".htm": "html", ".pdf": "pdf", ".md": "md"}
_EXPORT_SUFFIXES = {".xlsx": "xlsx", ".csv": "csv"}


def _format(given: str | None, path: Path, suffixes: dict[str, str]) -> str:
    allowed = sorted(set(suffixes.values()))
    if given is not None:
        fmt = given.strip().lower()
        if fmt not in allowed:
            raise InvalidInput("format", f"'{given}' is not {' or '.join(allowed)}")
        return fmt
    if path.suffix.lower() in suffixes:
        return suffixes[path.suffix.lower()]
    raise InvalidInput("format", f"give --format {'|'.join(allowed)} (or an --out file ending "
                                 f"in {', '.join(sorted(suffixes))})")




@import_app.callback()
def _import_group() -> None:
    """Bring a provider's existing tracker, or its evidence, in."""


@export_app.callback()
def _export_group() -> None:
    """The risk-rated tracker out to Excel or CSV."""


def _check_out(path: Path) -> None:
    if path.is_dir():
        raise InvalidInput("out", f"{path} is a directory; give a file name")
    if not path.parent.exists():
        raise InvalidInput("out", f"the folder {path.parent} does not exist")


# ---------------------------------------------------------------- report packs


def _report(kind: str, location: str | None, as_of: str | None, fmt: str | None, out_path: Path,
            as_json: bool, charts: str = "auto") -> None:
    def work() -> ReportResult:
        _check_out(out_path)
        day = as_of_day(as_of)
        chosen = _format(fmt, out_path, _REPORT_SUFFIXES)
        result: ReportResult = reports.write_report(kind, chosen, out_path, as_of=day,
                                                    location=location, charts=charts)
        return result

    result = run(work, as_json)
    emit(result.model_dump(mode="json"), as_json, lambda: out.print(
        f"{reports.TITLES[kind]} ({result.format}, {result.actions} open actions, "
        f"{result.high} high risk, as of {result.as_of:%d/%m/%Y}) written to {result.out}",
        highlight=False, markup=False))


FormatOpt = Annotated[str | None, typer.Option("--format", help="html, pdf or md "
                                                                "(default: from --out).")]
ChartsOpt = Annotated[str, typer.Option(
    "--charts", help="Which actions get a measure chart: auto (every action in a small pack; "
                     "high-risk ones; beyond 100 high-risk, those needing attention), all, "
                     "high, attention or none.")]


@report_app.command("governance")
def report_governance(out_path: OutOpt, location: LocationOpt = None, as_of: AsOfOpt = None,
                      fmt: FormatOpt = None, charts: ChartsOpt = "auto",
                      as_json: JsonOpt = False) -> None:
    """The provider governance pack: high-risk actions first, weaknesses, decisions."""
    _report("governance", location, as_of, fmt, out_path, as_json, charts)


@report_app.command("commissioner")
def report_commissioner(out_path: OutOpt, location: LocationOpt = None, as_of: AsOfOpt = None,
                        fmt: FormatOpt = None, charts: ChartsOpt = "auto",
                        as_json: JsonOpt = False) -> None:
    """The commissioner pack: tracker and evidence by risk domain, and the improvement plan."""
    _report("commissioner", location, as_of, fmt, out_path, as_json, charts)


@report_app.command("inspector")
def report_inspector(out_path: OutOpt, location: LocationOpt = None, as_of: AsOfOpt = None,
                     fmt: FormatOpt = None, charts: ChartsOpt = "auto",
                     as_json: JsonOpt = False) -> None:
    """The inspector pack: prioritisation, reviewers, and each claim's records and decision
    log (audit chain verified)."""
    _report("inspector", location, as_of, fmt, out_path, as_json, charts)


# ---------------------------------------------------------------- trackers


T = TypeVar("T")


def _rejected(exc: RowsRejected, as_json: bool) -> None:
    """A file refused row by row (a tracker or an evidence file): every bad row listed."""
    if as_json:
        sys.stderr.write(json.dumps({
            "error": str(exc), "field": "file", "bad_rows": exc.bad_rows, "rows": exc.rows,
            "errors": [e.model_dump() for e in sorted(exc.errors, key=lambda e: e.row)],
        }) + "\n")
    else:
        err.print(f"[red]error[/red] file: {exc}", highlight=False)
        for line in iter_errors(exc.errors):
            err.print(f"  {line}", highlight=False, markup=False)


def _import_file(path: Path, limit: int, as_json: bool, load: Callable[[bytes], T]) -> T:
    """A file read within its bound, then imported by `load`, which reads and checks every
    row first (its one write transaction is short); a file with bad rows: every one
    listed, exit 2."""
    data = read_file(path, limit=limit)
    try:
        return load(data)
    except RowsRejected as exc:
        _rejected(exc, as_json)
        raise typer.Exit(2) from None


@import_app.command("tracker")
def import_tracker(
    path: Annotated[Path, typer.Argument(help="The tracker: .xlsx or .csv, one row per action.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate every row; import "
                                                            "nothing.")] = False,
    by: Annotated[str, typer.Option(help="Who imports it (audit trail).")] = "tracker-import",
    no_flow: Annotated[bool, typer.Option("--no-flow", help="Do not start the lifecycle "
                                                            "runs.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import an action tracker: every row is validated first; a file with any bad row
    imports nothing and lists every bad row (row number, column, what is wrong)."""

    result = run(lambda: _import_file(
        path, spreadsheets.LIMITS.file_bytes, as_json,
        lambda data: spreadsheets.import_tracker(data, name=path.name, dry_run=dry_run,
                                                 actor=by)), as_json)
    data: dict[str, Any] = result.model_dump(mode="json")
    message = None
    if not dry_run and not no_flow and result.refs:
        from recovery.adapters import prefect_api

        for index, ref in enumerate(result.refs):
            message = prefect_api.start_or_explain(ref)
            if message is not None:
                message = (f"{len(result.refs) - index} of {len(result.refs)} actions stay "
                           f"drafts ({message})")
                break
    data["flow"] = message

    def human() -> None:
        verb = "would import" if dry_run else "imported"
        out.print(f"{result.file}: {result.rows} rows valid; {verb} "
                  f"{len(result.refs)} actions: {', '.join(result.refs)}", highlight=False,
                  markup=False)
        if result.ignored_columns:
            out.print(f"columns not read: {', '.join(result.ignored_columns)}",
                      highlight=False, markup=False)

    emit(data, as_json, human)
    if message:  # imported as drafts, but their runs did not start
        prefect_line(message, as_json)
        raise typer.Exit(4)


@export_app.command("tracker")
def export_tracker(
    out_path: OutOpt,
    fmt: Annotated[str | None, typer.Option("--format", help="xlsx or csv (default: from "
                                                              "--out).")] = None,
    location: LocationOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export the risk-rated tracker for Excel (header row frozen, RAG colours, real dates)
    or as CSV; the same layout imports back."""

    def work() -> ExportResult:
        _check_out(out_path)
        chosen = _format(fmt, out_path, _EXPORT_SUFFIXES)
        day = as_of_day(as_of)
        with db.reading() as session:  # an export only reads: writers need not wait
            data, count = spreadsheets.export_tracker(session, fmt=chosen, as_of=day,
                                                      location=location)
        try:
            out_path.write_bytes(data)
        except OSError as exc:
            raise InvalidInput("out", f"cannot write {out_path}: {exc.strerror}") from None
        result: ExportResult = spreadsheets.ExportResult(
            format=chosen, out=str(out_path), actions=count, bytes=len(data))
        return result

    result = run(work, as_json)
    emit(result.model_dump(mode="json"), as_json, lambda: out.print(
        f"{result.actions} actions written to {result.out} ({result.format})", highlight=False,
        markup=False))


# ---------------------------------------------------------------- evidence


@import_app.command("evidence")
def import_evidence(
    path: Annotated[Path, typer.Argument(help="The evidence: .xlsx or .csv, one row per item "
                                              "(docs/evidence-format.md).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row; add "
                                                            "nothing.")] = False,
    by: Annotated[str | None, typer.Option(help="Who imports it (email in the staff "
                                                "directory): the audit trail, and the "
                                                "recorder of rows without one.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import evidence items in bulk: every row is checked first, as `evidence add` checks
    one; a file with any bad row adds nothing and lists every bad row (row, column, rule).
    Items already held (same action, source, observed on and reference) are not added
    again."""

    result = run(lambda: _import_file(
        path, evidence_import.LIMITS.file_bytes, as_json,
        lambda data: evidence_import.import_evidence(data, name=path.name, by=by,
                                                     dry_run=dry_run)), as_json)

    def human() -> None:
        verb = "would add" if dry_run else "added"
        out.print(f"{result.file}: {result.rows} rows valid; {verb} {result.new} new items, "
                  f"{result.already_held} already held, {result.refused} refused",
                  highlight=False, markup=False)
        for tally in result.tallies:
            out.print(f"  {tally.action} {tally.source.replace('_', ' ')}: {tally.new} new, "
                      f"{tally.already_held} already held (observed "
                      f"{tally.first_observed:%d/%m/%Y} to {tally.last_observed:%d/%m/%Y})",
                      highlight=False, markup=False)

    emit(result.model_dump(mode="json"), as_json, human)
