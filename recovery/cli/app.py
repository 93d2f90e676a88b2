"""The `recovery` command line, assembled: one module per sub-command group (actions,
staff, triangulation, audit_trail, decisions, admin, frameworks, reports), sharing the
helpers of `recovery.cli.common`. The order commands are registered in here is the order
`--help` lists them in.

Exit codes: 0 done; 2 bad input (one line naming the field and the rule); 3 refused by a
rule (every reason listed); 4 Prefect is not there; 1 unexpected. Every command takes --json.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.markup import escape
from typer._click import exceptions as usage  # typer vendors click (pinned 0.29.2)
from typer.core import TyperGroup

from recovery.cli import (
    actions,
    admin,
    audit_trail,
    decisions,
    frameworks,
    reports,
    staff,
    triangulation,
)
from recovery.cli.common import err, fail, one_line
from recovery.settings import get_settings, settings_error


class OneLineErrors(TyperGroup):
    """Click's own usage errors (a non-numeric --value, a missing --by, an unknown option)
    keep the CLI's contract: exit 2 with one line naming the field, or `{"error", "field"}`
    on stderr with --json, instead of a boxed usage message."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode,
                                windows_expand_args, **extra)
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
            result = super().main(argv, prog_name, complete_var, False,
                                  windows_expand_args, **extra)
        except usage.NoArgsIsHelpError:
            return super().main(argv, prog_name, complete_var, True,
                                windows_expand_args, **extra)
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

app.command()(frameworks.init)
app.command("templates")(frameworks.templates_cmd)
app.command()(triangulation.gate)
app.command("reissue-code")(decisions.reissue_code)
app.command()(decisions.approvals)
app.command()(admin.doctor)
app.command()(admin.reconcile)
app.command()(admin.serve)

app.add_typer(actions.action_app, name="action")
app.add_typer(triangulation.evidence_app, name="evidence")
app.add_typer(staff.people_app, name="people")
app.add_typer(audit_trail.audit_app, name="audit")
app.add_typer(frameworks.catalogue_app, name="catalogue")
app.add_typer(decisions.closure_app, name="closure")
app.add_typer(admin.mail_app, name="mail")
app.add_typer(decisions.signoff_app, name="signoff")
app.add_typer(admin.review_app, name="review")
app.add_typer(admin.automations_app, name="automations")
app.add_typer(admin.smtp_app, name="smtp")
app.add_typer(reports.report_app, name="report")
app.add_typer(reports.import_app, name="import")
app.add_typer(reports.export_app, name="export")


def main() -> None:
    app()
