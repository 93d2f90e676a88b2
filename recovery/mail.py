"""Email that is never lost: render (Jinja2, HTML + text), store in the outbox, then send
with yagmail. A failed send stays queued with backoff; a sent row is never sent again."""

from __future__ import annotations

import contextlib
import email
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlmodel import Session, col, or_, select

from models.tables import OutboxRow, as_utc, utcnow
from recovery.settings import Settings, get_settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_BACKOFF = timedelta(hours=1)


@cache
def environment() -> Environment:
    """The one Jinja environment: autoescaped HTML, strict about missing values."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "htm", "xml", "j2.html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["uk_date"] = lambda d: d.strftime("%-d %B %Y") if d else ""
    env.filters["uk_short"] = lambda d: d.strftime("%d/%m/%Y") if d else ""
    return env


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
    subject, text, html = render(template, context)
    row = OutboxRow(dedupe_key=dedupe_key, action_ref=action_ref,
                    recipients=sorted({r.strip().lower() for r in to}), subject=subject,
                    text_body=text, html_body=html, next_attempt_at=utcnow())
    session.add(row)
    session.flush()
    return row


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
    )


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
    for outbox_id in ids:
        with unit_of_work() as session:
            row = session.get(OutboxRow, outbox_id)
            if row is None or row.sent_at is not None:
                continue
            try:
                if smtp is None:
                    smtp = _smtp(settings)
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
            session.add(row)
            sent += 1
    if smtp is not None:
        with contextlib.suppress(Exception):
            smtp.close()
    with unit_of_work() as session:
        queued = len(due(session, utcnow() + MAX_BACKOFF, limit=100000))
    return {"sent": sent, "failed": failed, "queued": queued}


def pending(session: Session) -> list[OutboxRow]:
    return list(session.exec(select(OutboxRow).where(col(OutboxRow.sent_at).is_(None))
                             .order_by(col(OutboxRow.id))))


__all__ = ["enqueue", "flush", "render", "pending", "as_utc"]
