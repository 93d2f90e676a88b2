"""Organisation: provider, locations and the staff directory."""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, field_validator

from models.errors import InvalidInput
from models.text import location_code, single_line


class Role(StrEnum):
    REGISTERED_MANAGER = "registered_manager"
    NOMINATED_INDIVIDUAL = "nominated_individual"
    PROVIDER_LEAD = "provider_lead"
    DEPUTY_MANAGER = "deputy_manager"
    SAFEGUARDING_LEAD = "safeguarding_lead"
    MEDICINES_LEAD = "medicines_lead"
    DUTY_MANAGER = "duty_manager"
    TEAM_LEADER = "team_leader"
    SENIOR_CARER = "senior_carer"
    ROTA_COORDINATOR = "rota_coordinator"
    SHIFT_LEADER = "shift_leader"
    CARE_WORKER = "care_worker"
    QUALITY_LEAD = "quality_lead"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


#: Roles that may act as senior reviewer of a recovery action.
SENIOR_ROLES: frozenset[Role] = frozenset(
    {Role.REGISTERED_MANAGER, Role.NOMINATED_INDIVIDUAL, Role.PROVIDER_LEAD}
)
#: Roles that give provider-level oversight (not tied to one location).
PROVIDER_LEVEL_ROLES: frozenset[Role] = frozenset({Role.NOMINATED_INDIVIDUAL, Role.PROVIDER_LEAD})


def normalise_email(value: str) -> str:
    """Emails are matched trimmed and case-insensitively everywhere."""
    return value.strip().lower()


def check_email(value: str) -> str:
    """One deliverable address, normalised (trimmed, lower case), or ValueError naming the
    rule it breaks. The syntax is email-validator's (no DNS look-up: none is reachable
    where the product runs): no header breaks, lists, display names, quoting, brackets or
    trailing dots. On top of that an address is plain ASCII: a letter from another script
    (Cyrillic `і` in `nі@x.example`) can pass for a Latin one and reach someone else, and
    a non-ASCII address needs SMTPUTF8 on every relay; an internationalised domain is
    refused for the same reason (even spelled `xn--...`)."""
    text = value.strip()
    foreign = next((c for c in text if not c.isascii()), None)
    if foreign is not None:
        raise ValueError(f"'{text}' must be plain ASCII: {foreign!r} is "
                         f"{unicodedata.name(foreign, f'U+{ord(foreign):04X}')}, which can pass "
                         "for a Latin letter (no letters from other scripts)")
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"'{text}' is not one email address like name@example.org: "
                         f"{exc}") from None
    if not checked.normalized.isascii():
        raise ValueError(f"'{text}' must be plain ASCII: its domain is internationalised "
                         "(xn--) and spells letters from other scripts")
    return checked.normalized.lower()


def email_address(value: str, *, field: str) -> str:
    """`check_email` for an address typed outside a file (a `--by` option, a setting)."""
    try:
        return check_email(value)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None


def slug(value: str) -> str:
    """`Rose House` -> `rose-house` (used in tags and references)."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in value.strip())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")


class Person(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    email: str
    role: Role
    location: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return check_email(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return single_line(value, 200)

    @property
    def is_senior(self) -> bool:
        return self.role in SENIOR_ROLES

    @property
    def is_provider_level(self) -> bool:
        return self.role in PROVIDER_LEVEL_ROLES


class Location(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    code: str  # short upper-case code used in references, e.g. ROSE

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return single_line(value, 200)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return location_code(value)

