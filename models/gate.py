"""The triangulation gate: closure is refused unless care records, audits, feedback and
staff practice all show the same improvement. Returns a verdict with every reason."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from models.action import ActionPlan
from models.dates import shift
from models.evidence import TRIANGULATION_PILLARS, Evidence
from models.people import normalise_email
from models.review import (
    DEFAULT_FRESHNESS_DAYS,
    SOURCE_NOUN,
    ReviewRecord,
    describe,
    pillar_positions,
)

CONSECUTIVE_PERIODS = 2


class GateVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    reasons: tuple[str, ...]
    as_of: date


def triangulation_gate(
    plan: ActionPlan,
    evidence: Sequence[Evidence],
    reviews: Sequence[ReviewRecord],
    *,
    as_of: date,
    open_escalations: Sequence[str] = (),
    open_triggers: Sequence[str] = (),
    freshness_days: int = DEFAULT_FRESHNESS_DAYS,
    reopened_on: date | None = None,
) -> GateVerdict:
    """Whether the action may go to closure sign-off, and every reason it may not. A
    reopened action closes on a fresh path: only evidence observed since it was reopened
    counts, so the evidence that closed it once cannot close it again.

    Long on purpose (a little): the seed's closure checklist in one place, each check
    adding its reason, so the gate's every refusal can be read top to bottom."""
    target = plan.target
    cutoff = shift(as_of, -freshness_days)
    reasons: list[str] = []
    since_words = f"since {cutoff.isoformat()}"
    if reopened_on is not None:
        evidence = [e for e in evidence if e.observed_on >= reopened_on]
        if reopened_on > cutoff:
            since_words = f"since the action was reopened on {reopened_on.isoformat()}"

    pillars = pillar_positions(evidence, as_of, freshness_days)
    for position in pillars:
        label = position.pillar.label
        latest = position.latest
        if latest is None:
            if position.fresh:
                reasons.append(
                    f"{label} evidence {since_words} has no measured value"
                )
            else:
                reasons.append(f"no {label} evidence {since_words}")
            continue
        assert latest.value is not None
        if target.better(plan.baseline.value, latest.value):
            reasons.append(
                f"{describe(latest)}, a decline from the baseline {plan.baseline.value:g}%"
            )
        elif not target.met_by(latest.value):
            reasons.append(f"{describe(latest)}, target {target.wording}")

    # like evidence, only reviews held by the gate date count
    held = [r for r in reviews if r.as_of <= as_of]
    recent = sorted(held, key=lambda r: r.as_of)[-CONSECUTIVE_PERIODS:]
    met = sum(1 for r in recent if r.target_met)
    if len(recent) < CONSECUTIVE_PERIODS or met < CONSECUTIVE_PERIODS:
        reasons.append(
            f"target met in {met} of the last {CONSECUTIVE_PERIODS} review periods "
            f"({len(recent)} held); {CONSECUTIVE_PERIODS} consecutive are needed"
        )
    for escalation in open_escalations:
        reasons.append(f"escalation still open: {escalation}")
    for trigger in open_triggers:
        reasons.append(f"trigger still open: {trigger}")
    if not plan.interim_controls:
        reasons.append("no interim controls are recorded")

    # independence is judged on the pillars, as the reason below says
    fresh = [
        e for e in evidence
        if cutoff <= e.observed_on <= as_of and e.pillar in TRIANGULATION_PILLARS
    ]
    lead = normalise_email(plan.accountable_lead)
    if fresh and all(normalise_email(e.recorded_by) == lead for e in fresh):
        reasons.append(
            f"all recent evidence was recorded by the accountable lead ({lead}); "
            "someone else must evidence at least one pillar"
        )
    return GateVerdict(passed=not reasons, reasons=tuple(reasons), as_of=as_of)


#: How a closure approval is refused when the gate would now say otherwise.
EVIDENCE_CHANGED = "the evidence changed since this request was made"


def gate_snapshot(
    verdict: GateVerdict,
    evidence: Sequence[Evidence],
    reviews: Sequence[tuple[int, ReviewRecord]],
    *,
    open_items: Sequence[str] = (),
    freshness_days: int = DEFAULT_FRESHNESS_DAYS,
    reopened_on: date | None = None,
) -> str:
    """A short reference to exactly what the gate counted: the verdict, each evidence item
    in its window (id, source, value, sample, day) and the reviews it weighed (id and what
    they say), and what was still open. Any change to any of them gives another
    reference, so a decision can name the facts it was made on (`gs-` and 12 hex digits)."""
    cutoff = shift(verdict.as_of, -freshness_days)
    counted = sorted(
        [e.id or 0, e.source.value, e.value, e.sample_size, e.observed_on.isoformat()]
        for e in evidence
        if cutoff <= e.observed_on <= verdict.as_of
        and (reopened_on is None or e.observed_on >= reopened_on)
    )
    held = sorted((r for r in reviews if r[1].as_of <= verdict.as_of),
                  key=lambda r: (r[1].as_of, r[0]))[-CONSECUTIVE_PERIODS:]
    body = {
        "passed": verdict.passed, "reasons": list(verdict.reasons),
        "as_of": verdict.as_of.isoformat(), "evidence": counted,
        "reviews": [[i, r.as_of.isoformat(), r.measured_value, r.target_met, r.rating.value]
                    for i, r in held],
        "open": sorted(open_items),
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
    return f"gs-{digest[:12]}"


def verdict_changed(passed_before: bool, now: GateVerdict) -> bool:
    """Whether the gate now says otherwise than when the request was made. Evidence that
    leaves the verdict as it was (another passing audit) changes nothing."""
    return passed_before != now.passed


__all__ = ["GateVerdict", "triangulation_gate", "SOURCE_NOUN", "CONSECUTIVE_PERIODS",
           "EVIDENCE_CHANGED", "gate_snapshot", "verdict_changed"]
