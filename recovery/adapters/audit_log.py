"""Appending to and verifying the hash-chained audit trail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert, text
from sqlmodel import Session, col, select

from models.audit import (
    GENESIS,
    REVIEW_COLUMNS,
    AuditAnchor,
    AuditEntry,
    ChainVerification,
    entry_hash,
    review_digest_of,
    verify_chain,
)
from recovery.adapters.db import is_postgres
from recovery.adapters.tables import ActionRow, AuditRow, ReviewRow

_CHAIN_LOCK = 7_204_161  # advisory lock id for the chain head on PostgreSQL


def append(
    session: Session,
    *,
    actor: str,
    event: str,
    action_ref: str | None,
    details: dict[str, Any],
    dedupe_key: str | None = None,
) -> AuditRow:
    """Add one entry at the head of the chain. With a dedupe key, a second append of the
    same fact (a task re-run after a resume) returns the first entry instead."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    if dedupe_key is not None:
        existing = session.exec(select(AuditRow).where(AuditRow.dedupe_key == dedupe_key)).first()
        if existing is not None:
            return existing
    head = session.exec(select(AuditRow).order_by(col(AuditRow.seq).desc()).limit(1)).first()
    seq = 1 if head is None else head.seq + 1
    prev_hash = GENESIS if head is None else head.hash
    at = datetime.now(UTC)
    details = _jsonable(details)
    row = AuditRow(
        seq=seq,
        at=at.isoformat(),
        actor=actor,
        action_ref=action_ref,
        event=event,
        details=details,
        prev_hash=prev_hash,
        hash=entry_hash(
            seq=seq, at=at, actor=actor, action_ref=action_ref, event=event,
            details=details, prev_hash=prev_hash,
        ),
        dedupe_key=dedupe_key,
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry to append with `append_many` (the arguments of `append`)."""

    actor: str
    event: str
    action_ref: str | None
    details: dict[str, Any]
    dedupe_key: str | None = None


#: Dedupe keys per IN list (far below SQLite's and PostgreSQL's bind-parameter limits).
_KEY_CHUNK = 2000


def append_many(session: Session, entries: Sequence[Entry]) -> list[int]:
    """Append entries in order, as `append` would one by one, with one lock, one dedupe
    query per 2,000 keys, one read of the chain head and one bulk INSERT: the chain is
    the one that appending them one by one writes (each entry hashed onto the one before,
    an entry whose dedupe key is already in the chain, or earlier in the batch, skipped).
    Returns each entry's sequence number (for a skipped entry, the first one's)."""
    if not entries:
        return []
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    keys = list(dict.fromkeys(e.dedupe_key for e in entries if e.dedupe_key is not None))
    known: dict[str, int] = {}
    for i in range(0, len(keys), _KEY_CHUNK):
        known.update(session.execute(
            select(AuditRow.dedupe_key, AuditRow.seq)
            .where(col(AuditRow.dedupe_key).in_(keys[i:i + _KEY_CHUNK]))).all())
    head = session.execute(
        select(AuditRow.seq, AuditRow.hash).order_by(col(AuditRow.seq).desc()).limit(1)
    ).first()
    seq, prev_hash = (0, GENESIS) if head is None else (head[0], head[1])
    rows: list[dict[str, Any]] = []
    out: list[int] = []
    for entry in entries:
        if entry.dedupe_key is not None and entry.dedupe_key in known:
            out.append(known[entry.dedupe_key])
            continue
        seq += 1
        at = datetime.now(UTC)
        details = _jsonable(entry.details)
        digest = entry_hash(seq=seq, at=at, actor=entry.actor, action_ref=entry.action_ref,
                            event=entry.event, details=details, prev_hash=prev_hash)
        rows.append({"seq": seq, "at": at.isoformat(), "actor": entry.actor,
                     "action_ref": entry.action_ref, "event": entry.event,
                     "details": details, "prev_hash": prev_hash, "hash": digest,
                     "dedupe_key": entry.dedupe_key})
        if entry.dedupe_key is not None:
            known[entry.dedupe_key] = seq
        prev_hash = digest
        out.append(seq)
    if rows:
        session.execute(insert(AuditRow), rows)
    return out


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(json.dumps(details, default=str)))


def to_entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq, at=datetime.fromisoformat(row.at), actor=row.actor,
        action_ref=row.action_ref, event=row.event, details=row.details,
        prev_hash=row.prev_hash, hash=row.hash,
    )


def entries(session: Session, action_ref: str | None = None) -> list[AuditEntry]:
    query = select(AuditRow).order_by(col(AuditRow.seq))
    if action_ref is not None:
        query = query.where(AuditRow.action_ref == action_ref)
    return [to_entry(r) for r in session.exec(query)]


def verify(session: Session, anchors: Iterable[AuditAnchor] = ()) -> ChainVerification:
    """The chain, and every anchor of it kept elsewhere (see recovery/adapters/anchors.py)."""
    rows = session.exec(select(AuditRow).order_by(col(AuditRow.seq))).yield_per(2000)
    chain = verify_chain((to_entry(r) for r in rows), anchors)
    return _verify_reviews(session, chain) if chain.ok else chain


def _verify_reviews(session: Session, chain: ChainVerification) -> ChainVerification:
    """Every review an entry of the (verified) chain covers still holds the values it was
    written with: a daily cycle's entry carries the digest of the reviews that run wrote
    (they share its `created_at`), a `review.recorded` entry the digest of its one review.
    Entries written before digests were recorded carry none and are passed over."""
    columns = [getattr(ReviewRow, name) for name in REVIEW_COLUMNS]
    covering = session.execute(
        select(AuditRow.seq, AuditRow.event, AuditRow.action_ref, AuditRow.details)
        .where(col(AuditRow.event).in_(["cycle.daily_review", "review.recorded"]))
        .order_by(col(AuditRow.seq))).all()
    for seq, event, ref, details in covering:
        day = date.fromisoformat(details["as_of"])
        if event == "cycle.daily_review" and "reviews" in details:
            count, digest = details["reviews"]["count"], details["reviews"]["sha256"]
            written_at = datetime.fromisoformat(details["reviews"]["created_at"])
            query = (select(*columns).where(ReviewRow.as_of == day,
                                            ReviewRow.created_at == written_at)
                     .order_by(col(ReviewRow.id)))
            what = f"the daily review of {day.isoformat()}"
        elif event == "review.recorded" and "review_sha256" in details:
            count, digest = 1, details["review_sha256"]
            query = (select(*columns).join(ActionRow, col(ActionRow.id) == ReviewRow.action_id)
                     .where(ActionRow.ref == ref, ReviewRow.as_of == day))
            what = f"the review of {ref} on {day.isoformat()}"
        else:
            continue
        found = review_digest_of(session.execute(query))
        if (found.count, found.hexdigest()) != (count, digest):
            change = "altered" if found.count == count else \
                f"added to or deleted ({count} written, {found.count} there now)"
            return chain.model_copy(update={
                "ok": False, "first_bad_seq": seq,
                "reason": f"{what} (audit entry {seq}) was {change} after it was written: "
                          "its reviews no longer match the digest the entry holds"})
    return chain
