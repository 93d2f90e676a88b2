"""`recovery doctor` against a real Prefect server, mail sink and app database: each check
failing and passing, one line each, exit 1 on any failure and 0 when all pass.

One walk through the life of an installation, in file order: nothing set up yet, then the
database, `recovery serve`, the automations; then things break one at a time (SMTP down,
a missing Secret block, an automation switched off, `recovery serve` stopped, the Prefect
server gone) and each is named on its own line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.processes import free_port
from tests.support.prefect_server import PrefectServer, wait_until
from tests.support.recovery_stack import RECOVERY_BIN, REPO_ROOT, RecoveryStack
from tests.ui.conftest import run_python

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

# The server marks a deployment "not ready" soon after its runner stops polling.
SERVER_ENV = {
    "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": "2",
    "PREFECT_SERVER_SERVICES_FOREMAN_DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS": "8",
}
CHECKS = ["database", "prefect server", "deployments", "smtp", "outbox", "automations"]
LINE = re.compile(
    r"^(ok  |FAIL) (database|prefect server|deployments|smtp|outbox|automations): (.+)$")


@dataclass
class Doctor:
    exit_code: int
    lines: dict[str, tuple[bool, str]]
    output: str

    def failing(self) -> set[str]:
        return {name for name, (ok, _) in self.lines.items() if not ok}

    def detail(self, name: str) -> str:
        return self.lines[name][1]


def doctor(env: Mapping[str, str]) -> Doctor:
    proc = subprocess.run([str(RECOVERY_BIN), "doctor"], env=dict(env), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    text = proc.stdout.rstrip("\n")
    lines = text.splitlines()
    assert len(lines) == len(CHECKS), f"one line per check expected:\n{text}\n{proc.stderr}"
    parsed = {}
    for line in lines:
        match = LINE.match(line)
        assert match, f"not a doctor line: {line!r}"
        parsed[match.group(2)] = (match.group(1) == "ok  ", match.group(3))
    assert list(parsed) == CHECKS
    failing = [n for n, (ok, _) in parsed.items() if not ok]
    assert proc.returncode == (1 if failing else 0), f"exit {proc.returncode}:\n{text}"
    return Doctor(proc.returncode, parsed, text)


@pytest.fixture(scope="module")
def site(prefect_server: PrefectServer, template_database: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecoveryStack]:
    """An installation not set up yet: a Prefect server and an SMTP server, an empty
    RECOVERY_HOME; the tests set it up step by step."""
    recovery = RecoveryStack(prefect_server, tmp_path_factory.mktemp("doctor-home"),
                             template=template_database)
    recovery.sink.start()
    try:
        yield recovery
    finally:
        recovery.stop()


def test_nothing_set_up_yet(site: RecoveryStack) -> None:
    result = doctor(site.env)
    assert result.failing() == {"database", "outbox", "deployments", "automations"}, \
        result.output
    assert "is not initialised: run `recovery init`" in result.detail("database")
    assert result.detail("outbox") == "not readable (see the database line)"
    assert result.detail("deployments").startswith("not served: high-risk-action, ")
    assert "(run `recovery serve`)" in result.detail("deployments")
    assert "recovery-notify deployment is missing" in result.detail("automations")
    assert result.detail("prefect server").endswith("healthy")
    assert "answers" in result.detail("smtp")


def test_database_initialised_then_served_then_automations_applied(
    site: RecoveryStack, template_database: Path,
) -> None:
    for leftover in site.home.glob("recovery.db*"):  # what the first doctor opened
        leftover.unlink()
    shutil.copyfile(template_database, site.db_path)  # = recovery init + people import
    result = doctor(site.env)
    assert result.failing() == {"deployments", "automations"}, result.output
    assert " at 0005, 0 actions" in result.detail("database")
    assert result.detail("outbox") == "0 queued, none stuck or undeliverable"

    site.start_serve()
    result = doctor(site.env)
    assert result.failing() == {"automations"}, result.output
    assert result.detail("deployments") == "11 deployments served and ready"
    assert result.detail("automations").startswith("not applied: recovery · sign-off")
    assert "(run `recovery automations apply`)" in result.detail("automations")

    run_python("from deployments.sync import apply_automations as a; a()", site.env)
    result = doctor(site.env)
    assert result.exit_code == 0 and not result.failing(), result.output
    assert result.detail("automations") == "3 automations enabled; sign-off wait 2 days"
    print(result.output)


def test_smtp_down(site: RecoveryStack) -> None:
    site.sink.stop()
    try:
        result = doctor(site.env)
    finally:
        site.sink.start()
    assert result.failing() == {"smtp"}, result.output
    assert result.detail("smtp").startswith(f"127.0.0.1:{site.sink.port} does not answer")
    assert "email stays queued until it does" in result.detail("smtp")
    assert doctor(site.env).exit_code == 0


def test_smtp_secret_block_missing_then_saved(site: RecoveryStack) -> None:
    env = {**site.env, "RECOVERY_SMTP_SECRET_BLOCK": "smtp-relay-password"}
    result = doctor(env)
    assert result.failing() == {"smtp"}, result.output
    assert result.detail("smtp") == ("Secret block 'smtp-relay-password' not found on the "
                                     "Prefect server (`recovery smtp set-secret "
                                     "smtp-relay-password`)")
    run_python("from recovery.adapters.smtp_secret import save_smtp_secret as s; "
               "s('smtp-relay-password', 'not-a-real-password')", site.env)
    result = doctor(env)
    assert result.exit_code == 0, result.output
    assert "password from Secret block 'smtp-relay-password'" in result.detail("smtp")
    assert "not-a-real-password" not in result.output


def test_database_not_initialised(site: RecoveryStack, tmp_path: Path) -> None:
    env = {**site.env, "RECOVERY_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db"}
    result = doctor(env)
    assert result.failing() == {"database", "outbox"}, result.output
    assert result.detail("database") == (f"sqlite:///{tmp_path}/fresh.db is not "
                                         "initialised: run `recovery init`")


def test_automation_switched_off_in_the_ui(site: RecoveryStack) -> None:
    from deployments.automations import ESCALATED

    with site.client() as client:
        [automation] = client.read_automations_by_name(ESCALATED)
        client.pause_automation(automation.id)
        try:
            result = doctor(site.env)
        finally:
            client.resume_automation(automation.id)
    assert result.failing() == {"automations"}, result.output
    assert result.detail("automations") == f"disabled in the Prefect UI: {ESCALATED}"
    assert doctor(site.env).exit_code == 0


def test_serve_stopped(site: RecoveryStack) -> None:
    site.serve.stop()
    result = wait_until(lambda: (r := doctor(site.env)) and "deployments" in r.failing() and r,
                        timeout=90, interval=2, message="deployments reported not ready")
    assert result.failing() == {"deployments"}, result.output
    assert result.detail("deployments").startswith("not ready (is `recovery serve` running?)")


def test_prefect_server_gone(site: RecoveryStack) -> None:
    port = free_port()
    dead = f"http://127.0.0.1:{port}/api"
    env = {**site.env, "PREFECT_API_URL": dead, "RECOVERY_PREFECT_API_URL": dead}
    result = doctor(env)
    assert result.failing() == {"prefect server", "deployments", "automations"}, result.output
    # what failed, then the port it tried, where that came from and where it looked
    assert result.detail("prefect server").startswith(
        f"no Prefect server answers at {dead} (ConnectError): start it (`make run` starts it "
        f"and `recovery serve`); tried port {port} (from PREFECT_API_URL); looked for a "
        "running demo in "), result.detail("prefect server")
    assert result.detail("prefect server").endswith("demo.json: none there")
    assert result.detail("database").endswith(" at 0005, 0 actions")


def test_email_to_an_undeliverable_address_is_reported_not_ok(site: RecoveryStack) -> None:
    """An address stored before the address rule: the email to it dies at the first flush
    (never retried), and the outbox line says so with the count and the reason."""
    bad = "rm2@rose.example\nbcc:evil@evil.example"
    run_python(
        "from recovery.adapters import db, mail\n"
        "with db.unit_of_work() as s:\n"
        f"    mail.enqueue(s, dedupe_key='doctor-test', to=[{bad!r}, 'rm@rose.example'],\n"
        "                 template='gate_refused', context={'ref': 'ROSE-SG-001', 'title': 'T',"
        " 'lead_name': 'L', 'reasons': ['r'], 'as_of': None, 'run_url': 'u'})", site.env)
    flushed = site.cli_json("mail", "flush")
    assert (flushed["sent"], flushed["dead"], flushed["queued"]) == (1, 1, 0), flushed
    try:
        result = doctor(site.env)
        assert "outbox" in result.failing(), result.output  # (serve was stopped above)
        assert result.detail("outbox").startswith(
            "1 undeliverable in the last 7 days, not retried; last: undeliverable address: "
            "'rm2@rose.example\\nbcc:evil@evil.example' is not one email address"), \
            result.detail("outbox")
    finally:
        run_python("from sqlalchemy import text\nfrom recovery.adapters import db\n"
                   "with db.unit_of_work() as s:\n"
                   "    s.execute(text(\"DELETE FROM outbox\"\n"
                   "                   \" WHERE dedupe_key LIKE 'doctor-test%'\"))",
                   site.env)
    assert "outbox" not in doctor(site.env).failing()
