"""Weak progress is met by changing the operational control, not by extending the deadline."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from models.action import ExtensionRequest, check_extension
from models.errors import RuleRefused

CURRENT = date(2027, 1, 8)
TODAY = date(2027, 1, 5)
CONTROL_CHANGE = "Protected medicines time 08:00-10:00 and a second senior on the round"


def extension(
    *,
    new_deadline: date = CURRENT + timedelta(weeks=2),
    control_change: str = CONTROL_CHANGE,
    decided_by: str = "ni@provider.example",
    is_high: bool = True,
    current: date = CURRENT,
    today: date = TODAY,
) -> None:
    check_extension(
        current_deadline=current,
        request=ExtensionRequest(
            new_deadline=new_deadline, control_change=control_change, decided_by=decided_by
        ),
        is_high=is_high,
        today=today,
    )


def refusal(**kwargs: object) -> list[str]:
    with pytest.raises(RuleRefused) as caught:
        extension(**kwargs)  # type: ignore[arg-type]
    assert caught.value.rule == "deadline extension"
    return caught.value.reasons


def test_high_risk_extension_with_a_recorded_control_change_is_accepted() -> None:
    extension()


@pytest.mark.parametrize("change", ["", "   ", "more effort", "x" * 19, " " * 10 + "y" * 19])
def test_high_risk_extension_without_a_real_control_change_is_refused(change: str) -> None:
    assert refusal(control_change=change) == [
        "control-change: a high-risk action's deadline is extended only with a recorded "
        "change of operational control (what changes, at least 20 characters)"
    ]


def test_control_change_of_exactly_20_characters_is_enough() -> None:
    extension(control_change="y" * 20)


def test_high_risk_extension_without_who_decided_is_refused() -> None:
    reasons = refusal(decided_by="  ")
    assert reasons == ["decided-by: record who decided to change the control"]


def test_medium_or_low_risk_extension_needs_no_control_change() -> None:
    extension(is_high=False, control_change="")


@pytest.mark.parametrize("new_deadline", [CURRENT, CURRENT - timedelta(days=1)])
def test_new_deadline_not_after_the_current_one_is_refused(new_deadline: date) -> None:
    reasons = refusal(new_deadline=new_deadline, is_high=False)
    assert reasons == [
        f"deadline: the new deadline {new_deadline.isoformat()} must be after the current "
        f"one {CURRENT.isoformat()}"
    ]


def test_new_deadline_in_the_past_is_refused_for_an_overdue_action() -> None:
    overdue = date(2026, 12, 1)
    reasons = refusal(current=overdue, new_deadline=overdue + timedelta(days=7), is_high=False)
    assert reasons == ["deadline: the new deadline must be in the future"]


def test_every_reason_is_given_at_once() -> None:
    assert len(refusal(new_deadline=CURRENT, control_change="try harder")) == 2
