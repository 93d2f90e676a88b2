"""A local SMTP sink: every message it receives becomes a ``.eml`` file in a directory.

For demos and tests, never for real mail. Run it with::

    python -m devstack.mailsink --host 127.0.0.1 --port 8025 --dir ./.recovery/mail

or in-process::

    with MailSink(tmp_path / "mail", port=None) as sink:   # None: a free port
        ...send to sink.host:sink.port...
        [msg] = sink.wait_for_messages(1)

Each file holds the message bytes as received, preceded by two headers a mail server would
add: ``X-Envelope-From`` (MAIL FROM) and ``X-Envelope-To`` (every RCPT TO, Bcc included).
Files are written under a hidden temporary name and then linked into place, so a reader
never sees a partial ``.eml``. Names sort in arrival order:
``20261126T123456.123456Z-000001.eml``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import FrameType, TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MailSink", "MailSinkHandler", "main"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8025
DEFAULT_DIR = Path(".recovery/mail")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _header_safe(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


class MailSinkHandler:
    """aiosmtpd handler that writes each message to ``directory`` as a ``.eml`` file."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._counter = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8")
        try:
            path = self.store(
                content,
                mail_from=envelope.mail_from or "",
                rcpt_tos=[str(rcpt) for rcpt in envelope.rcpt_tos],
            )
        except OSError:
            logger.exception("mailsink: could not store a message")
            return "451 Requested action aborted: local error in processing"
        logger.info("mailsink: stored %s (to %s)", path.name, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def store(self, content: bytes, *, mail_from: str, rcpt_tos: Sequence[str]) -> Path:
        """Write one message atomically; return its final path."""
        prefix = (
            f"X-Envelope-From: {_header_safe(mail_from)}\r\n"
            f"X-Envelope-To: {_header_safe(', '.join(rcpt_tos))}\r\n"
        ).encode()
        handle, tmp_name = tempfile.mkstemp(prefix=".incoming-", suffix=".tmp", dir=self.directory)
        tmp_path = Path(tmp_name)
        try:
            with os.fdopen(handle, "wb") as fh:
                fh.write(prefix)
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            with self._lock:
                while True:
                    self._counter += 1
                    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                    final = self.directory / f"{stamp}-{self._counter:06d}.eml"
                    try:
                        # link() never replaces an existing file, unlike rename().
                        os.link(tmp_path, final)
                    except FileExistsError:
                        continue
                    break
        finally:
            tmp_path.unlink(missing_ok=True)
        return final


class MailSink:
    """An SMTP sink running in a background thread (aiosmtpd ``Controller``).

    ``port=None`` picks a free port; read it from :attr:`port` after construction.
    """

    def __init__(
        self,
        directory: Path | str = DEFAULT_DIR,
        host: str = DEFAULT_HOST,
        port: int | None = DEFAULT_PORT,
    ) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port if port is not None else _free_port(host)
        self.handler = MailSinkHandler(self.directory)
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> MailSink:
        if self._controller is not None:
            raise RuntimeError("mail sink already started")
        controller = Controller(
            self.handler,
            hostname=self.host,
            port=self.port,
            # 8BITMIME/SMTPUTF8 so that non-ASCII headers and bodies pass unchanged.
            enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller
        logger.info(
            "mailsink: listening on %s:%d, writing to %s", self.host, self.port, self.directory
        )
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def paths(self) -> list[Path]:
        """Stored ``.eml`` files, oldest first."""
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        """Every stored message, parsed, oldest first."""
        return [read_message(path) for path in self.paths()]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Wait until at least ``count`` messages are stored; return all of them."""
        deadline = time.monotonic() + timeout
        while len(self.paths()) < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{len(self.paths())} message(s) in {self.directory} after {timeout}s, "
                    f"expected {count}"
                )
            time.sleep(0.05)
        return self.messages()

    def clear(self) -> None:
        for path in self.paths():
            path.unlink(missing_ok=True)

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def read_message(path: Path | str) -> EmailMessage:
    """Parse a stored ``.eml`` file."""
    with Path(path).open("rb") as fh:
        message = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(message, EmailMessage)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.mailsink",
        description="Local SMTP sink: stores every message as a .eml file.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, dest="directory")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP verb
    sink = MailSink(args.directory, host=args.host, port=args.port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sink.start()
    print(
        f"mailsink listening on {sink.host}:{sink.port}, writing to {sink.directory.resolve()}",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
