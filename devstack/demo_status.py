"""Where the demo's actions stand (read from the Prefect API and the mail sink), waiting
until they settle, and what the demo prints. Part of `python -m devstack.demo`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

from rich.panel import Panel
from rich.table import Table

from devstack.demo_config import (
    DEFAULT_PORT,
    HOST,
    PLAN_KEY_PREFIX,
    READY_TIMEOUT,
    Layout,
    out,
)

# ---------------------------------------------------------------- readiness


@dataclass
class ActionView:
    ref: str
    title: str
    location: str
    status: str
    reviewer: str
    lead: str
    flow_run_id: str | None
    run_url: str
    run_state: str = "-"
    waiting_on: str | None = None
    mails: list[Path] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        """The run waits for a person (its form is ready) or has finished."""
        return self.waiting_on is not None or self.run_state in (
            "Completed", "Failed", "Cancelled", "Crashed")

    @property
    def waiting_for(self) -> str:
        """What the run waits on and from whom: "plan sign-off: ni@...", "-" if nothing."""
        if not self.waiting_on:
            return "-"
        what = self.waiting_on.rstrip("-0123456789").replace("-", " ")  # the key's base
        who = self.reviewer if "signoff" in self.waiting_on else self.lead
        return f"{what.replace('signoff', 'sign-off')}: {who}"

    @property
    def code_mail(self) -> Path | None:
        """The newest sign-off request email, while the run waits for a sign-off."""
        if self.waiting_on and "signoff" in self.waiting_on and self.mails:
            return self.mails[-1]
        return None

    @property
    def awaiting_plan_signoff(self) -> bool:
        return (self.status == "awaiting_plan_signoff" and self.waiting_on is not None
                and self.waiting_on.startswith(PLAN_KEY_PREFIX) and bool(self.mails))


def signoff_mails(mail_dir: Path) -> dict[tuple[str, str], list[Path]]:
    """(ref, reviewer email) -> sign-off request emails in the sink's directory, oldest
    first. Only the headers are read."""
    found: dict[tuple[str, str], list[Path]] = {}
    parser = BytesParser(policy=policy.default)
    for path in sorted(mail_dir.glob("*.eml")):
        with path.open("rb") as fh:
            headers = parser.parse(fh, headersonly=True)
        subject = str(headers.get("Subject", ""))
        if "sign-off is needed" not in subject:
            continue
        ref = subject.split(":", 1)[0].strip()
        for rcpt in str(headers.get("X-Envelope-To", "")).split(","):
            found.setdefault((ref, rcpt.strip().lower()), []).append(path)
    return found


def survey(layout: Layout, refs: list[str]) -> list[ActionView]:
    """Where each action stands: status, run state, what the run waits on, its emails."""
    from uuid import UUID

    from prefect import get_client

    from recovery.adapters import db, prefect_api
    from recovery.adapters import repository as repo
    from recovery.application import summaries
    from recovery.settings import get_settings

    settings = get_settings()
    with db.unit_of_work() as session:
        run_ids = {ref: repo.get_action(session, ref).flow_run_id for ref in refs}
    # The runs first, then the rows and emails: a run commits its status (and has its email
    # sent) before it pauses, so rows read after the run's state are never older than it.
    # Read the other way round, a slow machine could show a paused run beside the status
    # it had before (and the demo called that a run waiting in the wrong place).
    runs: dict[str, tuple[str, str | None]] = {}
    with get_client(sync_client=True) as client:
        for ref, run_id in run_ids.items():
            if not run_id:
                continue
            run = client.read_flow_run(UUID(run_id))
            waiting_on = None
            if run.state is not None and run.state.is_paused():
                waiting_on = prefect_api.waiting_key(run_id, timeout=0)
            runs[ref] = (run.state.name if run.state and run.state.name else "-", waiting_on)
    mails = signoff_mails(layout.mail_dir)
    views = []
    with db.unit_of_work() as session:
        for ref in refs:
            s = summaries.summary(session, repo.get_action(session, ref), as_of=settings.today())
            run_state, waiting_on = runs.get(ref, ("-", None))
            views.append(ActionView(
                ref=s.ref, title=s.title, location=s.location, status=s.status,
                reviewer=s.senior_reviewer, lead=s.accountable_lead, flow_run_id=s.flow_run_id,
                run_url=settings.run_url(s.flow_run_id),
                mails=mails.get((s.ref, s.senior_reviewer.lower()), []),
                run_state=run_state, waiting_on=waiting_on))
    return views


class NotReady(Exception):
    """The examples did not get where they should; ``views`` is the last survey."""

    def __init__(self, message: str, views: list[ActionView]) -> None:
        super().__init__(message)
        self.views = views


def wait_until_settled(layout: Layout, refs: list[str], *, strict: bool) -> list[ActionView]:
    """Wait until every run waits for a person or has finished; with ``strict``, until each
    waits for plan sign-off with its sign-off email delivered (and fail at once when one
    settled anywhere else). Returns the last survey."""
    deadline = time.monotonic() + READY_TIMEOUT
    views: list[ActionView] = []
    while True:
        try:
            views = survey(layout, refs)
        except Exception as exc:  # noqa: BLE001 - the server may be briefly busy
            if time.monotonic() >= deadline:
                raise NotReady(f"could not read the example runs: {exc}", views) from exc
        else:
            settled = all(view.settled for view in views)
            if not strict and settled:
                return views
            if strict and all(view.awaiting_plan_signoff for view in views):
                return views
            elsewhere = [view for view in views if view.settled and not (
                view.status == "awaiting_plan_signoff"
                and (view.waiting_on or "").startswith(PLAN_KEY_PREFIX))]
            if strict and settled and elsewhere:
                raise NotReady("not waiting for plan sign-off: " + ", ".join(
                    f"{view.ref} ({view.status.replace('_', ' ')}, run {view.run_state})"
                    for view in elsewhere), views)
        if time.monotonic() >= deadline:
            unmailed = [view.ref for view in views if view.settled and not view.mails]
            why = (f"no sign-off email in {_rel(layout.mail_dir)}/ for {', '.join(unmailed)}"
                   if strict and unmailed and all(view.settled for view in views) else
                   "the example runs did not all reach a wait")
            raise NotReady(f"{why} within {READY_TIMEOUT:.0f}s", views)
        time.sleep(0.5)


# ---------------------------------------------------------------- output


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return f"./{path.relative_to(Path.cwd())}"
    return str(path)


def cli_command() -> str:
    script = Path(sys.executable).with_name("recovery")
    return _rel(script) if script.exists() else "recovery"


def print_views(views: list[ActionView]) -> None:
    table = Table("action", "location", "status", "run", "waiting for", "code in")
    for view in views:
        mail = view.code_mail.name if view.code_mail else "-"
        table.add_row(f"[link={view.run_url}]{view.ref}[/link]", view.location,
                      view.status.replace("_", " "), view.run_state, view.waiting_for, mail)
    out.print(table)


def print_guide(layout: Layout, views: list[ActionView]) -> None:
    cli = cli_command()
    lines = [
        f"[bold]Prefect UI[/bold]  {layout.ui_url}",
        f"[bold]Mail[/bold]        {_rel(layout.mail_dir)}/  every email as a .eml file "
        f"(SMTP sink on {HOST}:{layout.smtp_port})",
        f"[bold]Logs[/bold]        {_rel(layout.serve_log)}  {_rel(layout.server_log)}",
        "",
        "[bold]What to do next[/bold]",
    ]
    pending = [view for view in views if view.awaiting_plan_signoff]
    if pending:
        view = pending[0]
        lines += [
            f"1. Open a waiting run, e.g. {view.ref}: {view.run_url}",
            "   (or Runs in the UI: the examples are Suspended, waiting for plan sign-off).",
            f"2. Press [bold]Resume[/bold]. The form shows the plan. Sign as the senior "
            f"reviewer, {view.reviewer}, with the one-time code in their email "
            f"({_rel(view.code_mail or layout.mail_dir)}: the file under 'code in' above), "
            "decide, give a rationale of 20 characters or more, and submit.",
            f"3. Or from another terminal in this directory: [cyan]{cli} approvals[/cyan] "
            f"lists what waits on whom; [cyan]{cli} signoff {view.ref} --by {view.reviewer} "
            f'--code CODE --decision approve --rationale "..."[/cyan] signs it off.',
        ]
    else:
        lines.append(f"1. [cyan]{cli} approvals[/cyan] (in another terminal in this "
                     "directory) lists what waits on whom, with links to the runs.")
    lines += [
        f"Then [cyan]{cli} evidence add[/cyan] and [cyan]{cli} closure request[/cyan] take an "
        f"action to the triangulation gate; [cyan]{cli} --help[/cyan] lists everything.",
        "",
        "New email is announced here. Ctrl-C stops everything; run it again to carry on "
        f"where you left off (all data is in {_rel(layout.home)}/).",
    ]
    defaults = (layout.port == DEFAULT_PORT and layout.smtp_port == 8025
                and layout.home == (Path.cwd() / ".recovery").resolve())
    if not defaults:
        lines += ["", "Other terminals need: [cyan]export "
                  f"RECOVERY_HOME={layout.home} RECOVERY_PREFECT_API_URL={layout.api_url} "
                  f"RECOVERY_PREFECT_UI_URL={layout.ui_url} "
                  f"RECOVERY_SMTP_PORT={layout.smtp_port}[/cyan]"]
    out.print(Panel("\n".join(lines), title="recovery-gates demo", expand=False))


class MailWatch:
    """Announces each email the sink stores after the demo is up."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen = {path.name for path in directory.glob("*.eml")}

    def poll(self) -> None:
        parser = BytesParser(policy=policy.default)
        for path in sorted(self.directory.glob("*.eml")):
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            with path.open("rb") as fh:
                headers = parser.parse(fh, headersonly=True)
            out.print(f"[cyan]mail[/cyan] to {headers.get('X-Envelope-To', '?')}: "
                      f"{headers.get('Subject', '')}  [dim]{_rel(path)}[/dim]")


