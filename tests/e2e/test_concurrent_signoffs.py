"""Two sign-offs submitted at the same moment: exactly one is applied.

Two `recovery signoff` processes start together with the same valid code. The Prefect
server accepts one resume of the suspended run; the other submission is refused with a
clear error (exit 3, the reason), and the action has one decision and one status change.
"""

from __future__ import annotations

import pytest

from tests.support.recovery_stack import SEED, RecoveryStack

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

REF = "QUAY-MED-001"
REVIEWER = "rm@quay.example"


@pytest.mark.timeout(400)
def test_two_signoffs_at_once_apply_exactly_one(stack: RecoveryStack) -> None:
    stack.cli_json("action", "open", SEED[REF], "--by", REVIEWER)
    stack.wait_for_wait(REF, "plan-signoff-1-")
    code = stack.signoff_code(REF, "plan")

    results = stack.cli_parallel(*[
        ["signoff", REF, "--by", REVIEWER, "--code", code, "--decision", decision,
         "--rationale", f"Submission {n}: controls cover every shift", "--json"]
        for n, decision in ((1, "approve"), (2, "reject"))
    ])

    winners = [r for r in results if r.exit_code == 0]
    losers = [r for r in results if r.exit_code != 0]
    assert len(winners) == 1 and len(losers) == 1, "\n".join(map(str, results))
    assert winners[0].json()["applied"] is True
    # refused, saying why: the run had already taken the other submission (or, if this one
    # arrived later still, the run now waits for something else)
    assert losers[0].exit_code == 3, str(losers[0])
    error = losers[0].error_json()
    assert error["error"] == "refused by sign-off", error
    [reason] = error["reasons"]
    assert ("another submission was taken first" in reason
            or "is not waiting for plan signoff" in reason), reason

    applied = "approve" if "approve" in winners[0].args else "reject"
    after = {"approve": ("in_recovery", "closure-request-1-"),
             "reject": ("plan_rejected", "plan-revision-1-")}[applied]
    stack.wait_for_wait(REF, after[1])
    assert stack.status(REF) == after[0]
    decisions = stack.query("SELECT d.decision FROM decision d JOIN recovery_action a "
                            "ON a.id = d.action_id WHERE a.ref = :r", r=REF)
    assert decisions == [(applied,)]
    events = [e for e in stack.audit_events(REF) if e.startswith("status.")]
    assert events == ["status.submit_plan", f"status.{applied}_plan"], events
