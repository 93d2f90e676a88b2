"""Running the service: `recovery mail flush`, `recovery review run`, `recovery doctor`,
`recovery automations apply`, `recovery smtp set-secret`, `recovery reconcile` and
`recovery serve`."""

from __future__ import annotations

import sys
from datetime import date
from typing import Annotated, Any

import typer
from rich.markup import escape

from models.dates import DATE_HELP
from models.errors import InvalidInput
from recovery.cli.common import (
    JsonOpt,
    as_of_day,
    emit,
    out,
    run,
)
from recovery.settings import get_settings

mail_app = typer.Typer(no_args_is_help=True, help="The email outbox.")


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
