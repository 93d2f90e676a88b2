"""Review frequency matches risk; the next review date follows the cadence."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from models.cadence import (
    HIGH_RISK_DAILY_DAYS,
    Cadence,
    add_months,
    next_review_due,
    review_cadence,
    review_due,
)
from models.risk import RiskLevel

STARTED = date(2026, 11, 2)


def cadence_on(level: RiskLevel, day: int, *, escalated: bool = False) -> Cadence:
    """The cadence on recovery day `day` (day 0 is the day recovery started)."""
    return review_cadence(
        level, recovery_started_on=STARTED, as_of=STARTED + timedelta(days=day),
        escalated=escalated,
    )


@pytest.mark.parametrize("day", [0, 1, 7, 13])
def test_high_risk_is_reviewed_daily_in_the_first_14_days(day: int) -> None:
    assert cadence_on(RiskLevel.HIGH, day) == Cadence.DAILY


@pytest.mark.parametrize("day", [14, 15, 60])
def test_high_risk_is_reviewed_weekly_after_the_first_14_days(day: int) -> None:
    assert cadence_on(RiskLevel.HIGH, day) == Cadence.WEEKLY


def test_the_daily_period_is_exactly_14_days() -> None:
    daily = [d for d in range(40) if cadence_on(RiskLevel.HIGH, d) == Cadence.DAILY]
    assert daily == list(range(HIGH_RISK_DAILY_DAYS)) == list(range(14))


def test_high_risk_not_yet_in_recovery_is_reviewed_daily() -> None:
    assert review_cadence(
        RiskLevel.HIGH, recovery_started_on=None, as_of=STARTED
    ) == Cadence.DAILY


@pytest.mark.parametrize("day", [0, 5, 30])
def test_medium_risk_is_reviewed_weekly(day: int) -> None:
    assert cadence_on(RiskLevel.MEDIUM, day) == Cadence.WEEKLY


@pytest.mark.parametrize("day", [0, 5, 30])
def test_low_risk_is_reviewed_monthly(day: int) -> None:
    assert cadence_on(RiskLevel.LOW, day) == Cadence.MONTHLY


@pytest.mark.parametrize("level", list(RiskLevel))
@pytest.mark.parametrize("day", [0, 20, 90])
def test_escalated_action_is_reviewed_daily_whatever_its_level(level: RiskLevel, day: int) -> None:
    assert cadence_on(level, day, escalated=True) == Cadence.DAILY


@pytest.mark.parametrize("level", list(RiskLevel))
@pytest.mark.parametrize("day", [0, 15, 90])
def test_an_action_not_yet_evidenced_is_reviewed_daily_until_measured(
    level: RiskLevel, day: int
) -> None:
    as_of = STARTED + timedelta(days=day)
    assert review_cadence(level, recovery_started_on=STARTED, as_of=as_of,
                          unevidenced=True) == Cadence.DAILY
    assert review_cadence(level, recovery_started_on=STARTED, as_of=as_of) == \
        cadence_on(level, day)


def test_de_escalated_high_risk_action_returns_to_weekly_after_day_14() -> None:
    assert cadence_on(RiskLevel.HIGH, 30, escalated=True) == Cadence.DAILY
    assert cadence_on(RiskLevel.HIGH, 31, escalated=False) == Cadence.WEEKLY


def test_first_review_is_due_on_the_start_day() -> None:
    assert next_review_due(Cadence.WEEKLY, None, STARTED) == STARTED


@pytest.mark.parametrize(
    ("cadence", "last", "expected"),
    [
        (Cadence.DAILY, date(2026, 11, 30), date(2026, 12, 1)),
        (Cadence.WEEKLY, date(2026, 12, 28), date(2027, 1, 4)),
        (Cadence.MONTHLY, date(2026, 11, 15), date(2026, 12, 15)),
        (Cadence.MONTHLY, date(2026, 12, 20), date(2027, 1, 20)),
    ],
)
def test_next_review_follows_the_cadence(cadence: Cadence, last: date, expected: date) -> None:
    assert next_review_due(cadence, last, STARTED) == expected


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (date(2027, 1, 31), date(2027, 2, 28)),
        (date(2028, 1, 31), date(2028, 2, 29)),  # leap year
        (date(2026, 3, 31), date(2026, 4, 30)),
        (date(2026, 8, 31), date(2026, 9, 30)),
    ],
)
def test_monthly_review_after_a_month_end_falls_on_the_last_day_of_next_month(
    last: date, expected: date
) -> None:
    assert next_review_due(Cadence.MONTHLY, last, STARTED) == expected


def test_add_months_crosses_years_both_ways() -> None:
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 1, 15), -1) == date(2025, 12, 15)


def test_review_is_due_on_and_after_its_due_date_only() -> None:
    last = date(2026, 11, 20)
    assert not review_due(Cadence.WEEKLY, last, STARTED, date(2026, 11, 26))
    assert review_due(Cadence.WEEKLY, last, STARTED, date(2026, 11, 27))
    assert review_due(Cadence.WEEKLY, last, STARTED, date(2026, 12, 1))
