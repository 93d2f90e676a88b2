"""The deployments, described for the people who use the Prefect UI."""

from __future__ import annotations

from typing import Any

from flows.lifecycle import high_risk_action

LIFECYCLE = "high-risk-action"


def all_deployments() -> list[Any]:
    return [
        high_risk_action.to_deployment(
            name=LIFECYCLE,
            description=(
                "One run per high-risk recovery action: risk rating, accountability, baseline "
                "and interim controls, review cadence, plan sign-off by the senior reviewer, "
                "recovery, the triangulation gate and closure sign-off. Runs wait (suspended) "
                "for people: press Resume on a waiting run to sign off."
            ),
            tags=["recovery", "lifecycle"],
        ),
    ]
