"""The date horizons (`models/dates.py`): every bound refuses one day past it, naming the
field and the rule, and `shift` never overflows."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.dates import (
    add_years,
    check_as_of,
    check_baseline,
    check_deadline,
    check_extension_deadline,
    shift,
)
from models.errors import InvalidInput

TODAY = date(2026, 12, 4)


def test_a_baseline_may_be_today_or_up_to_three_years_old() -> None:
    check_baseline(TODAY, today=TODAY)
    check_baseline(date(2023, 12, 4), today=TODAY)


@pytest.mark.parametrize(("day", "rule"), [(date(2026, 12, 5), "in the future"),
                                           (date(2023, 12, 3), "more than 3 years ago")])
def test_a_baseline_outside_its_horizon_is_refused(day: date, rule: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_baseline(day, today=TODAY)
    assert refused.value.field == "baseline.as_of" and rule in refused.value.rule


def test_a_deadline_lies_at_most_two_years_after_the_baseline() -> None:
    check_deadline(date(2028, 11, 20), baseline=date(2026, 11, 20))
    with pytest.raises(InvalidInput) as refused:
        check_deadline(date(9999, 12, 31), baseline=date(2026, 11, 20))
    assert refused.value.field == "target.deadline"
    assert "more than 2 years after the baseline" in refused.value.rule


def test_an_extension_lies_at_most_two_years_ahead() -> None:
    check_extension_deadline(date(2028, 12, 4), today=TODAY)
    with pytest.raises(InvalidInput, match="deadline: 2028-12-05 is more than 2 years ahead"):
        check_extension_deadline(date(2028, 12, 5), today=TODAY)


@pytest.mark.parametrize("day", [date(2016, 12, 3), date(2027, 12, 5), date(9999, 12, 31),
                                 date(1, 1, 1)])
def test_an_as_of_outside_ten_years_back_and_one_ahead_is_refused(day: date) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_as_of(day, today=TODAY)
    assert refused.value.field == "as_of" and "outside 2016-12-04 … 2027-12-04" in \
        refused.value.rule
    assert check_as_of(date(2016, 12, 4), today=TODAY) == date(2016, 12, 4)


def test_add_years_keeps_29_february_on_the_28th() -> None:
    assert add_years(date(2024, 2, 29), 2) == date(2026, 2, 28)
    assert add_years(date(9999, 1, 1), 5) == date(9999, 1, 1)


@given(st.dates(), st.integers(min_value=-4_000_000, max_value=4_000_000))
def test_shift_clamps_at_the_calendars_ends(day: date, days: int) -> None:
    moved = shift(day, days)
    assert date.min <= moved <= date.max
    if date.min.toordinal() <= day.toordinal() + days <= date.max.toordinal():
        assert moved.toordinal() == day.toordinal() + days
