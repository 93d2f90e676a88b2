"""The demo's configuration (`Layout`: home, ports, files, from the environment), its
consoles and errors, and the checks before it starts: a previous demo on the same home,
ports already in use. Part of `python -m devstack.demo` (devstack/demo.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from devstack.prefect_server import prefect_client_env
from devstack.processes import (
    alive,
    command_line,
    port_in_use,
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


