"""Sign-off codes prove who signed: bound to one reviewer, single use, time-limited."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from models.signoff import (
    CODE_TTL,
    MIN_RATIONALE,
    Decision,
    code_disclosed,
    counts_toward_lockout,
    hash_code,
    new_code,
    new_salt,
    refusal_reasons,
    signoff_refusals,
)

from .factories import GOOD_CODE, LEAD, NOW, signoff_request, submission


def reasons(request_overrides: dict[str, Any] | None = None, *, now: datetime = NOW,
            **submission_overrides: str) -> list[str]:
    return refusal_reasons(
        signoff_request(**(request_overrides or {})), submission(**submission_overrides),
        accountable_lead=LEAD, now=now,
    )


def test_named_reviewer_with_the_right_code_and_a_rationale_may_sign_off() -> None:
    assert reasons() == []


@pytest.mark.parametrize("decision", [d.value for d in Decision])
def test_approve_and_reject_are_the_decisions(decision: str) -> None:
    assert reasons(decision=decision) == []


def test_reviewer_email_is_matched_case_insensitively_and_trimmed() -> None:
    assert reasons(reviewer_email="  NI@Provider.Example ") == []


def test_someone_other_than_the_named_reviewer_is_refused() -> None:
    assert reasons(reviewer_email="rm@rose.example") == [
        "only the named senior reviewer (ni@provider.example) may sign off; "
        "'rm@rose.example' is not them"
    ]


def test_accountable_lead_may_not_sign_off_their_own_action() -> None:
    refusal = reasons(reviewer_email=LEAD.upper())
    assert "the accountable lead may not sign off their own action" in refusal
    assert any(r.startswith("only the named senior reviewer") for r in refusal)


def test_lead_named_as_reviewer_still_may_not_sign_off() -> None:
    refusal = reasons({"reviewer_email": LEAD}, reviewer_email=LEAD)
    assert refusal == ["the accountable lead may not sign off their own action"]


@pytest.mark.parametrize("code", ["000000", "48291", "4829130", "abcdef", "", "48291x"])
def test_wrong_code_is_refused(code: str) -> None:
    assert reasons(code=code) == ["the sign-off code is wrong"]


def test_code_with_surrounding_spaces_is_accepted() -> None:
    assert reasons(code=f" {GOOD_CODE} ") == []


def test_expired_code_is_refused_with_its_expiry_time() -> None:
    issued = NOW - CODE_TTL - timedelta(minutes=1)
    assert reasons({"issued_at": issued}) == [
        "the sign-off code expired at 2026-11-26 08:59 UTC"
    ]


def test_code_is_valid_until_just_before_expiry_and_refused_at_it() -> None:
    assert reasons({"issued_at": NOW - CODE_TTL + timedelta(seconds=1)}) == []
    assert reasons({"issued_at": NOW - CODE_TTL}) != []


def test_expired_and_wrong_code_is_reported_as_wrong_only() -> None:
    # an expired request does not confirm whether a guessed code was right
    issued = NOW - CODE_TTL - timedelta(hours=1)
    assert reasons({"issued_at": issued}, code="111111") == ["the sign-off code is wrong"]


def test_used_code_is_refused() -> None:
    assert reasons({"used_at": NOW - timedelta(minutes=5)}) == [
        "the sign-off code has already been used"
    ]


def test_locked_request_is_refused_even_with_the_right_code() -> None:
    assert reasons({"locked": True, "wrong_attempts": 5}) == [
        "this sign-off request is locked after too many wrong codes"
    ]


@pytest.mark.parametrize("rationale", ["", "ok", "Looks fine to me.  ", " " * 30])
def test_thin_rationale_is_refused(rationale: str) -> None:
    assert reasons(rationale=rationale) == [
        f"the rationale must be at least {MIN_RATIONALE} characters"
    ]


def test_rationale_of_exactly_the_minimum_length_is_accepted() -> None:
    assert reasons(rationale="x" * MIN_RATIONALE) == []


@pytest.mark.parametrize("decision", ["approved", "APPROVE", "yes", ""])
def test_decision_other_than_approve_or_reject_is_refused(decision: str) -> None:
    assert reasons(decision=decision) == ["decision must be 'approve' or 'reject'"]


def test_every_reason_is_given_at_once() -> None:
    refusal = reasons(
        {"locked": True, "used_at": NOW},
        reviewer_email=LEAD, code="999999", decision="maybe", rationale="fine",
    )
    assert len(refusal) == 7


def test_codes_are_six_digits_and_salts_differ() -> None:
    codes = {new_code() for _ in range(20)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 1
    assert new_salt() != new_salt()


def test_stored_hash_depends_on_the_salt_and_never_contains_the_code() -> None:
    first, second = new_salt(), new_salt()
    assert hash_code(GOOD_CODE, first) != hash_code(GOOD_CODE, second)
    assert GOOD_CODE not in hash_code(GOOD_CODE, first)


@pytest.mark.parametrize(("overrides", "disclosed"), [
    ({"reviewer_email": "someone.else@rose.example"}, True),
    ({"reviewer_email": LEAD}, True),
    ({"reviewer_email": "someone.else@rose.example", "code": "000000"}, False),  # wrong code
    ({}, False),  # the named reviewer: their own code
    ({"rationale": "too short"}, False),  # the reviewer's own slip
])
def test_a_live_code_in_the_wrong_hands_is_disclosed(overrides: dict[str, str],
                                                     disclosed: bool) -> None:
    assert GOOD_CODE != "000000"
    assert code_disclosed(signoff_request(), submission(**overrides)) is disclosed


@pytest.mark.parametrize("state", [{"used_at": NOW}, {"locked": True}])
def test_a_spent_or_locked_code_is_not_disclosed_again(state: dict[str, Any]) -> None:
    assert not code_disclosed(signoff_request(**state),
                              submission(reviewer_email="someone.else@rose.example"))


def test_a_presenter_in_nobodys_name_is_refused_as_not_in_the_staff_directory() -> None:
    refusal = refusal_reasons(signoff_request(), submission(reviewer_email="nl@provider.example"),
                              accountable_lead=LEAD, now=NOW, presenter_known=False)
    assert refusal == ["'nl@provider.example' is not in the staff directory: no one there "
                       "has that email (check the address you typed)"]


def test_a_typed_address_in_nobodys_name_is_a_typo_not_a_disclosure() -> None:
    typo = submission(reviewer_email="nl@provider.example")
    assert not code_disclosed(signoff_request(), typo, presenter_known=False)
    assert code_disclosed(signoff_request(), typo, presenter_known=True)


@pytest.mark.parametrize(("presenter_known", "code", "counts"), [
    (False, GOOD_CODE, True),  # nobody's address: could be someone guessing
    (True, "000000", True),    # a wrong code
    (True, GOOD_CODE, False),  # a known other person: the disclosure path, not a guess
])
def test_what_counts_toward_the_lockout(presenter_known: bool, code: str,
                                        counts: bool) -> None:
    refusal = signoff_refusals(signoff_request(),
                               submission(reviewer_email="nl@provider.example", code=code),
                               accountable_lead=LEAD, now=NOW, presenter_known=presenter_known)
    assert counts_toward_lockout(refusal) is counts
