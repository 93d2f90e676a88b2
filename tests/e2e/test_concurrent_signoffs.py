"""Two sign-offs submitted at the same moment: exactly one is applied.

Two `recovery signoff` processes start together with the same valid code. The Prefect
server accepts one resume of the suspended run; the other submission is refused with a
clear error (exit 3, the reason), and the action has one decision and one status change.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.recovery_stack import RECOVERY_BIN, REPO_ROOT, SEED, RecoveryStack

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


# ---------------------------------------------------------------- a late answer, made certain
#
# Two processes racing cannot make the late one arrive at a chosen moment, so these read the
# wait first (as `recovery signoff` does), let the other answer land, and only then send the
# stale one: `prefect_api.answer_wait` in a child process with the stack's environment.

_ANSWER = """
import json, sys
from models.errors import InvalidInput, RuleRefused
from recovery.adapters import prefect_api
ref, run_id, key, keyset, run_input = json.loads(sys.argv[1])
try:
    print(json.dumps({"key": prefect_api.answer_wait(ref, run_id, (key, keyset), run_input)}))
except RuleRefused as exc:
    print(json.dumps({"refused": exc.reasons}))
except InvalidInput as exc:
    print(json.dumps({"invalid": exc.field, "rule": exc.rule}))
"""


def _waiting_now(stack: RecoveryStack, ref: str) -> tuple[str, dict[str, str]]:
    details = stack.flow_run(ref).state.state_details
    return str(details.pause_key), dict(details.run_input_keyset)


def _answer_late(stack: RecoveryStack, ref: str, waiting: tuple[str, dict[str, str]],
                 run_input: dict[str, str]) -> dict[str, object]:
    args = json.dumps([ref, stack.flow_run_id(ref), *waiting, run_input])
    proc = subprocess.run([str(RECOVERY_BIN.parent / "python"), "-c", _ANSWER, args],
                          env=stack.env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _signoff(reviewer: str, code: str, decision: str, rationale: str) -> dict[str, str]:
    """A sign-off form's answer, as `recovery signoff` sends it."""
    return {"reviewer_email": reviewer, "code": code, "decision": decision,
            "rationale": rationale}


@pytest.mark.timeout(400)
def test_an_answer_arriving_after_the_run_moved_on_is_refused_as_taken(
        stack: RecoveryStack) -> None:
    """CI saw this once: the other sign-off was applied, the run already waited for the
    closure request, and the server checked the late sign-off against that form ("additional
    properties are not allowed"): reported as bad input (exit 2) instead of as taken."""
    ref, reviewer = "ELM-STF-001", "provider.lead@harbourcare.example"
    stack.cli_json("action", "open", SEED[ref], "--by", reviewer)
    stack.wait_for_wait(ref, "plan-signoff-1-")
    code = stack.signoff_code(ref, "plan")
    stale = _waiting_now(stack, ref)

    first = _signoff(reviewer, code, "approve", "Submission 1: rota cover checked on every shift")
    assert _answer_late(stack, ref, stale, first) == {"key": stale[0]}
    stack.wait_for_wait(ref, "closure-request-1-")

    late = _signoff(reviewer, code, "reject", "Submission 2: rota cover checked on every shift")
    outcome = _answer_late(stack, ref, stale, late)
    assert "refused" in outcome, outcome
    [reason] = outcome["refused"]  # type: ignore[misc]
    assert "another submission was taken first" in reason, reason
    # the run still waits for the closure request; one decision, the first
    assert stack.flow_run(ref).state.state_details.pause_key.startswith("closure-request-1-")
    assert stack.status(ref) == "in_recovery"
    assert stack.query("SELECT d.decision FROM decision d JOIN recovery_action a "
                       "ON a.id = d.action_id WHERE a.ref = :r", r=ref) == [("approve",)]


@pytest.mark.timeout(400)
def test_an_answer_taken_by_the_next_wait_after_a_refusal_reports_that_wait(
        stack: RecoveryStack) -> None:
    """The other answer had a wrong code: refused, and the run waits again at once under the
    next key with the same form, which the server gives this answer. It is applied there, so
    it must be reported applied (not "another submission was taken first")."""
    ref, reviewer = "ROSE-SG-001", "ni@harbourcare.example"
    stack.cli_json("action", "open", SEED[ref], "--by", reviewer)
    stack.wait_for_wait(ref, "plan-signoff-1-")
    code = stack.signoff_code(ref, "plan")
    stale = _waiting_now(stack, ref)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    refused = stack.cli("signoff", ref, "--by", reviewer, "--code", wrong, "--decision",
                        "approve", "--rationale", "Checked against the safeguarding log",
                        "--json")
    assert refused.exit_code == 3, str(refused)
    assert stack.wait_for_wait(ref, "plan-signoff-1-") == "plan-signoff-1-2"

    answer = _signoff(reviewer, code, "approve", "Referrals log matches the safeguarding records")
    assert _answer_late(stack, ref, stale, answer) == {"key": "plan-signoff-1-2"}
    stack.wait_for_wait(ref, "closure-request-1-")
    assert stack.status(ref) == "in_recovery"
    assert stack.query("SELECT d.decision, d.rationale FROM decision d JOIN recovery_action a"
                       " ON a.id = d.action_id WHERE a.ref = :r", r=ref) == [
        ("approve", answer["rationale"])]
