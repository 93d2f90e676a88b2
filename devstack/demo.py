"""`make run`: the whole product on one machine, on embedded defaults.

    python -m devstack.demo            # bring everything up; Ctrl-C stops it all
    python -m devstack.demo --check    # bring it up, verify, print "ready", stop, exit 0

Brings up, under RECOVERY_HOME (default ./.recovery):

- a Prefect server with its UI on 127.0.0.1:4200 (RECOVERY_DEMO_PORT), SQLite database
  and PREFECT_HOME in ``prefect/``;
- an SMTP sink on 127.0.0.1:8025 (RECOVERY_SMTP_PORT) that keeps every email as a ``.eml``
  file in ``mail/``: the one-time sign-off codes are there;
- `recovery serve` (the served deployments, polling every second; log in ``serve.log``);
- the application database, the demo staff directory and the seed's three example plans,
  opened and waiting for plan sign-off.

A second run reuses all of it: actions already open are not opened again and a run already
started is not started twice. ``demo.json`` records the processes of a running demo, so a
demo that was killed outright is cleaned up by the next one.

``--check`` (or RECOVERY_DEMO_EXIT_AFTER_READY=1) exits 0 once the three actions wait for
plan sign-off with their sign-off emails in ``mail/``, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from devstack.runtime import (
    PrefectServer,
    ServeProcess,
    alive,
    command_line,
    port_in_use,
    prefect_client_env,
    start_prefect_server,
    terminate_tree,
    wait_for_idle,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PEOPLE_FILE = EXAMPLES / "people.yaml"
PLAN_FILES = (
    EXAMPLES / "safeguarding-rose-house.yaml",
    EXAMPLES / "medicines-quay-house.yaml",
    EXAMPLES / "staffing-elm-court.yaml",
)
HOST = "127.0.0.1"
DEFAULT_PORT = 4200
PLAN_KEY_PREFIX = "plan-signoff-"
SERVED_MESSAGE = "being served and polling for scheduled runs"

# Generous: about 45 s for a first start and 15 s for the next ones on an idle laptop, but
# several times that on a busy machine (first start migrates the Prefect database).
SERVER_TIMEOUT = 180.0
SERVE_TIMEOUT = 120.0
READY_TIMEOUT = 240.0
#: How long Ctrl-C waits for flow-run processes to reach a wait before stopping `serve`
#: (a second Ctrl-C stops at once).
STOP_IDLE_TIMEOUT = 180.0
#: Idle that long in a row (more than the runner's 1 s poll) before `serve` is stopped.
STOP_QUIET = 2.5

out = Console(highlight=False)
# soft_wrap: an error stays one line, however narrow the terminal
err = Console(stderr=True, highlight=False, soft_wrap=True)


class DemoError(Exception):
    """Something the person running the demo must fix: printed as one line, exit 1."""


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP."""


# ---------------------------------------------------------------- configuration


@dataclass
class Layout:
    home: Path
    port: int
    smtp_port: int

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def mail_dir(self) -> Path:
        return self.home / "mail"

    @property
    def serve_log(self) -> Path:
        return self.home / "serve.log"

    @property
    def server_log(self) -> Path:
        return self.prefect_home / "server.log"

    @property
    def state_file(self) -> Path:
        return self.home / "demo.json"

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise DemoError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise DemoError(f"{name}={port} is not a port number (1-65535)")
    return port


def configure() -> Layout:
    """Point this process and every child at the demo's own server, sink and files.

    Runs before anything imports Prefect: Prefect reads its settings once, at import.
    """
    from recovery.settings import Settings, get_settings

    home = Settings().home.expanduser().resolve()
    layout = Layout(home=home, port=_port("RECOVERY_DEMO_PORT", DEFAULT_PORT),
                    smtp_port=_port("RECOVERY_SMTP_PORT", 8025))
    for name in ("RECOVERY_SMTP_USER", "RECOVERY_SMTP_PASSWORD", "RECOVERY_SMTP_SECRET_BLOCK"):
        os.environ.pop(name, None)  # the sink takes no login
    os.environ.update({
        "RECOVERY_HOME": str(home),
        "RECOVERY_SMTP_HOST": HOST,
        "RECOVERY_SMTP_PORT": str(layout.smtp_port),
        "RECOVERY_SMTP_SECURITY": "plain",
        "RECOVERY_PREFECT_UI_URL": layout.ui_url,
        "RECOVERY_PREFECT_API_URL": layout.api_url,
        **prefect_client_env(layout.api_url, layout.ui_url, layout.prefect_home),
    })
    get_settings.cache_clear()
    return layout


# ---------------------------------------------------------------- a previous demo


def _is_server(argv: list[str]) -> bool:
    return "prefect" in " ".join(argv) and "server" in argv and "start" in argv


def _is_serve(argv: list[str]) -> bool:
    return "serve" in argv and "recovery" in " ".join(argv)


def _is_demo(argv: list[str]) -> bool:
    return "devstack.demo" in argv or any(a.endswith("devstack/demo.py") for a in argv)


def clear_previous(layout: Layout) -> None:
    """Refuse to run twice on one home; stop what a demo killed outright left behind."""
    try:
        state = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        return
    pid = int(state.get("pid") or 0)
    if pid and pid != os.getpid() and alive(pid) and _is_demo(command_line(pid)):
        raise DemoError(f"a demo is already running on {layout.home} (pid {pid}): use it, "
                        f"or stop it with Ctrl-C in its terminal")
    checks: dict[str, Callable[[list[str]], bool]] = {"serve": _is_serve, "server": _is_server}
    for name, looks_right in checks.items():
        child = int(state.get(name) or 0)
        if child and alive(child) and looks_right(command_line(child)):
            out.print(f"[yellow]Stopping the {name} process (pid {child}) left behind by a "
                      f"demo that did not stop cleanly.[/yellow]")
            if name == "serve":  # as in Demo.stop: let flow runs reach a wait first
                wait_for_idle(child, STOP_IDLE_TIMEOUT, quiet=STOP_QUIET)
            terminate_tree(child)
    layout.state_file.unlink(missing_ok=True)


def check_ports(layout: Layout) -> None:
    if port_in_use(layout.port, HOST):
        raise DemoError(f"port {layout.port} on {HOST} is already in use by another program: "
                        f"stop it, or pick another port with RECOVERY_DEMO_PORT=<port>")
    if port_in_use(layout.smtp_port, HOST):
        raise DemoError(f"port {layout.smtp_port} on {HOST} (the demo's mail sink) is already "
                        f"in use by another program: stop it, or pick another port with "
                        f"RECOVERY_SMTP_PORT=<port>")


# ---------------------------------------------------------------- application data


def prepare_database() -> None:
    """`recovery init` and `recovery people import examples/people.yaml`, once."""
    from sqlmodel import select

    from models.planfile import parse_people
    from recovery.adapters import db
    from recovery.adapters.tables import PersonRow
    from recovery.application import registry

    db.upgrade()
    people = parse_people(PEOPLE_FILE.read_bytes())
    with db.unit_of_work() as session:
        registry.initialise(session)
        known = {row.email for row in session.exec(select(PersonRow))}
        if any(person.email not in known for person in people.people):
            registry.import_people(session, people, actor="demo")


@dataclass
class Opened:
    plan: Path
    ref: str
    new: bool
    has_run: bool
    started: bool = False
    note: str | None = None


def open_examples() -> list[Opened]:
    """`recovery action open --no-flow` for each example plan not open yet. An action is
    the plan's when it has the same location and title."""
    from sqlmodel import select

    from models.planfile import parse_plan
    from recovery.adapters import db
    from recovery.adapters import repository as repo
    from recovery.adapters.tables import ActionRow
    from recovery.application import action_plans

    results = []
    for path in PLAN_FILES:
        plan = parse_plan(path.read_bytes())
        title = " ".join(plan.title.split()).casefold()
        with db.unit_of_work() as session:
            location = repo.get_location(session, plan.location)
            rows = session.exec(select(ActionRow).where(ActionRow.location_id == location.id))
            existing = next((row for row in rows
                             if " ".join(row.title.split()).casefold() == title), None)
            new = existing is None
            if existing is None:
                existing = action_plans.open_action(session, plan, actor="demo")
            results.append(Opened(path, existing.ref, new=new,
                                  has_run=bool(existing.flow_run_id)))
    return results


def prepare_data() -> list[Opened]:
    """Everything that needs only the application database (no Prefect server)."""
    prepare_database()
    return open_examples()


def start_runs(opened: list[Opened]) -> None:
    """`recovery action start` for each action without a lifecycle run (started once: the
    product keys the start, so even a start cut short before its id was stored is not
    repeated)."""
    from recovery.adapters import prefect_api

    for item in opened:
        if not item.has_run:
            item.note = prefect_api.start_or_explain(item.ref)
            item.started = item.note is None


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


# ---------------------------------------------------------------- the demo


class Demo:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.server: PrefectServer | None = None
        self.sink: Any = None
        self.serve: ServeProcess | None = None
        self.force = threading.Event()

    def save_state(self) -> None:
        state = {"pid": os.getpid(), "port": self.layout.port,
                 "server": self.server.process.pid if self.server else None,
                 "serve": self.serve.pid if self.serve else None}
        self.layout.state_file.write_text(json.dumps(state) + "\n")

    def start(self) -> list[str]:
        layout = self.layout
        layout.home.mkdir(parents=True, exist_ok=True)
        self.save_state()
        # The application database is prepared while the Prefect server boots.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-data") as pool:
            data = pool.submit(prepare_data)
            with _step(f"Prefect server and UI on {layout.ui_url}"):
                self.server = start_prefect_server(
                    host=HOST, port=layout.port, home=layout.prefect_home,
                    timeout=SERVER_TIMEOUT)
                self.save_state()
            with _step(f"Mail sink on {HOST}:{layout.smtp_port} -> {_rel(layout.mail_dir)}/"):
                from devstack.mailsink import MailSink

                self.sink = MailSink(layout.mail_dir, host=HOST, port=layout.smtp_port).start()
            with _step("recovery serve (deployments, polling every second)"):
                self.serve = ServeProcess(
                    [sys.executable, "-m", "recovery.cli", "serve"],
                    env={**os.environ, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
                    cwd=ROOT, log_path=layout.serve_log,
                ).start()
                self.save_state()
                self.serve.wait_for_output(SERVED_MESSAGE, timeout=SERVE_TIMEOUT)
            with _step("App database, staff directory and example plans"):
                opened = data.result()
        with _step("Lifecycle runs"):
            from recovery.adapters import mail

            mail.flush()  # anything a previous demo queued while no sink was listening
            start_runs(opened)
        with _step("Waiting-time automations"):
            from deployments.sync import apply_automations

            apply_automations()
        for item in opened:
            what = ("opened" if item.new else "already open") + (
                ", run started" if item.started else "")
            out.print(f"    {item.ref}: {what}  [dim]({item.plan.name})[/dim]")
            if item.note:
                out.print(f"    [yellow]{item.note}[/yellow]")
        return [item.ref for item in opened]

    def alive(self) -> str | None:
        """None while the children run, else which one stopped."""
        if self.server is not None and not self.server.is_running():
            return f"the Prefect server stopped (log: {_rel(self.layout.server_log)})"
        if self.serve is not None and not self.serve.is_running():
            return f"recovery serve stopped (log: {_rel(self.layout.serve_log)})"
        return None

    def stop(self) -> None:
        """`serve` first, once no flow run is between steps (see ServeProcess.stop), then
        the server and the sink. A second Ctrl-C stops without waiting."""
        if self.serve is not None and self.serve.is_running():
            if self.serve.children():
                out.print("Waiting for running flow runs to reach a wait "
                          "(Ctrl-C again to stop now)...")
            idle = self.serve.wait_for_idle(STOP_IDLE_TIMEOUT, quiet=STOP_QUIET,
                                            abort=self.force.is_set)
            if not idle:
                out.print("[yellow]Stopping recovery serve with flow runs still running: "
                          "they may end Crashed or Cancelled.[/yellow]")
            self.serve.stop(idle_timeout=0)
        if self.server is not None:
            self.server.stop()
        if self.sink is not None:
            self.sink.stop()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.layout.state_file.read_text()).get("pid") == os.getpid():
                self.layout.state_file.unlink()


@contextlib.contextmanager
def _step(text: str) -> Iterator[None]:
    started = time.monotonic()
    out.print(f"  {text} ...", end="")
    try:
        yield
    except Interrupted:
        out.print(" interrupted")
        raise
    except BaseException:
        out.print(" [red]failed[/red]")
        raise
    out.print(f" [green]ok[/green] [dim]{time.monotonic() - started:.1f}s[/dim]")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description="Run recovery-gates on one machine: Prefect server and UI, mail sink, "
                    "served deployments and the three example actions.")
    parser.add_argument(
        "--check", action="store_true",
        default=os.environ.get("RECOVERY_DEMO_EXIT_AFTER_READY", "") not in ("", "0"),
        help="exit once the examples wait for plan sign-off (also "
             "RECOVERY_DEMO_EXIT_AFTER_READY=1)")
    args = parser.parse_args(argv)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started = time.monotonic()
    demo: Demo | None = None
    code = 0
    try:
        layout = configure()
        clear_previous(layout)
        check_ports(layout)
        out.print(f"[bold]recovery-gates demo[/bold] in {_rel(layout.home)}/")
        demo = Demo(layout)
        refs = demo.start()
        try:
            views = wait_until_settled(layout, refs, strict=args.check)
        except NotReady as exc:
            print_views(exc.views)
            if args.check:
                raise DemoError(f"{exc} (log: {_rel(layout.serve_log)})") from None
            out.print(f"[yellow]{exc}: see {_rel(layout.serve_log)} and the runs in the UI."
                      "[/yellow]")
            views = exc.views
        else:
            print_views(views)
        elapsed = time.monotonic() - started
        if args.check:
            out.print(f"ready in {elapsed:.1f}s")
        else:
            print_guide(layout, views)
            out.print(f"[green]Ready[/green] in {elapsed:.1f}s. Press Ctrl-C to stop.")
            mail_watch = MailWatch(layout.mail_dir)
            while (stopped := demo.alive()) is None:
                mail_watch.poll()
                time.sleep(0.5)
            raise DemoError(stopped)
    except Interrupted as exc:
        out.print(f"\n{exc.args[0] if exc.args else 'Interrupted'}: stopping ...")
    except DemoError as exc:
        err.print(f"[red]error:[/red] {exc}")
        code = 1
    except Exception:  # noqa: BLE001 - say what broke, then stop what was started
        err.print_exception()
        code = 1
    finally:
        if demo is not None:
            def force(signum: int, frame: FrameType | None) -> None:
                demo.force.set()

            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, force)
            demo.stop()
            out.print("Stopped.")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
