"""A stand-in reviewer, end to end against a real Prefect server and SMTP sink.

The named reviewer of ROSE-SG-001 (the nominated individual) is away; the provider lead
is the only eligible stand-in who is not away. Ineligible stand-ins (the accountable lead,
a junior, someone away) are refused with nothing changed: the request's reviewer, the
key the run waits under and the emails sent stay as they were. The reassignment withdraws
the old code, sends a new one to the stand-in, moves the run to a new key and tells the
original reviewer and the lead; the old code is then refused and the stand-in's approves.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.support.recovery_stack import SEED, RecoveryStack, code_in, text_of

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

REF = "ROSE-SG-001"
LEAD = "sg.lead@rose.example"
REVIEWER = "ni@harbourcare.example"
STANDIN = "provider.lead@harbourcare.example"
MANAGER = "rm@rose.example"
JUNIOR = "team.leader@rose.example"
REASON = "Priya is on leave for a week and the plan cannot wait"
RATIONALE = "The interim controls are proportionate to the risk"


def reviewer_of_request(stack: RecoveryStack) -> str:
    return str(stack.query(
        "SELECT s.reviewer_email FROM signoff_request s JOIN recovery_action a "
        "ON a.id = s.action_id WHERE a.ref = :r ORDER BY s.attempt DESC", r=REF)[0][0])


def paused_key(stack: RecoveryStack) -> str:
    run = stack.flow_run(REF)
    assert run.state.is_paused(), run.state
    return str(run.state.state_details.pause_key)


def reassign(stack: RecoveryStack, to: str, by: str = REVIEWER) -> object:
    return stack.cli("signoff", "reassign", REF, "--to", to, "--by", by, "--reason", REASON,
                     "--json")


def test_away_reassign_and_the_standin_signs(stack: RecoveryStack) -> None:
    opened = stack.cli_json("action", "open", SEED[REF], "--by", MANAGER)
    assert opened["flags"] == []
    first_key = stack.wait_for_wait(REF, "plan-signoff-1-")
    old_code = stack.signoff_code(REF, "plan")
    day = date.today()
    away = stack.cli_json("people", "away", REVIEWER, "--from", day.isoformat(),
                          "--to", (day + timedelta(days=7)).strftime("%d/%m/%Y"),
                          "--by", REVIEWER)
    assert away["email"] == REVIEWER
    stack.cli_json("people", "away", MANAGER, "--from", day.isoformat(),
                   "--to", (day + timedelta(days=2)).isoformat(), "--by", STANDIN)
    # a junior may not record someone else's absence
    refused_absence = stack.cli("people", "away", STANDIN, "--from", day.isoformat(),
                                "--to", day.isoformat(), "--by", JUNIOR, "--json")
    assert refused_absence.exit_code == 3, str(refused_absence)

    mails_before = len(stack.sink.messages())
    audit_before = stack.audit_events(REF)
    for to, rule in ((LEAD, "different person from the accountable lead"),
                     (JUNIOR, "must be a registered manager, nominated individual or "
                              "provider lead"),
                     (MANAGER, "is away until")):
        result = reassign(stack, to)
        assert result.exit_code == 3, str(result)
        assert any(rule in r for r in result.error_json()["reasons"]), str(result)
    by_junior = reassign(stack, STANDIN, by=JUNIOR)
    assert by_junior.exit_code == 3, str(by_junior)
    assert any("only the nominated individual or the provider lead" in r
               for r in by_junior.error_json()["reasons"])
    # nothing changed: the same reviewer, the same wait, no email, no audit entry
    assert reviewer_of_request(stack) == REVIEWER
    assert paused_key(stack) == first_key
    assert len(stack.sink.messages()) == mails_before
    assert stack.audit_events(REF) == audit_before

    done = stack.cli_json("signoff", "reassign", REF, "--to", STANDIN, "--by", REVIEWER,
                          "--reason", REASON)
    assert done["standin"] == STANDIN and done["reviewer_before"] == REVIEWER
    new_key = stack.wait_for_wait(REF, "plan-signoff-1-")
    assert new_key != first_key
    assert reviewer_of_request(stack) == STANDIN
    told = stack.wait_for_mails(2, subject=f"{REF}: plan sign-off reassigned")
    assert {str(m["X-Envelope-To"]) for m in told} == {REVIEWER, LEAD}
    assert REASON in text_of(told[0])
    new_code = code_in(stack.wait_for_mails(1, to=STANDIN,
                                            subject=f"{REF}: your plan sign-off is needed")[0])
    assert "signoff.reassigned" in stack.audit_events(REF)
    approvals = {a["ref"]: a for a in stack.cli_json("approvals")}
    assert STANDIN in approvals[REF]["from_whom"]

    old = stack.cli("signoff", REF, "--by", REVIEWER, "--code", old_code, "--decision",
                    "approve", "--rationale", RATIONALE, "--json")
    assert old.exit_code == 3, str(old)
    assert stack.status(REF) == "awaiting_plan_signoff"

    stack.wait_for_wait(REF, "plan-signoff-1-")
    signed = stack.cli_json("signoff", REF, "--by", STANDIN, "--code", new_code,
                            "--decision", "approve", "--rationale", RATIONALE)
    assert signed["applied"] is True, signed
    assert stack.status(REF) == "in_recovery"
    decided = stack.query("SELECT d.reviewer_email FROM decision d JOIN recovery_action a "
                          "ON a.id = d.action_id WHERE a.ref = :r", r=REF)
    assert decided == [(STANDIN,)]


QUAY = "QUAY-MED-001"
QUAY_REVIEWER = "rm@quay.example"


def run_form(stack: RecoveryStack, deployment: str, parameters: dict[str, object]) -> object:
    """A run of one of the product's form deployments, started as the UI's Run button does
    (the form's answers are the parameters) and picked up by `recovery serve`."""
    from prefect.deployments import run_deployment

    with stack.server.settings():
        return run_deployment(deployment, parameters=parameters, timeout=180)


def test_absence_and_reassignment_from_the_prefect_forms(stack: RecoveryStack) -> None:
    """The people-away and signoff-reassign deployments do what the CLI does: the form's
    run records the absence, then hands the waiting sign-off to a stand-in, who signs."""
    stack.cli_json("action", "open", SEED[QUAY], "--by", QUAY_REVIEWER)
    first_key = stack.wait_for_wait(QUAY, "plan-signoff-1-")
    day = date.today()
    away = run_form(stack, "people-away/people-away", {
        "email": QUAY_REVIEWER, "first_day": day.isoformat(),
        "last_day": (day + timedelta(days=3)).isoformat(), "recorded_by": QUAY_REVIEWER})
    assert away.state.is_completed(), away.state  # type: ignore[attr-defined]

    # an ineligible stand-in from the form: the run fails saying why, nothing changes
    wrong = run_form(stack, "signoff-reassign/signoff-reassign", {
        "action_ref": QUAY, "standin": "meds.lead@quay.example", "reassigned_by": STANDIN,
        "reason": REASON})
    assert wrong.state.is_failed(), wrong.state  # type: ignore[attr-defined]
    assert paused_key_of(stack, QUAY) == first_key

    moved = run_form(stack, "signoff-reassign/signoff-reassign", {
        "action_ref": QUAY, "standin": STANDIN, "reassigned_by": STANDIN, "reason": REASON})
    assert moved.state.is_completed(), moved.state  # type: ignore[attr-defined]
    new_key = stack.wait_for_wait(QUAY, "plan-signoff-1-")
    assert new_key != first_key
    code = code_in(stack.wait_for_mails(1, to=STANDIN,
                                        subject=f"{QUAY}: your plan sign-off is needed")[0])
    signed = stack.cli_json("signoff", QUAY, "--by", STANDIN, "--code", code,
                            "--decision", "approve", "--rationale", RATIONALE)
    assert signed["applied"] is True, signed
    assert stack.query("SELECT d.reviewer_email FROM decision d JOIN recovery_action a "
                       "ON a.id = d.action_id WHERE a.ref = :r", r=QUAY) == [(STANDIN,)]


def paused_key_of(stack: RecoveryStack, ref: str) -> str:
    run = stack.flow_run(ref)
    assert run.state.is_paused(), run.state
    return str(run.state.state_details.pause_key)
