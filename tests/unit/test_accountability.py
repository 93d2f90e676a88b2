"""One accountable lead and a different, senior reviewer; provider-level review of the RM."""

from __future__ import annotations

import pytest

from models.action import check_accountability, check_plan_ready_for_signoff
from models.errors import RuleRefused
from models.people import Person, Role, normalise_email

from .factories import make_person, make_plan

SENIOR = [Role.REGISTERED_MANAGER, Role.NOMINATED_INDIVIDUAL, Role.PROVIDER_LEAD]
JUNIOR = [r for r in Role if r not in SENIOR]


def refusal(lead: Person, reviewer: Person) -> list[str]:
    with pytest.raises(RuleRefused) as caught:
        check_accountability(lead, reviewer)
    assert caught.value.rule == "separation of duties"
    return caught.value.reasons


def test_safeguarding_lead_reviewed_by_nominated_individual_is_accepted() -> None:
    check_accountability(
        make_person(Role.SAFEGUARDING_LEAD), make_person(Role.NOMINATED_INDIVIDUAL)
    )


@pytest.mark.parametrize("reviewer_role", SENIOR)
def test_any_senior_role_may_review_a_non_manager_lead(reviewer_role: Role) -> None:
    check_accountability(make_person(Role.MEDICINES_LEAD), make_person(reviewer_role))


def test_lead_may_not_review_their_own_action() -> None:
    person = make_person(Role.REGISTERED_MANAGER, email="rm@rose.example")
    reasons = refusal(person, person)
    assert any("different person" in r for r in reasons)


@pytest.mark.parametrize(
    "reviewer_email", ["RM@Rose.Example", "  rm@rose.example ", "\tRm@ROSE.example\n"]
)
def test_lead_and_reviewer_differing_only_in_case_or_spaces_are_the_same_person(
    reviewer_email: str,
) -> None:
    lead = make_person(Role.NOMINATED_INDIVIDUAL, email="rm@rose.example", name="Pat Lee")
    reviewer = make_person(Role.NOMINATED_INDIVIDUAL, email=reviewer_email, name="P. Lee")
    reasons = refusal(lead, reviewer)
    assert reasons == [
        "the senior reviewer must be a different person from the accountable lead "
        "(rm@rose.example)"
    ]


def test_emails_are_stored_trimmed_and_lower_case() -> None:
    assert make_person(email="  Sam.Jones@Rose.EXAMPLE ").email == "sam.jones@rose.example"
    assert normalise_email(" A@B.org ") == "a@b.org"


@pytest.mark.parametrize("reviewer_role", JUNIOR)
def test_junior_reviewer_is_refused_and_the_reason_names_their_role(reviewer_role: Role) -> None:
    reviewer = make_person(reviewer_role, name="Alex Kerr")
    reasons = refusal(make_person(Role.SAFEGUARDING_LEAD, email="lead@rose.example"), reviewer)
    assert reasons == [
        "the senior reviewer must be a registered manager, nominated individual or "
        f"provider lead; Alex Kerr is a {reviewer_role.label}"
    ]


def test_registered_manager_lead_needs_a_provider_level_reviewer() -> None:
    lead = make_person(Role.REGISTERED_MANAGER, email="rm@rose.example")
    other_rm = make_person(Role.REGISTERED_MANAGER, email="rm@lily.example")
    reasons = refusal(lead, other_rm)
    assert reasons == [
        "where the registered manager leads the action, the senior reviewer must be "
        "provider-level (nominated individual or provider lead)"
    ]


@pytest.mark.parametrize("reviewer_role", [Role.NOMINATED_INDIVIDUAL, Role.PROVIDER_LEAD])
def test_registered_manager_lead_reviewed_at_provider_level_is_accepted(
    reviewer_role: Role,
) -> None:
    check_accountability(
        make_person(Role.REGISTERED_MANAGER), make_person(reviewer_role, location=None)
    )


def test_every_broken_rule_is_listed_together() -> None:
    junior = make_person(Role.TEAM_LEADER, email="tl@rose.example")
    reasons = refusal(junior, junior)
    assert len(reasons) == 2
    assert "different person" in reasons[0]
    assert "team leader" in reasons[1]


def test_plan_emails_for_lead_and_reviewer_are_normalised() -> None:
    plan = make_plan(
        accountable_lead=" SG.Lead@Rose.example ", senior_reviewer="NI@provider.EXAMPLE"
    )
    assert plan.accountable_lead == "sg.lead@rose.example"
    assert plan.senior_reviewer == "ni@provider.example"


def test_high_risk_plan_without_interim_controls_cannot_be_signed_off() -> None:
    plan = make_plan(interim_controls=[])
    with pytest.raises(RuleRefused) as caught:
        check_plan_ready_for_signoff(plan, level_is_high=True)
    assert caught.value.reasons == [
        "a high-risk action needs at least one interim control before plan sign-off"
    ]


def test_interim_controls_are_optional_below_high_risk() -> None:
    check_plan_ready_for_signoff(make_plan(interim_controls=[]), level_is_high=False)


def test_high_risk_plan_with_an_interim_control_is_ready_for_signoff() -> None:
    check_plan_ready_for_signoff(make_plan(), level_is_high=True)
