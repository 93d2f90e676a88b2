"""Action trackers in and out of spreadsheets (xlsx through openpyxl, or CSV).

Import: one row per action. The file is read within bounds (recovery/adapters/tablefile.py); every
row goes through the same validation as a plan file (`models.planfile.plan_from_mapping`,
then `action_plans.PlanChecks`, open_action's checks, and the sign-off readiness check) with
reads only; a file with any bad row imports nothing and reports every bad row (row number,
column, what is wrong). Only then does one short write transaction open every action in
bulk (`action_plans.open_actions`), so other writers wait seconds, not minutes.

Export: the risk-rated tracker as a manager expects it in Excel (header row frozen, RAG
fill colours, dates as dates, sensible column widths, filters), or as CSV. The export
carries every column the import reads, so exporting and importing into an empty database
reproduces the same actions.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, select

from models.action import ActionPlan, RiskDomain, check_plan_ready_for_signoff
from models.errors import DomainError, InvalidInput, NotFound, RuleRefused
from models.lifecycle import Status
from models.people import Role
from models.planfile import plan_from_mapping
from models.review import rating_label
from models.risk import FACTOR_LABELS, RiskLevel
from models.templates import get_template
from recovery.adapters import audit_log, db
from recovery.adapters import repository as repo
from recovery.adapters.tablefile import (
    Column,
    Formula,
    Limits,
    RowError,
    RowsRejected,
    Table,
    iter_errors,
    match_headers,
    quote,
    read_table,
)
from recovery.adapters.tablefile import blank as _blank
from recovery.adapters.tables import ActionRow, LocationRow, PersonRow
from recovery.application import action_plans, summaries
from recovery.reporting import charts
from recovery.reporting.snapshot import Then, as_it_stood, build_snapshot
from recovery.settings import get_settings

FACTORS = tuple(FACTOR_LABELS)  # potential_harm, people_affected, ...

# ---------------------------------------------------------------- the layout


COLUMNS: tuple[Column, ...] = (
    Column("ref", "Ref", 15, imported=False, meaning="Action reference (given on import)"),
    Column("title", "Title", 44, ("action", "action title"),
           meaning="What the action is (optional with a template)"),
    Column("location", "Location", 16, ("home", "service"), required=True,
           meaning="Location name or code, as in the staff directory"),
    Column("domain", "Domain", 16, ("risk domain",),
           meaning="safety, safeguarding, medicines, staffing, care planning or leadership "
                   "control (optional with a template)"),
    Column("statements", "Statements", 28, ("quality statements", "quality statement"),
           meaning="Quality statement ids separated by ; or , (optional with a template)"),
    Column("risk_level", "Risk level", 10, imported=False, meaning="high, medium or low"),
    Column("risk_score", "Risk score", 10, imported=False, meaning="6 to 30"),
    Column("potential_harm", "Potential harm", 10, ("harm",), required=True,
           meaning="1-5"),
    Column("people_affected", "People affected", 10, ("people",), required=True,
           meaning="1-5"),
    Column("likelihood_of_recurrence", "Likelihood of recurrence", 11,
           ("likelihood", "recurrence"), required=True, meaning="1-5"),
    Column("regulatory_impact", "Regulatory impact", 11, ("regulatory",), required=True,
           meaning="1-5"),
    Column("control_strength", "Control strength", 10,
           ("strength of current controls", "controls strength"), required=True,
           meaning="1 strong to 5 absent"),
    Column("status", "Status", 16, imported=False, meaning="Where the action stands"),
    Column("rating", "RAG", 11, ("rating",), imported=False,
           meaning="Progress against the trajectory at the last review"),
    Column("measured", "Measured", 10, imported=False,
           meaning="Measured at the last review (%)"),
    Column("trend", "Trend", 11, imported=False, meaning="Since a week earlier"),
    Column("lead", "Lead", 28, ("accountable lead", "lead email"), required=True,
           meaning="Accountable lead's email"),
    Column("lead_name", "Lead name", 18, imported=False),
    Column("reviewer", "Reviewer", 28, ("senior reviewer", "reviewer email"), required=True,
           meaning="Senior reviewer's email"),
    Column("reviewer_name", "Reviewer name", 18, imported=False),
    Column("cadence", "Review frequency", 11, imported=False, meaning="daily, weekly, monthly"),
    Column("next_review", "Next review due", 12, imported=False),
    Column("escalated", "Escalated", 10, imported=False),
    Column("baseline_issue", "Baseline issue", 44, ("issue",),
           meaning="What is wrong now (optional with a template)"),
    Column("baseline_value", "Baseline value", 10, ("baseline",), required=True,
           meaning="% now"),
    Column("baseline_date", "Baseline date", 12, ("baseline as of", "baseline on"),
           required=True, meaning="DD/MM/YYYY"),
    Column("target_measure", "Target measure", 40, ("measure",),
           meaning="What is measured (optional with a template)"),
    Column("direction", "Direction", 10, ("target direction",),
           meaning="at least or at most (optional with a template)"),
    Column("target_value", "Target value", 10, ("target",),
           meaning="% to reach (optional with a template)"),
    Column("deadline", "Deadline", 12, ("target deadline", "due", "due date"),
           meaning="DD/MM/YYYY (optional with a template)"),
    Column("interim_controls", "Interim controls", 48, ("controls",),
           meaning="Separated by ; or one per line; at least one for a high-risk action"),
    Column("template", "Template", 30, meaning="Optional: a built-in template id"),
    Column("steps", "Steps", 48,
           meaning="Optional with a template: 'role: action -> record', separated by ; or "
                   "one per line"),
    Column("framework", "Framework", 14, ("framework id",),
           meaning="Optional: quality statement framework (default cqc-saf-2024)"),
)
BY_KEY = {c.key: c for c in COLUMNS}

#: A plan field (as InvalidInput names it) -> the tracker column it came from.
FIELD_COLUMNS = {
    "location": "location", "title": "title", "risk_domain": "domain",
    "quality_statements": "statements", "framework_id": "framework",
    "accountable_lead": "lead", "senior_reviewer": "reviewer", "template": "template",
    "baseline.issue": "baseline_issue", "baseline.value": "baseline_value",
    "baseline.as_of": "baseline_date", "baseline": "baseline_value",
    "target.measure": "target_measure", "target.direction": "direction",
    "target.value": "target_value", "target.deadline": "deadline",
    "interim_controls": "interim_controls", "steps": "steps",
    **{f"risk.{k}": k for k in FACTORS},
}
RULE_COLUMNS = {"separation of duties": "reviewer", "interim controls": "interim_controls"}


# ---------------------------------------------------------------- results


#: The tracker's name for a file refused row by row (recovery/adapters/tablefile.py).
TrackerRejected = RowsRejected


class ImportResult(BaseModel):
    file: str
    rows: int
    refs: list[str]
    dry_run: bool
    ignored_columns: list[str]
    sha256: str


# ---------------------------------------------------------------- reading files

#: A tracker is read within these bounds (rows below the header, blank ones included).
LIMITS = Limits()
MAX_ROWS = LIMITS.rows


def read_tracker(data: bytes, name: str) -> Table:
    """The tracker's table: the sheet named Tracker (any case) or the first, or the CSV."""
    return read_table(data, name, LIMITS, sheet="tracker")


# ---------------------------------------------------------------- cells to a plan mapping


class _CellError(Exception):
    pass


def _text(value: Any) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    # an export protects text that Excel would run as a formula with a leading quote
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
        text = text[1:]
    return text


def _items(value: Any, *, commas: bool = False) -> list[str]:
    text = _text(value)
    if text is None:
        return []
    separator = r"[;,]" if commas else r";"
    parts = text.splitlines() if "\n" in text else re.split(separator, text)
    return [p.strip() for p in parts if p.strip()]


def _whole(value: Any) -> int:
    if isinstance(value, bool):
        raise _CellError("must be a whole number from 1 to 5")
    if isinstance(value, int):
        number = value
    else:
        try:
            as_float = float(str(value).strip())
        except ValueError:
            raise _CellError(f"{quote(value)} is not a whole number from 1 to 5") from None
        if not as_float.is_integer():
            raise _CellError(f"{quote(value)} is not a whole number from 1 to 5")
        number = int(as_float)
    if not 1 <= number <= 5:
        raise _CellError(f"{number} is not from 1 to 5")
    return number


def _percent(value: Any) -> float:
    if isinstance(value, bool):
        raise _CellError("must be a percentage from 0 to 100")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().rstrip("%").strip()
        try:
            number = float(text)
        except ValueError:
            raise _CellError(f"{quote(value)} is not a percentage (a number from 0 to 100)"
                             ) from None
    if number != number or not 0 <= number <= 100:
        raise _CellError(f"{quote(value)} is not a percentage from 0 to 100")
    return number


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for pattern in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise _CellError(f"{quote(value)} is not a date (use DD/MM/YYYY, e.g. 26/11/2026)")


def _direction(value: Any) -> str:
    text = re.sub(r"[\s_\-]+", " ", str(value).strip().lower())
    if text in {"at least", ">=", "≥", "min", "minimum", "increase"}:
        return "at_least"
    if text in {"at most", "<=", "≤", "max", "maximum", "decrease", "reduce"}:
        return "at_most"
    raise _CellError(f"{quote(value)} is not 'at least' or 'at most'")


def _domain(value: Any) -> str:
    text = re.sub(r"[\s\-&]+", "_", str(value).strip().lower()).strip("_")
    text = text.replace("_and_", "_")
    if text in {d.value for d in RiskDomain}:
        return text
    allowed = ", ".join(d.label for d in RiskDomain)
    raise _CellError(f"{quote(value)} is not a risk domain ({allowed})")


_ROLES = {r.value: r for r in Role} | {r.label: r for r in Role}


def _steps(value: Any) -> list[dict[str, str]]:
    out = []
    for item in _items(value):
        match = re.fullmatch(r"\s*([^:]+?)\s*:\s*(.+?)\s*->\s*(.+?)\s*", item)
        if not match:
            raise _CellError(f"write each step as 'role: action -> record' (not {quote(item)})")
        role = match.group(1).strip().lower().replace("_", " ")
        if role not in _ROLES:
            raise _CellError(f"{quote(match.group(1))} is not a role")
        out.append({"role": _ROLES[role].value, "action": match.group(2),
                    "record": match.group(3)})
    return out


def _row_mapping(cells: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A plan mapping (as a plan file would give it) from one row's cells by column key;
    empty cells are left out so a template can fill them. Also every cell that cannot be
    read, as (column key, what is wrong)."""
    errors: list[tuple[str, str]] = []
    plan: dict[str, Any] = {}
    for key, value in list(cells.items()):
        if isinstance(value, Formula):
            # a formula's result is what Excel last showed, not what a person gave; and a
            # formula kept as text could run when the tracker is opened again
            errors.append((key, f"holds a formula ({quote(value)}): the tracker reads "
                                f"values (in Excel: copy, then Paste Special > Values)"))
            cells = {**cells, key: None}

    def read(key: str, convert: Any) -> Any:
        value = cells.get(key)
        if _blank(value):
            return None
        try:
            return convert(value)
        except _CellError as exc:
            errors.append((key, str(exc)))
            return None

    for key, name in (("location", "location"), ("title", "title"),
                      ("lead", "accountable_lead"), ("reviewer", "senior_reviewer"),
                      ("template", "template"), ("framework", "framework_id")):
        text = read(key, _text)
        if text is not None:
            plan[name] = text
    domain = read("domain", _domain)
    if domain:
        plan["risk_domain"] = domain
    statements = _items(cells.get("statements"), commas=True)
    if statements:
        plan["quality_statements"] = statements
    risk = {}
    for key in FACTORS:
        value = read(key, _whole)
        if value is None and _blank(cells.get(key)):
            errors.append((key, "is required (a whole number from 1 to 5)"))
        if value is not None:
            risk[key] = value
    plan["risk"] = risk
    baseline: dict[str, Any] = {}
    for key, name, convert in (("baseline_issue", "issue", _text),
                               ("baseline_value", "value", _percent),
                               ("baseline_date", "as_of", _day)):
        value = read(key, convert)
        if value is not None:
            baseline[name] = value
    plan["baseline"] = baseline
    target: dict[str, Any] = {}
    for key, name, convert in (("target_measure", "measure", _text),
                               ("direction", "direction", _direction),
                               ("target_value", "value", _percent),
                               ("deadline", "deadline", _day)):
        value = read(key, convert)
        if value is not None:
            target[name] = value
    plan["target"] = target
    plan["interim_controls"] = _items(cells.get("interim_controls"))
    steps = read("steps", _steps)
    if steps:
        plan["steps"] = steps
    elif "template" not in plan and _blank(cells.get("steps")):
        errors.append(("steps", "give a template or the steps ('role: action -> record')"))
    return plan, errors


def _column_of(field_name: str, rule: str) -> str:
    if field_name == "target" and "deadline" in rule:
        return "deadline"
    if field_name in FIELD_COLUMNS:
        return FIELD_COLUMNS[field_name]
    head = field_name.split(".")[0]
    for key in (field_name.rsplit(".", 1)[0], head):
        if key in FIELD_COLUMNS:
            return FIELD_COLUMNS[key]
    if field_name.startswith("risk"):
        return "potential_harm"
    return field_name


def _problems(exc: DomainError) -> list[tuple[str, str]]:
    if isinstance(exc, InvalidInput | NotFound):
        return [(_column_of(exc.field, exc.rule), exc.rule)]
    if isinstance(exc, RuleRefused):
        return [(RULE_COLUMNS.get(exc.rule, exc.rule), reason) for reason in exc.reasons]
    return [("row", str(exc))]


# ---------------------------------------------------------------- import


def import_tracker(data: bytes, *, name: str, dry_run: bool = False,
                   actor: str = "tracker-import") -> ImportResult:
    """Read the file and check every row with reads only; then, unless dry_run, open
    every action in one short write transaction, all or nothing. Raises TrackerRejected
    listing every bad row (InvalidInput for a file that cannot be read or passes a
    bound): then nothing is written."""
    table = read_tracker(data, name)
    matched, ignored, header_errors = match_headers(table, COLUMNS)
    if header_errors:
        raise TrackerRejected(header_errors, rows=len(table.rows))
    if not table.rows:
        raise InvalidInput("file", "has a header row but no actions")
    headers = {c.key: table.headers[i] for i, c in matched.items()}

    def shown(key: str) -> str:
        return headers.get(key) or (BY_KEY[key].header if key in BY_KEY else key)

    errors: list[RowError] = []
    plans: list[tuple[int, ActionPlan]] = []
    for number, cells in table.rows:
        by_key = {column.key: cells[i] if i < len(cells) else None
                  for i, column in matched.items()}
        mapping, cell_errors = _row_mapping(by_key)
        if cell_errors:
            errors += [RowError(row=number, column=shown(k), error=e) for k, e in cell_errors]
            continue
        try:
            plans.append((number, plan_from_mapping(mapping)))
        except InvalidInput as exc:
            errors += [RowError(row=number, column=shown(k), error=e) for k, e in _problems(exc)]

    checked: list[tuple[int, action_plans.CheckedPlan]] = []
    with db.reading() as session:
        checks = action_plans.PlanChecks(session)
        open_titles = _open_titles(session)
        for number, plan in plans:
            try:
                one = checks.check(plan)
                check_plan_ready_for_signoff(plan, one.rating.level == RiskLevel.HIGH)
                _refuse_duplicate(one, open_titles, number)
            except DomainError as exc:
                errors += [RowError(row=number, column=shown(k), error=e)
                           for k, e in _problems(exc)]
                continue
            checked.append((number, one))
        if errors:
            raise TrackerRejected(errors, rows=len(table.rows))
        if dry_run:
            refs = [ref for _, ref in action_plans.next_refs(session, [c for _, c in checked])]
    digest = hashlib.sha256(data).hexdigest()
    if not dry_run:
        refs = _write(checked, actor=actor, file=Path(name).name, digest=digest,
                      rows=len(table.rows), title=shown("title"))
    return ImportResult(file=Path(name).name, rows=len(table.rows), refs=refs, dry_run=dry_run,
                        ignored_columns=ignored, sha256=digest)


def _write(checked: list[tuple[int, action_plans.CheckedPlan]], *, actor: str, file: str,
           digest: str, rows: int, title: str) -> list[str]:
    """The one write transaction: everything was checked before it began; it only looks
    again for the same action opened meanwhile (another import of the same file)."""
    plans = [c for _, c in checked]
    new = action_plans.new_actions(plans, actor=actor)
    with db.unit_of_work() as session:
        action_plans.lock_locations(session, [c.location.id for c in plans
                                          if c.location.id is not None])
        open_titles = _open_titles(session)
        clashes: list[RowError] = []
        for number, one in checked:
            try:
                _refuse_duplicate(one, open_titles, None)
            except InvalidInput as exc:
                clashes.append(RowError(row=number, column=title, error=exc.rule))
        if clashes:
            raise TrackerRejected(clashes, rows=rows)
        refs = action_plans.open_actions(session, new)
        audit_log.append(session, actor=actor, event="tracker.imported", action_ref=None,
                         details={"file": file, "sha256": digest, "rows": rows,
                                  "actions": refs})
    return refs


#: (location id, title in lower case) -> what already holds it: an open action's ref and
#: status, or the earlier row of the file being imported.
_Titles = dict[tuple[int, str], str]


def _open_titles(session: Session) -> _Titles:
    return {(place, title.strip().lower()): f"{ref} ({status.replace('_', ' ')})"
            for place, title, ref, status in session.exec(
                select(ActionRow.location_id, ActionRow.title, ActionRow.ref,
                       ActionRow.status).where(ActionRow.status != Status.CLOSED.value))}


def _refuse_duplicate(one: action_plans.CheckedPlan, titles: _Titles, number: int | None) -> None:
    """An action already open at the location under the same title (or an earlier row of
    the file) is refused; the row's title is then taken, for the rows after it."""
    assert one.location.id is not None
    key = (one.location.id, one.plan.title.strip().lower())
    if key in titles:
        raise InvalidInput("title", f"{one.location.name} already has this action: "
                                    f"{titles[key]}")
    if number is not None:
        titles[key] = f"the one in row {number} of this file"


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


__all__ = ["COLUMNS", "ImportResult", "RowError", "TrackerRejected", "export_tracker",
           "import_tracker", "iter_errors", "read_table", "tracker_records"]
