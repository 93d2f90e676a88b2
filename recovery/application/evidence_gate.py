"""Evidence against an action and the triangulation gate over it. Callers wrap each call in one
`unit_of_work()`, so refused evidence leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from models.errors import RuleRefused
from models.evidence import Evidence, new_evidence
from models.gate import GateVerdict, gate_snapshot, triangulation_gate
from models.lifecycle import Status
from models.review import (
    DEFAULT_FRESHNESS_DAYS,
)
from recovery.adapters import audit_log
from recovery.adapters import repository as repo
from recovery.adapters.tables import (
    ActionRow,
    EvidenceRow,
    PersonRow,
    utcnow,
)
from recovery.application.transitions import reopened_on


def check_evidence(
    action: ActionRow, recorder: PersonRow, *, source: str, value: float | None,
    sample_size: int | None, observed_on: date, reference: str, today: date,
) -> Evidence:
    """The rules one evidence item passes, however it arrives (`evidence add`, the
    record-evidence form, a row of an evidence import): the action is not closed, the one
    who recorded it is in the staff directory (`recorder`, looked up by the caller), and
    the item itself is valid (`models.evidence.new_evidence`: source, value and sample,
    observed neither in the future nor before the baseline, a one-line reference)."""
    if action.status == Status.CLOSED.value:
        raise RuleRefused("evidence", [
            f"{action.ref} is closed; a registered manager, nominated individual or provider "
            f"lead reopens it to add evidence: `recovery action reopen {action.ref} --by EMAIL "
            "--reason TEXT`"])
    return new_evidence(
        source=source, value=value, sample_size=sample_size, observed_on=observed_on,
        recorded_by=recorder.email, reference=reference, today=today,
        baseline_on=action.baseline_on,
    )


def _evidence_values(action_id: int, item: Evidence, now: datetime) -> dict[str, Any]:
    return {"action_id": action_id, "source": item.source.value, "pillar": item.pillar.value,
            "value": item.value, "sample_size": item.sample_size,
            "observed_on": item.observed_on, "recorded_by": item.recorded_by,
            "reference": item.reference, "recorded_at": now}


def _evidence_added(ref: str, item: Evidence, evidence_id: int | None,
                    extra: dict[str, Any] | None = None) -> audit_log.Entry:
    """The audit entry of one item, recorded as the one who recorded it (references are
    kept out of the chain's details, as in every entry)."""
    return audit_log.Entry(
        actor=item.recorded_by, event="evidence.added", action_ref=ref,
        details={"evidence_id": evidence_id, "source": item.source.value,
                 "pillar": item.pillar.value, "value": item.value,
                 "sample_size": item.sample_size, "observed_on": item.observed_on.isoformat(),
                 **(extra or {})})


def add_evidence(
    session: Session, ref: str, *, source: str, value: float | None, sample_size: int | None,
    observed_on: date, reference: str, by: str, today: date,
) -> EvidenceRow:
    row = repo.get_action(session, ref)
    person = repo.get_person(session, by, field="by")
    item = check_evidence(row, person, source=source, value=value, sample_size=sample_size,
                          observed_on=observed_on, reference=reference, today=today)
    assert row.id is not None
    evidence = EvidenceRow(**_evidence_values(row.id, item, utcnow()))
    session.add(evidence)
    session.flush()
    entry = _evidence_added(row.ref, item, evidence.id)
    audit_log.append(session, actor=entry.actor, event=entry.event,
                     action_ref=entry.action_ref, details=entry.details)
    return evidence


@dataclass(frozen=True)
class CheckedEvidence:
    """One item that passed `check_evidence`, ready to write with `add_evidence_many`."""

    action_id: int
    ref: str
    item: Evidence


def add_evidence_many(session: Session, items: Sequence[CheckedEvidence], *,
                      audit_extra: dict[str, Any] | None = None) -> list[int]:
    """Write checked items, in order, as add_evidence writes each (the row, then its
    `evidence.added` entry) in two multi-row INSERTs: the rows, then the entries, chained
    in the same order. Returns the new rows' ids."""
    if not items:
        return []
    now = utcnow()
    ids: list[int] = list(session.connection().execute(
        insert(EvidenceRow.__table__).returning(  # type: ignore[attr-defined]
            EvidenceRow.__table__.c.id, sort_by_parameter_order=True),  # type: ignore[attr-defined]
        [_evidence_values(c.action_id, c.item, now) for c in items]).scalars().all())
    audit_log.append_many(session, [_evidence_added(c.ref, c.item, evidence_id, audit_extra)
                                    for c, evidence_id in zip(items, ids, strict=True)])
    return ids


def gate_verdict(
    session: Session, ref: str, *, as_of: date, freshness_days: int = DEFAULT_FRESHNESS_DAYS
) -> GateVerdict:
    return gate_with_snapshot(session, ref, as_of=as_of, freshness_days=freshness_days)[0]


def gate_with_snapshot(
    session: Session, ref: str, *, as_of: date, freshness_days: int = DEFAULT_FRESHNESS_DAYS
) -> tuple[GateVerdict, str]:
    """The triangulation gate's verdict now, and the reference of the snapshot it counted
    (`models.gate.gate_snapshot`): a closure decision is bound to it."""
    row = repo.get_action(session, ref)
    assert row.id is not None
    evidence = repo.evidence_of(session, row.id)
    reviews = [(r.id or 0, repo.to_review(r)) for r in repo.reviews_of(session, row.id)]
    escalations = [f"opened {e.opened_on.isoformat()}: " + "; ".join(e.reasons)
                   for e in repo.open_escalations(session, row.id)]
    triggers = [f"{t.description} (raised {t.raised_on.isoformat()} by {t.raised_by})"
                for t in repo.open_triggers(session, row.id)]
    reopened = reopened_on(session, row)
    verdict = triangulation_gate(
        repo.plan_of(row), evidence, [r for _, r in reviews],
        as_of=as_of, reopened_on=reopened, open_escalations=escalations,
        open_triggers=triggers, freshness_days=freshness_days,
    )
    return verdict, gate_snapshot(verdict, evidence, reviews,
                                  open_items=[*escalations, *triggers],
                                  freshness_days=freshness_days, reopened_on=reopened)
