"""Appending to and verifying the hash-chained audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from models.audit import GENESIS, AuditEntry, ChainVerification, entry_hash, verify_chain
from models.tables import AuditRow
from recovery.db import is_postgres

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


def verify(session: Session) -> ChainVerification:
    rows = session.exec(select(AuditRow).order_by(col(AuditRow.seq))).yield_per(2000)
    return verify_chain(to_entry(r) for r in rows)
