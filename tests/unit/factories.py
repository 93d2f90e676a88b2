"""Small builders for domain values: sensible defaults, override only what a test is about."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import yaml

from models.action import ActionPlan
from models.audit import GENESIS, AuditEntry, entry_hash
from models.evidence import SOURCE_PILLAR, Evidence, EvidenceSource
from models.people import Person, Role
from models.review import Rating, ReviewRecord
from models.signoff import SignoffKind, SignoffRequestState, Submission, hash_code

BASELINE_ON = date(2026, 10, 1)
DEADLINE = date(2026, 12, 31)
#: The day most tests look from; 28 days earlier is 2026-10-29.
TODAY = date(2026, 11, 26)

LEAD = "sg.lead@rose.example"
REVIEWER = "ni@provider.example"
AUDITOR = "auditor@rose.example"

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
GOOD_CODE = "482913"
GOOD_RATIONALE = "Evidence from all four pillars reviewed and agreed"


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides win; a dict override of a dict default is merged one level down."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def plan_data(**overrides: Any) -> dict[str, Any]:
    """The mapping a plan file carries (dates as dates, as YAML gives them)."""
    base: dict[str, Any] = {
        "location": "Rose House",
        "title": "Same-day management review of safeguarding concerns",
        "risk_domain": "safeguarding",
        "quality_statements": ["safe.safeguarding"],
        "risk": {
            "potential_harm": 5,
            "people_affected": 3,
            "likelihood_of_recurrence": 4,
            "regulatory_impact": 4,
            "control_strength": 4,
        },
        "accountable_lead": LEAD,
        "senior_reviewer": REVIEWER,
        "baseline": {
            "issue": "Safeguarding records show delayed escalation decisions",
            "value": 60,
            "as_of": BASELINE_ON,
        },
        "target": {
            "measure": "Concerns with same-day management review",
            "direction": "at_least",
            "value": 100,
            "deadline": DEADLINE,
        },
        "interim_controls": ["Registered manager reviews every open concern daily"],
        "steps": [
            {
                "role": "duty_manager",
                "action": "Review each new concern before shift end",
                "record": "Safeguarding log",
            }
        ],
    }
    return _merge(base, overrides)


def make_plan(**overrides: Any) -> ActionPlan:
    return ActionPlan.model_validate(plan_data(**overrides))


def plan_yaml(*, drop: tuple[str, ...] = (), **overrides: Any) -> bytes:
    """A plan file's bytes; `drop` leaves top-level keys out."""
    data = plan_data(**overrides)
    for key in drop:
        data.pop(key, None)
    return yaml.safe_dump(data, sort_keys=False).encode("utf-8")


def make_evidence(
    source: str = "audits",
    value: float | None = 100,
    *,
    observed_on: date = TODAY - timedelta(days=3),
    sample_size: int | None = 20,
    recorded_by: str = AUDITOR,
    reference: str = "Audit file, November",
    id: int | None = None,
) -> Evidence:
    src = EvidenceSource(source)
    return Evidence(
        source=src,
        pillar=SOURCE_PILLAR[src],
        value=value,
        sample_size=sample_size if value is not None else None,
        observed_on=observed_on,
        recorded_by=recorded_by,
        reference=reference,
        id=id,
    )


PILLAR_SOURCES = ("care_records", "audits", "feedback", "staff_practice")


def full_evidence(value: float = 100, observed_on: date = TODAY - timedelta(days=3),
                  **overrides: Any) -> list[Evidence]:
    """One fresh, measured item for each of the four triangulation pillars."""
    return [
        make_evidence(source, value, observed_on=observed_on, **overrides)
        for source in PILLAR_SOURCES
    ]


def make_review(
    as_of: date = TODAY - timedelta(days=7),
    *,
    measured_value: float | None = 100,
    target_met: bool = True,
    rating: Rating = Rating.ON_TRACK,
) -> ReviewRecord:
    return ReviewRecord(
        as_of=as_of, measured_value=measured_value, target_met=target_met, rating=rating
    )


def met_reviews(count: int = 2, last: date = TODAY - timedelta(days=1)) -> list[ReviewRecord]:
    """`count` weekly reviews ending on `last`, each meeting the target."""
    return [make_review(last - timedelta(weeks=n)) for n in reversed(range(count))]


def make_person(
    role: Role = Role.REGISTERED_MANAGER,
    email: str | None = None,
    name: str | None = None,
    location: str | None = "Rose House",
) -> Person:
    return Person(
        name=name or role.label.title(),
        email=email or f"{role.value.replace('_', '.')}@rose.example",
        role=role,
        location=location,
    )


def append_entry(
    chain: list[AuditEntry],
    *,
    actor: str = LEAD,
    action_ref: str | None = "ROSE-SG-001",
    event: str = "evidence_added",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> list[AuditEntry]:
    """A new chain with one more entry hashed onto the end."""
    seq = len(chain) + 1
    prev = chain[-1].hash if chain else GENESIS
    at = at or NOW + timedelta(minutes=seq)
    details = details if details is not None else {"rationale": f"entry {seq}"}
    fields: dict[str, Any] = {
        "seq": seq, "at": at, "actor": actor, "action_ref": action_ref, "event": event,
        "details": details, "prev_hash": prev,
    }
    return [*chain, AuditEntry(**fields, hash=entry_hash(**fields))]


def audit_chain(length: int) -> list[AuditEntry]:
    chain: list[AuditEntry] = []
    for _ in range(length):
        chain = append_entry(chain)
    return chain


def signoff_request(
    *,
    reviewer_email: str = REVIEWER,
    code: str = GOOD_CODE,
    issued_at: datetime = NOW - timedelta(hours=1),
    used_at: datetime | None = None,
    wrong_attempts: int = 0,
    locked: bool = False,
    kind: SignoffKind = SignoffKind.CLOSURE,
) -> SignoffRequestState:
    salt = "00112233445566778899aabbccddeeff"
    return SignoffRequestState(
        kind=kind,
        reviewer_email=reviewer_email,
        code_salt=salt,
        code_hash=hash_code(code, salt),
        issued_at=issued_at,
        expires_at=issued_at + timedelta(hours=72),
        used_at=used_at,
        wrong_attempts=wrong_attempts,
        locked=locked,
    )


def submission(
    *,
    reviewer_email: str = REVIEWER,
    code: str = GOOD_CODE,
    decision: str = "approve",
    rationale: str = GOOD_RATIONALE,
) -> Submission:
    return Submission(
        reviewer_email=reviewer_email, code=code, decision=decision, rationale=rationale
    )
