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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

from devstack.demo_config import (
    HOST,
    ROOT,
    SERVE_TIMEOUT,
    SERVED_MESSAGE,
    SERVER_TIMEOUT,
    STOP_IDLE_TIMEOUT,
    STOP_QUIET,
    DemoError,
    Interrupted,
    Layout,
    check_ports,
    clear_previous,
    configure,
    err,
    out,
)
from devstack.demo_data import (
    prepare_data,
    start_runs,
)
from devstack.demo_status import (
    MailWatch,
    NotReady,
    _rel,
    print_guide,
    print_views,
    wait_until_settled,
)
from devstack.prefect_server import PrefectServer, start_prefect_server
from devstack.processes import ServeProcess

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
    """Run the demo: parse the one option, start everything, wait until the examples settle,
    then exit (`--check`) or keep watching the mail sink until Ctrl-C; always stop what was
    started. Returns the exit code (0, or 1 after an error it prints as one line).

    A little over 60 lines: the try/except/finally that guarantees the stop is one block, and
    pieces moved out of it would have to hand `demo` and the exit code back and forth."""
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
