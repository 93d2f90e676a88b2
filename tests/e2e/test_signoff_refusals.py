"""Sign-offs that must not count: each one is refused, recorded, and changes nothing else.

Every refusal goes through `recovery signoff` (the same resume the UI form makes) against
one action waiting for plan sign-off. A refusal in the domain (the accountable lead, a
junior person, a wrong or expired code) is recorded in the audit trail and the run
suspends again under a new key (a right code presented by the wrong person is withdrawn
and the named reviewer sent a new one); a malformed form (thin rationale) is refused by the
Prefect server itself and the run stays under the same key. Either way the action's status
does not move and no decision is recorded.

A code already used for the plan, given again for the closure, is refused in
test_lifecycle_journey.py, at the closure sign-off the journey reaches anyway (reaching it
here would cost a second pass through evidence, reviews and the gate).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.recovery_stack import SEED, RecoveryStack, Result

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

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


def stored(moment: datetime) -> str:
    """A UTC timestamp as the app stores it in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sign(stack: RecoveryStack, by: str, code: str, rationale: str = RATIONALE,
         decision: str = "approve") -> Result:
    return stack.cli("signoff", REF, "--by", by, "--code", code, "--decision", decision,
                     "--rationale", rationale, "--json")


def refusals(stack: RecoveryStack) -> int:
    return stack.audit_events(REF).count("signoff.refused")


def assert_refused_in_domain(stack: RecoveryStack, result: Result, reason: str,
                             before: int, by: str) -> None:
    """Exit 3 with the reason, and one more `signoff.refused` entry in the audit trail
    (`recovery audit show REF --json`) by whoever tried, with that reason."""
    assert result.exit_code == 3, str(result)
    error = result.error_json()
    assert error["error"] == "sign-off refused"
    assert any(reason in r for r in error["reasons"]), error
    refused = [e for e in stack.audit(REF) if e["event"] == "signoff.refused"]
    assert len(refused) == before + 1, refused
    assert refused[-1]["actor"] == by
    assert any(reason in r for r in refused[-1]["details"]["reasons"]), refused[-1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("who", "code", "reason"),
    [
        pytest.param(LEAD, "valid", "the accountable lead may not sign off their own action",
                     id="accountable-lead"),
        pytest.param(JUNIOR, "valid",
                     f"only the named senior reviewer ({REVIEWER}) may sign off", id="junior"),
        pytest.param(REVIEWER, "wrong", "the sign-off code is wrong", id="wrong-code"),
        pytest.param(REVIEWER.replace("@", "x@"), "valid", "is not in the staff directory",
                     id="mistyped-own-address"),
    ],
)
def test_refused_in_the_domain_and_the_run_waits_again(
    stack: RecoveryStack, waiting: str, who: str, code: str, reason: str
) -> None:
    key = paused_key(stack)
    before = refusals(stack)
    valid = latest_code(stack)
    given = valid if code == "valid" else f"{(int(valid) + 1) % 1_000_000:06d}"

    mails = len(stack.signoff_mails(REF, "plan"))
    withdrawn = stack.audit_events(REF).count("signoff.code_withdrawn")

    result = sign(stack, who, given)

    assert_refused_in_domain(stack, result, reason, before, who)
    assert stack.status(REF) == "awaiting_plan_signoff"
    assert stack.count("decision", REF) == 0
    typo = who == REVIEWER.replace("@", "x@")
    if code == "wrong" or typo:
        # a wrong code, or an address in nobody's name (a typo, not a disclosure): the
        # same request and code, asked again, and nobody alerted
        assert stack.wait_for_wait(REF, next_key(key)) == next_key(key)
        assert len(stack.signoff_mails(REF, "plan")) == mails
        assert stack.audit_events(REF).count("signoff.code_withdrawn") == withdrawn
    else:
        # the right code in someone else's hands is withdrawn: the run asks again under
        # a new request, and the named reviewer is sent a new code
        assert "the sign-off code was withdrawn" in " ".join(result.error_json()["reasons"])
        attempt = int(key.split("-")[2])
        assert stack.wait_for_wait(REF, f"plan-signoff-{attempt + 1}-") == \
            f"plan-signoff-{attempt + 1}-1"
        stack.wait_for_mails(mails + 1, subject=f"{REF}: your plan sign-off is needed")
        assert stack.audit_events(REF).count("signoff.code_withdrawn") >= 1


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("field", "rule"), [
    ("rationale", "the rationale must be at least 20 characters (and at most 4000)"),
    ("code", "the code is six digits, as in your sign-off email"),
])
def test_a_malformed_form_is_refused_by_the_server_in_plain_words(
    stack: RecoveryStack, waiting: str, field: str, rule: str
) -> None:
    key = paused_key(stack)
    audit_before = stack.audit_events(REF)

    code = latest_code(stack)
    result = (sign(stack, REVIEWER, code, rationale="Looks fine") if field == "rationale"
              else sign(stack, REVIEWER, code[:5]))

    assert result.exit_code == 2, str(result)
    assert result.error_json() == {"error": rule, "field": field}
    # nothing reached the flow: same wait, same status, nothing recorded
    assert paused_key(stack) == key
    assert stack.status(REF) == "awaiting_plan_signoff"
    assert stack.audit_events(REF) == audit_before
    assert stack.count("decision", REF) == 0


@pytest.mark.timeout(300)
def test_expired_code_is_refused_and_a_new_one_is_issued(
    stack: RecoveryStack, waiting: str
) -> None:
    key = paused_key(stack)
    before = refusals(stack)
    code = latest_code(stack)
    mails = len(stack.signoff_mails(REF, "plan"))
    # The only direct write in these tests: codes live 72 hours and the sign-off clock is
    # the real one (RECOVERY_BUSINESS_DATE moves dates, not timestamps), so the code is
    # aged in the database: issued 72 hours and a minute ago.
    stack.execute(
        "UPDATE signoff_request SET issued_at = :issued, expires_at = :expired WHERE id = "
        "(SELECT MAX(s.id) FROM signoff_request s JOIN recovery_action a "
        " ON a.id = s.action_id WHERE a.ref = :r AND s.kind = 'plan')",
        issued=stored(datetime.now(UTC) - timedelta(hours=72, minutes=1)),
        expired=stored(datetime.now(UTC) - timedelta(minutes=1)), r=REF)

    result = sign(stack, REVIEWER, code)

    assert_refused_in_domain(stack, result, "the sign-off code expired at", before, REVIEWER)
    # the run asks again: a new request (the next attempt) with a new code by email
    attempt = int(key.split("-")[2])
    stack.wait_for_wait(REF, f"plan-signoff-{attempt + 1}-")
    assert stack.status(REF) == "awaiting_plan_signoff"
    assert stack.count("decision", REF) == 0
    stack.wait_for_mails(mails + 1, subject=f"{REF}: your plan sign-off is needed")
    assert len(stack.signoff_mails(REF, "plan")) == mails + 1
    attempts = stack.query("SELECT s.attempt FROM signoff_request s JOIN recovery_action a "
                           "ON a.id = s.action_id WHERE a.ref = :r ORDER BY s.attempt", r=REF)
    assert attempts == [(n,) for n in range(1, attempt + 2)]
