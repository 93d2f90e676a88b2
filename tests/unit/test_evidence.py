"""Evidence validation: every refusal names the field and the rule."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from models.errors import InvalidInput
from models.evidence import (
    MAX_REFERENCE_LENGTH,
    SOURCE_PILLAR,
    TRIANGULATION_PILLARS,
    Evidence,
    EvidenceSource,
    Pillar,
    check_imported_reference,
    natural_key,
    new_evidence,
)

from .factories import AUDITOR, BASELINE_ON, TODAY


def record(**overrides: Any) -> Evidence:
    fields: dict[str, Any] = {
        "source": "audits",
        "value": 85.0,
        "sample_size": 20,
        "observed_on": TODAY - timedelta(days=2),
        "recorded_by": AUDITOR,
        "reference": "Safeguarding audit, November, p.3",
        "today": TODAY,
        "baseline_on": BASELINE_ON,
    }
    fields.update(overrides)
    return new_evidence(**fields)


def refused(**overrides: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        record(**overrides)
    return caught.value


def test_valid_measured_evidence_is_accepted_with_its_pillar() -> None:
    item = record()
    assert item.source == EvidenceSource.AUDITS
    assert item.pillar == Pillar.AUDITS
    assert item.value == 85.0 and item.sample_size == 20


def test_evidence_may_be_unmeasured() -> None:
    item = record(source="governance_minutes", value=None, sample_size=None)
    assert item.value is None and item.pillar == Pillar.SUPPORTING


def test_source_is_matched_trimmed_and_case_insensitively() -> None:
    assert record(source=" Staff_Practice ").source == EvidenceSource.STAFF_PRACTICE


def test_recorder_email_is_normalised() -> None:
    assert record(recorded_by="  Auditor@Rose.EXAMPLE").recorded_by == AUDITOR


def test_reference_is_trimmed() -> None:
    assert record(reference="  Care record 12, daily notes  ").reference == (
        "Care record 12, daily notes"
    )


def test_every_seed_source_is_known_and_maps_to_a_pillar() -> None:
    assert {s.value for s in EvidenceSource} == {
        "care_records", "audits", "feedback", "staff_practice", "incident_trends",
        "safeguarding_logs", "medicines_records", "rota_evidence", "governance_minutes",
    }
    assert set(SOURCE_PILLAR) == set(EvidenceSource)


def test_each_triangulation_pillar_has_a_source_of_its_own_name() -> None:
    assert [p.value for p in TRIANGULATION_PILLARS] == [
        "care_records", "audits", "feedback", "staff_practice"
    ]
    for pillar in TRIANGULATION_PILLARS:
        assert SOURCE_PILLAR[EvidenceSource(pillar.value)] == pillar


@pytest.mark.parametrize(
    ("source", "pillar"),
    [
        ("safeguarding_logs", Pillar.CARE_RECORDS),
        ("medicines_records", Pillar.CARE_RECORDS),
        ("incident_trends", Pillar.SUPPORTING),
        ("rota_evidence", Pillar.SUPPORTING),
        ("governance_minutes", Pillar.SUPPORTING),
    ],
)
def test_wider_sources_count_toward_a_pillar_or_only_support(source: str, pillar: Pillar) -> None:
    assert record(source=source).pillar == pillar


def test_evidence_dated_in_the_future_is_refused() -> None:
    err = refused(observed_on=TODAY + timedelta(days=1))
    assert (err.field, err.rule) == ("observed_on", "2026-11-27 is in the future")


def test_evidence_dated_today_is_accepted() -> None:
    assert record(observed_on=TODAY).observed_on == TODAY


def test_evidence_dated_before_the_baseline_is_refused() -> None:
    err = refused(observed_on=BASELINE_ON - timedelta(days=1))
    assert err.field == "observed_on"
    assert err.rule == "2026-09-30 is before the baseline date 2026-10-01"


def test_evidence_dated_on_the_baseline_day_is_accepted() -> None:
    assert record(observed_on=BASELINE_ON).observed_on == BASELINE_ON


@pytest.mark.parametrize("value", [100.01, 101, 250, float("inf")])
def test_value_over_100_percent_is_refused(value: float) -> None:
    err = refused(value=value)
    assert (err.field, err.rule) == ("value", "a percentage must be between 0 and 100")


@pytest.mark.parametrize("value", [-0.5, -1, float("-inf")])
def test_negative_value_is_refused(value: float) -> None:
    assert refused(value=value).field == "value"


def test_nan_value_is_refused() -> None:
    assert refused(value=float("nan")).field == "value"


@pytest.mark.parametrize("value", [0.0, 100.0])
def test_values_at_the_bounds_are_accepted(value: float) -> None:
    assert record(value=value).value == value


@pytest.mark.parametrize("sample", [0, -3])
def test_sample_below_one_is_refused(sample: int) -> None:
    err = refused(sample_size=sample)
    assert (err.field, err.rule) == ("sample", "sample size must be at least 1")


def test_measured_value_without_a_sample_size_is_refused() -> None:
    err = refused(sample_size=None)
    assert err.field == "sample"
    assert "needs the sample size" in err.rule


def test_unknown_source_is_refused_and_the_known_ones_are_listed() -> None:
    err = refused(source="gossip")
    assert err.field == "source"
    assert err.rule.startswith("'gossip' is not an evidence source (")
    assert all(s.value in err.rule for s in EvidenceSource)


def test_supporting_only_pillar_is_not_a_source() -> None:
    assert refused(source="supporting").field == "source"


@pytest.mark.parametrize("reference", ["", "   ", "\n\t"])
def test_empty_reference_is_refused(reference: str) -> None:
    err = refused(reference=reference)
    assert err.field == "reference"
    assert "where the record lives" in err.rule


def test_reference_longer_than_the_limit_is_refused() -> None:
    err = refused(reference="x" * (MAX_REFERENCE_LENGTH + 1))
    assert (err.field, err.rule) == ("reference", "must be at most 300 characters")


def test_reference_at_the_limit_is_accepted() -> None:
    assert len(record(reference="x" * MAX_REFERENCE_LENGTH).reference) == 300


def test_refusal_message_names_the_field_then_the_rule() -> None:
    err = refused(observed_on=date(2030, 1, 1))
    assert str(err) == "observed_on: 2030-01-01 is in the future"


# ---------------------------------------------------------------- imported in bulk


@pytest.mark.parametrize("reference", [
    "eMAR missed-signature report week 48",
    "Competency observation file entry 2026/41",
    "Safeguarding log p. 14",
    "Rota planning notes wk 47; skill-mix sample",
    "Audit tool export Nov. 2026, Q3",
])
def test_an_imported_reference_that_says_where_the_record_lives_is_accepted(
    reference: str
) -> None:
    check_imported_reference(reference)


@pytest.mark.parametrize(("reference", "rule"), [
    ("x" * 121, "more than 120 characters"),
    (" ".join(["word"] * 13), "more than 12 words"),
    ("Care plan. She declined her medicines", "sentences"),
    ("Care record 943 476 5919", "NHS number"),
    ("Care record 9434765919", "NHS number"),
    ("Feedback from relative@family.example", "email address"),
])
def test_an_imported_reference_that_reads_as_a_record_is_refused_without_repeating_it(
    reference: str, rule: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_imported_reference(reference)
    assert caught.value.field == "reference" and rule in caught.value.rule
    assert reference not in caught.value.rule


def test_the_natural_key_ignores_spaces_and_letter_case_in_the_reference() -> None:
    one = record(reference="MAR audit  Nov 2026")
    assert natural_key(one) == natural_key(record(reference=" mar AUDIT nov 2026 "))
    assert natural_key(one) != natural_key(record(reference="MAR audit Nov 2026",
                                                  source="feedback"))
    assert natural_key(one) != natural_key(record(
        reference="MAR audit Nov 2026", observed_on=TODAY - timedelta(days=3)))
