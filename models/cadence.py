"""Review frequency that matches risk: one function, one table."""

from __future__ import annotations

import calendar
from datetime import date
from enum import StrEnum

from models.dates import shift
from models.risk import RiskLevel

#: High-risk actions are reviewed daily for this many days after recovery starts.
HIGH_RISK_DAILY_DAYS = 14


class Cadence(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


def review_cadence(
    level: RiskLevel,
    *,
    recovery_started_on: date | None,
    as_of: date,
    escalated: bool = False,
    unevidenced: bool = False,
) -> Cadence:
    """High: daily for the first 14 days of recovery, then weekly. Medium: weekly.
    Low: monthly. Escalated: daily until de-escalated, whatever the level. Not yet
    evidenced (the last review found no measure): daily until a measure is recorded, so
    the day its grace period ends is the day it is rated off track."""
    if escalated or unevidenced:
        return Cadence.DAILY
    if level == RiskLevel.HIGH:
        if recovery_started_on is None:
            return Cadence.DAILY
        if (as_of - recovery_started_on).days < HIGH_RISK_DAILY_DAYS:
            return Cadence.DAILY
        return Cadence.WEEKLY
    if level == RiskLevel.MEDIUM:
        return Cadence.WEEKLY
    return Cadence.MONTHLY


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_review_due(cadence: Cadence, last_review_on: date | None, start: date) -> date:
    """The date the next review is due: the start day when none has been held."""
    if last_review_on is None:
        return start
    if cadence == Cadence.DAILY:
        return shift(last_review_on, 1)
    if cadence == Cadence.WEEKLY:
        return shift(last_review_on, 7)
    return add_months(last_review_on, 1)


def review_due(cadence: Cadence, last_review_on: date | None, start: date, as_of: date) -> bool:
    return next_review_due(cadence, last_review_on, start) <= as_of
