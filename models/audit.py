"""The append-only audit trail: each entry is hash-chained to the one before."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

GENESIS = "0" * 64


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    at: datetime
    actor: str
    action_ref: str | None
    event: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class ChainVerification(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None


def entry_hash(
    *, seq: int, at: datetime, actor: str, action_ref: str | None, event: str,
    details: dict[str, Any], prev_hash: str,
) -> str:
    payload = json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(),
            "actor": actor,
            "action_ref": action_ref,
            "event": event,
            "details": details,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def verify_chain(entries: Iterable[AuditEntry]) -> ChainVerification:
    """Recompute every hash in order; the first entry that does not match is reported."""
    prev = GENESIS
    count = 0
    for expected_seq, entry in enumerate(entries, start=1):
        count += 1
        if entry.seq != expected_seq:
            # report the position that broke, not the (possibly edited) stored number
            return ChainVerification(
                ok=False, entries=count, first_bad_seq=expected_seq,
                reason=f"entry {entry.seq} is out of sequence (expected {expected_seq})",
            )
        if entry.prev_hash != prev:
            return ChainVerification(
                ok=False, entries=count, first_bad_seq=entry.seq,
                reason=f"entry {entry.seq} does not follow the entry before it",
            )
        recomputed = entry_hash(
            seq=entry.seq, at=entry.at, actor=entry.actor, action_ref=entry.action_ref,
            event=entry.event, details=entry.details, prev_hash=entry.prev_hash,
        )
        if recomputed != entry.hash:
            return ChainVerification(
                ok=False, entries=count, first_bad_seq=entry.seq,
                reason=f"entry {entry.seq} was altered after it was written",
            )
        prev = entry.hash
    return ChainVerification(ok=True, entries=count)
