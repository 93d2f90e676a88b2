"""Organisation: provider, locations and the staff directory."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator


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
        value = normalise_email(value)
        local, _, domain = value.partition("@")
        if not local or "." not in domain or " " in value:
            raise ValueError("must be an email address like name@example.org")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if len(value) > 200:
            raise ValueError("must be at most 200 characters")
        return value

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


class Provider(BaseModel):
    name: str
    locations: list[Location] = []
    people: list[Person] = []
