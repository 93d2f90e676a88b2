"""Stored dates at the calendar's ends cannot stop governance: the boundary refuses a
far deadline now (`models/dates.py`), but a row stored before that rule (written here
straight into the database, as the boundary would refuse it) must still let every pack
draw and the daily and weekly cycles complete, as Prefect flow runs on a real server.

ROSE-SG-001 is signed off into recovery through the real lifecycle; then its deadline is
moved to 9999-12-31 and its baseline, with one evidence item, to 0001-01-01.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select

from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.adapters.tables import CycleRunRow, EvidenceRow, ReviewRow
from tests.cycles.conftest import CycleStack

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

ACTIONS = ["ROSE-SG-001"]
REF = "ROSE-SG-001"
MONDAY = date(2026, 11, 30)


def store_extreme_dates(ref: str) -> None:
    with db.unit_of_work() as session:
        row = repo.get_action(session, ref)
        assert row.id is not None
        row.deadline, row.baseline_on = date.max, date.min
        plan = dict(row.plan)
        plan["target"] = {**plan["target"], "deadline": date.max.isoformat()}
        plan["baseline"] = {**plan["baseline"], "as_of": date.min.isoformat()}
        row.plan = plan
        session.add(row)
        session.add(EvidenceRow(action_id=row.id, source="audits", pillar="audits",
                                value=70.0, sample_size=20, observed_on=date.min,
                                recorded_by="rm@rose.example",
                                reference="Audit file, the first page"))


def test_packs_and_cycles_complete_with_stored_dates_at_the_calendars_ends(
    stack: CycleStack, tmp_path: Path
) -> None:
    store_extreme_dates(REF)

    for kind in ("governance", "commissioner", "inspector"):
        out = tmp_path / f"{kind}.html"
        stack.local_ok("report", kind, "--out", out, "--as-of", MONDAY, "--charts", "all")
        assert REF in out.read_text(encoding="utf-8")
    stack.local_ok("export", "tracker", "--out", tmp_path / "tracker.csv", "--as-of", MONDAY)

    stack.cycle("daily", MONDAY)
    [review] = stack.of_action(ReviewRow, REF, ReviewRow.as_of == MONDAY)
    assert review.rating  # reviewed, whatever the rating
    stack.cycle("weekly", MONDAY)
    assert stack.select(select(CycleRunRow).where(CycleRunRow.cycle == "weekly",
                                                  CycleRunRow.as_of == MONDAY))
    shown = stack.local_json("action", "show", REF)
    assert shown["target"]["deadline"] == "9999-12-31"
