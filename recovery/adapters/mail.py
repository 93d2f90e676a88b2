"""Email that is never lost: render (Jinja2, HTML + text), store in the outbox, then send
with yagmail. One row per recipient, so one undeliverable address blocks nobody else. A
failed send stays queued with backoff; a sent row is never sent again; a row that can never
be delivered (its address breaks the rule, the server refuses the recipient for good) is
marked dead with its reason instead of being retried for ever.

A one-time code never sits readable in the database: the stored message holds a
placeholder, and the code is kept beside it encrypted with the outbox key, which lives
outside the database (RECOVERY_OUTBOX_KEY, or `<home>/outbox.key`, mode 0600). The code is
put into the message only as it is sent, and its ciphertext is wiped once the server has
accepted the email; until then an SMTP outage or a restart loses nothing."""

from __future__ import annotations

import contextlib
import email
import os
import re
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import insert
from sqlmodel import Session, col, or_, select

from models.people import check_email, normalise_email
from models.review import rating_label
from recovery.adapters import escaping
from recovery.adapters.tables import OutboxRow, as_utc, utcnow
from recovery.settings import Settings, get_settings

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
MAX_BACKOFF = timedelta(hours=1)
#: A dead email makes `recovery doctor` fail for this long after it died.
DEAD_REPORTED_FOR = timedelta(days=7)
#: What the stored message says where the one-time code will be when it is sent.
CODE_PLACEHOLDER = "[one-time code: in the email only]"


@cache
def environment() -> Environment:
    """The one Jinja environment: every value escaped for its template's surface
    (`recovery/adapters/escaping.py`: HTML, Markdown, one-line text), strict about missing
    values. Templates
    ship with the code, so a process compiles each once and never re-reads the file (no
    `stat` per render: a daily cycle renders hundreds of escalation emails)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        auto_reload=False,
        # .md too, so a macro's Markdown is Markup and is not escaped a second time
        autoescape=select_autoescape(["html", "htm", "xml", "svg", "j2.html", "md"]),
        finalize=escaping.finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["uk_date"] = lambda d: d.strftime("%-d %B %Y") if d else ""
    env.filters["uk_short"] = lambda d: d.strftime("%d/%m/%Y") if d else ""
    env.filters["uk_datetime"] = uk_datetime
    env.filters["pct"] = pct
    env.filters["label"] = label
    env.filters["code"] = escaping.code
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


def render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) from templates/email/<template>.{subject,txt,html}."""
    env = environment()
    subject = env.get_template(f"email/{template}.subject.txt").render(context).strip()
    text = env.get_template(f"email/{template}.txt").render(context)
    html = env.get_template(f"email/{template}.html").render(context)
    return " ".join(subject.split()), text, html


def enqueue(
    session: Session, *, dedupe_key: str, to: list[str], template: str,
    context: dict[str, Any], action_ref: str | None = None, one_time_code: str | None = None,
) -> list[OutboxRow]:
    """Store a rendered email once per recipient; enqueuing the same key again returns the
    rows already queued. `one_time_code`, when the context carries one, is kept out of
    the stored message (see the module's docstring)."""
    item = Email(dedupe_key, to, template, context, action_ref, one_time_code)
    keys = _keys(item)
    existing = {row.dedupe_key: row for row in session.exec(
        select(OutboxRow).where(col(OutboxRow.dedupe_key).in_([k for k, _ in keys])))}
    missing = [(k, a) for k, a in keys if k not in existing]
    for values in _row_values(item, missing):
        existing[values["dedupe_key"]] = OutboxRow(**values)
        session.add(existing[values["dedupe_key"]])
    session.flush()
    return [existing[k] for k, _ in keys]


@dataclass(frozen=True, slots=True)
class Email:
    """One email to queue with `enqueue_many` (the arguments of `enqueue`)."""

    dedupe_key: str
    to: list[str]
    template: str
    context: dict[str, Any]
    action_ref: str | None = None
    one_time_code: str | None = None


def _keys(item: Email) -> list[tuple[str, str]]:
    """(dedupe key, address) of each row the email becomes: one per recipient, under the
    email's key when it has one recipient, else under `<key>:<address>`. Addresses are not
    checked here: a bad one stored before the rule must not stop a cycle; it dies at send."""
    addresses = sorted({normalise_email(r) for r in item.to})
    if len(addresses) == 1:
        return [(item.dedupe_key, addresses[0])]
    return [(f"{item.dedupe_key}:{address}", address) for address in addresses]


#: Dedupe keys per IN list (far below SQLite's and PostgreSQL's bind-parameter limits).
_KEY_CHUNK = 2000


def enqueue_many(session: Session, emails: Sequence[Email]) -> int:
    """Store rendered emails in order, as `enqueue` would one by one, with one dedupe
    query per 2,000 keys and one bulk INSERT: a key already in the outbox (or earlier in
    the batch) is skipped, and an email with no row missing is not rendered. Returns how
    many rows were added."""
    planned = [(item, _keys(item)) for item in emails]
    keys = list(dict.fromkeys(k for _, pairs in planned for k, _ in pairs))
    queued: set[str] = set()
    for i in range(0, len(keys), _KEY_CHUNK):
        queued.update(session.execute(
            select(OutboxRow.dedupe_key)
            .where(col(OutboxRow.dedupe_key).in_(keys[i:i + _KEY_CHUNK]))).scalars())
    rows: list[dict[str, Any]] = []
    for item, pairs in planned:
        missing = [(k, a) for k, a in pairs if k not in queued]
        queued.update(k for k, _ in missing)
        rows.extend({**values, "attempts": 0, "sent_at": None, "last_error": None,
                     "dead_at": None} for values in _row_values(item, missing))
    if rows:
        session.execute(insert(OutboxRow), rows)
    return len(rows)


def _row_values(item: Email, rows: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The columns of each newly queued row (key, address): rendered once, due now."""
    if not rows:
        return []
    subject, text, html = render(item.template, item.context)
    cipher = None
    if item.one_time_code:
        # the code leaves the stored message losslessly: the placeholder never occurs in a
        # rendered email, so putting the code back where it stood restores it exactly
        subject, text, html = (part.replace(item.one_time_code, CODE_PLACEHOLDER)
                               for part in (subject, text, html))
        cipher = _fernet().encrypt(item.one_time_code.encode()).decode()
    now = utcnow()
    return [{"dedupe_key": key, "action_ref": item.action_ref, "recipients": [address],
             "subject": subject, "text_body": text, "html_body": html, "code_cipher": cipher,
             "created_at": now, "next_attempt_at": now} for key, address in rows]


def _fernet(settings: Settings | None = None) -> Any:
    from cryptography.fernet import Fernet

    settings = settings or get_settings()
    if settings.outbox_key is not None:
        return Fernet(settings.outbox_key.get_secret_value().encode())
    return Fernet(_key_file(settings.home / "outbox.key"))


def _key_file(path: Path) -> bytes:
    """The key in `path`, made on first use, readable by its owner only. Written beside it
    and linked into place, so two processes starting at once agree on one key."""
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes().strip()


def outgoing(row: OutboxRow, settings: Settings | None = None) -> tuple[str, str, str]:
    """(subject, text, html) as the email is sent: the one-time code in its place."""
    if not row.code_cipher:
        return row.subject, row.text_body, row.html_body
    from cryptography.fernet import InvalidToken

    try:
        code = _fernet(settings).decrypt(row.code_cipher.encode()).decode()
    except InvalidToken:
        raise RuntimeError("the one-time code was encrypted with another outbox key than "
                           "this process's (RECOVERY_OUTBOX_KEY or <home>/outbox.key): send "
                           "it from a process that has the key it was queued with") from None
    subject, text, html = (part.replace(CODE_PLACEHOLDER, code)
                           for part in (row.subject, row.text_body, row.html_body))
    return subject, text, html


def _mailer_class() -> Any:
    import yagmail

    # yagmail ships no type information and no stub package exists: its SMTP is Any here
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


def send_one(smtp: Any, row: OutboxRow, settings: Settings | None = None) -> None:
    """Send one stored email; raise unless the server accepted every recipient."""
    subject, text, html = outgoing(row, settings)
    smtp.text_body = text
    # yagmail turns newlines into <br>: the HTML is laid out by its tags alone.
    html = " ".join(html.split("\n"))
    result = smtp.send(to=row.recipients, subject=subject, contents=[html],
                       headers={"X-Recovery-Key": row.dedupe_key}, prettify_html=False)
    if result is None or result is False or (isinstance(result, dict) and result):
        raise ConnectionError(f"the SMTP server did not accept the email: {result!r}")


def _smtp(settings: Settings) -> Any:

    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    if settings.smtp_secret_block:
        from prefect.blocks.system import Secret

        block = Secret.load(settings.smtp_secret_block)
        assert isinstance(block, Secret)  # a sync caller gets the block, not a coroutine
        password = str(block.get())
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
    if row is None or row.sent_at is not None or row.dead_at is not None:
        return None
    return row


def _unsent() -> Any:
    return (col(OutboxRow.sent_at).is_(None), col(OutboxRow.dead_at).is_(None))


def due(session: Session, now: datetime, limit: int = 200) -> list[OutboxRow]:
    return list(session.exec(
        select(OutboxRow)
        .where(*_unsent(),
               or_(col(OutboxRow.next_attempt_at).is_(None), col(OutboxRow.next_attempt_at) <= now))
        .order_by(col(OutboxRow.id)).limit(limit)
    ))


def undeliverable(row: OutboxRow) -> str | None:
    """Why the row's address can never be delivered (it breaks the address rule), or None.
    Rows queued before the rule, or with several recipients, are caught here."""
    if len(row.recipients) != 1:
        return f"{len(row.recipients)} recipients in one row; each needs its own"
    try:
        check_email(row.recipients[0])
    except ValueError as exc:
        # one line for doctor: control characters in the address shown escaped
        rule = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))
        return f"undeliverable address: {rule}"
    return None


def _refused_for_good(exc: Exception) -> bool:
    """The server refused the recipient with a permanent (5xx) reply: retrying cannot help."""
    return isinstance(exc, smtplib.SMTPRecipientsRefused) and bool(exc.recipients) and all(
        code >= 500 for code, _ in exc.recipients.values())


def _bury(row: OutboxRow, reason: str) -> None:
    row.dead_at = utcnow()
    row.next_attempt_at = None
    row.last_error = reason[:1000]
    row.code_cipher = None  # never sent: the code is withdrawn with it


def flush(settings: Settings | None = None, *, ignore_backoff: bool = False) -> dict[str, Any]:
    """Send what is due (with ``ignore_backoff``, every unsent email, even one whose retry
    is not yet due). Each row is claimed, sent and marked in its own transaction, so a
    crash between send and mark can at worst repeat that one email, never lose it. Says
    what is still queued, how many of those wait out a backoff and when the next is due."""
    from recovery.adapters.db import unit_of_work

    settings = settings or get_settings()
    sent = failed = dead = 0
    with unit_of_work() as session:
        ids = [r.id for r in (pending(session) if ignore_backoff else due(session, utcnow()))
               if r.id is not None]
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
            reason = undeliverable(row)
            if reason is not None:
                _bury(row, reason)
                session.add(row)
                dead += 1
                continue
            try:
                if unreachable is not None:
                    raise unreachable
                send_one(smtp, row, settings)
            except Exception as exc:  # noqa: BLE001 - any SMTP failure leaves the row queued
                if _refused_for_good(exc):
                    row.attempts += 1
                    _bury(row, f"refused by the mail server: {exc}")
                    session.add(row)
                    dead += 1
                    continue  # the connection is still good: the refusal was per recipient
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
            row.code_cipher = None
            forget_one_time_code(row)
            session.add(row)
            sent += 1
    if smtp is not None:
        with contextlib.suppress(Exception):
            smtp.close()
    with unit_of_work() as session:
        state = queue_state(session, utcnow())
    return {"sent": sent, "failed": failed, "dead": dead, **state}


def queue_state(session: Session, now: datetime) -> dict[str, Any]:
    """What is still queued: how many, how many wait out a backoff, when the next is due."""
    from sqlalchemy import func

    queued, waiting, next_at = session.execute(
        select(func.count(),
               func.count().filter(col(OutboxRow.next_attempt_at) > now),
               func.min(OutboxRow.next_attempt_at).filter(col(OutboxRow.next_attempt_at) > now))
        .select_from(OutboxRow).where(*_unsent())).one()
    return {"queued": queued, "waiting": waiting,
            "next_attempt_at": as_utc(next_at).isoformat() if next_at else None}


def health(session: Session, settings: Settings, now: datetime) -> tuple[bool, str]:
    """(ok, one line) for `recovery doctor`: email stuck in the outbox (failed
    `mail_stuck_attempts` times or more, or queued over `mail_stuck_minutes`) and email that
    died (never deliverable) in the last week, each with a count and the last reason."""
    from sqlalchemy import func

    old = now - timedelta(minutes=settings.mail_stuck_minutes)
    stuck_when = or_(col(OutboxRow.attempts) >= settings.mail_stuck_attempts,
                     col(OutboxRow.created_at) < old)
    queued = session.execute(select(func.count()).select_from(OutboxRow)
                             .where(*_unsent())).scalar_one()
    stuck = list(session.exec(select(OutboxRow).where(*_unsent(), stuck_when)
                              .order_by(col(OutboxRow.created_at))))
    dead = list(session.exec(select(OutboxRow).where(
        col(OutboxRow.dead_at) >= now - DEAD_REPORTED_FOR).order_by(col(OutboxRow.dead_at))))
    problems = []
    if stuck:
        minutes = int((now - as_utc(stuck[0].created_at)).total_seconds() // 60)
        failures = [r for r in stuck if r.last_error]
        last = max(failures, key=lambda r: as_utc(r.next_attempt_at or now)).last_error \
            if failures else "none tried yet (is anything flushing the outbox?)"
        problems.append(f"{len(stuck)} stuck (oldest queued {minutes} minutes ago, up to "
                        f"{max(r.attempts for r in stuck)} failed attempts); last failure: "
                        f"{last}")
    if dead:
        problems.append(f"{len(dead)} undeliverable in the last "
                        f"{DEAD_REPORTED_FOR.days} days, not retried; last: {dead[-1].last_error}")
    if problems:
        return False, "; ".join(problems)
    return True, f"{queued} queued, none stuck or undeliverable"


#: Emails queued before the code was kept encrypted (migration 0003) may still hold a code
#: in their bodies: once sent it is forgotten, so the reviewer's inbox is the only place
#: it exists.
ONE_TIME_CODE_KEYS = ("signoff:", "assurance:")
_ONE_TIME_CODE = re.compile(r"(?<![0-9A-Za-z-])\d{6}(?![0-9A-Za-z-])")


def forget_one_time_code(row: OutboxRow) -> None:
    if row.dedupe_key.startswith(ONE_TIME_CODE_KEYS):
        row.text_body = _ONE_TIME_CODE.sub("[sent, not kept]", row.text_body)
        row.html_body = _ONE_TIME_CODE.sub("[sent, not kept]", row.html_body)


def pending(session: Session) -> list[OutboxRow]:
    """Every email still to send (not sent, not dead)."""
    return list(session.exec(select(OutboxRow).where(*_unsent())
                             .order_by(col(OutboxRow.id))))


__all__ = ["Email", "enqueue", "enqueue_many", "flush", "health", "outgoing", "pending",
           "queue_state", "render", "as_utc"]
