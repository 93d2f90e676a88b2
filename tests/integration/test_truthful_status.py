"""No green without a measurement: an action in recovery with no evidence is never shown on
track, on any surface people read (governance pack, tracker CSV and xlsx, the weekly
email, `action show`), in the grace period (not yet evidenced, amber) or after it (off
track, red). SQLite, then PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from pathlib import Path

import openpyxl
import pytest
from sqlmodel import col, select

from models.lifecycle import Event
from models.signoff import SignoffKind
from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.adapters.tables import ControlChangeRow, EscalationRow, OutboxRow
from recovery.application import (
    action_changes,
    evidence_gate,
    signoff_codes,
    summaries,
    transitions,
)
from recovery.application import reviews as cycles
from recovery.reporting import packs as reports
from recovery.reporting import spreadsheets, weekly
from recovery.reporting.snapshot import ActionLine, build_snapshot
from tests.integration.helpers import business_day, cli, make_plan, open_plan, seed_directory

START = date(2026, 11, 2)  # recovery starts on the baseline day


def _in_recovery_without_evidence() -> str:
    with business_day(START):
        ref = open_plan(make_plan(
            baseline={"issue": "Delayed escalation decisions", "value": 60, "as_of": START},
            target={"measure": "Concerns with same-day review", "direction": "at_least",
                    "value": 95, "deadline": START + timedelta(days=90)}))
    with business_day(START), db.unit_of_work() as session:
        row = repo.get_action(session, ref, for_update=True)
        transitions.move(session, row, Event.SUBMIT_PLAN, actor="test")
        transitions.move(session, row, Event.APPROVE_PLAN, actor="test")
        row.recovery_started_on = START
        session.add(row)
    return ref


def _surfaces(ref: str, as_of: date) -> dict[str, list[str]]:
    """What each surface says of the action's rating (its words, lower case)."""
    with db.unit_of_work() as session:
        pack = reports.build_pack(session, "governance", as_of=as_of, charts_for="none")
        html = reports.render_html(pack)
        markdown = reports.render_markdown(pack)
        csv_bytes, _ = spreadsheets.export_tracker(session, fmt="csv", as_of=as_of)
        xlsx_bytes, _ = spreadsheets.export_tracker(session, fmt="xlsx", as_of=as_of)
        weekly.queue_weekly_emails(session, build_snapshot(session, as_of=as_of))
        bodies = [r.text_body for r in session.exec(
            select(OutboxRow).where(col(OutboxRow.dedupe_key).startswith("weekly:")))]
    csv_rows = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig"))))
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_bytes)).worksheets[0]
    header = [c.value for c in sheet[1]]
    xlsx_rows = [dict(zip(header, (c.value for c in r), strict=False))
                 for r in sheet.iter_rows(min_row=2) if r[0].value == ref]
    shown = cli("action", "show", ref, "--json").json()["rating"]
    return {
        "pack html": re.findall(r'data-field="rag">([^<]+)<', html),
        "pack markdown": re.findall(rf"{re.escape(ref)} .*?\| ([a-z ]+) \((?:green|amber|red)\)",
                                    markdown),
        "tracker csv": [r["RAG"] for r in csv_rows if r["Ref"] == ref],
        "tracker xlsx": [r["RAG"] for r in xlsx_rows],
        "weekly email": [m for b in bodies for m in re.findall(r"rating ([a-z ]+), trend", b)],
        "action show": [shown["label"]],
        "action show rag": [shown["rag"]],
    }


@pytest.mark.parametrize(("day", "label", "rag"), [
    (0, "not yet evidenced", "amber"),
    (13, "not yet evidenced", "amber"),
    (15, "off track", "red"),
])
def test_an_action_without_evidence_is_never_on_track_on_any_surface(
    database_url: str, day: int, label: str, rag: str
) -> None:
    seed_directory()
    ref = _in_recovery_without_evidence()
    as_of = START + timedelta(days=day)
    for offset in range(day + 1):  # a high-risk action is reviewed daily
        with db.unit_of_work() as session:
            cycles.run_daily(session, as_of=START + timedelta(days=offset))

    said = _surfaces(ref, as_of)
    assert all(said.values()), said  # every surface shows the action
    for surface, words in said.items():
        assert "on track" not in words and "green" not in words, (surface, words)
        if surface == "action show rag":
            assert words == [rag]
        else:
            assert set(words) == {label}, (surface, words)


# --- the seed's triggers escalate ---------------------------------------------------------

MEDS_START = date(2026, 11, 2)
GAPS_DAY, REPEAT_DAY = 9, 10  # trajectory expects 75.4% on day 9, 76% on day 10


def _medicines_action() -> str:
    """Quay House's medicines plan (the seed's template: unexplained gaps and repeated
    discrepancies are its triggers), baseline 70%, target 100% in 50 days, in recovery."""
    plan = make_plan(
        location="Quay House", title="Medicines gaps explained within 24 hours",
        template="medicines-24-hour-gap-explanation", risk_domain="medicines",
        quality_statements=["safe.medicines-optimisation"],
        accountable_lead="meds.lead@quay.example", senior_reviewer="rm@quay.example",
        baseline={"issue": "Unexplained administration gaps", "value": 70,
                  "as_of": MEDS_START},
        target={"measure": "Gaps explained within 24 hours", "direction": "at_least",
                "value": 100, "deadline": MEDS_START + timedelta(days=50)},
        interim_controls=["Senior carer checks every MAR at shift end"])
    with business_day(MEDS_START):
        ref = open_plan(plan)
    with business_day(MEDS_START), db.unit_of_work() as session:
        row = repo.get_action(session, ref, for_update=True)
        transitions.move(session, row, Event.SUBMIT_PLAN, actor="test")
        transitions.move(session, row, Event.APPROVE_PLAN, actor="test")
        row.recovery_started_on = MEDS_START
        session.add(row)
    return ref


def _evidence(ref: str, day: int, records: float) -> None:
    observed = MEDS_START + timedelta(days=day)
    with db.unit_of_work() as session:
        for source, value, by in (("medicines_records", records, "meds.lead@quay.example"),
                                  ("audits", 82, "rm@quay.example"),
                                  ("feedback", 82, "rm@quay.example"),
                                  ("staff_practice", 82, "rm@quay.example")):
            evidence_gate.add_evidence(session, ref, source=source, value=value, sample_size=20,
                                  observed_on=observed, reference=f"MAR audit day {day}",
                                  by=by, today=observed)


def _review_days(ref: str, records: dict[int, float], last: int) -> None:
    for day in range(last + 1):
        if day in records:
            _evidence(ref, day, records[day])
        with db.unit_of_work() as session:
            cycles.run_daily(session, as_of=MEDS_START + timedelta(days=day))


def _escalation_mails() -> list[OutboxRow]:
    with db.unit_of_work() as session:
        rows = list(session.exec(select(OutboxRow).where(
            col(OutboxRow.dedupe_key).startswith("escalation:"))))
        session.expunge_all()
    return rows


def test_unexplained_gaps_at_two_reviews_below_trajectory_escalate_on_the_second(
    database_url: str
) -> None:
    seed_directory()
    ref = _medicines_action()
    _review_days(ref, {GAPS_DAY: 72}, GAPS_DAY)
    shown = cli("action", "show", ref, "--json").json()
    assert (shown["escalated"], shown["rating"]["label"]) == (False, "at risk")
    assert _escalation_mails() == []

    _review_days(ref, {REPEAT_DAY: 71}, REPEAT_DAY)  # days before are already reviewed
    shown = cli("action", "show", ref, "--json").json()
    assert shown["escalated"] is True
    assert shown["rating"]["label"] == "at risk"  # the rating stays what it is
    assert set(shown["rating"]["triggers"]) == {"repeated_gaps", "below_trajectory"}
    mails = _escalation_mails()  # one message to each recipient
    assert all(len(m.recipients) == 1 for m in mails)
    assert len(mails) == len({m.recipients[0] for m in mails}) >= 2
    [mail_row] = [m for m in mails if m.recipients == ["rm@quay.example"]]
    body = mail_row.text_body
    assert "trigger raised, repeated gaps: gaps repeated: medicines record review of " \
           "2026-11-11 shows 72%, then medicines record review of 2026-11-12 shows 71%" in body
    assert "no improvement since the last review (72%, now 71%)" in body
    for escalation_action in ("Protect medicines time", "Change deployment",
                              "Increase direct observation"):
        assert f"- {escalation_action}" in body
    human = cli("action", "show", ref)
    assert "open triggers: repeated gaps, below trajectory" in human.stdout, human.stdout


def test_improving_on_trajectory_after_one_minor_gap_does_not_escalate(
    database_url: str
) -> None:
    seed_directory()
    ref = _medicines_action()
    _review_days(ref, {GAPS_DAY: 74, REPEAT_DAY: 77}, REPEAT_DAY)
    shown = cli("action", "show", ref, "--json").json()
    assert shown["escalated"] is False
    assert shown["rating"]["label"] == "on track"
    assert _escalation_mails() == []


def test_a_control_change_recorded_with_an_extension_counts_toward_the_escalation(
    database_url: str
) -> None:
    seed_directory()
    ref = _medicines_action()
    _review_days(ref, {GAPS_DAY: 72, REPEAT_DAY: 71}, REPEAT_DAY)
    escalated_on = MEDS_START + timedelta(days=REPEAT_DAY)

    def decisions(as_of: date) -> tuple[bool, list[str]]:
        with db.unit_of_work() as session:
            [line] = build_snapshot(session, as_of=as_of).lines
        return line.escalated, line.decisions_needed

    asks = ["decision on escalation: record a change of operational control"]
    assert decisions(escalated_on) == (True, asks)
    extended = cli("action", "extend", ref, "--deadline", "2027-01-31", "--control-change",
                   "Medicines lead protected time on every shift, observed daily",
                   "--by", "rm@quay.example")
    assert extended.exit_code == 0, extended.stderr
    with db.unit_of_work() as session:
        [escalation] = session.exec(select(EscalationRow)).all()
        [change] = session.exec(select(ControlChangeRow)).all()
    assert (escalation.control_change_id, change.reason) == (change.id, "extension")
    today = change.decided_on
    assert decisions(today) == (True, [])  # nothing left to decide: evidence must follow
    # a pack as of a past date reads the past: not escalated the day before it was
    assert decisions(escalated_on - timedelta(days=1)) == (False, [])
    assert decisions(escalated_on) == (True, asks if today > escalated_on else [])


# --- overdue means overdue; drafts are not invisible --------------------------------------


def _pack(as_of: date) -> reports.GovernancePack:
    with db.unit_of_work() as session:
        pack = reports.build_pack(session, "governance", as_of=as_of, charts_for="none")
    assert isinstance(pack, reports.GovernancePack)
    return pack


def _group(pack: reports.GovernancePack, key: str) -> list[str]:
    return [f"{i.ref}: {i.text}" for g in pack.weaknesses if g.key == key for i in g.items]


def test_every_passed_due_date_is_counted_overdue_whatever_the_status(
    database_url: str
) -> None:
    seed_directory()
    in_recovery = _in_recovery_without_evidence()  # reviewed daily from START
    waiting = open_plan(make_plan(title="Handover checks signed by the shift lead"))
    with db.unit_of_work() as session:
        transitions.submit_plan(session, waiting, actor="lifecycle")
        signoff_codes.open_signoff(session, waiting, SignoffKind.PLAN, flow_run_id=None)
        asked = summaries.opened_on(repo.get_action(session, waiting))
    as_of = asked + timedelta(days=5)

    pack = _pack(as_of)
    overdue = _group(pack, "overdue")
    reviewer = "Priya Shah"  # ni@harbourcare.example in the example directory
    assert f"{waiting}: plan sign-off overdue since {asked + timedelta(days=2)}, waiting " \
           f"on {reviewer}" in overdue, overdue
    assert f"{in_recovery}: review overdue since {START}" in overdue, overdue
    assert pack.counts.overdue_reviews == len(overdue) == 2
    assert sum(a.line.review_overdue for a in pack.actions) == 2
    [decision] = [d for d in pack.decisions_needed if d.ref == waiting]
    assert decision.what == "plan sign-off by the senior reviewer"
    assert reviewer in decision.who
    # before the sign-off falls due it is waited on, not overdue
    assert _group(_pack(asked + timedelta(days=1)), "overdue") == [
        f"{in_recovery}: review overdue since {START}"]


def test_a_draft_heads_the_attention_list_until_its_run_starts(
    database_url: str, tmp_path: Path
) -> None:
    seed_directory()
    _in_recovery_without_evidence()
    draft = open_plan(make_plan(title="Handover checks signed by the shift lead"))
    with db.unit_of_work() as session:
        opened = summaries.opened_on(repo.get_action(session, draft))
    as_of = opened + timedelta(days=3)

    pack = _pack(as_of)
    assert pack.decisions_needed[0].ref == draft
    assert pack.decisions_needed[0].what == "start the lifecycle run (recovery action start)"
    assert pack.weaknesses[0].key == "not_started"
    assert _group(pack, "not_started") == [
        f"{draft}: not started since {opened}: no lifecycle run (start it with recovery "
        f"action start {draft})"]
    assert f"{draft}: lifecycle start overdue since {opened + timedelta(days=1)}, waiting " \
           f"on the accountable lead or an operator" in _group(pack, "overdue")
    html = reports.render_html(pack)
    assert "Identified but not started: no lifecycle run" in html
    with db.unit_of_work() as session:
        csv_bytes, _ = spreadsheets.export_tracker(session, fmt="csv", as_of=as_of)
    [row] = [r for r in csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig")))
             if r["Ref"] == draft]
    assert row["Status"] == f"not started: draft since {opened:%d/%m/%Y}, no lifecycle run"
    assert row["RAG"] == "not started"
    listed = cli("action", "list")
    assert f"{draft}: not started (draft since {opened:%d/%m/%Y}, no lifecycle run); start " \
           f"it with: recovery action start {draft}" in listed.stdout, listed.stdout

    with db.unit_of_work() as session:  # the lifecycle run starts and submits the plan
        row_ = repo.get_action(session, draft, for_update=True)
        row_.flow_run_id = "00000000-0000-0000-0000-000000000001"
        transitions.submit_plan(session, draft, actor="lifecycle")
    pack = _pack(as_of)
    assert _group(pack, "not_started") == []
    assert [d.what for d in pack.decisions_needed if d.ref == draft] == [
        "plan sign-off by the senior reviewer"]
    assert "not started" not in " ".join(cli("action", "list").stdout.split())


# --- past dates read the past ---------------------------------------------------------------

def test_a_pack_as_of_a_past_date_reads_every_fact_as_it_stood(database_url: str) -> None:
    """Opened on day 0, submitted on day 1, signed off on day 5, its deadline extended on
    day 7: a pack as of each day shows the action as it stood that day (absent before it was
    opened; its status, the decision it waited on, overdue or not, and its deadline then)."""
    seed_directory()
    start = date(2026, 11, 2)
    deadline = start + timedelta(days=60)
    with business_day(start):
        ref = open_plan(make_plan(
            title="Handover checks signed by the shift lead",
            baseline={"issue": "Handover checks unsigned", "value": 60, "as_of": start},
            target={"measure": "Handovers signed", "direction": "at_least", "value": 95,
                    "deadline": deadline}))
    with business_day(start + timedelta(days=1)), db.unit_of_work() as session:
        transitions.submit_plan(session, ref, actor="lifecycle")
    with business_day(start + timedelta(days=5)), db.unit_of_work() as session:
        row = repo.get_action(session, ref, for_update=True)
        transitions.move(session, row, Event.APPROVE_PLAN, actor="ni@harbourcare.example")
        row.recovery_started_on = start + timedelta(days=5)
    extended = start + timedelta(days=7)
    with business_day(extended), db.unit_of_work() as session:
        action_changes.extend_deadline(
            session, ref, new_deadline=deadline + timedelta(days=30), by="rm@rose.example",
            control_change="Shift lead signs every handover sheet before leaving the floor",
            today=extended)

    def line(day: int) -> ActionLine | None:
        with db.unit_of_work() as session:
            lines = build_snapshot(session, as_of=start + timedelta(days=day)).lines
        return next((x for x in lines if x.ref == ref), None)

    assert line(-1) is None  # not yet identified
    opened = line(0)
    assert opened is not None and opened.status == "draft"
    assert opened.decisions_needed == ["start the lifecycle run (recovery action start)"]
    waiting = line(2)
    assert waiting is not None and waiting.status == "awaiting_plan_signoff"
    assert waiting.decisions_needed == ["plan sign-off by the senior reviewer"]
    assert not waiting.review_overdue  # asked on day 1, due on day 3
    assert line(3) is not None and not line(3).review_overdue  # due that day  # type: ignore
    late = line(4)
    assert late is not None and late.review_overdue
    assert any(w.startswith("plan sign-off overdue since 2026-11-05") for w in late.weaknesses)
    before_extension = line(6)
    assert before_extension is not None and before_extension.status == "in_recovery"
    assert (before_extension.deadline, before_extension.decisions_needed) == (deadline, [])
    after = line(7)
    assert after is not None and after.deadline == deadline + timedelta(days=30)
    # the tracker export as of a past date reads the same past
    with db.unit_of_work() as session:
        csv_bytes, _ = spreadsheets.export_tracker(
            session, fmt="csv", as_of=start + timedelta(days=2))
    [row_] = [r for r in csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig")))
              if r["Ref"] == ref]
    assert "awaiting plan signoff" in row_["Status"].replace("-", " "), row_


def test_an_action_recorded_late_stands_from_the_day_its_recovery_began(
    database_url: str
) -> None:
    """Recorded on day 10 with recovery begun on day 0 (a provider entering an action it
    already runs): a pack as of day 3 shows it in recovery, not absent or a draft."""
    seed_directory()
    start = date(2026, 11, 2)
    with business_day(start + timedelta(days=10)):
        ref = open_plan(make_plan(
            baseline={"issue": "Handover checks unsigned", "value": 60, "as_of": start},
            target={"measure": "Handovers signed", "direction": "at_least", "value": 95,
                    "deadline": start + timedelta(days=60)}))
        with db.unit_of_work() as session:
            row = repo.get_action(session, ref, for_update=True)
            transitions.move(session, row, Event.SUBMIT_PLAN, actor="lifecycle")
            transitions.move(session, row, Event.APPROVE_PLAN, actor="ni@harbourcare.example")
            row.recovery_started_on = start
    with db.unit_of_work() as session:
        lines = build_snapshot(session, as_of=start + timedelta(days=3)).lines
    assert [(x.ref, x.status) for x in lines] == [(ref, "in_recovery")]
    with db.unit_of_work() as session:
        assert build_snapshot(session, as_of=start - timedelta(days=1)).lines == []
