"""Evidence: where it comes from, the triangulation pillar it counts toward, what it shows.

Evidence holds a reference to where the record lives, never a copy of a person's record.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from models.errors import InvalidInput
from models.people import normalise_email
from models.text import text_field


class Pillar(StrEnum):
    CARE_RECORDS = "care_records"
    AUDITS = "audits"
    FEEDBACK = "feedback"
    STAFF_PRACTICE = "staff_practice"
    SUPPORTING = "supporting"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


#: The four pillars that must all show the same improvement before closure.
TRIANGULATION_PILLARS: tuple[Pillar, ...] = (
    Pillar.CARE_RECORDS,
    Pillar.AUDITS,
    Pillar.FEEDBACK,
    Pillar.STAFF_PRACTICE,
)


class EvidenceSource(StrEnum):
    CARE_RECORDS = "care_records"
    AUDITS = "audits"
    FEEDBACK = "feedback"
    STAFF_PRACTICE = "staff_practice"
    INCIDENT_TRENDS = "incident_trends"
    SAFEGUARDING_LOGS = "safeguarding_logs"
    MEDICINES_RECORDS = "medicines_records"
    ROTA_EVIDENCE = "rota_evidence"
    GOVERNANCE_MINUTES = "governance_minutes"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


#: Safeguarding logs and medication records are care records of a particular kind;
#: incident trends, rotas and governance minutes support but do not triangulate.
SOURCE_PILLAR: dict[EvidenceSource, Pillar] = {
    EvidenceSource.CARE_RECORDS: Pillar.CARE_RECORDS,
    EvidenceSource.SAFEGUARDING_LOGS: Pillar.CARE_RECORDS,
    EvidenceSource.MEDICINES_RECORDS: Pillar.CARE_RECORDS,
    EvidenceSource.AUDITS: Pillar.AUDITS,
    EvidenceSource.FEEDBACK: Pillar.FEEDBACK,
    EvidenceSource.STAFF_PRACTICE: Pillar.STAFF_PRACTICE,
    EvidenceSource.INCIDENT_TRENDS: Pillar.SUPPORTING,
    EvidenceSource.ROTA_EVIDENCE: Pillar.SUPPORTING,
    EvidenceSource.GOVERNANCE_MINUTES: Pillar.SUPPORTING,
}

MAX_REFERENCE_LENGTH = 300


class Evidence(BaseModel):
    """One evidence item as the domain sees it."""

    model_config = ConfigDict(frozen=True)

    source: EvidenceSource
    pillar: Pillar
    value: float | None
    sample_size: int | None
    observed_on: date
    recorded_by: str
    reference: str
    id: int | None = None


def new_evidence(
    *,
    source: str,
    value: float | None,
    sample_size: int | None,
    observed_on: date,
    recorded_by: str,
    reference: str,
    today: date,
    baseline_on: date,
) -> Evidence:
    """Validate one evidence item; every refusal names the field and the rule."""
    try:
        src = EvidenceSource(source.strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in EvidenceSource)
        raise InvalidInput("source", f"'{source}' is not an evidence source ({allowed})") from None
    if value is not None:
        if value != value or value < 0 or value > 100:  # NaN fails the first test
            raise InvalidInput("value", "a percentage must be between 0 and 100")
        if sample_size is None:
            raise InvalidInput("sample", "a measured value needs the sample size it was taken from")
    if sample_size is not None and sample_size < 1:
        raise InvalidInput("sample", "sample size must be at least 1")
    if observed_on > today:
        raise InvalidInput("observed_on", f"{observed_on.isoformat()} is in the future")
    if observed_on < baseline_on:
        raise InvalidInput(
            "observed_on",
            f"{observed_on.isoformat()} is before the baseline date {baseline_on.isoformat()}",
        )
    reference = reference.strip()
    if not reference:
        raise InvalidInput("reference", "say where the record lives (e.g. 'Safeguarding log p.14')")
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidInput("reference", f"must be at most {MAX_REFERENCE_LENGTH} characters")
    # a reference is shown in table cells: one line, like a title
    reference = text_field("reference", reference, MAX_REFERENCE_LENGTH, one_line=True)
    return Evidence(
        source=src,
        pillar=SOURCE_PILLAR[src],
        value=value,
        sample_size=sample_size,
        observed_on=observed_on,
        recorded_by=normalise_email(recorded_by),
        reference=reference,
    )
