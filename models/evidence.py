"""Evidence: where it comes from, the triangulation pillar it counts toward, what it shows.

Evidence holds a reference to where the record lives, never a copy of a person's record.
"""

from __future__ import annotations

import re
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


# ---------------------------------------------------------------- imported in bulk

#: A reference in an evidence import says where the record lives, in a few words: nobody
#: reads each row of a file as it comes in, so its shape is held tighter than a reference
#: typed one at a time (docs/evidence-format.md, "Summaries, not records").
IMPORT_REFERENCE_CHARS = 120
IMPORT_REFERENCE_WORDS = 12
#: An NHS number (ten digits, often 3-3-4) or an email address identifies a person.
_NHS_NUMBER = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")
_EMAIL = re.compile(r"\S@\S+\.\S")
#: A second sentence: an end of sentence, then three words or more ("p. 14" is none).
_SENTENCES = re.compile(r"[.!?]\s+\S+\s+\S+\s+\S")


def check_imported_reference(reference: str) -> None:
    """A reference from an imported row points at a record and is no copy of one: short,
    one sentence, no NHS number or email address. The refusals never repeat the text."""
    if len(reference) > IMPORT_REFERENCE_CHARS:
        raise InvalidInput("reference", f"is more than {IMPORT_REFERENCE_CHARS} characters: "
                                        f"say where the record lives (e.g. 'MAR audit Nov "
                                        f"2026, entry 14'), not what it says")
    if len(reference.split()) > IMPORT_REFERENCE_WORDS:
        raise InvalidInput("reference", f"is more than {IMPORT_REFERENCE_WORDS} words: say "
                                        f"where the record lives, not what it says")
    if _SENTENCES.search(reference):
        raise InvalidInput("reference", "reads as sentences (free text): say where the record "
                                        "lives, not what it says")
    if _NHS_NUMBER.search(reference):
        raise InvalidInput("reference", "holds a ten-digit number, the shape of an NHS number: "
                                        "a reference points at a record, it never identifies "
                                        "a person")
    if _EMAIL.search(reference):
        raise InvalidInput("reference", "holds an email address: a reference points at a "
                                        "record, it never identifies a person")


def natural_key(item: Evidence) -> tuple[str, date, str]:
    """What makes an item the same item, within an action: its source, the day it was
    observed, and its reference (spaces and letter case aside). An import adds an item
    only when its action holds none with this key."""
    return item.source.value, item.observed_on, " ".join(item.reference.split()).casefold()
