"""Tracker import: every row read into a plan mapping and checked like a plan file, then
all actions opened in one short write transaction, or none if any row is bad.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from models.action import ActionPlan, RiskDomain, check_plan_ready_for_signoff
from models.errors import DomainError, InvalidInput, NotFound, RuleRefused
from models.lifecycle import Status
from models.people import Role
from models.planfile import plan_from_mapping
from models.risk import RiskLevel
from recovery.adapters import audit_log, db
from recovery.adapters.tablefile import (
    Formula,
    RowError,
    match_headers,
    quote,
)
from recovery.adapters.tablefile import blank as _blank
from recovery.adapters.tables import ActionRow
from recovery.application import action_plans
from recovery.reporting.spreadsheets.layout import (
    BY_KEY,
    COLUMNS,
    FACTORS,
    FIELD_COLUMNS,
    RULE_COLUMNS,
    ImportResult,
    TrackerRejected,
    read_tracker,
)

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
    read, as (column key, what is wrong).

    Slightly over 60 lines: one branch per kind of column, each short; a table of parsers
    would hide which plan field each column fills."""
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


