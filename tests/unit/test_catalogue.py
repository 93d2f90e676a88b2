"""Quality statements are versioned data: the 2024 framework, and room for the next one."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from models.catalogue import DEFAULT_FRAMEWORK, builtin_framework, parse_framework
from models.errors import InvalidInput

from .factories import make_plan

NEXT_FRAMEWORK = """
framework_id: cqc-asc-2026
name: CQC adult social care assessment questions
version: '2026'
evidence_categories:
  - {id: peoples-experience, name: "People's experience"}
quality_statements:
  - {id: safe.keeping-people-safe, key_question: Safe, title: "Keeping people safe"}
  - {id: well-led.oversight, key_question: Well-led, title: "Oversight of quality"}
"""


def test_default_framework_is_cqc_saf_2024() -> None:
    framework = builtin_framework()
    assert framework.framework_id == DEFAULT_FRAMEWORK == "cqc-saf-2024"
    assert framework.version == "2024"


def test_catalogue_has_exactly_34_quality_statements() -> None:
    statements = builtin_framework().quality_statements
    assert len(statements) == 34
    assert len({s.id for s in statements}) == 34


def test_statement_counts_per_key_question_match_the_framework() -> None:
    counts = Counter(s.key_question for s in builtin_framework().quality_statements)
    assert counts == {"Safe": 8, "Effective": 6, "Caring": 5, "Responsive": 7, "Well-led": 8}


def test_statement_ids_are_prefixed_by_their_key_question() -> None:
    for statement in builtin_framework().quality_statements:
        prefix = statement.key_question.lower()
        assert statement.id.startswith(f"{prefix}."), statement.id


@pytest.mark.parametrize(
    "statement_id",
    ["safe.safeguarding", "safe.medicines-optimisation", "safe.safe-effective-staffing",
     "caring.responding-to-immediate-needs", "well-led.governance-management-sustainability",
     "well-led.environmental-sustainability", "responsive.equity-in-experiences-outcomes"],
)
def test_reference_ids_are_known(statement_id: str) -> None:
    assert builtin_framework().statement(statement_id).id == statement_id


def test_catalogue_has_the_six_evidence_categories() -> None:
    names = [c.name for c in builtin_framework().evidence_categories]
    assert names == [
        "People's experience of health and care services",
        "Feedback from staff and leaders",
        "Feedback from partners",
        "Observation",
        "Processes",
        "Outcomes",
    ]


def test_statements_an_action_links_to_are_resolved_in_order() -> None:
    resolved = builtin_framework().resolve(["safe.safeguarding", "well-led.freedom-to-speak-up"])
    assert [s.title for s in resolved] == ["Safeguarding", "Freedom to speak up"]


def test_unknown_statement_id_is_refused_naming_quality_statements() -> None:
    with pytest.raises(InvalidInput) as caught:
        builtin_framework().resolve(["safe.safeguarding", "safe.safegaurding"])
    assert caught.value.field == "quality_statements"
    assert caught.value.rule == (
        "unknown quality statement 'safe.safegaurding' in framework cqc-saf-2024"
    )


@pytest.mark.parametrize(
    "statement_id", ["Safe.Safeguarding", "safeguarding", " safe.safeguarding"]
)
def test_statement_ids_must_match_exactly(statement_id: str) -> None:
    with pytest.raises(InvalidInput):
        builtin_framework().statement(statement_id)


def test_an_action_must_link_to_at_least_one_statement() -> None:
    with pytest.raises(InvalidInput) as caught:
        builtin_framework().resolve([])
    assert caught.value.field == "quality_statements"
    assert caught.value.rule == "at least one quality statement is required"


def test_a_statement_listed_twice_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        builtin_framework().resolve(["safe.safeguarding", "safe.safeguarding"])
    assert caught.value.field == "quality_statements"


def test_a_second_framework_loads_beside_the_first() -> None:
    before = builtin_framework()
    after = parse_framework(NEXT_FRAMEWORK)
    assert after.framework_id == "cqc-asc-2026"
    assert [s.id for s in after.resolve(["safe.keeping-people-safe"])] == [
        "safe.keeping-people-safe"
    ]
    # the old framework is untouched and does not know the new ids, nor the new the old
    assert builtin_framework() is before
    assert len(builtin_framework().quality_statements) == 34
    with pytest.raises(InvalidInput):
        before.statement("safe.keeping-people-safe")
    with pytest.raises(InvalidInput) as caught:
        after.statement("safe.safeguarding")
    assert "cqc-asc-2026" in caught.value.rule


def test_existing_actions_keep_the_framework_they_were_linked_to() -> None:
    plan = make_plan()
    assert plan.framework_id == "cqc-saf-2024"
    parse_framework(NEXT_FRAMEWORK)
    builtin_framework().resolve(list(plan.quality_statements))


def test_a_framework_file_with_a_missing_part_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_framework("framework_id: x\nname: y\nversion: '1'\n")


def test_catalogue_data_is_frozen() -> None:
    statement = builtin_framework().quality_statements[0]
    with pytest.raises(ValidationError):
        statement.title = "Something else"  # type: ignore[misc]
