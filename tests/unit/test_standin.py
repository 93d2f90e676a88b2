"""Stand-in reviewers and absences (models/standin.py): pure rules, no I/O."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.errors import InvalidInput
from models.people import SENIOR_ROLES, Person, Role
from models.standin import (
    Absence,
    absence_recorder_refusals,
    away_on,
    check_absence,
    eligible_standins,
    reassign_refusals,
    standin_refusals,
)

TODAY = date(2026, 12, 4)
ROSE = "Rose House"


def person(role: Role, email: str | None = None, location: str | None = ROSE) -> Person:
    return Person(name=role.label.title(), email=email or f"{role.value}@rose.example",
                  role=role, location=location)


LEAD = person(Role.SAFEGUARDING_LEAD)
NI = person(Role.NOMINATED_INDIVIDUAL, "ni@provider.example", None)
PROVIDER_LEAD = person(Role.PROVIDER_LEAD, "pl@provider.example", None)
RM = person(Role.REGISTERED_MANAGER)
OTHER_RM = person(Role.REGISTERED_MANAGER, "rm@quay.example", "Quay House")
JUNIOR = person(Role.TEAM_LEADER)


def refusals(standin: Person, *, lead: Person = LEAD, away: Absence | None = None,
             reviewer: str = NI.email) -> list[str]:
    return standin_refusals(lead=lead, standin=standin, reviewer_email=reviewer,
                            action_location=ROSE, standin_away=away)


def test_a_senior_of_the_location_not_away_may_stand_in() -> None:
    assert refusals(RM) == []
    assert refusals(PROVIDER_LEAD) == []


def test_the_accountable_lead_may_not_stand_in() -> None:
    lead_rm = person(Role.REGISTERED_MANAGER, "lead.rm@rose.example")
    assert any("different person from the accountable lead" in r
               for r in refusals(lead_rm, lead=lead_rm))


def test_a_junior_may_not_stand_in() -> None:
    assert any("must be a registered manager" in r for r in refusals(JUNIOR))


def test_where_the_registered_manager_leads_the_standin_is_provider_level() -> None:
    assert any("provider-level" in r for r in refusals(
        person(Role.REGISTERED_MANAGER, "rm2@rose.example"), lead=RM))
    assert refusals(PROVIDER_LEAD, lead=RM) == []


def test_a_registered_manager_stands_in_only_for_their_own_location() -> None:
    assert any("only for their own location" in r for r in refusals(OTHER_RM))


def test_someone_away_may_not_stand_in() -> None:
    leave = Absence(email=RM.email, starts_on=TODAY, ends_on=TODAY + timedelta(days=3))
    assert any("is away until 07/12/2026" in r for r in refusals(RM, away=leave))


def test_the_reviewer_already_waited_on_is_not_a_standin() -> None:
    assert any("already the reviewer" in r for r in refusals(NI))


def test_only_the_nominated_individual_or_provider_lead_reassigns() -> None:
    away = Absence(email=NI.email, starts_on=TODAY, ends_on=TODAY)
    common = {"reviewer_away": away, "waited": timedelta(hours=1),
              "wait_limit": timedelta(hours=48), "reason": "x" * 25, "min_reason": 20}
    assert reassign_refusals(by=NI, **common) == []  # type: ignore[arg-type]
    assert reassign_refusals(by=PROVIDER_LEAD, **common) == []  # type: ignore[arg-type]
    for who in (RM, JUNIOR, LEAD):
        assert reassign_refusals(by=who, **common)  # type: ignore[arg-type]


def test_a_reviewer_neither_away_nor_overdue_keeps_the_signoff() -> None:
    reasons = reassign_refusals(by=NI, reviewer_away=None, waited=timedelta(hours=5),
                                wait_limit=timedelta(hours=48), reason="x" * 25,
                                min_reason=20)
    assert reasons == ["the reviewer is not away and the sign-off has waited 5 hours, not "
                       "more than 48"]
    assert reassign_refusals(by=NI, reviewer_away=None, waited=timedelta(hours=49),
                             wait_limit=timedelta(hours=48), reason="x" * 25,
                             min_reason=20) == []


def test_an_absence_covers_both_its_days_and_matches_email_in_any_case() -> None:
    leave = [Absence(email="RM@rose.example", starts_on=TODAY, ends_on=TODAY)]
    assert away_on(" rm@ROSE.example", leave, TODAY) is not None
    assert away_on(RM.email, leave, TODAY - timedelta(days=1)) is None
    assert away_on(RM.email, leave, TODAY + timedelta(days=1)) is None


def test_absence_dates_are_checked() -> None:
    with pytest.raises(InvalidInput, match="before the first day away"):
        check_absence(TODAY, TODAY - timedelta(days=1), today=TODAY)
    with pytest.raises(InvalidInput, match="has passed"):
        check_absence(TODAY - timedelta(days=5), TODAY - timedelta(days=1), today=TODAY)
    with pytest.raises(InvalidInput, match="at most 366 days"):
        check_absence(TODAY, TODAY + timedelta(days=400), today=TODAY)
    check_absence(TODAY, TODAY + timedelta(days=14), today=TODAY)


def test_an_absence_is_recorded_by_the_person_or_a_senior_role() -> None:
    assert absence_recorder_refusals(JUNIOR, JUNIOR) == []
    assert absence_recorder_refusals(JUNIOR, RM) == []
    assert absence_recorder_refusals(RM, JUNIOR)


def test_eligible_standins_leave_out_the_away_and_put_provider_level_first() -> None:
    people = [RM, OTHER_RM, JUNIOR, LEAD, NI, PROVIDER_LEAD]
    found = eligible_standins(lead=LEAD, reviewer_email=NI.email, action_location=ROSE,
                              people=people, absences=[], day=TODAY)
    assert [p.email for p in found] == [PROVIDER_LEAD.email, RM.email]
    away = [Absence(email=PROVIDER_LEAD.email, starts_on=TODAY, ends_on=TODAY)]
    assert [p.email for p in eligible_standins(
        lead=LEAD, reviewer_email=NI.email, action_location=ROSE, people=people,
        absences=away, day=TODAY)] == [RM.email]


roles = st.sampled_from(list(Role))


@given(lead_role=roles, standin_role=roles, same=st.booleans(), away=st.booleans())
def test_no_standin_accepted_is_the_lead_a_junior_or_away(
    lead_role: Role, standin_role: Role, same: bool, away: bool
) -> None:
    lead = person(lead_role, "lead@rose.example")
    standin = lead if same else person(standin_role, "standin@rose.example")
    leave = Absence(email=standin.email, starts_on=TODAY, ends_on=TODAY) if away else None
    if not refusals(standin, lead=lead, away=leave):
        assert standin.email != lead.email
        assert standin.role in SENIOR_ROLES
        assert leave is None
