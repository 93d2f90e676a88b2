"""Sending what the outbox holds. Failures leave email queued for the next flush."""

from __future__ import annotations

import logging

from recovery.adapters import mail

log = logging.getLogger(__name__)


def flush_outbox() -> dict[str, int]:
    """Best effort: a down SMTP server never fails the stage that queued the email."""
    try:
        return mail.flush()
    except Exception as exc:  # noqa: BLE001
        log.warning("email stays queued: %s", exc)
        return {"sent": 0, "failed": 0, "queued": -1}
