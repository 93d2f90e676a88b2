"""A closure decision is bound to the gate snapshot it was asked on, end to end against a
real Prefect server and SMTP sink.

A closure request passes the gate; evidence that keeps the verdict does not disturb the
wait; a below-target audit is then recorded, and the reviewer's approval is refused ("the
evidence changed since this request was made"): the action is back in recovery with the
gate's reasons, the reviewer and the lead are told. A second request with fresh evidence
passes and is approved; the decision's audit entry and the inspector pack name the
snapshot it was made on.

Dates as in test_lifecycle_journey.py: the business date is tomorrow, evidence is dated
today, daily reviews are held today and tomorrow.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support.recovery_stack import SEED, RecoveryStack, text_of

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

TODAY = datetime.now(ZoneInfo("Europe/London")).date()
TOMORROW = TODAY + timedelta(days=1)
STACK_ENV = {"RECOVERY_BUSINESS_DATE": TOMORROW.isoformat()}

REF = "ROSE-SG-001"
LEAD = "sg.lead@rose.example"
REVIEWER = "ni@harbourcare.example"
RATIONALE = "Triangulated evidence sustained over two reviews"
CHANGED = "the evidence changed since this request was made"


def evidence(stack: RecoveryStack, source: str, value: float, reference: str) -> None:
    stack.cli_json("evidence", "add", REF, "--source", source, "--value", value,
                   "--sample", "12", "--observed-on", TODAY.isoformat(), "--reference",
                   reference, "--by", "rm@rose.example")


def snapshots(stack: RecoveryStack) -> list[tuple[int, bool | None, str | None]]:
    return [(int(a), None if p is None else bool(p), s) for a, p, s in stack.query(
        "SELECT c.attempt, c.gate_passed, c.snapshot_ref FROM closure_request c "
        "JOIN recovery_action a ON a.id = c.action_id WHERE a.ref = :r ORDER BY c.attempt",
        r=REF)]


def paused_key(stack: RecoveryStack) -> str:
    run = stack.flow_run(REF)
    assert run.state.is_paused(), run.state
    return str(run.state.state_details.pause_key)


@pytest.mark.timeout(900)
def test_an_approval_is_refused_when_the_evidence_changed(
    stack: RecoveryStack, tmp_path: Path
) -> None:
    stack.cli_json("action", "open", SEED[REF], "--by", "rm@rose.example")
    stack.wait_for_wait(REF, "plan-signoff-1-")
    signed = stack.cli_json("signoff", REF, "--by", REVIEWER, "--code",
                            stack.signoff_code(REF, "plan"), "--decision", "approve",
                            "--rationale", "Interim controls are proportionate; steps clear")
    assert signed["applied"] is True, signed
    stack.wait_for_wait(REF, "closure-request-1-")
    stack.add_evidence(REF, TODAY, ("care_records", "rm@rose.example"),
                       ("audits", "team.leader@rose.example"),
                       ("feedback", "team.leader@rose.example"),
                       ("staff_practice", "duty.manager@rose.example"))
    for day in (TODAY, TOMORROW):
        stack.cli_json("review", "run", "daily", "--as-of", day.isoformat())

    asked = stack.cli_json("closure", "request", REF, "--by", LEAD,
                           "--summary", "All four pillars at 100% and two reviews on target")
    assert asked["applied"] is True, asked
    key = stack.wait_for_wait(REF, "closure-signoff-1-")
    [(_, passed, first)] = snapshots(stack)
    assert passed is True and first and first.startswith("gs-")
    [email] = stack.signoff_mails(REF, "closure")
    assert f"snapshot {first}" in text_of(email)
    code = stack.signoff_code(REF, "closure")

    # evidence that keeps the verdict: the run still waits under the same key
    evidence(stack, "feedback", 100, "survey follow-up")
    assert paused_key(stack) == key
    # a below-target audit changes it
    evidence(stack, "audits", 70, "spot audit after the request")
    refused = stack.cli("signoff", REF, "--by", REVIEWER, "--code", code, "--decision",
                        "approve", "--rationale", RATIONALE, "--json")
    assert refused.exit_code == 3, str(refused)
    reasons = refused.error_json()["reasons"]
    assert reasons[0] == CHANGED, reasons
    assert any("70%" in r for r in reasons[1:]), reasons
    stack.wait_for_wait(REF, "closure-request-2-")
    assert stack.status(REF) == "in_recovery"
    assert stack.count("decision", REF) == 1  # the plan's only
    [(_, passed, changed)] = snapshots(stack)
    assert passed is False and changed != first
    reviewer_told = stack.wait_for_mails(
        1, to=REVIEWER, subject=f"{REF}: your closure sign-off was not accepted")
    assert CHANGED in text_of(reviewer_told[-1])
    lead_told = stack.wait_for_mails(1, to=LEAD, subject="closure refused by the triangulation")
    assert any("70%" in line for line in text_of(lead_told[-1]).splitlines())
    events = stack.audit_events(REF)
    assert "status.evidence_changed" in events and "status.approve_closure" not in events

    # fresh evidence: a passing audit; the second request passes and is approved
    evidence(stack, "audits", 100, "re-audit after the actions")
    asked = stack.cli_json("closure", "request", REF, "--by", LEAD,
                           "--summary", "Re-audit back at 100% with the other pillars")
    assert asked["applied"] is True, asked
    stack.wait_for_wait(REF, "closure-signoff-2-")
    second = snapshots(stack)[1]
    assert second[1] is True and second[2] not in (first, changed)
    new_code = stack.signoff_code(REF, "closure", number=2)
    again = stack.cli("signoff", REF, "--by", REVIEWER, "--code", code, "--decision",
                      "approve", "--rationale", RATIONALE, "--json")
    assert again.exit_code == 3, str(again)  # the first request's code is spent
    approved = stack.cli_json("signoff", REF, "--by", REVIEWER, "--code", new_code,
                              "--decision", "approve", "--rationale", RATIONALE)
    assert approved["applied"] is True, approved
    assert stack.status(REF) == "routine_monitoring"
    [entry] = [e for e in stack.audit(REF) if e["event"] == "status.approve_closure"]
    assert entry["details"]["snapshot"] == second[2]

    pack = tmp_path / "inspector.md"
    stack.cli_ok("report", "inspector", "--out", str(pack), "--as-of", TOMORROW.isoformat())
    assert f"on gate snapshot {second[2]}" in pack.read_text()
