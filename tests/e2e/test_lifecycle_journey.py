"""The whole lifecycle of seed examples, through the real CLI, a real Prefect server, the
served `high-risk-action` deployment and the SMTP sink. On the way, the plan's code
(already used) is given again for the closure and refused.

Dates: the gate needs reviews over two consecutive periods, held on or after the day
recovery started (the plan sign-off, today). So every process of this module runs with
RECOVERY_BUSINESS_DATE = tomorrow: evidence is dated today (real, not in the future),
daily reviews are held for today and tomorrow, and the gate judges as of tomorrow.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.support.recovery_stack import SEED, RecoveryStack, text_of

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

TODAY = datetime.now(ZoneInfo("Europe/London")).date()
TOMORROW = TODAY + timedelta(days=1)
STACK_ENV = {"RECOVERY_BUSINESS_DATE": TOMORROW.isoformat()}
#: The one whole journey through the installed `recovery` executable, as a user's shell runs
#: it (the other stack modules run the same CLI in-process).
REAL_EXECUTABLE = True

REF = "ROSE-SG-001"
LEAD = "sg.lead@rose.example"
REVIEWER = "ni@harbourcare.example"


QUAY = "QUAY-MED-001"


@pytest.fixture(scope="module")
def opened(stack: RecoveryStack) -> dict[str, dict[str, Any]]:
    """Both seed examples opened at once (`recovery action open`), so the second one's run
    reaches its first wait while the first journey goes on."""
    results = stack.cli_parallel(
        *[["action", "open", SEED[ref], "--by", by, "--json"]
          for ref, by in ((REF, "rm@rose.example"), (QUAY, "rm@quay.example"))])
    for result in results:
        assert result.exit_code == 0, f"{result}\n{stack.diagnostics()}"
    return {r.json()["ref"]: r.json() for r in results}


@pytest.mark.timeout(900)
def test_journey_open_to_routine_monitoring(
    stack: RecoveryStack, opened: dict[str, dict[str, Any]]
) -> None:
    # open: the action is rated, recorded, and its lifecycle run starts
    action = opened[REF]
    assert action["risk"]["level"] == "high"
    assert action["status"] in ("draft", "awaiting_plan_signoff")
    assert action["flow_run_id"]
    assert "flow" not in action, action.get("flow")  # no "could not start the run" note

    # plan sign-off: the named senior reviewer gets one code by email
    stack.wait_for_wait(REF, "plan-signoff-1-")
    assert stack.status(REF) == "awaiting_plan_signoff"
    [request] = stack.signoff_mails(REF, "plan")
    assert request["X-Envelope-To"] == REVIEWER
    code = stack.signoff_code(REF, "plan")
    signed = stack.cli_json("signoff", REF, "--by", REVIEWER, "--code", code,
                            "--decision", "approve",
                            "--rationale", "Interim controls are proportionate; steps clear")
    assert signed["applied"] is True, signed
    stack.wait_for_wait(REF, "closure-request-1-")
    assert stack.status(REF) == "in_recovery"
    # the lead is told what was decided and what happens next
    [told] = stack.wait_for_mails(1, to=LEAD, subject=f"{REF}: plan approved by")
    assert "What happens next: The action is in recovery" in text_of(told)

    # a closure request by someone other than the lead: refused, the run waits again and
    # the lead (whose wait it is) is told why
    other = stack.cli("closure", "request", REF, "--by", "rm@rose.example",
                      "--summary", "Same-day review of every concern for two weeks", "--json")
    assert other.exit_code == 3, str(other)
    assert any(f"only the accountable lead ({LEAD}) may request closure" in r
               for r in other.error_json()["reasons"]), str(other)
    stack.wait_for_wait(REF, "closure-request-1-2")
    [refusal] = stack.wait_for_mails(1, to=LEAD,
                                     subject=f"{REF}: your closure request was not accepted")
    assert f"only the accountable lead ({LEAD}) may request closure" in text_of(refusal)

    # some evidence: two pillars of four, one recorded by someone other than the lead
    stack.add_evidence(REF, TODAY, ("care_records", "rm@rose.example"), ("audits", LEAD))

    # closure request: recorded, then refused by the triangulation gate (exit 3, why)
    asked = stack.cli("closure", "request", REF, "--by", LEAD,
                      "--summary", "Same-day review of every concern for two weeks", "--json")
    assert asked.exit_code == 3, str(asked)
    reasons = asked.error_json()["reasons"][1:]
    assert len(reasons) == 3, reasons
    assert any(r.startswith("no feedback evidence since") for r in reasons), reasons
    assert any(r.startswith("no staff practice evidence since") for r in reasons), reasons
    assert any("0 of the last 2 review periods" in r for r in reasons), reasons
    stack.wait_for_wait(REF, "closure-request-2-")
    assert stack.status(REF) == "in_recovery"

    gates = stack.wait_for_task_states(REF, "triangulation-gate", ["FAILED"])
    assert gates[0].state.is_failed(), gates[0].state
    for reason in reasons:
        assert reason in gates[0].state.message, (reason, gates[0].state.message)

    # (the artifact key is the server's: other modules' runs of ROSE-SG-001 share it)
    [artifact] = [a for a in stack.artifacts("gate-rose-sg-001")
                  if str(a.flow_run_id) == stack.flow_run_id(REF)]
    assert "closure refused" in artifact.data
    for reason in reasons:
        assert f"- {reason}" in artifact.data, (reason, artifact.data)

    [refused] = stack.wait_for_mails(1, subject=f"{REF}: closure refused by the triangulation")
    assert refused["X-Envelope-To"] == LEAD
    body = text_of(refused)
    for reason in reasons:
        assert reason in body, (reason, body)
    events = stack.audit_events(REF)
    assert events.count("status.request_closure") == 1
    assert events.count("status.gate_refused") == 1

    # the missing evidence, and daily reviews for two consecutive days
    stack.add_evidence(REF, TODAY, ("feedback", "team.leader@rose.example"),
                 ("staff_practice", "duty.manager@rose.example"))
    for day in (TODAY, TOMORROW):
        review = stack.cli_json("review", "run", "daily", "--as-of", day.isoformat())
        assert review["reviewed"] >= 1, review
    # closure request 2: the gate passes; the reviewer gets a second code
    asked = stack.cli_json("closure", "request", REF, "--by", LEAD,
                           "--summary", "All four pillars at 100% and two reviews on target")
    assert asked["applied"] is True, asked
    stack.wait_for_wait(REF, "closure-signoff-1-")
    assert stack.status(REF) == "awaiting_closure_signoff"
    closure_code = stack.signoff_code(REF, "closure")
    # one plan and one closure sign-off request (and one refused closure request, told)
    assert len(stack.mails(subject=f"{REF}: your ")) == 3
    assert len(stack.mails(subject=f"{REF}: your ", to=REVIEWER)) == 2
    gates = stack.wait_for_task_states(REF, "triangulation-gate", ["COMPLETED", "FAILED"])
    assert sorted(t.state.type.value for t in gates) == ["COMPLETED", "FAILED"]
    latest = max((a for a in stack.artifacts("gate-rose-sg-001")
                  if str(a.flow_run_id) == stack.flow_run_id(REF)), key=lambda a: a.created)
    assert "passed" in latest.data

    # the plan's code, already used, given again for the closure: refused, recorded, and
    # the run waits again under a new key (two independent draws: equal once in a million)
    assert code != closure_code, "the closure code happens to equal the used plan code"
    reused = stack.cli("signoff", REF, "--by", REVIEWER, "--code", code, "--decision",
                       "approve", "--rationale", "Reusing the plan code for the closure",
                       "--json")
    assert reused.exit_code == 3, str(reused)
    assert reused.error_json()["reasons"] == ["the sign-off code is wrong"]
    stack.wait_for_wait(REF, "closure-signoff-1-2")
    assert stack.status(REF) == "awaiting_closure_signoff"
    [refusal] = [e for e in stack.audit(REF) if e["event"] == "signoff.refused"]
    assert refusal["actor"] == REVIEWER
    assert refusal["details"]["kind"] == "closure"
    assert refusal["details"]["reasons"] == ["the sign-off code is wrong"]
    assert stack.count("decision", REF) == 1

    signed = stack.cli_json("signoff", REF, "--by", REVIEWER, "--code", closure_code,
                            "--decision", "approve",
                            "--rationale", "Triangulated evidence sustained over two reviews")
    assert signed["applied"] is True, signed
    run = stack.wait_for_run(REF, lambda r: r.state is not None and r.state.is_final(),
                             what="the run to finish")
    assert run.state.is_completed(), run.state
    assert stack.action(REF)["status"] == "routine_monitoring"

    events = stack.audit_events(REF)
    for event in ("status.approve_plan", "status.gate_passed", "status.approve_closure",
                  "stage.routine_monitoring"):
        assert events.count(event) == 1, (event, events)
    assert stack.count("decision", REF) == 2
    assert stack.cli_json("audit", "verify")["ok"] is True


@pytest.mark.timeout(600)
def test_rejected_plan_is_revised_and_asked_again(
    stack: RecoveryStack, opened: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    ref, lead, reviewer = QUAY, "meds.lead@quay.example", "rm@quay.example"
    assert opened[ref]["flow_run_id"]
    stack.wait_for_wait(ref, "plan-signoff-1-")
    first = stack.signoff_code(ref, "plan")

    rejected = stack.cli_json("signoff", ref, "--by", reviewer, "--code", first,
                              "--decision", "reject",
                              "--rationale", "Interim controls do not cover night shifts")
    assert rejected["applied"] is True, rejected
    stack.wait_for_wait(ref, "plan-revision-1-")
    assert stack.status(ref) == "plan_rejected"

    plan = yaml.safe_load(SEED[ref].read_text())
    plan["interim_controls"].append("Night senior carer checks records before handover")
    revised = tmp_path / "revised.yaml"
    revised.write_text(yaml.safe_dump(plan, sort_keys=False))
    shown = stack.cli_json("action", "revise", ref, revised, "--by", lead)
    assert len(shown["interim_controls"]) == 3

    # the run wakes, asks for sign-off again: a new request with a new code
    stack.wait_for_wait(ref, "plan-signoff-2-")
    assert stack.status(ref) == "awaiting_plan_signoff"
    second = stack.signoff_code(ref, "plan", number=2)
    assert len(stack.signoff_mails(ref, "plan")) == 2
    approved = stack.cli_json("signoff", ref, "--by", reviewer, "--code", second,
                              "--decision", "approve",
                              "--rationale", "Night shifts are now covered by a control")
    assert approved["applied"] is True, approved
    stack.wait_for_wait(ref, "closure-request-1-")
    assert stack.status(ref) == "in_recovery"

    decisions = stack.query(
        "SELECT d.attempt, d.decision FROM decision d JOIN recovery_action a "
        "ON a.id = d.action_id WHERE a.ref = :r ORDER BY d.attempt", r=ref)
    assert decisions == [(1, "reject"), (2, "approve")]
    events = stack.audit_events(ref)
    for event in ("status.reject_plan", "status.revise_plan", "status.approve_plan"):
        assert events.count(event) == 1, (event, events)


@pytest.mark.timeout(600)
def test_closed_action_reopens_on_a_fresh_closure_path(stack: RecoveryStack) -> None:
    """Follows the journey: ROSE-SG-001 in routine monitoring is closed as the daily cycle
    closes a sustained action, then reopened by a senior role. The new run starts at
    recovery; the evidence that closed it once no longer counts toward closing it."""
    from sqlmodel import Session, select

    from models.lifecycle import Event
    from recovery.adapters.tables import ActionRow
    from recovery.application import transitions

    assert stack.status(REF) == "routine_monitoring", "the journey above did not finish"
    old_run = stack.flow_run_id(REF)
    # arranged: eight weeks of sustained monitoring cannot pass inside a test, so the
    # action is closed by the transition the daily cycle makes (audited the same way)
    with Session(stack.engine()) as session:
        row = session.exec(select(ActionRow).where(ActionRow.ref == REF)).one()
        transitions.move(session, row, Event.CLOSE_SUSTAINED, actor="daily-review",
                      details={"as_of": TOMORROW.isoformat()})
        session.commit()

    # evidence on a closed action is refused, naming the real command that reopens it
    refused = stack.cli("evidence", "add", REF, "--source", "audits", "--value", "90",
                        "--observed-on", TOMORROW.isoformat(), "--reference", "audit",
                        "--by", LEAD, "--json")
    assert refused.exit_code == 3, str(refused)
    assert f"`recovery action reopen {REF} --by EMAIL --reason TEXT`" in \
        refused.error_json()["reasons"][0]

    # not a senior role: refused (exit 3), nothing written; a reason too short: exit 2
    before = (stack.audit_events(REF), stack.status(REF), old_run)
    junior = stack.cli("action", "reopen", REF, "--by", LEAD, "--reason",
                       "Two new concerns were not reviewed the same day", "--json")
    assert junior.exit_code == 3, str(junior)
    assert "safeguarding lead" in junior.error_json()["reasons"][0]
    terse = stack.cli("action", "reopen", REF, "--by", "rm@rose.example", "--reason", "relapse",
                      "--json")
    assert terse.exit_code == 2, str(terse)
    assert terse.error_json()["field"] == "reason"
    assert (stack.audit_events(REF), stack.status(REF), stack.flow_run_id(REF)) == before

    # a registered manager reopens it: audited with the reason, a new run starts at recovery
    reason = "Two new concerns in December were not reviewed the same day"
    reopened = stack.cli_json("action", "reopen", REF, "--by", "rm@rose.example", "--reason",
                              reason)
    assert reopened["status"] == "reopened"
    assert reopened["flow_run_id"] and reopened["flow_run_id"] != old_run
    [entry] = [e for e in stack.audit(REF) if e["event"] == "status.reopen"]
    assert entry["actor"] == "rm@rose.example"
    assert entry["details"]["reason"] == reason
    assert entry["details"]["previous_flow_run_id"] == old_run
    assert entry["details"]["reopened_on"] == TOMORROW.isoformat()
    # (wait keys are numbered over the action's whole history: two closure requests so far)
    stack.wait_for_wait(REF, "closure-request-3-")
    assert stack.flow_run_id(REF) == reopened["flow_run_id"]
    with stack.client() as client:  # the old run's history is kept, as it finished
        assert client.read_flow_run(old_run).state.is_completed()

    # two pillars evidenced since the reopening: the gate refuses, though the evidence that
    # closed the action (all four pillars at 100%, observed before) is still stored
    stack.add_evidence(REF, TOMORROW, ("care_records", "rm@rose.example"), ("audits", LEAD))
    asked = stack.cli("closure", "request", REF, "--by", LEAD,
                      "--summary", "Concerns reviewed the same day again", "--json")
    assert asked.exit_code == 3, str(asked)
    reasons = asked.error_json()["reasons"]
    since = f"since the action was reopened on {TOMORROW.isoformat()}"
    assert any(r == f"no feedback evidence {since}" for r in reasons), reasons
    assert any(r == f"no staff practice evidence {since}" for r in reasons), reasons
    assert not any("care records" in r for r in reasons), reasons
    stack.wait_for_wait(REF, "closure-request-4-")
    assert stack.status(REF) == "in_recovery"  # refused by the gate: back to recovery

    # the other two pillars: the gate passes, and closure goes to the senior reviewer again
    stack.add_evidence(REF, TOMORROW, ("feedback", "team.leader@rose.example"),
                       ("staff_practice", "duty.manager@rose.example"))
    asked = stack.cli_json("closure", "request", REF, "--by", LEAD,
                           "--summary", "All four pillars evidenced again since reopening")
    assert asked["applied"] is True, asked
    stack.wait_for_wait(REF, "closure-signoff-2-")
    code = stack.signoff_code(REF, "closure", number=2)
    signed = stack.cli_json("signoff", REF, "--by", REVIEWER, "--code", code,
                            "--decision", "approve",
                            "--rationale", "Fresh triangulated evidence across four pillars")
    assert signed["applied"] is True, signed
    run = stack.wait_for_run(REF, lambda r: r.state is not None and r.state.is_final(),
                             what="the new run to finish")
    assert run.state.is_completed(), run.state
    assert stack.status(REF) == "routine_monitoring"
    events = stack.audit_events(REF)
    assert events.count("status.reopen") == 1
    assert events.count("status.approve_closure") == 2
    assert stack.cli_json("audit", "verify")["ok"] is True
