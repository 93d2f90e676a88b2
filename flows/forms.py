"""What a person submits when they resume a waiting run (Prefect RunInput forms).

Constraints live on the fields and forms are built with `with_initial_data(description=...)`
and no field defaults, so the server itself refuses a malformed resume. Everything that
needs stored state (who may sign, the one-time code) is checked in the domain afterwards.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect.input import RunInput
from pydantic import Field

from models.signoff import MAX_FORM_TEXT, MIN_RATIONALE


class SignoffForm(RunInput):
    reviewer_email: str = Field(
        title="Your email", description="As held in the staff directory.", max_length=254
    )
    code: str = Field(
        title="One-time sign-off code", description="The six digits from your sign-off email.",
        pattern=r"^\d{6}$",
    )
    decision: Literal["approve", "reject"] = Field(title="Decision")
    rationale: str = Field(
        title="Rationale", description="Why you decided this (at least 20 characters). Stored in "
        "Prefect: describe the action in service terms, never a person's name or details.",
        min_length=MIN_RATIONALE, max_length=MAX_FORM_TEXT,
    )


class ClosureRequestForm(RunInput):
    requested_by: str = Field(
        title="Accountable lead's email", description="Only the accountable lead may ask.",
        max_length=254,
    )
    summary: str = Field(
        title="Summary", description="What has improved and where the evidence is (stored in "
        "Prefect: service terms only, never a person's name or details) "
        "(at least 20 characters).", min_length=MIN_RATIONALE, max_length=MAX_FORM_TEXT,
    )


class RevisionNotice(RunInput):
    plan_version: int = Field(title="Plan version recorded", ge=1)


def assurance_form(refs: list[str]) -> type[RunInput]:
    """The nominated individual's monthly form: one outcome and one note per high-risk
    action (built from the month's stored snapshot, so a re-run builds the same form)."""
    from pydantic import create_model

    from recovery.application.assurance import field_name

    fields: dict[str, Any] = {
        "reviewer_email": (str, Field(title="Your email", max_length=254)),
        "code": (str, Field(title="One-time code", pattern=r"^\d{6}$")),
    }
    for ref in refs:
        name = field_name(ref)
        fields[f"{name}_outcome"] = (
            Literal["assurance", "challenge", "further_action"], Field(title=f"{ref}: outcome"))
        fields[f"{name}_note"] = (
            str, Field(title=f"{ref}: note", min_length=10, max_length=2000))
    model: type[RunInput] = create_model("MonthlyAssuranceForm", __base__=RunInput, **fields)
    return model
