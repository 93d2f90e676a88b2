"""Sign-offs that must not count: each one is refused, recorded, and changes nothing else.

Every refusal goes through `recovery signoff` (the same resume the UI form makes) against
one action waiting for plan sign-off. A refusal in the domain (wrong person, wrong /
expired / reused code) is recorded in the audit trail and the run suspends again under a
new key; a malformed form (thin rationale) is refused by the Prefect server itself and the
run stays under the same key. Either way the action's status does not move and no
decision is recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support.recovery_stack import SEED, RecoveryStack, Result

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

TODAY = datetime.now(ZoneInfo("Europe/London")).date()
TOMORROW = TODAY + timedelta(days=1)
# The reused-code case needs the closure sign-off, so the gate must pass: reviews for two
# consecutive days from the plan sign-off (today) and a gate judging as of tomorrow.
STACK_ENV = {"RECOVERY_BUSINESS_DATE": TOMORROW.isoformat()}

REF = "ROSE-SG-001"
LEAD = "sg.lead@rose.example"
REVIEWER = "ni@harbourcare.example"
JUNIOR = "team.leader@rose.example"
RATIONALE = "The interim controls are proportionate to the risk"


@pytest.fixture(scope="module")
def waiting(stack: RecoveryStack) -> str:
    """ROSE-SG-001 opened, its run suspended for plan sign-off; the first key."""
    stack.cli_json("action", "open", SEED[REF], "--by", "rm@rose.example")
    return stack.wait_for_wait(REF, "plan-signoff-1-")


def latest_code(stack: RecoveryStack, kind: str = "plan") -> str:
    return stack.signoff_code(REF, kind, number=len(stack.signoff_mails(REF, kind)) or 1)


def paused_key(stack: RecoveryStack) -> str:
    run = stack.flow_run(REF)
    assert run.state.is_paused(), run.state
    return str(run.state.state_details.pause_key)


def next_key(key: str) -> str:
    base, n = key.rsplit("-", 1)
    return f"{base}-{int(n) + 1}"


def sign(stack: RecoveryStack, by: str, code: str, rationale: str = RATIONALE,
         decision: str = "approve") -> Result:
    return stack.cli("signoff", REF, "--by", by, "--code", code, "--decision", decision,
                     "--rationale", rationale, "--json")


def refusals(stack: RecoveryStack) -> list[dict[str, Any]]:
    return [e for e in stack.audit(REF) if e["event"] == "signoff.refused"]


def assert_refused_in_domain(stack: RecoveryStack, result: Result, reason: str,
                             before: list[dict[str, Any]], by: str) -> None:
    assert result.exit_code == 3, str(result)
    error = result.error_json()
    assert error["error"] == "sign-off refused"
    assert any(reason in r for r in error["reasons"]), error
    after = refusals(stack)
    assert len(after) == len(before) + 1, after
    assert after[-1]["actor"] == by
    assert any(reason in r for r in after[-1]["details"]["reasons"]), after[-1]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("who", "code", "reason"),
    [
        pytest.param(LEAD, "valid", "the accountable lead may not sign off their own action",
                     id="accountable-lead"),
        pytest.param(JUNIOR, "valid",
                     f"only the named senior reviewer ({REVIEWER}) may sign off", id="junior"),
        pytest.param(REVIEWER, "wrong", "the sign-off code is wrong", id="wrong-code"),
    ],
)
def test_refused_in_the_domain_and_the_run_waits_again(
    stack: RecoveryStack, waiting: str, who: str, code: str, reason: str
) -> None:
    key = paused_key(stack)
    before = refusals(stack)
    valid = latest_code(stack)
    given = valid if code == "valid" else f"{(int(valid) + 1) % 1_000_000:06d}"

    result = sign(stack, who, given)

    assert_refused_in_domain(stack, result, reason, before, who)
    assert stack.wait_for_wait(REF, next_key(key)) == next_key(key)
    assert stack.status(REF) == "awaiting_plan_signoff"
    assert stack.count("decision", REF) == 0
    assert len(stack.signoff_mails(REF, "plan")) == 1  # no new code for a refusal


@pytest.mark.timeout(120)
def test_thin_rationale_is_refused_by_the_server(stack: RecoveryStack, waiting: str) -> None:
    key = paused_key(stack)
    audit_before = stack.audit(REF)

    result = sign(stack, REVIEWER, latest_code(stack), rationale="Looks fine")

    assert result.exit_code == 2, str(result)
    error = result.error_json()
    assert error["field"] == "rationale", error
    assert "too short" in error["error"], error
    # nothing reached the flow: same wait, same status, nothing recorded
    assert paused_key(stack) == key
    assert stack.status(REF) == "awaiting_plan_signoff"
    assert stack.audit(REF) == audit_before
    assert stack.count("decision", REF) == 0


@pytest.mark.timeout(180)
def test_expired_code_is_refused_and_a_new_one_is_issued(
    stack: RecoveryStack, waiting: str
) -> None:
    key = paused_key(stack)
    before = refusals(stack)
    code = latest_code(stack)
    mails = len(stack.signoff_mails(REF, "plan"))
    # The only direct write in these tests: codes live 72 hours, and the domain's
    # sign-off clock is the real one, so the code is aged in the database.
    stack.execute(
        "UPDATE signoff_request SET expires_at = :t, issued_at = :i WHERE id = "
        "(SELECT MAX(s.id) FROM signoff_request s JOIN recovery_action a "
        " ON a.id = s.action_id WHERE a.ref = :r AND s.kind = 'plan')",
        t="2000-01-04 00:00:00.000000", i="2000-01-01 00:00:00.000000", r=REF)

    result = sign(stack, REVIEWER, code)

    assert_refused_in_domain(stack, result, "the sign-off code expired at", before, REVIEWER)
    # the run asks again: a new request (attempt 2) with a new code by email
    stack.wait_for_wait(REF, "plan-signoff-2-")
    assert stack.status(REF) == "awaiting_plan_signoff"
    assert stack.count("decision", REF) == 0
    assert len(stack.signoff_mails(REF, "plan")) == mails + 1
    attempts = stack.query("SELECT s.attempt FROM signoff_request s JOIN recovery_action a "
                           "ON a.id = s.action_id WHERE a.ref = :r ORDER BY s.attempt", r=REF)
    assert attempts == [(1,), (2,)]
    assert key.startswith("plan-signoff-1-")


@pytest.mark.timeout(300)
def test_plan_code_reused_for_closure_is_refused(stack: RecoveryStack, waiting: str) -> None:
    plan_code = latest_code(stack)
    approved = sign(stack, REVIEWER, plan_code)
    assert approved.exit_code == 0, str(approved)
    assert approved.json()["applied"] is True

    # through the gate to closure sign-off
    stack.add_evidence(REF, TODAY, ("care_records", "rm@rose.example"), ("audits", LEAD),
                       ("feedback", JUNIOR), ("staff_practice", "duty.manager@rose.example"))
    for day in (TODAY, TOMORROW):
        stack.cli_json("review", "run", "daily", "--as-of", day.isoformat())
    stack.wait_for_wait(REF, "closure-request-1-")
    asked = stack.cli_json("closure", "request", REF, "--by", LEAD,
                           "--summary", "All four pillars at 100% and two reviews on target")
    assert asked["applied"] is True, asked
    key = stack.wait_for_wait(REF, "closure-signoff-1-")
    assert stack.status(REF) == "awaiting_closure_signoff"
    closure_code = stack.signoff_code(REF, "closure")
    before = refusals(stack)

    # two independent six-digit draws: equal once in a million runs
    assert plan_code != closure_code, "the closure code happens to equal the used plan code"
    reused = sign(stack, REVIEWER, plan_code)

    assert_refused_in_domain(stack, reused, "the sign-off code is wrong", before, REVIEWER)
    assert stack.wait_for_wait(REF, next_key(key)) == next_key(key)
    assert stack.status(REF) == "awaiting_closure_signoff"
    decisions = stack.query("SELECT d.kind, d.decision FROM decision d JOIN recovery_action a "
                            "ON a.id = d.action_id WHERE a.ref = :r", r=REF)
    assert decisions == [("plan", "approve")]
