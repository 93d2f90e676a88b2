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
