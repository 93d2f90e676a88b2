"""No green without a measurement: an action in recovery with no evidence is never shown on
track, on any surface people read (governance pack, tracker CSV and xlsx, the weekly
email, `action show`), in the grace period (not yet evidenced, amber) or after it (off
track, red). SQLite, then PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import openpyxl
import pytest
from sqlmodel import col, select

from models.lifecycle import Event
from models.tables import OutboxRow
from recovery import cycles, db, reports, services, spreadsheets, weekly
from recovery import repository as repo
from recovery.governance import build_snapshot
from tests.integration.helpers import cli, make_plan, open_plan, seed_directory

START = date(2026, 11, 2)  # recovery starts on the baseline day


def _in_recovery_without_evidence() -> str:
    ref = open_plan(make_plan(
        baseline={"issue": "Delayed escalation decisions", "value": 60, "as_of": START},
        target={"measure": "Concerns with same-day review", "direction": "at_least",
                "value": 95, "deadline": START + timedelta(days=90)}))
    with db.unit_of_work() as session:
        row = repo.get_action(session, ref, for_update=True)
        services.move(session, row, Event.SUBMIT_PLAN, actor="test")
        services.move(session, row, Event.APPROVE_PLAN, actor="test")
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
