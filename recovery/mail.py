"""Email that is never lost: render (Jinja2, HTML + text), store in the outbox, then send
with yagmail. A failed send stays queued with backoff; a sent row is never sent again."""

from __future__ import annotations

import contextlib
import email
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import insert
from sqlmodel import Session, col, or_, select

from models.review import rating_label
from models.tables import OutboxRow, as_utc, utcnow
from recovery.settings import Settings, get_settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_BACKOFF = timedelta(hours=1)


@cache
def environment() -> Environment:
    """The one Jinja environment: autoescaped HTML, strict about missing values. Templates
    ship with the code, so a process compiles each once and never re-reads the file (no
    `stat` per render: a daily cycle renders hundreds of escalation emails)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        auto_reload=False,
        autoescape=select_autoescape(["html", "htm", "xml", "svg", "j2.html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["uk_date"] = lambda d: d.strftime("%-d %B %Y") if d else ""
    env.filters["uk_short"] = lambda d: d.strftime("%d/%m/%Y") if d else ""
    env.filters["uk_datetime"] = uk_datetime
    env.filters["pct"] = pct
    env.filters["label"] = label
    env.filters["md"] = md_text
    return env


def uk_datetime(value: datetime | None, style: str = "short") -> str:
    """A timestamp in the configured zone (Europe/London): `26/11/2026 13:05 GMT`, or with
    style="long" `26 November 2026 at 13:05 GMT`. Naive values are taken as UTC."""
    if value is None:
        return ""
    local = as_utc(value).astimezone(get_settings().tz)
    if style == "long":
        return local.strftime("%-d %B %Y at %H:%M %Z")
    return local.strftime("%d/%m/%Y %H:%M %Z")


def label(value: object) -> str:
    """A stored word as people read it: a review rating by its label ("not yet
    evidenced"), anything else with its underscores as spaces."""
    return "" if value is None else rating_label(str(value))


def pct(value: float | None) -> str:
    """A percentage as people write it (`85%`, `62.5%`); a dash when there is none."""
    return "—" if value is None else f"{value:g}%"


_MD_ESCAPES = str.maketrans({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "\\\\", "`": "\\`", "*": "\\*",
    "_": "\\_", "[": "\\[", "]": "\\]", "|": "\\|", "#": "\\#",
})


def md_text(value: object) -> str:
    """Free text made inert in Markdown: no HTML, links, emphasis or table breaks survive,
    and line breaks become spaces (a Markdown template is not autoescaped)."""
    if value is None:
        return ""
    return " ".join(str(value).split()).translate(_MD_ESCAPES)


def render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) from templates/email/<template>.{subject,txt,html}."""
    env = environment()
    subject = env.get_template(f"email/{template}.subject.txt").render(context).strip()
    text = env.get_template(f"email/{template}.txt").render(context)
    html = env.get_template(f"email/{template}.html").render(context)
    return " ".join(subject.split()), text, html


def enqueue(
    session: Session, *, dedupe_key: str, to: list[str], template: str,
    context: dict[str, Any], action_ref: str | None = None,
) -> OutboxRow:
    """Store a rendered email once; enqueuing the same key again returns the first row."""
    existing = session.exec(select(OutboxRow).where(OutboxRow.dedupe_key == dedupe_key)).first()
    if existing is not None:
        return existing
    row = OutboxRow(**_row_values(Email(dedupe_key, to, template, context, action_ref)))
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True, slots=True)
class Email:
    """One email to queue with `enqueue_many` (the arguments of `enqueue`)."""

    dedupe_key: str
    to: list[str]
    template: str
    context: dict[str, Any]
    action_ref: str | None = None


#: Dedupe keys per IN list (far below SQLite's and PostgreSQL's bind-parameter limits).
_KEY_CHUNK = 2000


def enqueue_many(session: Session, emails: Sequence[Email]) -> int:
    """Store rendered emails in order, as `enqueue` would one by one, with one dedupe
    query per 2,000 keys and one bulk INSERT: a key already in the outbox (or earlier in
    the batch) is skipped and its email not rendered. Returns how many rows were added."""
    keys = list(dict.fromkeys(e.dedupe_key for e in emails))
    queued: set[str] = set()
    for i in range(0, len(keys), _KEY_CHUNK):
        queued.update(session.execute(
            select(OutboxRow.dedupe_key)
            .where(col(OutboxRow.dedupe_key).in_(keys[i:i + _KEY_CHUNK]))).scalars())
    rows = []
    for item in emails:
        if item.dedupe_key in queued:
            continue
        queued.add(item.dedupe_key)
        rows.append({**_row_values(item), "attempts": 0, "sent_at": None, "last_error": None})
    if rows:
        session.execute(insert(OutboxRow), rows)
    return len(rows)


def _row_values(item: Email) -> dict[str, Any]:
    """The columns of a newly queued email: rendered now, due now."""
    subject, text, html = render(item.template, item.context)
    now = utcnow()
    return {"dedupe_key": item.dedupe_key, "action_ref": item.action_ref,
            "recipients": sorted({r.strip().lower() for r in item.to}), "subject": subject,
            "text_body": text, "html_body": html, "created_at": now, "next_attempt_at": now}


def _mailer_class() -> Any:
    import yagmail

    class Mailer(yagmail.SMTP):  # type: ignore[misc]
        """yagmail with our own plain-text part: yagmail builds the multipart message and
        sends it; we only put the rendered text where it would repeat the HTML source."""

        text_body: str | None = None

        def prepare_send(self, *args: Any, **kwargs: Any) -> tuple[list[str], str]:
            recipients, message = super().prepare_send(*args, **kwargs)
            if self.text_body is None:
                return recipients, message
            parsed = email.message_from_string(message)
            for part in parsed.walk():
                if part.get_content_type() == "text/plain":
                    del part["Content-Transfer-Encoding"]
                    part.set_payload(self.text_body, charset="utf-8")
                    break
            return recipients, parsed.as_string()

        def login(self) -> None:
            # One connection for a whole flush: yagmail connects again for every message
            # (and never closes the old one); connect only when there is no live connection.
            if self.smtp is not None and not self.is_closed and \
                    getattr(self.smtp, "sock", None) is not None:
                return
            super().login()

    return Mailer


def send_one(smtp: Any, row: OutboxRow) -> None:
    """Send one stored email; raise unless the server accepted every recipient."""
    smtp.text_body = row.text_body
    # yagmail turns newlines into <br>: the HTML is laid out by its tags alone.
    html = " ".join(row.html_body.split("\n"))
    result = smtp.send(to=row.recipients, subject=row.subject, contents=[html],
                       headers={"X-Recovery-Key": row.dedupe_key}, prettify_html=False)
    if result is None or result is False or (isinstance(result, dict) and result):
        raise ConnectionError(f"the SMTP server did not accept the email: {result!r}")


def _smtp(settings: Settings) -> Any:

    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    if settings.smtp_secret_block:
        from prefect.blocks.system import Secret

        password = str(Secret.load(settings.smtp_secret_block).get())
    return _mailer_class()(
        user={settings.mail_from: "recovery-gates"} if not settings.smtp_user
        else settings.smtp_user,
        password=password,
        host=settings.smtp_host,
        port=settings.smtp_port,
        smtp_starttls=settings.smtp_security == "starttls",
        smtp_ssl=settings.smtp_security == "ssl",
        smtp_skip_login=not settings.smtp_user,
        soft_email_validation=False,
        timeout=settings.smtp_timeout,  # to smtplib: connect and every reply
    )


def _connect(settings: Settings) -> Any:
    smtp = _smtp(settings)
    smtp.login()
    return smtp


def _claim(session: Session, outbox_id: int) -> OutboxRow | None:
    """The unsent row, locked for this transaction; None when it is sent or another
    flush (another process) is sending it right now (PostgreSQL: SKIP LOCKED; SQLite's
    BEGIN IMMEDIATE already serialises flushes)."""
    row = session.exec(select(OutboxRow).where(OutboxRow.id == outbox_id)
                       .with_for_update(skip_locked=True)).first()
    return None if row is None or row.sent_at is not None else row


def due(session: Session, now: datetime, limit: int = 200) -> list[OutboxRow]:
    return list(session.exec(
        select(OutboxRow)
        .where(col(OutboxRow.sent_at).is_(None),
               or_(col(OutboxRow.next_attempt_at).is_(None), col(OutboxRow.next_attempt_at) <= now))
        .order_by(col(OutboxRow.id)).limit(limit)
    ))


def flush(settings: Settings | None = None, *, ignore_backoff: bool = False) -> dict[str, int]:
    """Send what is due (with ``ignore_backoff``, every unsent email, even one whose retry
    is not yet due). Each row is claimed, sent and marked in its own transaction, so a
    crash between send and mark can at worst repeat that one email, never lose it."""
    from recovery.db import unit_of_work

    settings = settings or get_settings()
    sent = failed = 0
    with unit_of_work() as session:
        ids = [r.id for r in (pending(session) if ignore_backoff else due(session, utcnow()))]
    if not ids:
        return {"sent": 0, "failed": 0, "queued": 0}
    smtp = None
    unreachable: Exception | None = None
    for outbox_id in ids:
        if smtp is None and unreachable is None:
            # Connect before the row's transaction: a mail server that is slow or stalls
            # never holds the database (on SQLite, every other writer). One failed connect
            # is the answer for the whole flush: the rest stay queued with the same error.
            try:
                smtp = _connect(settings)
            except Exception as exc:  # noqa: BLE001 - recorded on each row below
                unreachable = exc
        with unit_of_work() as session:
            row = _claim(session, outbox_id)
            if row is None:
                continue
            try:
                if unreachable is not None:
                    raise unreachable
                send_one(smtp, row)
            except Exception as exc:  # noqa: BLE001 - any SMTP failure leaves the row queued
                row.attempts += 1
                backoff = min(timedelta(seconds=30 * 2 ** (row.attempts - 1)), MAX_BACKOFF)
                row.next_attempt_at = utcnow() + backoff
                row.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                session.add(row)
                failed += 1
                smtp = None
                continue
            row.attempts += 1
            row.sent_at = utcnow()
            row.last_error = None
            forget_one_time_code(row)
            session.add(row)
            sent += 1
    if smtp is not None:
        with contextlib.suppress(Exception):
            smtp.close()
    with unit_of_work() as session:
        queued = len(due(session, utcnow() + MAX_BACKOFF, limit=100000))
    return {"sent": sent, "failed": failed, "queued": queued}


#: Emails that carry a one-time code (sign-off and assurance requests). Codes are hashed at
#: rest: the stored copy holds the code only until the email is sent, then forgets it, so
#: the reviewer's inbox is the only place it exists.
ONE_TIME_CODE_KEYS = ("signoff:", "assurance:")
_ONE_TIME_CODE = re.compile(r"(?<![0-9A-Za-z-])\d{6}(?![0-9A-Za-z-])")


def forget_one_time_code(row: OutboxRow) -> None:
    if row.dedupe_key.startswith(ONE_TIME_CODE_KEYS):
        row.text_body = _ONE_TIME_CODE.sub("[sent, not kept]", row.text_body)
        row.html_body = _ONE_TIME_CODE.sub("[sent, not kept]", row.html_body)


def pending(session: Session) -> list[OutboxRow]:
    return list(session.exec(select(OutboxRow).where(col(OutboxRow.sent_at).is_(None))
                             .order_by(col(OutboxRow.id))))


__all__ = ["Email", "enqueue", "enqueue_many", "flush", "render", "pending", "as_utc"]
