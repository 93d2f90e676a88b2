"""People's decisions: `recovery signoff` (and `signoff reassign`), `recovery reissue-code`,
`recovery closure request` and `recovery approvals`."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.adapters.orchestration import PrefectUnavailable
from recovery.cli.common import (
    JsonOpt,
    emit,
    err,
    out,
    prefect_line,
    run,
)
from recovery.settings import get_settings

closure_app = typer.Typer(no_args_is_help=True, help="Closure requests by the accountable lead.")


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
    from recovery.application import signoff_codes

    def work() -> dict[str, str]:
        with db.unit_of_work() as session:
            kind = signoff_codes.reissue(session, ref, by=by)
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
