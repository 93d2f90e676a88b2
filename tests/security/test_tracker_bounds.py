"""A tracker file cannot hold the database (issue 15, part 2): the file is read within
bounds of what is really in it, checked with reads only, and written in one short
transaction while other writers carry on.

The refusals themselves are rows of the corpus (tests/security/corpus.py, TRACKER); here:
the timings, the bounds of the reusable reader, what is read as it should be, and the
import on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlmodel import col, select

from models.errors import InvalidInput
from models.planfile import PeopleFile
from recovery.adapters import audit_log, db
from recovery.adapters.tablefile import Formula, Limits, read_table
from recovery.adapters.tables import ActionRow
from recovery.application import registry
from recovery.settings import get_settings
from tests.integration.helpers import cli
from tests.security.conftest import World
from tests.security.corpus import TRACKER_HEADER, tracker_row, workbook

COLUMNS = TRACKER_HEADER.split(",")


def _csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows([[row.get(c, "") for c in COLUMNS] for row in rows])
    return buffer.getvalue().encode()


def _rows(today: date, count: int, title: str = "Night checks recorded") -> list[dict[str, str]]:
    return [tracker_row(today, Title=f"{title} ({n + 1})") for n in range(count)]


# ---------------------------------------------------------------- the crafted file


def test_a_whole_sheet_workbook_is_refused_in_under_two_seconds(
    sqlite_world: World, tmp_path: Path
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    today = get_settings().today()
    sheet.append(COLUMNS)
    sheet.append([tracker_row(today)[c] for c in COLUMNS])
    sheet["XFD1048576"] = ""  # one blank cell: a sheet of 16,384 by 1,048,576
    path = tmp_path / "crafted.xlsx"
    book.save(path)
    assert path.stat().st_size < 8000
    before = sqlite_world.dump()

    started = time.perf_counter()
    result = cli("import", "tracker", str(path), "--dry-run", "--json")
    elapsed = time.perf_counter() - started

    assert result.exit_code == 2, result.stderr
    assert result.error_json() == {
        "field": "file",
        "error": "has more than 5000 rows below the header, blank rows included "
                 "(the row bound)"}
    assert elapsed < 2, f"refused after {elapsed:.1f} s"
    assert sqlite_world.dump() == before


def test_a_declared_dimension_is_not_trusted(sqlite_world: World, tmp_path: Path) -> None:
    """A sheet that says it spans A1:XFD1048576 but holds two rows reads as two rows."""
    original = zipfile.ZipFile(io.BytesIO(workbook()(get_settings().today())))
    path = tmp_path / "dimension.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in original.infolist():
            data = original.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data, swapped = re.subn(rb'<dimension ref="[^"]*"/>',
                                        b'<dimension ref="A1:XFD1048576"/>', data)
                assert swapped == 1
            out.writestr(info, data)
    started = time.perf_counter()
    result = cli("import", "tracker", str(path), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert time.perf_counter() - started < 2
    assert result.json()["rows"] == 1


# ---------------------------------------------------------------- the reader's bounds


def _sheet(rows: list[list[Any]], change: Any = None) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    if change:
        change(book.active)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_blank_rows_count_toward_the_row_bound(suffix: str) -> None:
    limits = Limits(rows=3)
    rows: list[list[Any]] = [["Title"], ["a"], [None], [None], ["b"]]
    data = (_sheet(rows) if suffix == ".xlsx" else
            b"Title\r\na\r\n\r\n\r\nb\r\n")
    with pytest.raises(InvalidInput, match=r"more than 3 rows below the header, blank rows "
                                           r"included \(the row bound\)"):
        read_table(data, f"t{suffix}", limits)
    table = read_table(data, f"t{suffix}", Limits(rows=4))
    assert [(n, cells[0]) for n, cells in table.rows] == [(2, "a"), (5, "b")]


def test_the_column_and_cell_bounds_name_themselves() -> None:
    wide = _sheet([["Title"], ["a"]], lambda s: s.cell(row=2, column=12, value=" "))
    with pytest.raises(InvalidInput, match=r"row 2 reaches column L: more than 10 columns "
                                           r"\(the column bound\)"):
        read_table(wide, "t.xlsx", Limits(columns=10))
    full = _sheet([["A", "B", "C"], [1, 2, 3], [4, 5, 6]])
    with pytest.raises(InvalidInput, match=r"more than 8 filled cells \(the cell bound\)"):
        read_table(full, "t.xlsx", Limits(cells=8))
    assert len(read_table(full, "t.xlsx", Limits(cells=9)).rows) == 2
    long = _sheet([["Title"], ["x" * 101]])
    with pytest.raises(InvalidInput, match=r"row 2 has a cell of more than 100 characters "
                                           r"\(the cell size bound\)"):
        read_table(long, "t.xlsx", Limits(cell_chars=100))


def test_the_byte_bounds_are_checked_before_openpyxl_reads_the_workbook() -> None:
    data = _sheet([["Title"], ["a"]])
    with pytest.raises(InvalidInput, match=r"larger than 0 MB \(the file size bound\)"):
        read_table(data, "t.xlsx", Limits(file_bytes=len(data) - 1))
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    with pytest.raises(InvalidInput, match="the bound on bytes after decompression"):
        read_table(data, "t.xlsx", Limits(unpacked_bytes=unpacked - 1))
    assert read_table(data, "t.xlsx", Limits(unpacked_bytes=unpacked)).headers == ["Title"]
    with pytest.raises(InvalidInput, match="the bound on a workbook's members"):
        read_table(data, "t.xlsx", Limits(members=3))


def test_a_formula_arrives_marked_never_as_its_cached_result() -> None:
    data = _sheet([["Title", "Value"], ['=HYPERLINK("http://x.example","go")', "=1+1"]])
    (_, cells), = read_table(data, "t.xlsx").rows
    assert all(isinstance(c, Formula) for c in cells)
    assert cells[0].startswith("=HYPERLINK(")


# ---------------------------------------------------------------- what is read


def test_uk_dates_typed_as_text_are_read_day_first(sqlite_world: World, tmp_path: Path) -> None:
    today = get_settings().today()
    baseline = today - timedelta(days=3)
    deadline = today + timedelta(days=40)
    assert deadline.day != deadline.month
    path = tmp_path / "dates.xlsx"
    path.write_bytes(workbook(lambda d: tracker_row(
        d, Title="Dates as text", **{"Baseline Date": baseline.strftime("%d/%m/%Y"),
                                     "Deadline": deadline.strftime("%d/%m/%Y")}))(today))
    result = cli("import", "tracker", str(path), "--no-flow", "--json")
    assert result.exit_code == 0, result.stderr
    with db.unit_of_work() as session:
        row = session.exec(select(ActionRow).where(ActionRow.title == "Dates as text")).one()
    assert (row.baseline_on, row.deadline) == (baseline, deadline)


def test_formula_text_in_a_csv_is_stored_inert_and_exported_protected(
    sqlite_world: World, tmp_path: Path
) -> None:
    today = get_settings().today()
    payloads = ['=HYPERLINK("http://127.0.0.1:9/x","Open")', "@SUM(1+1)*cmd|' /C calc'!A0",
                "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0"]
    path = tmp_path / "formulas.csv"
    path.write_bytes(_csv([tracker_row(today, Title=p) for p in payloads]))
    result = cli("import", "tracker", str(path), "--no-flow", "--json")
    assert result.exit_code == 0, result.stderr
    with db.unit_of_work() as session:
        stored = set(session.exec(select(ActionRow.title)).all())
    assert set(payloads) <= stored  # the text as typed, never run

    out_csv, out_xlsx = tmp_path / "out.csv", tmp_path / "out.xlsx"
    assert cli("export", "tracker", "--out", str(out_csv)).exit_code == 0
    assert cli("export", "tracker", "--out", str(out_xlsx)).exit_code == 0
    titles = [r["Title"] for r in csv.DictReader(io.StringIO(
        out_csv.read_bytes().decode("utf-8-sig")))]
    for payload in payloads:
        assert "'" + payload in titles  # Excel shows it as text
    sheet = openpyxl.load_workbook(out_xlsx)["Tracker"]
    cells = [row[1] for row in sheet.iter_rows(min_row=2)]
    written = {c.value: c.data_type for c in cells}
    assert {written[p] for p in payloads} == {"s"}  # strings, not formulas


# ---------------------------------------------------------------- the write lock


def _writer(stop: threading.Event, waits: list[float], failures: list[str]) -> None:
    """Another writer: adds a person through the services every 50 ms, with the normal
    busy timeout, and records how long each write took."""
    n = 0
    while not stop.is_set():
        n += 1
        started = time.perf_counter()
        try:
            with db.unit_of_work() as session:
                registry.import_people(session, PeopleFile.model_validate({
                    "provider": "Harbour Care Group", "people": [{
                        "name": f"Agency Carer {n}", "email": f"agency{n}@rose.example",
                        "role": "care_worker", "location": "Rose House"}]}))
            waits.append(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - a refused write is what this counts
            failures.append(repr(exc))
        time.sleep(0.05)


@pytest.mark.slow
def test_a_4000_row_import_holds_the_write_lock_for_seconds(
    sqlite_world: World, tmp_path: Path
) -> None:
    assert get_settings().db_busy_timeout == 10  # the normal busy timeout
    path = tmp_path / "large.csv"
    path.write_bytes(_csv(_rows(get_settings().today(), 4000)))
    waits: list[float] = []
    failures: list[str] = []
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(stop, waits, failures))
    writer.start()
    try:
        result = cli("import", "tracker", str(path), "--no-flow", "--json")
        during = len(waits)
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.stderr[:2000]
    assert len(result.json()["refs"]) == 4000
    assert not failures, failures[:3]
    assert during >= 5, "the writer kept writing while the import ran"
    assert max(waits) < 5, f"a write waited {max(waits):.1f} s for the import's lock"
    with db.unit_of_work() as session:
        assert len(session.exec(select(ActionRow.id)).all()) == 4001
        assert audit_log.verify(session).ok


# ---------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_an_import_on_postgresql_writes_in_bulk_and_refuses_it_twice(
    postgres_world: World, tmp_path: Path
) -> None:
    today = get_settings().today()
    path = tmp_path / "pg.csv"
    path.write_bytes(_csv(_rows(today, 120, title="PostgreSQL import")))
    dry = cli("import", "tracker", str(path), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    result = cli("import", "tracker", str(path), "--no-flow", "--json")
    assert result.exit_code == 0, result.stderr
    refs = result.json()["refs"]
    assert refs == dry.json()["refs"] and len(set(refs)) == 120
    with db.unit_of_work() as session:
        rows = {r.ref: r for r in session.exec(select(ActionRow).where(
            col(ActionRow.title).startswith("PostgreSQL import")))}
        assert audit_log.verify(session).ok
    assert set(rows) == set(refs)
    assert [rows[r].title for r in refs] == [f"PostgreSQL import ({n + 1})" for n in range(120)]

    before = postgres_world.dump()
    again = cli("import", "tracker", str(path), "--no-flow", "--json")
    assert again.exit_code == 2
    errors = json.loads(again.stderr)["errors"]
    assert len(errors) == 120 and {e["column"] for e in errors} == {"Title"}
    assert postgres_world.dump() == before


@pytest.mark.parametrize("command", [
    ("export", "tracker", "--out", "{tmp}/tracker.xlsx"),
    ("report", "governance", "--out", "{tmp}/governance.md"),
])
def test_an_export_or_a_pack_reads_while_another_writer_holds_the_lock(
    sqlite_world: World, tmp_path: Path, command: tuple[str, ...]
) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.unit_of_work():  # BEGIN IMMEDIATE: the write lock, held until released
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=hold)
    writer.start()
    try:
        assert holding.wait(10)
        started = time.perf_counter()
        result = cli(*(part.format(tmp=tmp_path) for part in command))
        elapsed = time.perf_counter() - started
    finally:
        release.set()
        writer.join()
    assert result.exit_code == 0, result.stderr
    assert elapsed < 5, f"waited {elapsed:.1f} s for the writer"


def test_flow_runs_are_started_only_after_the_import_is_written(
    sqlite_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --no-flow the runs are started once the write transaction has committed:
    with no Prefect server to start them, the actions stay as written drafts."""
    monkeypatch.setenv("RECOVERY_PREFECT_API_URL", "http://127.0.0.1:9/api")
    # an earlier in-process CLI call may have left the worker's shared Prefect server in
    # PREFECT_API_URL (prefect_api.api_url sets it for the process), which wins over ours
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    get_settings.cache_clear()
    path = tmp_path / "flows.csv"
    path.write_bytes(_csv(_rows(get_settings().today(), 3, title="Started after")))
    result = cli("import", "tracker", str(path), "--json")
    # written, then told plainly that nothing started: exit 4, one line naming the way on
    assert result.exit_code == 4, result.stderr
    data = result.json()
    assert len(data["refs"]) == 3
    assert "3 of 3 actions stay drafts (no Prefect server answers at" in result.stderr
    assert "recovery action start ROSE-SF-001" in result.stderr
    with db.unit_of_work() as session:
        statuses = session.exec(select(ActionRow.status).where(
            col(ActionRow.ref).in_(data["refs"]))).all()
    assert statuses == ["draft"] * 3
