"""The SMTP password in a Prefect Secret block (`recovery smtp set-secret NAME`, i.e.
`save_smtp_secret`), against a real Prefect server and a real SMTP server on loopback that
requires AUTH: the password reaches SMTP from the block; without a block the plain
settings still work; a block that is named but missing keeps email queued, never lost.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from devstack.processes import free_port
from models.errors import InvalidInput
from tests.support.prefect_server import PrefectServer
from tests.support.recovery_stack import RECOVERY_BIN, REPO_ROOT, _clean_environ
from tests.ui.conftest import run_python

pytestmark = [pytest.mark.prefect, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]

USER = "relay@harbourcare.example"


class AuthSmtp:
    """An SMTP server that accepts mail only after AUTH with one of `passwords`."""

    def __init__(self) -> None:
        self.passwords: set[str] = set()
        self.logins: list[tuple[str, str, bool]] = []
        self.messages: list[Any] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     authenticator=self.authenticate, auth_required=True,
                                     auth_require_tls=False)

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = login == USER and password in self.passwords
        with self._lock:
            self.logins.append((login, password, ok))
        return AuthResult(success=ok)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[AuthSmtp]:
    server = AuthSmtp()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


@pytest.fixture
def app(prefect_server: PrefectServer, template_database: Path, tmp_path: Path,
        smtp: AuthSmtp) -> dict[str, str]:
    """The environment of an installation whose SMTP relay needs a login."""
    shutil.copyfile(template_database, tmp_path / "recovery.db")
    smtp.logins.clear()
    smtp.messages.clear()
    return {**_clean_environ(), **prefect_server.env,
            "RECOVERY_HOME": str(tmp_path),
            "RECOVERY_DATABASE_URL": f"sqlite:///{tmp_path / 'recovery.db'}",
            "RECOVERY_PREFECT_API_URL": prefect_server.api_url,
            "RECOVERY_SMTP_HOST": "127.0.0.1", "RECOVERY_SMTP_PORT": str(smtp.port),
            "RECOVERY_SMTP_USER": USER, "RECOVERY_MAIL_FROM": USER}


def queue_email(env: dict[str, str], key: str) -> None:
    run_python(
        "from recovery.adapters import db, mail\n"
        "with db.unit_of_work() as s:\n"
        f"    mail.enqueue(s, dedupe_key={key!r}, to=['rm@quay.example'],\n"
        "                 template='escalation_notice', action_ref='QUAY-MED-001',\n"
        "                 context={'ref': 'QUAY-MED-001', 'title': 'Medicines gaps',\n"
        "                          'location': 'Quay House', 'opened_on': '2026-11-30',\n"
        "                          'reasons': ['off track'], 'run_url': 'http://x',\n"
        "                          'recipient_name': 'Owen Hughes'})\n", env)


def flush(env: dict[str, str], *extra: str) -> str:
    proc = subprocess.run([str(RECOVERY_BIN), "mail", "flush", *extra], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


def assert_waiting(line: str) -> None:
    """One message failed and waits out its backoff: the line says so, and when."""
    assert line.startswith("sent 0, failed 1, undeliverable 0; still queued 1, 1 waiting out "
                           "a backoff (next attempt "), line
    assert line.endswith("; `recovery mail flush --all` tries now)"), line


def test_password_comes_from_the_secret_block(app: dict[str, str], smtp: AuthSmtp) -> None:
    smtp.passwords = {"from-the-block"}
    run_python("from recovery.adapters.smtp_secret import save_smtp_secret as s; "
               "print(s('smtp-relay', 'from-the-block'))", app)
    env = {**app, "RECOVERY_SMTP_SECRET_BLOCK": "smtp-relay"}
    queue_email(env, "secret-test-1")
    assert flush(env) == "sent 1, failed 0, undeliverable 0; still queued 0"
    assert smtp.logins == [(USER, "from-the-block", True)]
    [message] = smtp.messages
    assert "QUAY-MED-001 at Quay House escalated" in message["Subject"]
    # the block's value can be replaced in place (a password rotation)
    run_python("from recovery.adapters.smtp_secret import save_smtp_secret as s; "
               "s('smtp-relay', 'rotated')", app)
    smtp.passwords = {"rotated"}
    queue_email(env, "secret-test-2")
    assert flush(env) == "sent 1, failed 0, undeliverable 0; still queued 0"
    assert smtp.logins[-1] == (USER, "rotated", True)


def test_settings_work_without_a_block(app: dict[str, str], smtp: AuthSmtp) -> None:
    smtp.passwords = {"from-the-environment"}
    env = {**app, "RECOVERY_SMTP_PASSWORD": "from-the-environment"}
    queue_email(env, "plain-test-1")
    assert flush(env) == "sent 1, failed 0, undeliverable 0; still queued 0"
    assert smtp.logins == [(USER, "from-the-environment", True)]
    assert len(smtp.messages) == 1


def test_a_missing_block_keeps_email_queued_until_it_exists(
    app: dict[str, str], smtp: AuthSmtp,
) -> None:
    smtp.passwords = {"late-password"}
    env = {**app, "RECOVERY_SMTP_SECRET_BLOCK": "not-saved-yet"}
    queue_email(env, "missing-test-1")
    assert_waiting(flush(env))
    assert not smtp.messages and not smtp.logins
    run_python("from recovery.adapters.smtp_secret import save_smtp_secret as s; "
               "s('not-saved-yet', 'late-password')", app)
    assert flush(env, "--all") == "sent 1, failed 0, undeliverable 0; still queued 0"
    assert smtp.logins == [(USER, "late-password", True)]
    assert len(smtp.messages) == 1


def test_a_wrong_password_keeps_email_queued(app: dict[str, str], smtp: AuthSmtp) -> None:
    smtp.passwords = {"the-right-one"}
    run_python("from recovery.adapters.smtp_secret import save_smtp_secret as s; "
               "s('smtp-wrong', 'the-wrong-one')", app)
    env = {**app, "RECOVERY_SMTP_SECRET_BLOCK": "smtp-wrong"}
    queue_email(env, "wrong-test-1")
    assert_waiting(flush(env))
    assert smtp.logins == [(USER, "the-wrong-one", False)]
    assert not smtp.messages


@pytest.mark.parametrize(("name", "password", "field"), [
    ("SMTP Relay", "x", "name"), ("smtp_relay", "x", "name"), ("", "x", "name"),
    ("smtp-relay", "", "password"),
])
def test_bad_input_is_refused_before_anything_is_saved(name: str, password: str,
                                                       field: str) -> None:
    from recovery.adapters.smtp_secret import save_smtp_secret

    with pytest.raises(InvalidInput) as refused:
        save_smtp_secret(name, password)
    assert refused.value.field == field
