"""Risk rating at the start of every recovery action.

Five factors, each scored 1-5 against a written scale. The score weights potential harm
twice (harm is what the seed puts first and what inspectors ask about), so it runs from
6 to 30:

    score = 2 x potential_harm + people_affected + likelihood_of_recurrence
            + regulatory_impact + control_strength

Thresholds: high >= 20, medium >= 13, low below 13.
Overrides: catastrophic harm (5) with weak or absent controls (4-5) is always high;
catastrophic harm is never rated low.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

HIGH_THRESHOLD = 20
MEDIUM_THRESHOLD = 13

FACTOR_SCALES: dict[str, dict[int, str]] = {
    "potential_harm": {
        1: "negligible: no injury or distress",
        2: "minor: short-lived distress or minor injury",
        3: "moderate: harm needing extra care or treatment",
        4: "major: serious harm, lasting effect or abuse",
        5: "catastrophic: death or permanent serious harm possible",
    },
    "people_affected": {
        1: "one person",
        2: "a few people (2-5)",
        3: "a group or one unit (6-15)",
        4: "most people at the location",
        5: "everyone at the location or several locations",
    },
    "likelihood_of_recurrence": {
        1: "rare: not expected to recur",
        2: "unlikely: could recur occasionally",
        3: "possible: may recur within months",
        4: "likely: expected to recur within weeks",
        5: "almost certain: recurring now",
    },
    "regulatory_impact": {
        1: "none: no regulatory interest",
        2: "low: a recommendation at most",
        3: "moderate: a likely breach of regulation",
        4: "high: breach affecting a key question rating",
        5: "severe: enforcement or a warning notice likely",
    },
    "control_strength": {
        1: "strong: controls tested and working",
        2: "good: controls in place, minor gaps",
        3: "partial: controls in place but inconsistent",
        4: "weak: controls largely ineffective",
        5: "absent: no effective control",
    },
}

FACTOR_LABELS: dict[str, str] = {
    "potential_harm": "potential harm",
    "people_affected": "people affected",
    "likelihood_of_recurrence": "likelihood of recurrence",
    "regulatory_impact": "regulatory impact",
    "control_strength": "strength of current controls",
}


class RiskLevel(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return {"high": 0, "medium": 1, "low": 2}[self.value]


class RiskFactors(BaseModel):
    """The five factors, each 1 (least risk) to 5 (most risk)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    potential_harm: int = Field(ge=1, le=5)
    people_affected: int = Field(ge=1, le=5)
    likelihood_of_recurrence: int = Field(ge=1, le=5)
    regulatory_impact: int = Field(ge=1, le=5)
    control_strength: int = Field(ge=1, le=5)


class RiskRating(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: RiskLevel
    score: int
    factors: RiskFactors
    reasons: tuple[str, ...]
    override: str | None = None


def risk_score(factors: RiskFactors) -> int:
    return (
        2 * factors.potential_harm
        + factors.people_affected
        + factors.likelihood_of_recurrence
        + factors.regulatory_impact
        + factors.control_strength
    )


def rate_risk(factors: RiskFactors) -> RiskRating:
    """Rate an action and say which factors drove the rating."""
    score = risk_score(factors)
    if score >= HIGH_THRESHOLD:
        level = RiskLevel.HIGH
    elif score >= MEDIUM_THRESHOLD:
        level = RiskLevel.MEDIUM
    else:
        level = RiskLevel.LOW

    override: str | None = None
    if factors.potential_harm == 5 and factors.control_strength >= 4 and level != RiskLevel.HIGH:
        level = RiskLevel.HIGH
        override = "catastrophic potential harm with weak or absent controls is always high"
    elif factors.potential_harm == 5 and level == RiskLevel.LOW:
        level = RiskLevel.MEDIUM
        override = "catastrophic potential harm is never rated low"

    reasons = [f"score {score} of 30 ({_threshold_text(score)})"]
    values = factors.model_dump()
    for name, value in sorted(values.items(), key=lambda kv: (-kv[1], list(values).index(kv[0]))):
        if value >= 4:
            reasons.append(f"{FACTOR_LABELS[name]} {value}/5: {FACTOR_SCALES[name][value]}")
    if override:
        reasons.append(f"override: {override}")
    return RiskRating(
        level=level, score=score, factors=factors, reasons=tuple(reasons), override=override
    )


def _threshold_text(score: int) -> str:
    if score >= HIGH_THRESHOLD:
        return f"high at {HIGH_THRESHOLD} or more"
    if score >= MEDIUM_THRESHOLD:
        return f"medium at {MEDIUM_THRESHOLD}-{HIGH_THRESHOLD - 1}"
    return f"low below {MEDIUM_THRESHOLD}"
