"""Date horizons: how far from today (or from the baseline) a date a person gives may lie.

A plan dated 9999-12-31 used to be accepted and then broke every pack and the weekly cycle
(`date value out of range` when a chart pads its axis). So every date that enters from a
person is bounded here, once, with a refusal naming the field and the rule; and every date
the application shifts goes through `shift`, which clamps at the calendar's ends instead of
overflowing, so rows stored before these rules still draw and cycle.

The checks relative to today apply where a date enters (a plan opened, revised or
imported; an extension; `--as-of`; RECOVERY_BUSINESS_DATE), never to stored rows: a plan
read back from the database is not refused because time has moved on.
"""

from __future__ import annotations

from datetime import date, datetime

from models.errors import InvalidInput

#: A baseline is a measurement already taken, and recent enough to recover from.
BASELINE_MAX_AGE_YEARS = 3
#: A deadline lies at most this long after the baseline: a recovery plan, not a wish.
DEADLINE_MAX_YEARS_AFTER_BASELINE = 2
#: An extension's new deadline lies at most this long after today.
EXTENSION_MAX_YEARS_AHEAD = 2
#: `--as-of`, a cycle's date and RECOVERY_BUSINESS_DATE: replaying the past up to ten
#: years, rehearsing up to a year ahead.
AS_OF_MAX_YEARS_BEFORE = 10
AS_OF_MAX_YEARS_AFTER = 1


def add_years(day: date, years: int) -> date:
    """The same calendar day `years` later (29 February becomes 28 February), clamped."""
    year = min(max(day.year + years, date.min.year), date.max.year)
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=year, day=28)


def shift(day: date, days: int) -> date:
    """`day` moved by `days`, clamped to the calendar's ends instead of overflowing."""
    ordinal = day.toordinal() + days
    return date.fromordinal(min(max(ordinal, date.min.toordinal()), date.max.toordinal()))


def _refuse(field: str, day: date, rule: str) -> InvalidInput:
    return InvalidInput(field, f"{day.isoformat()} {rule}")


def check_baseline(day: date, *, today: date, field: str = "baseline.as_of") -> None:
    """A baseline is what was measured: not in the future, at most three years old."""
    if day > today:
        raise _refuse(field, day, f"is in the future (today is {today.isoformat()}); the "
                                  f"baseline is what was measured")
    oldest = add_years(today, -BASELINE_MAX_AGE_YEARS)
    if day < oldest:
        raise _refuse(field, day, f"is more than {BASELINE_MAX_AGE_YEARS} years ago (the "
                                  f"earliest baseline today is {oldest.isoformat()})")


def check_deadline(deadline: date, *, baseline: date, field: str = "target.deadline") -> None:
    """A deadline lies at most two years after the baseline."""
    latest = add_years(baseline, DEADLINE_MAX_YEARS_AFTER_BASELINE)
    if deadline > latest:
        raise _refuse(field, deadline,
                      f"is more than {DEADLINE_MAX_YEARS_AFTER_BASELINE} years after the "
                      f"baseline {baseline.isoformat()} (at most {latest.isoformat()})")


def check_plan_dates(baseline: date, deadline: date, *, today: date) -> None:
    """The horizons of a plan entering the system (opened, revised or imported)."""
    check_baseline(baseline, today=today)
    check_deadline(deadline, baseline=baseline)


def check_extension_deadline(deadline: date, *, today: date, field: str = "deadline") -> None:
    """An extension's new deadline lies at most two years after today."""
    latest = add_years(today, EXTENSION_MAX_YEARS_AHEAD)
    if deadline > latest:
        raise _refuse(field, deadline, f"is more than {EXTENSION_MAX_YEARS_AHEAD} years "
                                       f"ahead (at most {latest.isoformat()})")


def as_of_range(today: date) -> tuple[date, date]:
    """The earliest and latest day a report, a cycle or the business date may be set to."""
    return add_years(today, -AS_OF_MAX_YEARS_BEFORE), add_years(today, AS_OF_MAX_YEARS_AFTER)


def check_as_of(day: date, *, today: date, field: str = "as_of") -> date:
    """`--as-of`, a cycle's date, RECOVERY_BUSINESS_DATE: ten years back to a year ahead."""
    earliest, latest = as_of_range(today)
    if not earliest <= day <= latest:
        raise _refuse(field, day, f"is outside {earliest.isoformat()} … {latest.isoformat()} "
                                  f"(at most {AS_OF_MAX_YEARS_BEFORE} years back and "
                                  f"{AS_OF_MAX_YEARS_AFTER} year ahead of today)")
    return day



#: How a date a person types reads: the CLI prints dates day first, so it takes them back
#: so (every date option, and the dates of an evidence import written as text).
DATE_HELP = "2026-12-03 or 03/12/2026 (day first)"


def parse_day(value: str, field: str) -> date:
    """A date as ISO (2026-12-03) or day first as the CLI prints it (03/12/2026)."""
    text = value.strip()
    try:
        if "/" in text:
            return datetime.strptime(text, "%d/%m/%Y").date()
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field, f"'{value}' is not a date: give it as {DATE_HELP}") from None
