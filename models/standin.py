"""Absences and stand-in reviewers: who is away, who may stand in, and when a sign-off may
be handed to one.

A stand-in meets every rule the named reviewer met (`models.action.accountability_reasons`:
senior role, not the accountable lead, provider-level where the registered manager leads),
a registered manager only for their own location, and is not away. Nothing here chooses a
reviewer: people do (`recovery signoff reassign`), and an away reviewer is never picked by
any automatic path.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

from models.action import accountability_reasons
from models.dates import add_years
from models.errors import InvalidInput
from models.people import PROVIDER_LEVEL_ROLES, SENIOR_ROLES, Person, Role, normalise_email

#: An absence is recorded for at most this long at a time (a year's leave is a vacancy).
MAX_ABSENCE_DAYS = 366
#: How far ahead an absence may start (planned leave, not a guess at next year).
MAX_ABSENCE_AHEAD_YEARS = 1

#: Who may hand a waiting sign-off to a stand-in.
REASSIGNERS: frozenset[Role] = PROVIDER_LEVEL_ROLES

#: How a refusal words a stand-in who is away.
STANDIN_AWAY = "is away"


class Absence(BaseModel):
    """One recorded absence: `email` is away from `starts_on` to `ends_on`, both included."""

    model_config = ConfigDict(frozen=True)

    email: str
    starts_on: date
    ends_on: date

    def covers(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


def check_absence(starts_on: date, ends_on: date, *, today: date) -> None:
    """The dates of an absence being recorded (InvalidInput naming the field and rule)."""
    if ends_on < starts_on:
        raise InvalidInput("to", f"{ends_on.isoformat()} is before the first day away "
                                 f"({starts_on.isoformat()})")
    if ends_on < today:
        raise InvalidInput("to", f"{ends_on.isoformat()} has passed: record an absence "
                                 "that is current or planned")
    if starts_on > add_years(today, MAX_ABSENCE_AHEAD_YEARS):
        raise InvalidInput("from", f"{starts_on.isoformat()} is more than "
                                   f"{MAX_ABSENCE_AHEAD_YEARS} year ahead")
    if (ends_on - starts_on).days + 1 > MAX_ABSENCE_DAYS:
        raise InvalidInput("to", f"an absence is at most {MAX_ABSENCE_DAYS} days; "
                                 "record a longer one again when it is renewed")


def absence_recorder_refusals(absent: Person, by: Person) -> list[str]:
    """A person records their own absence; a senior role records anyone's."""
    if normalise_email(absent.email) == normalise_email(by.email) or by.is_senior:
        return []
    return [f"only {absent.email} or a registered manager, nominated individual or provider "
            f"lead may record their absence; {by.email} is a {by.role.label}"]


def away_on(email: str, absences: Iterable[Absence], day: date) -> Absence | None:
    """The absence that has `email` away on `day` (the one ending last), or None."""
    who = normalise_email(email)
    covering = [a for a in absences if normalise_email(a.email) == who and a.covers(day)]
    return max(covering, key=lambda a: a.ends_on) if covering else None


def standin_refusals(
    *, lead: Person, standin: Person, reviewer_email: str, action_location: str | None,
    standin_away: Absence | None,
) -> list[str]:
    """Every reason `standin` may not take over the sign-off waiting on `reviewer_email`
    (empty when they may)."""
    reasons = accountability_reasons(lead, standin)
    if normalise_email(standin.email) == normalise_email(reviewer_email):
        reasons.append(f"{standin.email} is already the reviewer this sign-off waits on")
    if (standin.role == Role.REGISTERED_MANAGER and action_location is not None
            and standin.location != action_location):
        reasons.append(f"a registered manager stands in only for their own location; "
                       f"{standin.email} manages {standin.location or 'no location'}, not "
                       f"{action_location}")
    if standin_away is not None:
        reasons.append(f"{standin.email} {STANDIN_AWAY} until "
                       f"{standin_away.ends_on.strftime('%d/%m/%Y')}")
    return reasons


def reassign_refusals(
    *, by: Person, reviewer_away: Absence | None, waited: timedelta, wait_limit: timedelta,
    reason: str, min_reason: int,
) -> list[str]:
    """Every reason the waiting sign-off may not be handed on now: only the nominated
    individual or the provider lead hands it on, and only while its reviewer is away or it
    has waited longer than the configured hours; the reason is said in words."""
    reasons: list[str] = []
    if by.role not in REASSIGNERS:
        reasons.append(f"only the nominated individual or the provider lead may reassign a "
                       f"sign-off; {by.email} is a {by.role.label}")
    if reviewer_away is None and waited <= wait_limit:
        hours = int(wait_limit.total_seconds() // 3600)
        reasons.append(f"the reviewer is not away and the sign-off has waited "
                       f"{int(waited.total_seconds() // 3600)} hours, not more than {hours}")
    if len(reason.strip()) < min_reason:
        reasons.append(f"the reason must be at least {min_reason} characters")
    return reasons


def eligible_standins(
    *, lead: Person, reviewer_email: str, action_location: str | None,
    people: Iterable[Person], absences: Iterable[Absence], day: date,
) -> list[Person]:
    """Everyone who could take over the sign-off on `day` (not away), senior roles only,
    provider-level first; what the waiting-time email names."""
    known = list(absences)
    fit = [p for p in people if p.role in SENIOR_ROLES and not standin_refusals(
        lead=lead, standin=p, reviewer_email=reviewer_email,
        action_location=action_location, standin_away=away_on(p.email, known, day))]
    return sorted(fit, key=lambda p: (p.role not in PROVIDER_LEVEL_ROLES, p.name))
