"""The engine dies while an action waits for sign-off: nothing is lost or done twice.

The run is suspended (no process holds it), `recovery serve` is SIGKILLed with every
child, a new `recovery serve` starts, and the reviewer signs off: the resume completes
on the new process, with exactly one sign-off email, one decision and one audit entry.
"""

from __future__ import annotations

import pytest

from tests.support.recovery_stack import SEED, RecoveryStack

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

REF = "ELM-STF-001"
REVIEWER = "provider.lead@harbourcare.example"


@pytest.mark.timeout(400)
def test_signoff_completes_after_serve_is_killed_and_restarted(stack: RecoveryStack) -> None:
    stack.cli_json("action", "open", SEED[REF], "--by", "rm@elm.example")
    stack.wait_for_wait(REF, "plan-signoff-1-")
    code = stack.signoff_code(REF, "plan")

    killed = stack.serve.kill()
    assert killed is not None and killed < 0, killed  # died by a signal
    assert not stack.serve.is_running()
    run = stack.flow_run(REF)
    assert run.state.is_paused(), run.state  # the wait survives: it lives on the server

    stack.start_serve()
    assert stack.serve.starts == 2
    signed = stack.cli_json("signoff", REF, "--by", REVIEWER, "--code", code,
                            "--decision", "approve",
                            "--rationale", "Cover plan and agency controls are adequate")
    assert signed["applied"] is True, signed
    assert signed["status"] == "in_recovery"
    stack.wait_for_wait(REF, "closure-request-1-")

    assert len(stack.signoff_mails(REF, "plan")) == 1
    assert stack.count("signoff_request", REF) == 1
    assert stack.count("decision", REF) == 1
    events = stack.audit_events(REF)
    assert events.count("status.approve_plan") == 1, events
    assert events.count("signoff.requested") == 1, events
    unsent = stack.query("SELECT COUNT(*) FROM outbox WHERE action_ref = :r "
                         "AND sent_at IS NULL", r=REF)
    assert unsent == [(0,)]
