"""The review cycles against a real Prefect server (`recovery review run ...` as a flow
run) and a real SMTP server on loopback: weekly governance and its artifacts, the "serious
risk managed only at local team level" weakness, escalation and what resolves it, a re-run
for the same date, email that survives the SMTP server being down, and the monthly
provider assurance form.

Two of the seed's actions are signed off into recovery today through the real lifecycle:
ROSE-SG-001 (Rose House safeguarding: lead sg.lead@rose.example, senior reviewer the
nominated individual, registered manager rm@rose.example) and QUAY-MED-001 (Quay House
medicines, signed off only by its senior reviewer, the registered manager). The cycles then
run at simulated later dates while evidence stays dated on or before today (2026-11-26).
ROSE-SG-001: baseline 62% on 2026-11-20, target 100% by 2027-01-01, so on 2026-12-08 the
trajectory expects 78%.

The tests run in file order and share the module's stack. Each also holds on its own,
except that the weakness test must run before monthly assurance, which clears the flag.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest
from prefect.flow_runs import resume_flow_run
from sqlmodel import col, select

from recovery.adapters import db
from recovery.adapters.tables import (
    ActionRow,
    AssuranceEntryRow,
    AssuranceRequestRow,
    AuditRow,
    ControlChangeRow,
    CycleRunRow,
    EscalationRow,
    EvidenceRow,
    OutboxRow,
    ReviewRow,
    as_utc,
)
from recovery.reporting import snapshot as governance
from recovery.settings import get_settings
from tests.cycles.conftest import CycleStack
from tests.support.prefect_server import wait_for_final, wait_for_pause
from tests.support.recovery_stack import code_in, text_of

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

ACTIONS = ["ROSE-SG-001", "QUAY-MED-001"]
REF = "ROSE-SG-001"
LEAD = "sg.lead@rose.example"
NOMINATED = "ni@harbourcare.example"
MANAGER = "rm@rose.example"
MANAGERS = {"ROSE": MANAGER, "QUAY": "rm@quay.example"}
PILLARS = ("care_records", "audits", "feedback", "staff_practice")
LOCAL_ONLY = "serious risk managed only at local team level"

MONDAY = date(2026, 11, 30)
FIRST_OF_MONTH = date(2026, 12, 1)
OFF_TRACK_DAY = date(2026, 12, 8)
EVIDENCE_BACK = date(2026, 12, 9)
AFTER_CONTROL_CHANGE = date(2026, 12, 10)
#: 14 days into recovery: a high-risk action not escalated is reviewed weekly from here.
WEEKLY_FROM = date(2026, 12, 10)
WEEKLY_SMTP_DOWN = date(2026, 12, 14)


# ---------------------------------------------------------------- helpers

def escalated(stack: CycleStack, ref: str) -> bool:
    return stack.action_row(ref).escalated


def review_on(stack: CycleStack, ref: str, day: date) -> ReviewRow:
    rows = stack.of_action(ReviewRow, ref, ReviewRow.as_of == day)
    assert len(rows) == 1, f"{ref}: {len(rows)} reviews on {day}"
    return rows[0]  # type: ignore[no-any-return]


def escalations(stack: CycleStack, ref: str) -> list[EscalationRow]:
    return stack.of_action(EscalationRow, ref)


def cadence_shown(stack: CycleStack, ref: str, day: date) -> str:
    """`recovery action show` with the business date moved to `day`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOVERY_BUSINESS_DATE", day.isoformat())
        get_settings.cache_clear()
        try:
            return str(stack.local_json("action", "show", ref)["review_cadence"])
        finally:
            patch.delenv("RECOVERY_BUSINESS_DATE")
            get_settings.cache_clear()


def artifacts(stack: CycleStack, key: str) -> list[Any]:
    """Every version of an artifact key, oldest first."""
    return sorted(stack.artifacts(key), key=lambda a: a.created)


def table_rows(artifact: Any) -> list[dict[str, Any]]:
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return list(data)


def weekly_once(stack: CycleStack, day: date) -> None:
    """The weekly cycle for `day`, unless an earlier test already ran it."""
    if not stack.select(select(CycleRunRow).where(CycleRunRow.cycle == "weekly",
                                                 CycleRunRow.as_of == day)):
        assert stack.cycle("weekly", day)["already_run"] is False


def tracker_for(stack: CycleStack, day: date) -> dict[str, dict[str, Any]]:
    [tracker] = [a for a in artifacts(stack, "high-risk-tracker")
                 if day.isoformat() in (a.description or "")]
    return {row["ref"]: row for row in table_rows(tracker)}


def snapshot_weaknesses(day: date) -> dict[str, list[str]]:
    """The governance snapshot computed in this process from the module's database."""
    with db.unit_of_work() as session:
        snapshot = governance.build_snapshot(session, as_of=day)
    return {line.ref: line.weaknesses for line in snapshot.lines}


def snapshot(stack: CycleStack) -> dict[str, object]:
    """What a cycle could change: row counts, the actions' state, delivered mail."""
    tables = (ReviewRow, EscalationRow, ControlChangeRow, OutboxRow, AuditRow, EvidenceRow)
    return {
        **{t.__tablename__: len(stack.select(select(t))) for t in tables},
        "actions": [(a.ref, a.status, a.escalated, a.monitoring_since, a.deadline)
                    for a in stack.select(select(ActionRow).order_by(col(ActionRow.ref)))],
        "outbox_sent": [(o.dedupe_key, o.sent_at) for o in stack.outbox("")],
        "mail": len(stack.sink.paths()),
    }


# ---------------------------------------------------------------- weekly governance


def test_weekly_governance_publishes_artifacts_and_emails_once(stack: CycleStack) -> None:
    keys = ["high-risk-tracker", "governance-report",
            *[f"progress-{ref.lower()}" for ref in ACTIONS]]
    before = {key: len(artifacts(stack, key)) for key in keys}
    prefix = f"weekly:{MONDAY.isoformat()}:"

    summary = stack.cycle("weekly", MONDAY)
    assert summary["already_run"] is False, summary
    assert summary["high_risk"] == 2 and summary["emails_queued"] == 3, summary

    # one new version of each artifact
    published = {key: artifacts(stack, key) for key in keys}
    assert {key: len(v) for key, v in published.items()} == \
        {key: n + 1 for key, n in before.items()}

    # the tracker table holds every stored open action as stored
    tracker = published["high-risk-tracker"][-1]
    assert tracker.type == "table"
    rows = {row["ref"]: row for row in table_rows(tracker)}
    stored = {a["ref"]: a for a in stack.local_json("action", "list")}
    assert set(rows) == set(stored) == set(ACTIONS)
    for ref, row in rows.items():
        action = stored[ref]
        assert (row["title"], row["location"], row["risk"], row["score"], row["status"],
                row["deadline"], row["domain"]) == (
            action["title"], action["location"], action["risk"]["level"],
            action["risk"]["score"], action["status"], action["target"]["deadline"],
            action["risk_domain"]), (row, action)
        assert row["rating"] == "not reviewed" and row["escalated"] is False

    report = published["governance-report"][-1]
    assert report.type == "markdown"
    assert "governance" in report.data.lower() and "30 November 2026" in report.data
    for ref in ACTIONS:
        assert ref in report.data
        [progress] = published[f"progress-{ref.lower()}"][-1:]
        assert progress.type == "progress" and progress.data == 0.0  # no measured evidence

    # each location's registered manager and the nominated individual, once each
    delivered = stack.mail_with_key(prefix)
    assert sorted((str(m["X-Recovery-Key"]), str(m["X-Envelope-To"])) for m in delivered) == \
        sorted([(prefix + "ROSE", MANAGERS["ROSE"]), (prefix + "QUAY", MANAGERS["QUAY"]),
                (prefix + "provider", NOMINATED)])
    for message in delivered:
        body = text_of(message)
        assert "What is asked of you" in body and stack.server.ui_url in body
    rose = next(m for m in delivered if str(m["X-Recovery-Key"]).endswith(":ROSE"))
    assert "ROSE-SG-001" in text_of(rose) and "QUAY-MED-001" not in text_of(rose)
    # the nominated individual's copy carries an anchor of the audit chain that the
    # decision log must go on holding
    provider = next(m for m in delivered if str(m["X-Recovery-Key"]).endswith(":provider"))
    found = re.search(r"Audit chain anchor \(keep this email\): (\d+:[0-9a-f]{64})",
                      text_of(provider))
    assert found, text_of(provider)
    assert "Audit chain anchor" not in text_of(rose)
    held = stack.local("audit", "verify", "--no-prefect", "--anchor", found.group(1))
    assert held.exit_code == 0, held

    # the same date again: no email, no new artifact version
    mail_before = len(stack.sink.paths())
    again = stack.cycle("weekly", MONDAY)
    assert again["already_run"] is True, again
    time.sleep(0.5)
    assert len(stack.sink.paths()) == mail_before
    assert {key: len(artifacts(stack, key)) for key in keys} == \
        {key: len(v) for key, v in published.items()}


def test_local_only_weakness_flags_a_risk_without_provider_level_review(
    stack: CycleStack,
) -> None:
    weekly_once(stack, MONDAY)

    # QUAY-MED-001: reviewed only by the registered manager -> flagged
    tracker = tracker_for(stack, MONDAY)
    assert LOCAL_ONLY in tracker["QUAY-MED-001"]["weaknesses"]
    # ROSE-SG-001: signed off by the nominated individual today -> not flagged
    assert LOCAL_ONLY not in tracker["ROSE-SG-001"]["weaknesses"]

    weaknesses = snapshot_weaknesses(MONDAY)
    assert [w for w in weaknesses["QUAY-MED-001"] if w.startswith(LOCAL_ONLY)] == \
        [f"{LOCAL_ONLY}: no provider-level review ever"]
    assert not [w for w in weaknesses["ROSE-SG-001"] if w.startswith(LOCAL_ONLY)]

    # the provider summary emailed to the nominated individual says so
    [provider] = stack.mail_with_key(f"weekly:{MONDAY.isoformat()}:provider")
    body = text_of(provider)
    assert f"- QUAY-MED-001: {LOCAL_ONLY}" in body
    assert f"- ROSE-SG-001: {LOCAL_ONLY}" not in body


# ---------------------------------------------------------------- daily review


def test_off_track_escalates_and_only_a_control_change_with_evidence_resolves(
    stack: CycleStack,
) -> None:
    # two weeks into recovery a high-risk action is reviewed weekly...
    assert cadence_shown(stack, REF, WEEKLY_FROM) == "weekly"

    # ...until evidence well below trajectory puts it off track
    stack.evidence(REF, date(2026, 11, 24), dict.fromkeys(PILLARS, 65), by=LEAD)
    result = stack.cycle("daily", OFF_TRACK_DAY)
    assert REF in result["escalated"], result
    review = review_on(stack, REF, OFF_TRACK_DAY)
    assert review.rating == "off_track", review
    assert any("trajectory expects 78%" in r for r in review.reasons), review

    # cadence steps up to daily senior review
    assert escalated(stack, REF)
    assert cadence_shown(stack, REF, WEEKLY_FROM) == "daily"

    # one escalation record, kept open, with the review's reasons
    [escalation] = escalations(stack, REF)
    assert escalation.opened_on == OFF_TRACK_DAY and escalation.reasons == review.reasons
    assert escalation.control_change_id is None and escalation.resolved_on is None
    reasons = escalation.reasons

    # the lead, the senior reviewer and the location's registered manager are told why,
    # one message each (one undeliverable address blocks nobody else)
    mails = stack.wait_for_mails(3, subject=f"{REF} escalated")
    assert sorted(str(m["X-Envelope-To"]) for m in mails) == sorted([LEAD, NOMINATED, MANAGER])
    for mail in mails:
        body = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        for reason in reasons:
            assert reason in body, (reason, body)
        assert "evidence shows 65%, trajectory expects 78% by 2026-12-08" in body
        assert stack.server.ui_url in body  # links to the run in the Prefect UI

    # and a Prefect event users can wire automations to
    [event] = stack.wait_for_events(REF, 1)
    assert event.event == "recovery.action.escalated"
    assert event.resource.id == f"recovery.action.{REF}"
    assert event.payload["reasons"] == reasons
    assert escalations(stack, REF)[0].event_emitted_at is not None  # announced once

    # evidence back on trajectory is not enough on its own: the next daily review rates it
    # on track, and it stays escalated until a change of operational control is recorded
    stack.evidence(REF, date(2026, 11, 26), dict.fromkeys(PILLARS, 85), by=LEAD)
    result = stack.cycle("daily", EVIDENCE_BACK)
    review = review_on(stack, REF, EVIDENCE_BACK)
    assert review.rating == "on_track", review
    assert result["de_escalated"] == [] and result["escalated"] == [], result
    assert escalated(stack, REF)

    # the control change recorded with an extension is the same thing as one recorded on its
    # own (one concept): it is counted toward the open escalation, and the next review on
    # trajectory resolves it
    stack.local_ok("action", "extend", REF, "--deadline", "2027-02-15", "--control-change",
                   "Duty manager reviews every new concern with the registered manager "
                   "before handover", "--by", MANAGER)
    assert escalated(stack, REF)  # not by itself
    [waiting] = escalations(stack, REF)
    assert waiting.control_change_id is not None
    result = stack.cycle("daily", AFTER_CONTROL_CHANGE)
    assert result["de_escalated"] == [REF], result
    assert not escalated(stack, REF)
    [resolved] = escalations(stack, REF)
    assert resolved.id == escalation.id
    assert resolved.control_change_id == waiting.control_change_id
    assert resolved.resolved_on == AFTER_CONTROL_CHANGE
    events = stack.audit_events(REF)
    assert events.count("action.escalated") == 1
    assert events.count("action.de_escalated") == 1
    assert events.index("action.deadline_extended") < events.index("action.de_escalated")

    # a control change recorded with nothing escalated is kept, and attached to nothing
    change = stack.local_json(
        "action", "control-change", REF, "--what",
        "Safeguarding log checked at every handover by the shift leader", "--by", MANAGER)
    assert change["escalation_id"] is None, change
    assert escalations(stack, REF)[0].control_change_id == waiting.control_change_id
    assert cadence_shown(stack, REF, WEEKLY_FROM) == "weekly"
    # no second escalation email (one message to each of the three) or event along the way
    escalation_mails = stack.mails(subject=f"{REF} escalated")
    assert sorted(str(m["X-Envelope-To"]) for m in escalation_mails) == sorted(
        [LEAD, NOMINATED, MANAGER])
    assert len(stack.escalation_events(REF)) == 1


def test_rerunning_daily_for_the_same_date_changes_nothing(stack: CycleStack) -> None:
    if not stack.of_action(ReviewRow, REF, ReviewRow.as_of == AFTER_CONTROL_CHANGE):
        stack.cycle("daily", AFTER_CONTROL_CHANGE)  # (held already after the test above)
    opened = len(escalations(stack, REF))
    assert opened >= 1
    stack.wait_for_events(REF, opened)
    before = snapshot(stack)

    again = stack.cycle("daily", AFTER_CONTROL_CHANGE)

    # nothing is reviewed twice: every open action was reviewed for the date or is not due
    assert again["reviewed"] == 0 and again["already_reviewed"] >= 1, again
    assert again["already_reviewed"] + again["not_due"] == again["open_actions"], again
    assert again["escalated"] == again["de_escalated"] == again["reopened"] == []
    time.sleep(1.5)  # three flushes of the event persister: a stray event would show
    assert snapshot(stack) == before
    assert len(stack.escalation_events(REF)) == opened


# ---------------------------------------------------------------- email


def test_smtp_down_mail_stays_queued_and_is_delivered_exactly_once(stack: CycleStack) -> None:
    key = f"weekly:{WEEKLY_SMTP_DOWN.isoformat()}:"
    stack.sink.stop()
    try:
        summary = stack.cycle("weekly", WEEKLY_SMTP_DOWN)  # completes without SMTP
        failed_at = datetime.now(UTC)
    finally:
        stack.sink.start()
    assert summary["already_run"] is False and summary["emails_queued"] == 3, summary

    rows = stack.outbox(key)
    assert [(r.dedupe_key, r.recipients) for r in rows] == [
        (key + "QUAY", [MANAGERS["QUAY"]]), (key + "ROSE", [MANAGER]),
        (key + "provider", [NOMINATED])]
    for row in rows:
        assert row.sent_at is None and row.attempts >= 1 and row.last_error, row
        assert row.next_attempt_at is not None and as_utc(row.next_attempt_at) > failed_at
    assert stack.mail_with_key(key) == []

    # SMTP is back, but the retry is not due yet (30 s backoff): an ordinary flush skips it
    assert stack.local_json("mail", "flush")["sent"] == 0
    assert all(r.sent_at is None for r in stack.outbox(key))

    # retrying now, ignoring the backoff, delivers each email once
    flushed = stack.local_json("mail", "flush", "--all")
    assert flushed["sent"] == 3 and flushed["failed"] == 0, flushed
    delivered = stack.mail_with_key(key)
    assert sorted(str(m["X-Recovery-Key"]) for m in delivered) == \
        [key + "QUAY", key + "ROSE", key + "provider"]
    assert {str(m["X-Envelope-To"]) for m in delivered} == {*MANAGERS.values(), NOMINATED}
    for row in stack.outbox(key):
        assert row.sent_at is not None and row.last_error is None, row

    # nothing is sent twice: not by another flush, nor by re-running the cycle
    assert stack.local_json("mail", "flush", "--all")["sent"] == 0
    assert stack.cycle("weekly", WEEKLY_SMTP_DOWN)["already_run"] is True
    assert len(stack.mail_with_key(key)) == 3


# ---------------------------------------------------------------- monthly assurance


def test_monthly_assurance_form_records_provider_oversight(stack: CycleStack) -> None:
    started = stack.cycle("monthly", FIRST_OF_MONTH)
    run_id = UUID(started["flow_run_id"])
    month = FIRST_OF_MONTH.strftime("%Y-%m")
    with stack.client() as client:
        wait_for_pause(client, run_id, key=f"assurance-{month}-1", timeout=120)

    # asked again while it waits: the same run, not a second form
    assert stack.cycle("monthly", FIRST_OF_MONTH)["flow_run_id"] == str(run_id)

    [request] = stack.wait_for_mails(1, subject=f"Monthly provider assurance {month}")
    assert str(request["X-Envelope-To"]) == NOMINATED
    code = code_in(request)
    assert all(ref in text_of(request) for ref in ACTIONS)

    answer: dict[str, Any] = {"reviewer_email": NOMINATED}
    outcomes = {"ROSE-SG-001": "assurance", "QUAY-MED-001": "further_action"}
    for ref, outcome in outcomes.items():
        name = ref.lower().replace("-", "_")
        answer[f"{name}_outcome"] = outcome
        answer[f"{name}_note"] = f"{ref}: {outcome.replace('_', ' ')} after reading the tracker"

    # a wrong code is refused: nothing recorded, the run waits again
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with stack.server.settings():
        resume_flow_run(run_id, run_input={**answer, "code": wrong})
    with stack.client() as client:
        wait_for_pause(client, run_id, key=f"assurance-{month}-2", timeout=120)
    assert stack.select(select(AssuranceEntryRow)) == []
    [refused] = stack.select(select(AssuranceRequestRow).where(
        AssuranceRequestRow.month == month))
    assert refused.wrong_attempts == 1 and refused.used_at is None
    assert "assurance.refused" in [e["event"] for e in stack.local_json("audit", "show")]

    # the right code records the minutes and the run completes
    with stack.server.settings():
        resume_flow_run(run_id, run_input={**answer, "code": code})
    with stack.client() as client:
        run = wait_for_final(client, run_id, timeout=120)
    assert run.state.is_completed(), run.state

    ids = {stack.action_row(ref).id: ref for ref in ACTIONS}
    entries = stack.select(select(AssuranceEntryRow))
    assert {(ids[e.action_id], e.outcome, e.recorded_by) for e in entries} == \
        {(ref, outcome, NOMINATED) for ref, outcome in outcomes.items()}
    for ref in ACTIONS:
        [minutes] = stack.of_action(EvidenceRow, ref,
                                    EvidenceRow.source == "governance_minutes")
        assert minutes.recorded_by == NOMINATED and minutes.pillar == "supporting"
        assert minutes.reference == (f"Provider assurance minutes {month}: "
                                     f"{outcomes[ref].replace('_', ' ')}")
        assert stack.audit_events(ref).count("assurance.recorded") == 1

    # the month again: the same (completed) run, no second request or code; without
    # --json, a summary a person reads
    assert stack.cycle("monthly", FIRST_OF_MONTH)["flow_run_id"] == str(run_id)
    human = stack.cli_ok("review", "run", "monthly", "--as-of",
                         FIRST_OF_MONTH.strftime("%d/%m/%Y"))
    lines = human.stdout.splitlines()
    assert lines[:2] == ["monthly cycle done", f"month: {month}"], lines
    assert lines[2] == f"url: {stack.server.flow_run_url(str(run_id))}", lines
    assert not any(c in human.stdout for c in "{}[]'"), human.stdout
    assert len(stack.mails(subject=f"Monthly provider assurance {month}")) == 1
    assert len(stack.select(select(AssuranceRequestRow))) == 1

    # provider-level oversight now on record: QUAY-MED-001 is no longer local only
    weaknesses = snapshot_weaknesses(date(2026, 12, 7))
    assert not [w for ws in weaknesses.values() for w in ws if w.startswith(LOCAL_ONLY)]


# ---------------------------------------------------------------- audit anchors


def test_every_cycle_anchors_the_audit_chain_in_prefect_where_a_cut_tail_shows(
    stack: CycleStack,
) -> None:
    from recovery.adapters import anchors

    for _ in range(2):  # the second run finds no work, and anchors all the same
        stack.cycle("daily", AFTER_CONTROL_CHANGE)
    versions = artifacts(stack, anchors.artifact_key())
    assert len(versions) >= 2, "each cycle run publishes an anchor version"
    assert all(v.flow_run_id is not None for v in versions)
    rows = {(r["seq"], r["hash"]) for v in versions for r in table_rows(v)}
    chain = {(a.seq, a.hash) for a in stack.select(select(AuditRow))}
    assert rows <= chain  # every anchor is a real entry of this chain
    newest = max(seq for seq, _ in rows)
    assert newest == max(seq for seq, _ in chain)

    # Delete the two newest entries, and the anchor file with them: only Prefect's copy
    # is left to tell. Then put everything back for whatever runs after.
    saved = stack.query("SELECT * FROM audit_log WHERE seq >= :s", s=newest - 1)
    columns = [c for c in stack.query("SELECT name FROM pragma_table_info('audit_log')")]
    anchor_file = anchors.anchor_file()
    kept = anchor_file.read_bytes()
    anchor_file.unlink()
    stack.execute("DELETE FROM audit_log WHERE seq >= :s", s=newest - 1)
    try:
        with stack.server.settings():
            broken = stack.local("audit", "verify", "--json")
        assert broken.exit_code == 3, broken
        data = broken.json()
        assert data["first_bad_seq"] == newest - 1
        assert "(Prefect artifact)" in data["reason"] and "were deleted" in data["reason"]
    finally:
        names = [c[0] for c in columns]
        for row in saved:
            stack.execute(
                f"INSERT INTO audit_log ({', '.join(names)}) "
                f"VALUES ({', '.join(':' + n for n in names)})",
                **dict(zip(names, row, strict=True)))
        anchor_file.write_bytes(kept)
    with stack.server.settings():
        restored = stack.local("audit", "verify", "--json")
    assert restored.exit_code == 0, restored
    assert restored.json()["anchors_checked"] >= len(versions)
