"""A recovery action's plan: what is wrong, what good looks like, who owns it, how."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.errors import RuleRefused
from models.lifecycle import Facts, interim_control_first
from models.people import Person, Role, check_email, normalise_email
from models.refusal import Refused
from models.risk import RiskFactors
from models.text import FreeText, free_text, single_line

MAX_TEXT = 2000
#: A change of operational control says what changes, in at least this many characters.
MIN_CONTROL_CHANGE = 20


class RiskDomain(StrEnum):
    SAFETY = "safety"
    SAFEGUARDING = "safeguarding"
    MEDICINES = "medicines"
    STAFFING = "staffing"
    CARE_PLANNING = "care_planning"
    LEADERSHIP_CONTROL = "leadership_control"

    @property
    def code(self) -> str:
        return {
            "safety": "SF",
            "safeguarding": "SG",
            "medicines": "MED",
            "staffing": "STF",
            "care_planning": "CP",
            "leadership_control": "LC",
        }[self.value]

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class Direction(StrEnum):
    AT_LEAST = "at_least"
    AT_MOST = "at_most"


class Baseline(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    issue: str
    value: float = Field(ge=0, le=100, allow_inf_nan=False)
    as_of: date

    @field_validator("issue")
    @classmethod
    def _issue(cls, v: str) -> str:
        return free_text(v, MAX_TEXT)


class Target(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    measure: str
    unit: Literal["percent"] = "percent"
    direction: Direction
    value: float = Field(ge=0, le=100, allow_inf_nan=False)
    deadline: date

    @field_validator("measure")
    @classmethod
    def _measure(cls, v: str) -> str:
        return single_line(v, 300)

    def met_by(self, value: float) -> bool:
        if self.direction == Direction.AT_LEAST:
            return value >= self.value
        return value <= self.value

    def better(self, a: float, b: float) -> bool:
        """Is `a` strictly better than `b` in the target's direction?"""
        return a > b if self.direction == Direction.AT_LEAST else a < b

    @property
    def wording(self) -> str:
        word = "at least" if self.direction == Direction.AT_LEAST else "at most"
        return f"{word} {self.value:g}%"


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    action: FreeText
    record: FreeText


class TriggerKind(StrEnum):
    """Triggers that the review cycle detects from stored data; `manual` ones are raised by
    people (e.g. unclear rationale, staff uncertainty about escalation)."""

    DELAYED_REVIEW = "delayed_review"
    MISSING_OUTCOME_EVIDENCE = "missing_outcome_evidence"
    REPEATED_GAPS = "repeated_gaps"
    BELOW_TRAJECTORY = "below_trajectory"
    REPEATED_UNMET_NEED = "repeated_unmet_need"
    POOR_FEEDBACK = "poor_feedback"
    OVERDUE = "overdue"
    STALE_PILLAR = "stale_pillar"
    MANUAL = "manual"


class Trigger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: FreeText
    kind: TriggerKind = TriggerKind.MANUAL


class AuditCadence(BaseModel):
    """Who audits the evidence and how often (seed: weekly RM audit, monthly NI assurance)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    frequency: Literal["daily", "weekly", "monthly"]
    what: FreeText


class ActionPlan(BaseModel):
    """Everything a plan file carries once a template has filled it in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    location: str
    title: str
    template: str | None = None
    risk_domain: RiskDomain
    quality_statements: tuple[str, ...] = Field(min_length=1)
    risk: RiskFactors
    framework_id: str = "cqc-saf-2024"
    accountable_lead: str
    senior_reviewer: str
    baseline: Baseline
    target: Target
    interim_controls: tuple[FreeText, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)
    what_can_go_wrong: tuple[FreeText, ...] = ()
    warning_signs: tuple[FreeText, ...] = ()
    escalation_actions: tuple[FreeText, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    evidence_sources: tuple[str, ...] = ()
    audit_cadence: tuple[AuditCadence, ...] = ()

    @field_validator("accountable_lead", "senior_reviewer")
    @classmethod
    def _email(cls, v: str) -> str:
        return check_email(v)

    @field_validator("title", "location")
    @classmethod
    def _title(cls, v: str) -> str:
        return single_line(v, 200)

    @model_validator(mode="after")
    def _target_improves_on_baseline(self) -> ActionPlan:
        if not self.target.better(self.target.value, self.baseline.value):
            raise ValueError(
                f"target: {self.target.wording} is no improvement on the baseline "
                f"{self.baseline.value:g}%"
            )
        if self.target.deadline <= self.baseline.as_of:
            raise ValueError("target: deadline must be after the baseline date")
        return self


def check_accountability(lead: Person, reviewer: Person) -> None:
    """One accountable lead and a different, senior reviewer; separation of delivery and
    assurance. Raises RuleRefused with every broken rule."""
    reasons = accountability_reasons(lead, reviewer)
    if reasons:
        raise RuleRefused("separation of duties", reasons)


def accountability_reasons(lead: Person, reviewer: Person) -> list[str]:
    """Every separation-of-duties rule `reviewer` breaks as reviewer of `lead`'s action
    (empty when none): the same rules for a named reviewer and for a stand-in."""
    reasons: list[str] = []
    if normalise_email(lead.email) == normalise_email(reviewer.email):
        reasons.append(
            f"the senior reviewer must be a different person from the accountable lead "
            f"({lead.email})"
        )
    if not reviewer.is_senior:
        reasons.append(
            f"the senior reviewer must be a registered manager, nominated individual or "
            f"provider lead; {reviewer.name} is a {reviewer.role.label}"
        )
    elif lead.role == Role.REGISTERED_MANAGER and not reviewer.is_provider_level:
        reasons.append(
            "where the registered manager leads the action, the senior reviewer must be "
            "provider-level (nominated individual or provider lead)"
        )
    return reasons


def check_plan_ready_for_signoff(plan: ActionPlan, level_is_high: bool) -> None:
    """The plan sign-off guard of the lifecycle table, asked of a plan before it is stored
    (a bulk import checks every row first)."""
    refusals = interim_control_first(Facts(is_high_risk=level_is_high,
                                           has_interim_controls=bool(plan.interim_controls)))
    if refusals:
        raise Refused("interim controls", refusals)


class ExtensionRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    new_deadline: date
    control_change: str
    decided_by: str


def check_extension(
    *, current_deadline: date, request: ExtensionRequest, is_high: bool, today: date
) -> None:
    """Weak progress is met by changing the control, not the timescale."""
    reasons: list[str] = []
    if request.new_deadline <= current_deadline:
        reasons.append(
            f"deadline: the new deadline {request.new_deadline.isoformat()} must be after the "
            f"current one {current_deadline.isoformat()}"
        )
    if request.new_deadline <= today:
        reasons.append("deadline: the new deadline must be in the future")
    if is_high and len(request.control_change.strip()) < MIN_CONTROL_CHANGE:
        reasons.append(
            "control-change: a high-risk action's deadline is extended only with a recorded "
            f"change of operational control (what changes, at least {MIN_CONTROL_CHANGE} "
            "characters)"
        )
    if is_high and not request.decided_by.strip():
        reasons.append("decided-by: record who decided to change the control")
    if reasons:
        raise RuleRefused("deadline extension", reasons)
