"""All configuration in one place (environment prefix RECOVERY_)."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.dates import check_as_of
from models.errors import InvalidInput
from models.people import check_email

HOME = Path(".recovery")

#: How long a plan or closure sign-off may wait before the nominated individual is told
#: (the automation) and it may be reassigned to a stand-in.
DEFAULT_SIGNOFF_WAIT = timedelta(hours=48)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOVERY_", env_file=None, extra="ignore")

    home: Path = HOME
    database_url: str = ""  # default: sqlite file under home
    timezone: str = "Europe/London"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_security: Literal["plain", "starttls", "ssl"] = "plain"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_secret_block: str | None = None  # name of a Prefect Secret block holding the password
    # the sender passes the same address rule as everyone's (models/people.py); a special-use
    # name such as `localhost` is no deliverable domain, `localhost.localdomain` is
    mail_from: str = "recovery-gates@localhost.localdomain"

    # The key one-time codes are encrypted with while their email waits in the outbox (a
    # Fernet key); unset: `<home>/outbox.key`, made on first use, readable by its owner only.
    # Every process that queues or sends email needs the same key.
    outbox_key: SecretStr | None = None
    # An unsent email older than this (minutes), or failed this many times, is stuck:
    # `recovery doctor` says so.
    mail_stuck_minutes: int = Field(default=30, ge=1)
    mail_stuck_attempts: int = Field(default=3, ge=1)

    prefect_ui_url: str = "http://127.0.0.1:4200"
    prefect_api_url: str = "http://127.0.0.1:4200/api"
    evidence_freshness_days: int = 28
    # SQLite: how long a unit of work waits for another writer's lock (seconds) before it
    # is tried again (db_busy_retries more times, ~30 s in all by default) and then refused
    # with a clear message, having written nothing.
    db_busy_timeout: float = 10.0
    db_busy_retries: int = 2
    # Seconds an SMTP connection or reply may take: a mail server that accepts connections
    # and then stalls must not hold a lifecycle stage or a review cycle for ever.
    smtp_timeout: float = 30.0
    # On a work pool (deployments/prefect.yaml), route lifecycle runs to the "high-risk" or
    # "routine" queue so high-risk actions are picked up first.
    work_pool_queues: bool = False
    runner_poll_seconds: float = Field(default=0.5, ge=0.1)
    """RECOVERY_RUNNER_POLL_SECONDS: how often `recovery serve` asks the Prefect server for
    runs to start, so about how long a signed-off (resumed) run may wait to be picked up.
    Given to the served runner as its poll interval (Prefect's own default,
    PREFECT_RUNNER_POLL_FREQUENCY, is 10 s; that setting is used only when this one is not
    set). Each poll is one small query to the Prefect server."""
    mail_dir: Path | None = None
    # The folder the import-evidence deployment reads files from (default <home>/inbox):
    # its form takes a path inside it, so a Prefect user cannot have any file read.
    evidence_inbox: Path | None = None
    # Append-only copy of the audit chain's head (default: <home>/audit-anchors-<db>.jsonl);
    # see recovery/adapters/anchors.py. Put it on storage the database's administrators cannot edit.
    audit_anchor_file: Path | None = None
    business_date: date | None = None
    """RECOVERY_BUSINESS_DATE: the day that reviews, evidence checks and the triangulation
    gate treat as today (training, demos, replaying a day). Unset: the real date in
    `timezone`. Timestamps (sign-off codes and their expiry, decisions, audit) always use
    the real clock."""

    @field_validator("mail_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        return check_email(value)

    @field_validator("business_date")
    @classmethod
    def _business_date_in_range(cls, value: date | None, info: ValidationInfo) -> date | None:
        """Ten years back to a year ahead of the real date (`models.dates.check_as_of`)."""
        if value is not None:
            real_today = datetime.now(ZoneInfo(info.data.get("timezone", "Europe/London")))
            try:
                check_as_of(value, today=real_today.date())
            except InvalidInput as exc:
                raise ValueError(exc.rule) from None
        return value

    @model_validator(mode="after")
    def _running_demo(self) -> Settings:
        """A second terminal without the demo's exports still talks to the demo's server:
        its port is read from `<home>/demo.json` unless RECOVERY_PREFECT_API_URL (or
        _UI_URL) says otherwise."""
        port = demo_port(self.home)
        if port is not None:
            if "prefect_api_url" not in self.model_fields_set:
                self.prefect_api_url = f"http://127.0.0.1:{port}/api"
            if "prefect_ui_url" not in self.model_fields_set:
                self.prefect_ui_url = f"http://127.0.0.1:{port}"
        return self

    @property
    def demo_file(self) -> Path:
        return self.home / "demo.json"

    @property
    def prefect_api_source(self) -> str:
        """Where `prefect_api_url` came from, in words (for `recovery doctor`)."""
        if "prefect_api_url" in self.model_fields_set:
            return "RECOVERY_PREFECT_API_URL"
        if demo_port(self.home) is not None:
            return f"the running demo's {self.demo_file}"
        return "the default"

    @property
    def inbox(self) -> Path:
        return self.evidence_inbox or self.home / "inbox"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'recovery.db').resolve()}"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def now(self) -> datetime:
        return datetime.now(self.tz)

    def today(self) -> date:
        return self.business_date or self.now().date()

    @property
    def signoff_poll_seconds(self) -> float:
        """The former name of `runner_poll_seconds`."""
        return self.runner_poll_seconds

    def run_url(self, flow_run_id: str | None) -> str:
        if not flow_run_id:
            return self.prefect_ui_url
        return f"{self.prefect_ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}"


def demo_port(home: Path) -> int | None:
    """The Prefect port of the demo `make run` started under `home`, from its demo.json
    (written while it runs, removed when it stops); None when there is none."""
    import json

    try:
        port = json.loads((home / "demo.json").read_text()).get("port")
    except (OSError, ValueError, AttributeError):
        return None
    return port if isinstance(port, int) and 1 <= port <= 65535 else None


def url_port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None


@cache
def get_settings() -> Settings:
    return Settings()


def settings_error(exc: ValidationError) -> InvalidInput:
    """A setting that breaks its rule, named as it is set: `RECOVERY_MAIL_FROM: ...`."""
    first = exc.errors()[0]
    name = "RECOVERY_" + "_".join(str(p) for p in first["loc"]).upper()
    return InvalidInput(name, first["msg"].removeprefix("Value error, "))


def signoff_wait_from_env() -> timedelta:
    """`RECOVERY_SIGNOFF_WAIT_HOURS` (a number, fractions allowed), default 48."""
    raw = os.environ.get("RECOVERY_SIGNOFF_WAIT_HOURS", "").strip()
    if not raw:
        return DEFAULT_SIGNOFF_WAIT
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(f"RECOVERY_SIGNOFF_WAIT_HOURS: '{raw}' is not a number of hours") \
            from None
    return timedelta(hours=hours)
