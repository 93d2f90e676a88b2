"""Tracker spreadsheets through the CLI apps: export (xlsx formatting, CSV), import (all or
nothing, row-by-row report), and the round trip into an empty database."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, col, select
from typer.testing import CliRunner

from recovery.adapters import db
from recovery.adapters.tables import ActionRow, ActionStatementRow, AuditRow, LocationRow, PersonRow
from recovery.cli.reports import export_app, import_app
from tests.reports import scenario
from tests.reports.conftest import Built, _point

runner = CliRunner()
EXAMPLE = scenario.EXAMPLES / "tracker.csv"


def invoke(app: Any, *args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def counts() -> dict[str, int]:
    with db.get_engine().connect() as conn:
        return {t.name: conn.execute(text(f'SELECT COUNT(*) FROM "{t.name}"')).scalar_one()
                for t in SQLModel.metadata.sorted_tables}


def actions() -> dict[str, dict[str, Any]]:
    """Every action as the tracker defines it (not its progress)."""
    with db.unit_of_work() as session:
        people = {p.id: p.email for p in session.exec(select(PersonRow))}
        places = {loc.id: loc.name for loc in session.exec(select(LocationRow))}
        out = {}
        for row in session.exec(select(ActionRow)):
            links = session.exec(select(ActionStatementRow.statement_id).where(
                ActionStatementRow.action_id == row.id)).all()
            out[row.ref] = {
                "title": row.title, "location": places[row.location_id],
                "domain": row.risk_domain, "level": row.risk_level, "score": row.risk_score,
                "reasons": row.risk_reasons, "lead": people[row.accountable_lead_id],
                "reviewer": people[row.senior_reviewer_id],
                "baseline": (row.baseline_value, row.baseline_on),
                "target": (row.target_direction, row.target_value, row.deadline),
                "statements": sorted(links), "plan": row.plan,
            }
    return out


@pytest.fixture
def fresh(migrated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An empty database with the catalogue and a staff directory (a function: call it)."""
    def make(people: bytes, name: str = "fresh") -> str:
        path = tmp_path / f"{name}.db"
        shutil.copyfile(migrated, path)
        url = f"sqlite:///{path}"
        _point(monkeypatch, url, tmp_path / f"{name}-home")
        scenario.directory(people)
        return url
    return make


def _people_of(built: Built) -> bytes:
    if built.name == "seed":
        return (scenario.EXAMPLES / "people.yaml").read_bytes()
    return scenario.provider_people()


# ---------------------------------------------------------------- export


def test_export_xlsx_is_formatted_for_managers(seed: Built, tmp_path: Path) -> None:
    out = tmp_path / "tracker.xlsx"
    result = invoke(export_app, "tracker", "--out", out, "--as-of", seed.as_of, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"format": "xlsx", "out": str(out), "actions": 3,
                                         "bytes": out.stat().st_size}
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Tracker", "Read me"]
    sheet = book["Tracker"]
    assert sheet.freeze_panes == "C2"
    assert sheet.auto_filter.ref and sheet.auto_filter.ref.startswith("A1:")
    headers = [c.value for c in sheet[1]]
    assert headers[:3] == ["Ref", "Title", "Location"]
    assert all(c.font.bold for c in sheet[1])
    index = {h: i for i, h in enumerate(headers)}
    assert sheet.column_dimensions["B"].width >= 40  # titles are readable
    truth = {}
    with db.unit_of_work() as session:
        for row in session.exec(select(ActionRow)):
            truth[row.ref] = row
    rag = {"on track": "00703C", "at risk": "F47738", "off track": "D4351C"}
    seen = set()
    for cells in sheet.iter_rows(min_row=2):
        ref = cells[index["Ref"]].value
        row = truth[ref]
        seen.add(ref)
        # dates are real dates, shown day first
        deadline = cells[index["Deadline"]]
        assert isinstance(deadline.value, datetime) and deadline.value.date() == row.deadline
        assert deadline.number_format == "DD/MM/YYYY"
        assert cells[index["Baseline date"]].value.date() == row.baseline_on
        # RAG and risk level carry fill colours
        rating = cells[index["RAG"]]
        assert rating.fill.fgColor.rgb.endswith(rag[rating.value])
        assert cells[index["Risk level"]].value == row.risk_level == "high"
        assert cells[index["Risk level"]].fill.fgColor.rgb.endswith("F6D7D2")
        assert cells[index["Risk score"]].value == row.risk_score
        assert cells[index["Potential harm"]].value == row.plan["risk"]["potential_harm"]
    assert seen == set(truth)
    assert sheet.data_validations.dataValidation, "factor, domain and direction drop-downs"


def test_export_csv_protects_formulas(seed: Built, tmp_path: Path) -> None:
    out = tmp_path / "tracker.csv"
    result = invoke(export_app, "tracker", "--out", out, "--as-of", seed.as_of)
    assert result.exit_code == 0, result.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 with the BOM
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["Ref"] for r in rows] == ["ROSE-SG-001", "QUAY-MED-001", "ELM-STF-001"]
    assert rows[1]["Deadline"] == "30/12/2026" and rows[1]["RAG"] == "off track"


def test_export_refuses_bad_input(seed: Built, tmp_path: Path) -> None:
    result = invoke(export_app, "tracker", "--out", tmp_path / "t.docx", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stderr)["field"] == "format"
    result = invoke(export_app, "tracker", "--out", tmp_path / "missing" / "t.csv", "--json")
    assert result.exit_code == 2 and json.loads(result.stderr)["field"] == "out"
    result = invoke(export_app, "tracker", "--out", tmp_path / "t.csv", "--location", "Nowhere",
                    "--json")
    assert result.exit_code == 2 and json.loads(result.stderr)["field"] == "location"


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
@pytest.mark.parametrize("which", ["seed", "provider"])
def test_round_trip_into_an_empty_database(request: pytest.FixtureRequest, fresh: Any,
                                           tmp_path: Path, which: str, fmt: str) -> None:
    built: Built = request.getfixturevalue(which)
    before = actions()
    out = tmp_path / f"tracker.{fmt}"
    result = invoke(export_app, "tracker", "--format", fmt, "--out", out, "--as-of",
                    built.as_of)
    assert result.exit_code == 0, result.stderr

    fresh(_people_of(built))
    result = invoke(import_app, "tracker", out, "--no-flow", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rows"] == len(before) and data["dry_run"] is False
    after = actions()
    # references are allocated per location and risk domain, in file order; here each
    # location has at most one action per domain, so they come back the same
    assert after == before
    with db.unit_of_work() as session:
        statuses = set(session.exec(select(ActionRow.status)).all())
        imported = session.exec(select(AuditRow).where(
            AuditRow.event == "tracker.imported")).one()
    assert statuses == {"draft"}  # each waits for plan sign-off again
    assert imported.details["actions"] == data["refs"] and set(data["refs"]) == set(after)
    assert imported.details["sha256"] == data["sha256"]


# ---------------------------------------------------------------- import refusals


def _corrupt_example() -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(EXAMPLE.read_text("utf-8"))))
    header = rows[0]
    at = {h: i for i, h in enumerate(header)}
    rows[1][at["Accountable Lead"]] = "nobody@rose.example"          # row 2: unknown person
    rows[2][at["Potential Harm"]] = "7"                               # row 3: off the scale
    rows[3][at["Deadline"]] = "01/11/2026"                            # row 4: before baseline
    return rows                                                       # row 5 stays good


def _write(rows: list[list[str]], path: Path) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
        return path
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_three_bad_rows_import_nothing_and_are_all_reported(empty: str, tmp_path: Path,
                                                            suffix: str) -> None:
    path = _write(_corrupt_example(), tmp_path / f"bad{suffix}")
    before = counts()
    result = invoke(import_app, "tracker", path, "--no-flow", "--json")
    assert result.exit_code == 2
    report = json.loads(result.stderr)
    assert report["field"] == "file" and report["bad_rows"] == 3 and report["rows"] == 4
    assert "nothing was imported" in report["error"]
    problems = {(e["row"], e["column"]) for e in report["errors"]}
    assert problems == {(2, "Accountable Lead"), (3, "Potential Harm"), (4, "Deadline")}
    by_row = {e["row"]: e["error"] for e in report["errors"]}
    assert "nobody@rose.example" in by_row[2]
    assert "7 is not from 1 to 5" in by_row[3]
    assert "deadline must be after the baseline date" in by_row[4]
    assert counts() == before  # nothing at all was written, not even the good row

    human = invoke(import_app, "tracker", path, "--no-flow")
    assert human.exit_code == 2
    lines = [line.strip() for line in human.stderr.splitlines() if line.strip()]
    assert lines[0] == "error file: 3 of 4 rows have errors; nothing was imported"
    assert [line.split(",")[0] for line in lines[1:]] == ["row 2", "row 3", "row 4"]
    assert counts() == before


def test_import_checks_rules_across_rows_and_columns(empty: str, tmp_path: Path) -> None:
    rows = list(csv.reader(io.StringIO(EXAMPLE.read_text("utf-8"))))
    at = {h: i for i, h in enumerate(rows[0])}
    rows[1][at["Senior Reviewer"]] = rows[1][at["Accountable Lead"]]   # the lead reviews
    rows[2][at["Interim Controls"]] = ""                               # high risk, no control
    rows[3][at["Template"]] = ""                                       # no template, no steps
    rows[3][at["Steps"]] = ""
    rows.append(list(rows[4]))                                          # the same action twice
    path = _write(rows, tmp_path / "rules.csv")
    result = invoke(import_app, "tracker", path, "--json")
    assert result.exit_code == 2
    errors = json.loads(result.stderr)["errors"]
    assert {(e["row"], e["column"]) for e in errors} == {
        (2, "Senior Reviewer"), (3, "Interim Controls"), (4, "Steps"), (6, "Title")}
    assert counts()["recovery_action"] == 0


def test_missing_columns_are_reported_against_the_header(empty: str, tmp_path: Path) -> None:
    rows = list(csv.reader(io.StringIO(EXAMPLE.read_text("utf-8"))))
    drop = rows[0].index("Baseline Date")
    path = _write([[c for i, c in enumerate(r) if i != drop] for r in rows], tmp_path / "m.csv")
    result = invoke(import_app, "tracker", path, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stderr)["errors"] == [
        {"row": 1, "column": "Baseline date", "error": "this column is missing"}]


# ---------------------------------------------------------------- import that works


def test_example_tracker_dry_run_then_import(empty: str) -> None:
    before = counts()
    result = invoke(import_app, "tracker", EXAMPLE, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["rows"] == 4
    assert data["refs"] == ["ROSE-SG-001", "QUAY-MED-001", "ELM-CP-001", "ELM-LC-001"]
    assert data["ignored_columns"] == ["Notes"]
    assert counts() == before

    result = invoke(import_app, "tracker", EXAMPLE, "--no-flow", "--by", "rm@rose.example")
    assert result.exit_code == 0, result.stderr
    assert "imported 4 actions: ROSE-SG-001, QUAY-MED-001, ELM-CP-001, ELM-LC-001" in \
        " ".join(result.stdout.split())
    made = actions()
    assert made["ROSE-SG-001"]["level"] == "high"
    assert made["ELM-LC-001"]["level"] == "medium"
    assert made["ELM-CP-001"]["plan"]["steps"] == [
        {"role": "deputy_manager", "action": "Review each fall and update the care plan",
         "record": "Care plan review log"},
        {"role": "registered_manager", "action": "Audit a sample of falls weekly",
         "record": "Falls audit"}]
    assert made["QUAY-MED-001"]["baseline"] == (71.0, date(2026, 11, 3))
    with db.unit_of_work() as session:
        opened = session.exec(select(AuditRow).where(AuditRow.event == "action.opened")
                               .order_by(col(AuditRow.seq))).all()
    assert [a.actor for a in opened] == ["rm@rose.example"] * 4


def test_column_names_match_in_any_case_and_spacing(empty: str, tmp_path: Path) -> None:
    rows = list(csv.reader(io.StringIO(EXAMPLE.read_text("utf-8"))))
    odd = {"Title": " TITLE ", "Potential Harm": "potential_harm", "People Affected":
           "PeopleAffected", "Accountable Lead": "accountable-lead", "Senior Reviewer":
           "senior  reviewer", "Baseline Date": "baseline_DATE", "Interim Controls":
           "interim controls"}
    rows[0] = [odd.get(h, h) for h in rows[0]]
    rows = rows[:3]
    path = tmp_path / "odd.csv"
    with path.open("w", newline="", encoding="cp1252") as handle:  # Excel's own CSV
        csv.writer(handle, delimiter=";").writerows(rows)
    result = invoke(import_app, "tracker", path, "--no-flow", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["refs"] == ["ROSE-SG-001", "QUAY-MED-001"]


def test_unreadable_files_are_bad_input(empty: str, tmp_path: Path) -> None:
    path = tmp_path / "tracker.pdf"
    path.write_bytes(b"%PDF-1.7")
    result = invoke(import_app, "tracker", path, "--json")
    assert result.exit_code == 2 and json.loads(result.stderr)["field"] == "file"
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    result = invoke(import_app, "tracker", broken, "--json")
    assert result.exit_code == 2 and "xlsx" in json.loads(result.stderr)["error"]
    result = invoke(import_app, "tracker", tmp_path / "absent.csv", "--json")
    assert result.exit_code == 2
