"""The append-only audit trail: each entry is hash-chained to the one before."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

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


class AuditAnchor(BaseModel):
    """The head of the chain (entry number and hash) as it was at some moment, kept outside
    the application database: a Prefect artifact, an append-only file, a governance email.
    A chain that no longer holds an anchored entry, or holds it with another hash, was cut
    or rewritten, which the chain alone cannot show (an attacker who deletes the newest
    entries, or recomputes every hash, leaves a chain that verifies)."""

    model_config = ConfigDict(frozen=True)

    seq: int = Field(ge=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: datetime
    where: str = "given"


class ChainVerification(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    anchors_checked: int = 0


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


def verify_chain(
    entries: Iterable[AuditEntry], anchors: Iterable[AuditAnchor] = (),
) -> ChainVerification:
    """Recompute every hash in order; the first entry that does not match is reported.
    Then hold the chain against every anchor kept elsewhere: each anchored entry must still
    be there with the anchored hash."""
    by_seq: dict[int, list[AuditAnchor]] = {}
    for anchor in anchors:
        by_seq.setdefault(anchor.seq, []).append(anchor)
    checked = 0
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
        for anchor in by_seq.get(entry.seq, ()):
            checked += 1
            if anchor.hash != entry.hash:
                return ChainVerification(
                    ok=False, entries=count, first_bad_seq=entry.seq, anchors_checked=checked,
                    reason=f"entry {entry.seq} is not the entry anchored on "
                           f"{_when(anchor)} ({anchor.where}): the chain was rewritten",
                )
        prev = entry.hash
    beyond = [a for seq, found in by_seq.items() if seq > count for a in found]
    if beyond:
        last = max(beyond, key=lambda a: a.seq)
        return ChainVerification(
            ok=False, entries=count, first_bad_seq=count + 1, anchors_checked=checked,
            reason=f"the chain ends at entry {count} but the anchor of {_when(last)} "
                   f"({last.where}) holds entry {last.seq}: entries {count + 1} to "
                   f"{last.seq} or more were deleted",
        )
    return ChainVerification(ok=True, entries=count, anchors_checked=checked)


def _when(anchor: AuditAnchor) -> str:
    return anchor.at.strftime("%d/%m/%Y %H:%M")


#: A review's stored values, in the order its digest serialises them (every column of the
#: review table but its id and created_at, which say which rows an audit entry covers).
REVIEW_COLUMNS = ("action_id", "as_of", "cadence", "measured_value", "trajectory_value",
                  "target_met", "rating", "days_to_deadline", "triggers", "reasons",
                  "pillars", "reviewed_by")


class ReviewsDigest:
    """SHA-256 over reviews as written, so an audit entry can cover every review it
    records: each review is the compact JSON object of its `REVIEW_COLUMNS` (orjson, in
    that key order) followed by a comma, in the order the reviews were written. Chunks of
    reviews are serialised in one call (`[a,b]` is `a` + `,` + `b` in brackets), which keeps
    the daily cycle's cost to one encoding of what it writes."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.count = 0

    def add(self, reviews: Sequence[Mapping[str, Any]]) -> None:
        if reviews:
            self._sha.update(orjson.dumps(reviews)[1:-1] + b",")
            self.count += len(reviews)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def review_digest_of(reviews: Iterable[Sequence[Any]]) -> ReviewsDigest:
    """The digest of stored reviews given as rows of `REVIEW_COLUMNS` values."""
    digest = ReviewsDigest()
    chunk: list[dict[str, Any]] = []
    for row in reviews:
        chunk.append(dict(zip(REVIEW_COLUMNS, row, strict=True)))
        if len(chunk) == 2000:
            digest.add(chunk)
            chunk = []
    digest.add(chunk)
    return digest
