"""Tracker export: the risk-rated tracker as records, written as CSV (formula-safe) or as
an Excel workbook laid out for a manager.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, select

from models.action import RiskDomain
from models.errors import InvalidInput
from models.lifecycle import Status
from models.people import Role
from models.review import rating_label
from models.risk import RiskLevel
from models.templates import get_template
from recovery.adapters import repository as repo
from recovery.adapters.tables import ActionRow, LocationRow, PersonRow
from recovery.application import summaries
from recovery.reporting import charts
from recovery.reporting.snapshot import Then, as_it_stood, build_snapshot
from recovery.reporting.spreadsheets.layout import (
    COLUMNS,
    FACTORS,
)
from recovery.settings import get_settings

# ---------------------------------------------------------------- export


def _joined(items: list[str]) -> str:
    if any(";" in item for item in items):
        return "\n".join(items)
    return "; ".join(items)


def _steps_text(plan: dict[str, Any]) -> str:
    steps = plan.get("steps") or []
    template = plan.get("template")
    if template:
        try:
            default = [s.model_dump(mode="json") for s in get_template(template).steps]
        except InvalidInput:
            default = None
        if default == steps:
            return ""
    items = [f"{Role(s['role']).label}: {s['action']} -> {s['record']}" for s in steps]
    return "\n".join(items) if any(";" in i for i in items) else "; ".join(items)


def _status_text(row: ActionRow, status: str) -> str:
    """A draft never started says so, since when and why, beside the started ones."""
    if status == Status.DRAFT.value and (row.flow_run_id is None or status != row.status):
        return f"not started: draft since {summaries.opened_on(row):%d/%m/%Y}, no lifecycle run"
    return status.replace("_", " ")


def tracker_records(session: Session, *, as_of: date,
                    location: str | None = None) -> list[dict[str, Any]]:
    """Every action (any status), highest risk first, as one record per row keyed by
    column key, with dates as dates and numbers as numbers."""
    place = repo.get_location(session, location) if location else None
    query = select(ActionRow)
    if place is not None:
        query = query.where(ActionRow.location_id == place.id)
    rows = list(session.exec(query))
    # as of a past date, each action as it stood then (those opened later left out)
    then = as_it_stood(session, rows, as_of) if as_of < get_settings().today() else {
        r.ref: Then(status=r.status, deadline=r.deadline, since=None) for r in rows}
    rows = [r for r in rows if r.ref in then]
    rows.sort(key=lambda r: (RiskLevel(r.risk_level).rank, -r.risk_score, r.ref))
    people = {p.id: p for p in session.exec(select(PersonRow))}
    places = {loc.id: loc for loc in session.exec(select(LocationRow))}
    lines = {line.ref: line for line in build_snapshot(
        session, as_of=as_of, location=place.name if place else None).lines}
    out = []
    for row in rows:
        plan = row.plan
        line = lines.get(row.ref)
        lead, reviewer = people[row.accountable_lead_id], people[row.senior_reviewer_id]
        record: dict[str, Any] = {
            "ref": row.ref, "title": row.title, "location": places[row.location_id].name,
            "domain": RiskDomain(row.risk_domain).label,
            "statements": "; ".join(plan["quality_statements"]),
            "risk_level": row.risk_level, "risk_score": row.risk_score,
            **{k: int(plan["risk"][k]) for k in FACTORS},
            "status": _status_text(row, then[row.ref].status),
            "rating": rating_label(line.rating) if line else "",
            "measured": line.measured if line else None,
            "trend": line.trend if line else "",
            "lead": lead.email, "lead_name": lead.name,
            "reviewer": reviewer.email, "reviewer_name": reviewer.name,
            "cadence": line.cadence if line else summaries.cadence_of(row, as_of).value,
            "next_review": line.next_review_due if line else None,
            "escalated": "yes" if (line.escalated if line else row.escalated) else "no",
            "baseline_issue": plan["baseline"]["issue"],
            "baseline_value": float(plan["baseline"]["value"]),
            "baseline_date": row.baseline_on,
            "target_measure": plan["target"]["measure"],
            "direction": plan["target"]["direction"].replace("_", " "),
            "target_value": float(plan["target"]["value"]),
            "deadline": then[row.ref].deadline,
            "interim_controls": _joined(list(plan.get("interim_controls", []))),
            "template": plan.get("template") or "",
            "steps": _steps_text(plan),
            "framework": plan.get("framework_id") or "",
            "_rag": charts.rag_of(line.rating) if line else "grey",
        }
        out.append(record)
    return out


_FORMULA_START = tuple("=+-@\t\r")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    # a cell Excel would run as a formula is kept as text (the import strips the quote)
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_csv(records: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.header for c in COLUMNS])
    for record in records:
        writer.writerow([_csv_cell(record.get(c.key)) for c in COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")


_FILLS = {
    "red": ("D4351C", "FFFFFF"), "amber": ("F47738", "0B0C0C"),
    "green": ("00703C", "FFFFFF"), "grey": ("B1B4B6", "0B0C0C"),
}
_LEVEL_FILLS = {"high": ("F6D7D2", "942514"), "medium": ("FDE2CF", "7A3A00"),
                "low": ("CCE2D8", "005A30")}


def export_xlsx(records: list[dict[str, Any]], *, provider: str, as_of: date) -> bytes:
    """The tracker workbook: the header row (frozen, filtered, printed on every page), one
    row per record with dates as dates and RAG fills, validation on the factor, domain and
    direction columns, A4 landscape print set-up, and a "Read me" sheet.

    Long on purpose: a straight top-to-bottom description of one sheet, written cell by cell;
    it reads best in the order the sheet appears (openpyxl is imported here, lazily, because
    only the xlsx export needs it)."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import Cell, MergedCell
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)  # a new workbook starts with one worksheet
    sheet.title = "Tracker"
    thin = Side(style="thin", color="B1B4B6")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    header_fill = PatternFill("solid", fgColor="1D70B8")
    cell: Cell | MergedCell
    for index, column in enumerate(COLUMNS, start=1):
        cell = sheet.cell(row=1, column=index, value=column.header)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = header_fill
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        cell.border = border
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.row_dimensions[1].height = 32
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    positions = {c.key: i for i, c in enumerate(COLUMNS, start=1)}
    for r, record in enumerate(records, start=2):
        for c, column in enumerate(COLUMNS, start=1):
            value = record.get(column.key)
            cell = sheet.cell(row=r, column=c)
            cell.value = value if value != "" else None
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # people's text is never a formula
            cell.border = border
            cell.alignment = wrap if column.width >= 28 else top
            if isinstance(value, date):
                cell.number_format = "DD/MM/YYYY"
            elif column.key in {"baseline_value", "target_value", "measured"}:
                cell.number_format = 'General"%"'
        level = _LEVEL_FILLS.get(record["risk_level"])
        if level:
            cell = sheet.cell(row=r, column=positions["risk_level"])
            cell.fill = PatternFill("solid", fgColor=level[0])
            cell.font = Font(bold=True, color=level[1])
        fill, ink = _FILLS[record["_rag"]]
        cell = sheet.cell(row=r, column=positions["rating"])
        if cell.value is None:
            cell.value = "not reviewed"
        cell.fill = PatternFill("solid", fgColor=fill)
        cell.font = Font(bold=True, color=ink)
        if record.get("escalated") == "yes":
            sheet.cell(row=r, column=positions["escalated"]).font = Font(bold=True,
                                                                         color="D4351C")
    last = max(2, len(records) + 1)
    sheet.freeze_panes = "C2"  # the header row and the reference and title stay in view
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{last}"
    spare = last + 200
    factors = DataValidation(type="whole", operator="between", formula1="1", formula2="5",
                             allow_blank=True, showErrorMessage=True,
                             error="A whole number from 1 to 5")
    domains = DataValidation(type="list", allow_blank=True, formula1='"' + ",".join(
        d.label for d in RiskDomain) + '"')
    directions = DataValidation(type="list", allow_blank=True, formula1='"at least,at most"')
    for validation in (factors, domains, directions):
        sheet.add_data_validation(validation)
    for key in FACTORS:
        letter = get_column_letter(positions[key])
        factors.add(f"{letter}2:{letter}{spare}")
    domains.add(f"{get_column_letter(positions['domain'])}2:"
                f"{get_column_letter(positions['domain'])}{spare}")
    directions.add(f"{get_column_letter(positions['direction'])}2:"
                   f"{get_column_letter(positions['direction'])}{spare}")
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    fit, footer = sheet.sheet_properties.pageSetUpPr, sheet.oddFooter
    assert fit is not None and footer is not None  # openpyxl makes both for a new sheet
    fit.fitToPage = True
    sheet.print_title_rows = "1:1"
    footer.left.text = f"{provider}: risk-rated tracker as of {as_of:%d/%m/%Y}"
    footer.right.text = "Page &P of &N"

    notes = book.create_sheet("Read me")
    notes.append(["Column", "What it holds", "Read on import"])
    for cell in notes[1]:
        cell.font = Font(bold=True)
    for column in COLUMNS:
        notes.append([column.header, column.meaning,
                      "required" if column.required else ("yes" if column.imported
                                                          else "no (shown only)")])
    notes.column_dimensions["A"].width = 26
    notes.column_dimensions["B"].width = 90
    notes.column_dimensions["C"].width = 18
    notes.append([])
    notes.append([f"{provider}: exported {as_of:%d/%m/%Y}. Import reads the first sheet "
                  f"(or the one named Tracker); column names match in any case and spacing."])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


class ExportResult(BaseModel):
    format: str
    out: str
    actions: int
    bytes: int


def export_tracker(session: Session, *, fmt: str, as_of: date,
                   location: str | None = None) -> tuple[bytes, int]:
    if fmt not in {"xlsx", "csv"}:
        raise InvalidInput("format", f"'{fmt}' is not xlsx or csv")
    records = tracker_records(session, as_of=as_of, location=location)
    if fmt == "csv":
        return export_csv(records), len(records)
    provider = build_snapshot(session, as_of=as_of).provider
    return export_xlsx(records, provider=provider, as_of=as_of), len(records)


