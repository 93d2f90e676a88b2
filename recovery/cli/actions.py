"""`recovery action open|show|list|extend|revise|start|reopen|control-change`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from models.dates import DATE_HELP, parse_day
from models.errors import InvalidInput
from models.planfile import parse_plan
from recovery.adapters import audit_log, db
from recovery.adapters import repository as repo
from recovery.adapters.orchestration import PrefectUnavailable
from recovery.application import action_changes, action_plans, summaries
from recovery.cli.common import (
    JsonOpt,
    emit,
    err,
    out,
    parse_file,
    prefect_line,
    run,
)
from recovery.settings import get_settings

action_app = typer.Typer(no_args_is_help=True, help="Open, show, list, revise and extend actions.")


def _print_summary(s: summaries.ActionSummary) -> None:
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

    def work() -> summaries.ActionSummary:
        from recovery.application import absences

        plan = parse_file(parse_plan, path)
        with db.unit_of_work() as session:
            row = action_plans.open_action(session, plan, actor=by)
            flag = absences.reviewer_away_at_opening(session, row)
            if flag:
                flags.append(flag)
                audit_log.append(session, actor="system", event="signoff.reviewer_away",
                                 action_ref=row.ref, details={"flag": flag},
                                 dedupe_key=f"signoff.reviewer_away:{row.ref}:opened")
            return summaries.summary(session, row, as_of=settings.today())

    summary = run(work, as_json)
    for flag in flags:
        err.print(f"[yellow]flag[/yellow] {escape(flag)}", highlight=False)
    message = None
    if not no_flow:
        from recovery.adapters import prefect_api

        message = prefect_api.start_or_explain(summary.ref)
        if message is None:
            with db.unit_of_work() as session:
                summary = summaries.summary(session, repo.get_action(session, summary.ref),
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

    def work() -> summaries.ActionSummary:
        with db.unit_of_work() as session:
            return summaries.summary(session, repo.get_action(session, ref),
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

    def work() -> list[summaries.ActionSummary]:
        with db.unit_of_work() as session:
            rows = summaries.list_actions(session, status=status, level=level, location=location)
            return summaries.summaries(session, rows, as_of=settings.today())

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
            row = action_changes.extend_deadline(session, ref, new_deadline=new,
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

    def work() -> summaries.ActionSummary:
        plan = parse_file(parse_plan, path)
        with db.unit_of_work() as session:
            row = action_plans.revise_plan(session, ref, plan, actor=by)
            return summaries.summary(session, row, as_of=settings.today())

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
            row = action_changes.reopen_action(session, ref, by=by, reason=reason,
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


@action_app.command("control-change")
def action_control_change(
    ref: str,
    what: Annotated[str, typer.Option(help="What changes in the operational control.")],
    by: Annotated[str, typer.Option(help="Who decided (email).")],
    as_json: JsonOpt = False,
) -> None:
    """Record a change of operational control (what resolves an escalation, with evidence
    back on trajectory)."""
    from recovery.application import follow_ups

    def work() -> dict[str, Any]:
        from sqlmodel import select

        from models.action import MAX_TEXT
        from recovery.adapters.tables import EscalationRow

        if len(what.strip()) > MAX_TEXT:  # the column holds 2000; PostgreSQL would refuse
            raise InvalidInput("what", f"must be at most {MAX_TEXT} characters")
        with db.unit_of_work() as session:
            change = follow_ups.record_control_change(session, ref, what=what, by=by,
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
