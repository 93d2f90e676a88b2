"""The waiting-time automations on a real Prefect server: its events and triggers start the
`recovery-notify` deployment served by `recovery serve`, which queues the email in the
outbox and sends it to a real SMTP server on loopback (the mail sink).

The sign-off wait is 12 seconds here (48 hours in production), set the way an operator
would: `RECOVERY_SIGNOFF_WAIT_HOURS` in the environment of `apply_automations()`.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

from tests.support.prefect_server import wait_until
from tests.support.recovery_stack import (
    RECOVERY_BIN,
    REPO_ROOT,
    SEED,
    RecoveryStack,
    text_of,
)
from tests.ui.conftest import run_python

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

WAIT = timedelta(seconds=12)
NI = "ni@harbourcare.example"
QUAY_RM = "rm@quay.example"
PROVIDER_LEAD = "provider.lead@harbourcare.example"
APPLY = "import json; from deployments.sync import apply_automations as a; " \
        "print(json.dumps(a()))"


def apply(stack: RecoveryStack, wait: timedelta = WAIT) -> list[str]:
    env = {**stack.env, "RECOVERY_SIGNOFF_WAIT_HOURS": repr(wait.total_seconds() / 3600)}
    lines: list[str] = json.loads(run_python(APPLY, env).strip().splitlines()[-1])
    return lines


@pytest.fixture(scope="module")
def applied(stack: RecoveryStack) -> dict[str, list[str]]:
    first = apply(stack)
    return {"first": first, "second": apply(stack)}


def notify_runs(stack: RecoveryStack, kind: str, subject: str) -> list[Any]:
    with stack.client() as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["recovery-notify"])))
    return [r for r in runs if r.parameters.get("kind") == kind
            and r.parameters.get("subject") == subject]


def wait_notify_completed(stack: RecoveryStack, kind: str, subject: str, count: int = 1,
                          timeout: float = 240) -> list[Any]:
    def done() -> list[Any] | None:
        runs = notify_runs(stack, kind, subject)
        finished = [r for r in runs if r.state is not None and r.state.is_completed()]
        return finished if len(finished) >= count else None

    return wait_until(done, timeout=timeout, interval=1.0,
                      message=f"{count} completed recovery-notify run(s) {kind} {subject}\n"
                              f"{stack.diagnostics()}")


def test_apply_creates_the_automations_once(stack: RecoveryStack,
                                            applied: dict[str, list[str]]) -> None:
    from prefect.automations import Posture

    from deployments.automations import CYCLE_FAILED, ESCALATED, NAMES, SIGNOFF_WAITING

    assert applied["first"] == [f"created: {n}" for n in NAMES]
    assert applied["second"] == [f"unchanged: {n}" for n in NAMES]
    with stack.client() as client:
        notify = client.read_deployment_by_name("recovery-notify/recovery-notify")
        found = {n: client.read_automations_by_name(n) for n in NAMES}
    assert all(len(v) == 1 for v in found.values()), found
    waiting = found[SIGNOFF_WAITING][0].trigger
    assert waiting.posture == Posture.Proactive
    assert waiting.after == {"prefect.flow-run.Suspended"}
    assert waiting.within == WAIT
    assert found[ESCALATED][0].trigger.expect == {"recovery.action.escalated"}
    assert "prefect.flow-run.Failed" in found[CYCLE_FAILED][0].trigger.expect
    for automations in found.values():
        [action] = automations[0].actions
        assert action.type == "run-deployment" and action.deployment_id == notify.id


def test_signoff_waiting_too_long_emails_the_nominated_individual(
    stack: RecoveryStack, applied: dict[str, list[str]],
) -> None:
    stack.cli_ok("action", "open", SEED["ROSE-SG-001"])
    key = stack.wait_for_wait("ROSE-SG-001", "plan-signoff-")
    suspended_at = time.monotonic()
    run_id = stack.flow_run_id("ROSE-SG-001")

    [mail] = stack.wait_for_mails(1, to=NI, subject="ROSE-SG-001: plan sign-off by Priya Shah "
                                  "waiting", timeout=240)
    took = time.monotonic() - suspended_at
    body = text_of(mail)
    assert "longer than the 12 seconds allowed" in body
    assert f"/runs/flow-run/{run_id}" in body
    assert took >= WAIT.total_seconds() - 1, "emailed before the wait was over"
    # the eligible stand-ins who are not away (provider-level first), and how to reassign
    stands = body.index("can hand it to a stand-in")
    assert body.index("Tom Clarke (provider lead, provider.lead@harbourcare.example)") \
        < body.index("Grace Okafor (registered manager, rm@rose.example)")
    assert stands < body.index("Tom Clarke")
    standins = body[stands:body.index("with: recovery signoff reassign")]
    assert "Priya Shah" not in standins and "Sam Patel" not in standins
    assert "Aisha" not in standins and "Owen Hughes" not in standins
    assert "recovery signoff reassign ROSE-SG-001 --to EMAIL" in body

    # Prefect's side: the proactive trigger started recovery-notify for this run, from
    # the run's own Suspended event (its resource id is the parameter).
    [notify] = wait_notify_completed(stack, "signoff-waiting", f"prefect.flow-run.{run_id}")
    assert notify.created_by is not None and notify.created_by.type == "AUTOMATION"
    assert notify.parameters["wait_seconds"] == WAIT.total_seconds()
    rows = stack.query("SELECT dedupe_key, sent_at FROM outbox WHERE dedupe_key LIKE "
                       "'notify:signoff-waiting:%'")
    assert [r[0] for r in rows] == [f"notify:signoff-waiting:ROSE-SG-001:{key}:{NI}"]
    assert rows[0][1] is not None
    # the run still waits: one window, one email
    time.sleep(WAIT.total_seconds() + 6)
    assert len(stack.mails(to=NI, subject="waiting")) == 1
    print(f"sign-off wait of {WAIT.total_seconds():.0f}s: email {took:.1f}s after the run "
          "suspended")


def test_a_wait_for_the_leads_closure_request_is_not_a_signoff(
    stack: RecoveryStack, applied: dict[str, list[str]],
) -> None:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    code = stack.signoff_code("ROSE-SG-001", "plan")
    stack.cli_ok("signoff", "ROSE-SG-001", "--by", NI, "--code", code, "--decision",
                 "approve", "--rationale", "Interim controls are proportionate and clear")
    stack.wait_for_wait("ROSE-SG-001", "closure-request-")
    run_id = stack.flow_run_id("ROSE-SG-001")
    # the run suspended again: a new window, and the trigger fires again ...
    runs = wait_notify_completed(stack, "signoff-waiting", f"prefect.flow-run.{run_id}",
                                 count=2)
    latest = max(runs, key=lambda r: r.created)
    expected = ("waits for the lead's closure request (closure-request-1-1), not for a "
                "sign-off")

    def logged() -> list[str] | None:
        # run logs reach the server in batches, after the run's final state: poll
        with stack.client() as client:
            logs = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[latest.id])))
        messages = [log.message for log in logs]
        return messages if any(expected in m for m in messages) else None

    wait_until(logged, timeout=60, interval=1.0,
               message=f"log line '{expected}' on run {latest.id}\n{stack.diagnostics()}")
    # ... but the lead's own wait is not a sign-off: nobody is chased
    assert len(stack.mails(to=NI, subject="waiting")) == 1
    assert len(stack.query("SELECT id FROM outbox WHERE dedupe_key LIKE "
                           "'notify:signoff-waiting:%'")) == 1


def _emit_escalation(stack: RecoveryStack, ref: str, payload: dict[str, Any]) -> None:
    """The event as the daily review emits it: from a process of its own (as a flow run
    is), which sends it and waits until Prefect's events client has delivered it."""
    code = (
        "import json, sys\n"
        "from prefect.events import emit_event\n"
        "from prefect.events.worker import EventsWorker\n"
        f"ref = {ref!r}\n"
        "emit_event(event='recovery.action.escalated',\n"
        "           resource={'prefect.resource.id': f'recovery.action.{ref}',\n"
        "                     'prefect.resource.name': ref},\n"
        f"           payload=json.loads({json.dumps(payload)!r}))\n"
        "EventsWorker.drain_all()\n"
        "print('sent')\n"
    )
    assert run_python(code, stack.env).strip().endswith("sent")


def test_escalation_event_emails_the_registered_manager_even_through_an_smtp_outage(
    stack: RecoveryStack, applied: dict[str, list[str]],
) -> None:
    stack.cli_ok("action", "open", SEED["QUAY-MED-001"], "--no-flow")
    payload = {"ref": "QUAY-MED-001", "opened_on": "2026-11-30",
               "reasons": ["off track: 40% against a trajectory of 70%"],
               "risk_level": "high", "risk_domain": "medicines"}
    stack.sink.stop()  # SMTP down
    try:
        _emit_escalation(stack, "QUAY-MED-001", payload)
        _emit_escalation(stack, "QUAY-MED-001", payload)  # the same escalation, twice
        runs = wait_notify_completed(stack, "escalation", "recovery.action.QUAY-MED-001",
                                     count=2)
        assert all(r.created_by is not None and r.created_by.type == "AUTOMATION"
                   for r in runs)
        rows = stack.query("SELECT dedupe_key, sent_at, attempts, last_error FROM outbox "
                           "WHERE dedupe_key LIKE 'notify:escalation:%'")
        assert len(rows) == 1, rows  # one email for one escalation, however often told
        key, sent_at, attempts, last_error = rows[0]
        assert key == f"notify:escalation:QUAY-MED-001:2026-11-30:{QUAY_RM}"
        assert sent_at is None and attempts >= 1 and last_error, rows
        assert not stack.mails(to=QUAY_RM, subject="escalated")
    finally:
        stack.sink.start()
    stack.cli_ok("mail", "flush", "--all")
    [mail] = stack.wait_for_mails(1, to=QUAY_RM, subject="QUAY-MED-001 at Quay House escalated")
    body = text_of(mail)
    assert "Dear Owen Hughes" in body
    assert "off track: 40% against a trajectory of 70%" in body
    assert stack.query("SELECT sent_at FROM outbox WHERE dedupe_key = :k", k=key)[0][0]


def test_failed_review_cycle_emails_the_provider_lead(
    stack: RecoveryStack, applied: dict[str, list[str]], tmp_path: Path,
) -> None:
    # The weekly governance run itself, from the CLI, with the app database unreachable
    # for that process only: its tasks retry, then the run ends Failed.
    broken = {**stack.env, "RECOVERY_DATABASE_URL": f"sqlite:///{tmp_path}/missing/none.db"}
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "none.db").mkdir()  # a directory: SQLite cannot open it
    proc = subprocess.run([str(RECOVERY_BIN), "review", "run", "weekly", "--as-of",
                           "2026-11-30"], env=broken, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr

    [mail] = stack.wait_for_mails(1, to=PROVIDER_LEAD,
                                  subject="weekly governance · 2026-11-30 did not finish",
                                  timeout=240)
    assert "(Failed)" in str(mail["Subject"])
    body = text_of(mail)
    assert "Dear Tom Clarke" in body
    assert "recovery review run weekly --as-of 2026-11-30" in body
    with stack.client() as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["weekly-governance"])))
    # (the others are the deployment's own future runs, Scheduled)
    [failed] = [r for r in runs if r.state is not None and r.state.is_failed()]
    assert failed.name == "weekly governance · 2026-11-30"
    wait_notify_completed(stack, "cycle-failed", f"prefect.flow-run.{failed.id}")
