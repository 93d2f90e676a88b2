"""Evidence in bulk: `recovery import evidence FILE` and the import-evidence deployment.

A provider keeps its evidence where its systems put it (a care-plan audit tool's export,
the eMAR system's missed-signature report, a rota sample, a survey summary). One row of
such a file is one evidence item (docs/evidence-format.md). The file is read within
bounds (recovery/adapters/tablefile.py); every row is checked with reads only, through the same
rules as one item typed in (`evidence_gate.check_evidence`: the action open, the recorder in
the staff directory, `models.evidence.new_evidence`), and held to a reference's shape
(`models.evidence.check_imported_reference`: summaries, not records). A file with any bad
row writes nothing and lists every bad row. Only then does one short write transaction
add the new items in bulk, each with its `evidence.added` audit entry.

Idempotent: an item whose action already holds one with the same natural key
(`models.evidence.natural_key`: source, observed on, reference) and the same value and
sample size is already held and not added again, so the same file, or an export that
overlaps last week's, adds nothing twice. With another value or sample size it is refused:
an import adds items, it never changes one.

No message repeats what a cell holds (only row numbers, column names and the rule): a
file can carry a person's details by mistake, and the deployment's messages reach Prefect.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.dates import DATE_HELP, parse_day
from models.errors import InvalidInput, NotFound, RuleRefused
from models.evidence import (
    MAX_REFERENCE_LENGTH,
    EvidenceSource,
    check_imported_reference,
    natural_key,
)
from models.lifecycle import Status
from models.text import text_field
from recovery.adapters import audit_log, db
from recovery.adapters import repository as repo
from recovery.adapters.tablefile import (
    Column,
    Formula,
    Limits,
    RowError,
    RowsRejected,
    blank,
    match_headers,
    read_table,
)
from recovery.adapters.tables import ActionRow, EvidenceRow, PersonRow
from recovery.application import evidence_gate, transitions
from recovery.settings import get_settings

#: An evidence file is read within these bounds: a year of a large home's eMAR exceptions
#: fits, a whole-sheet workbook does not (docs/evidence-format.md).
LIMITS = Limits(rows=50_000, columns=30, cells=500_000, unpacked_bytes=80 * 1024 * 1024)

COLUMNS: tuple[Column, ...] = (
    Column("action", "Action", aliases=("action ref", "action reference", "ref"),
           required=True, meaning="The action's reference, e.g. ROSE-SG-001"),
    Column("source", "Source", aliases=("evidence source",), required=True,
           meaning="care records, safeguarding logs, medicines records, audits, feedback, "
                   "staff practice, incident trends, rota evidence or governance minutes"),
    Column("value", "Value", aliases=("value %", "value (%)", "measured", "percentage"),
           meaning="The measured percentage, 0 to 100 (optional)"),
    Column("sample", "Sample size", aliases=("sample", "sample n"),
           meaning="How many records, shifts or people the value was taken from (a whole "
                   "number; required with a value)"),
    Column("observed_on", "Observed on", aliases=("observed", "date observed",
                                                  "observed date", "date"),
           required=True, meaning=f"The day it was observed: {DATE_HELP}"),
    Column("reference", "Reference", aliases=("record reference", "where the record lives",
                                              "record"),
           required=True, meaning="Where the record lives, in a few words; never a copy "
                                  "of it"),
    Column("recorded_by", "Recorded by", aliases=("recorder", "recorded by email"),
           meaning="The email of the one who recorded it (default: --by)"),
)

#: Why a column the format does not know refuses the file.
UNKNOWN_COLUMN = ("is not a column of the evidence format: an import takes summaries, not "
                  "records (a person's details stay in the record the reference points "
                  "at); remove the column (docs/evidence-format.md)")
_FORMULA = "holds a formula: the import reads values (in Excel: copy, then Paste Special > "\
           "Values)"
#: Text Excel would run as a formula when the evidence is exported and opened again.
_FORMULA_START = tuple("=+-@")
_SOURCES = ", ".join(s.label for s in EvidenceSource)
_SOURCE_VALUES = frozenset(s.value for s in EvidenceSource)


class Tally(BaseModel):
    """What one action's items of one source came to: the rows of the deployment's table
    artifact (no references: they can point at a person's record)."""

    action: str
    source: str
    pillar: str
    new: int = 0
    already_held: int = 0
    first_observed: date
    last_observed: date


class EvidenceImport(BaseModel):
    file: str
    sha256: str
    rows: int
    new: int
    already_held: int
    refused: int
    dry_run: bool
    tallies: list[Tally]


class _CellError(Exception):
    pass


@dataclass(frozen=True)
class _Cells:
    """One row's cells, read into values (nothing checked against the database yet)."""

    number: int
    action: str
    source: str
    value: float | None
    sample: int | None
    observed_on: date
    reference: str
    recorded_by: str


@dataclass(frozen=True)
class _Item:
    number: int
    checked: evidence_gate.CheckedEvidence

    @property
    def key(self) -> tuple[int, tuple[str, date, str]]:
        return self.checked.action_id, natural_key(self.checked.item)

    @property
    def measure(self) -> tuple[float | None, int | None]:
        return self.checked.item.value, self.checked.item.sample_size


# ---------------------------------------------------------------- cells to values


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _source(value: Any) -> str:
    text = "_".join(_text(value).lower().replace("-", " ").split())
    if text not in _SOURCE_VALUES:
        raise _CellError(f"is not an evidence source ({_SOURCES})")
    return text


def _number(value: Any, *, what: str) -> float:
    if isinstance(value, bool):
        raise _CellError(f"is not {what}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(_text(value).rstrip("%").strip())
    except ValueError:
        raise _CellError(f"is not {what}") from None


def _percent(value: Any) -> float:
    number = _number(value, what="a percentage (a number from 0 to 100)")
    if number != number or not 0 <= number <= 100:
        raise _CellError("is not a percentage from 0 to 100")
    return number


def _sample(value: Any) -> int:
    number = _number(value, what="a whole number")
    if number != number or not number.is_integer():
        raise _CellError("is not a whole number")
    return int(number)


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return parse_day(value, "observed_on")
        except InvalidInput:
            pass
    raise _CellError(f"is not a date: give it as {DATE_HELP}")


def _reference(value: Any) -> str:
    text = _text(value)
    if text.startswith(_FORMULA_START):
        raise _CellError("starts like a formula (=, +, - or @): say where the record lives "
                         "in words")
    return text


_CONVERT = {"action": _text, "source": _source, "value": _percent, "sample": _sample,
            "observed_on": _day, "reference": _reference, "recorded_by": _text}
_OPTIONAL = {"value", "sample", "recorded_by"}


def _read_row(number: int, cells: dict[str, Any], by: str | None
              ) -> tuple[_Cells | dict[str, Any], list[tuple[str, str]]]:
    """The row's values, or (when a cell cannot be read) those that could, and what is
    wrong with the others."""
    values: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for key, convert in _CONVERT.items():
        value = cells.get(key)
        if isinstance(value, Formula):
            errors.append((key, _FORMULA))
        elif blank(value):
            if key == "recorded_by" and by:
                values[key] = by
            elif key == "recorded_by":
                errors.append((key, "is required: a Recorded by column, or --by"))
            elif key in _OPTIONAL:
                values[key] = None
            else:
                errors.append((key, "is required"))
        else:
            try:
                values[key] = convert(value)
            except _CellError as exc:
                errors.append((key, str(exc)))
    if errors:
        return values, errors
    return _Cells(number=number, **values), []


# ---------------------------------------------------------------- checks (reads only)


def _lookups(session: Session, rows: list[dict[str, Any]]
             ) -> tuple[dict[str, ActionRow | str], dict[str, PersonRow | str]]:
    """Each distinct action reference and recorder, looked up once as add_evidence looks
    them up: the row, or why not (in words that do not repeat the cell)."""
    actions: dict[str, ActionRow | str] = {}
    for ref in {repo.normalise_ref(r["action"]) for r in rows if r.get("action")}:
        try:
            actions[ref] = repo.get_action(session, ref)
        except NotFound:
            actions[ref] = "no action has this reference (see `recovery action list`)"
    people: dict[str, PersonRow | str] = {}
    for email in {r["recorded_by"] for r in rows if r.get("recorded_by")}:
        try:
            people[email] = repo.get_person(session, email, field="recorded_by")
        except NotFound:
            people[email] = "no one with this email is in the staff directory"
        except InvalidInput:
            people[email] = "is not one email address like name@example.org (plain ASCII)"
    return actions, people


def _partial_row(values: dict[str, Any], actions: dict[str, ActionRow | str],
                 people: dict[str, PersonRow | str]) -> list[tuple[str, str]]:
    """What else is wrong with a row some of whose cells could not be read: its action,
    its recorder, its reference's shape."""
    errors: list[tuple[str, str]] = []
    if values.get("action"):
        found = actions[repo.normalise_ref(values["action"])]
        if isinstance(found, str):
            errors.append(("action", found))
    if values.get("recorded_by") and isinstance(people[values["recorded_by"]], str):
        errors.append(("recorded_by", str(people[values["recorded_by"]])))
    if values.get("reference"):
        try:
            check_imported_reference(text_field("reference", values["reference"],
                                                MAX_REFERENCE_LENGTH, one_line=True))
        except InvalidInput as exc:
            errors.append(("reference", exc.rule))
    return errors


def _check_row(row: _Cells, actions: dict[str, ActionRow | str],
               people: dict[str, PersonRow | str], today: date
               ) -> tuple[_Item | None, list[tuple[str, str]]]:
    action, person = actions[repo.normalise_ref(row.action)], people[row.recorded_by]
    errors = [(key, found) for key, found in (("action", action), ("recorded_by", person))
              if isinstance(found, str)]
    if errors:
        return None, errors
    assert isinstance(action, ActionRow) and isinstance(person, PersonRow)
    assert action.id is not None
    try:
        item = evidence_gate.check_evidence(
            action, person, source=row.source, value=row.value, sample_size=row.sample,
            observed_on=row.observed_on, reference=row.reference, today=today)
        check_imported_reference(item.reference)
    except RuleRefused as exc:
        return None, [("action", reason) for reason in exc.reasons]
    except InvalidInput as exc:
        return None, [(exc.field, exc.rule)]
    return _Item(row.number, evidence_gate.CheckedEvidence(action.id, action.ref, item)), []


_Held = dict[tuple[int, tuple[str, date, str]], set[tuple[float | None, int | None]]]


def _held(session: Session, items: list[_Item]) -> _Held:
    """The value and sample size of every item the file's actions hold under each natural
    key, over the days the file covers."""
    held: _Held = defaultdict(set)
    if not items:
        return held
    days = [i.checked.item.observed_on for i in items]
    for action_id in sorted({i.checked.action_id for i in items}):
        for source, observed, reference, value, sample in session.execute(
                sa_select(col(EvidenceRow.source), col(EvidenceRow.observed_on),
                          col(EvidenceRow.reference), col(EvidenceRow.value),
                          col(EvidenceRow.sample_size))
                .where(col(EvidenceRow.action_id) == action_id,
                       col(EvidenceRow.observed_on) >= min(days),
                       col(EvidenceRow.observed_on) <= max(days))):
            key = (source, observed, " ".join(reference.split()).casefold())
            held[(action_id, key)].add((value, sample))
    return held


def _sort(items: list[_Item], held: _Held, column: str
          ) -> tuple[list[_Item], list[_Item], list[RowError]]:
    """New items, those already held (by the database or an earlier row), and the rows
    that would change a held item."""
    new: list[_Item] = []
    old: list[_Item] = []
    errors: list[RowError] = []
    earlier: dict[tuple[int, tuple[str, date, str]], _Item] = {}
    for item in items:
        first = earlier.get(item.key)
        if first is not None:
            if first.measure == item.measure:
                old.append(item)
            else:
                errors.append(RowError(row=item.number, column=column, error=(
                    f"the same item as row {first.number} (action, source, observed on and "
                    f"reference) with another value or sample size")))
        elif item.key in held:
            if item.measure in held[item.key]:
                old.append(item)
            else:
                errors.append(RowError(row=item.number, column=column, error=(
                    "this item (action, source, observed on and reference) is already held "
                    "with another value or sample size: an import adds items, it never "
                    "changes one")))
        else:
            earlier[item.key] = item
            new.append(item)
    return new, old, errors


# ---------------------------------------------------------------- the import


def import_evidence(data: bytes, *, name: str, by: str | None = None, dry_run: bool = False,
                    today: date | None = None) -> EvidenceImport:
    """Read the file and check every row with reads only; then, unless dry_run, add the
    new items in one short write transaction, all or nothing. Raises RowsRejected listing
    every bad row (InvalidInput for a file that cannot be read or passes a bound, or a
    `by` not in the staff directory): then nothing is written."""
    today = today or get_settings().today()
    table = read_table(data, name, LIMITS, sheet="evidence")
    matched, _, header_errors = match_headers(table, COLUMNS, unknown="refuse",
                                              unknown_rule=UNKNOWN_COLUMN)
    if header_errors:
        raise RowsRejected(header_errors, rows=len(table.rows))
    if not table.rows:
        raise InvalidInput("file", "has a header row but no evidence")
    shown = {c.key: table.headers[i] for i, c in matched.items()}
    shown.update({c.key: c.header for c in COLUMNS if c.key not in shown})

    def errors_of(number: int, problems: list[tuple[str, str]]) -> list[RowError]:
        return [RowError(row=number, column=shown.get(k, k), error=e) for k, e in problems]

    errors: list[RowError] = []
    rows: list[_Cells] = []
    partial: list[tuple[int, dict[str, Any]]] = []
    for number, cells in table.rows:
        by_key = {c.key: cells[i] if i < len(cells) else None for i, c in matched.items()}
        row, problems = _read_row(number, by_key, by)
        errors += errors_of(number, problems)
        if isinstance(row, _Cells):
            rows.append(row)
        else:
            partial.append((number, row))
    items: list[_Item] = []
    with db.reading() as session:
        importer = repo.get_person(session, by, field="by").email if by else None
        actions, people = _lookups(session, [vars(r) for r in rows] + [p for _, p in partial])
        for number, values in partial:
            errors += errors_of(number, _partial_row(values, actions, people))
        for row in rows:
            item, problems = _check_row(row, actions, people, today)
            errors += errors_of(row.number, problems)
            if item is not None:
                items.append(item)
        new, old, clashes = _sort(items, _held(session, items), shown["value"])
    errors += clashes
    if errors:
        raise RowsRejected(errors, rows=len(table.rows))
    digest = hashlib.sha256(data).hexdigest()
    if new and not dry_run:  # nothing new: nothing is written, not even an audit entry
        new, old = _write(new, old, actor=importer or "evidence-import",
                          file=Path(name).name, digest=digest, rows=len(table.rows))
    return EvidenceImport(file=Path(name).name, sha256=digest, rows=len(table.rows),
                          new=len(new), already_held=len(old), refused=0, dry_run=dry_run,
                          tallies=_tallies(new, old))


def _write(new: list[_Item], old: list[_Item], *, actor: str, file: str, digest: str,
           rows: int) -> tuple[list[_Item], list[_Item]]:
    """The one write transaction: everything was checked before it began. With the file's
    actions locked (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises every writer), it
    looks again only for what may have changed meanwhile: an action closed, or the same
    items added by another import."""
    with db.unit_of_work() as session:
        ids = sorted({i.checked.action_id for i in new})
        closed = set(session.exec(
            select(ActionRow.id).where(col(ActionRow.id).in_(ids),
                                       ActionRow.status == Status.CLOSED.value)
            .order_by(col(ActionRow.id)).with_for_update()).all()) if ids else set()
        if closed:
            raise RowsRejected([RowError(row=i.number, column="Action", error=(
                f"{i.checked.ref} was closed while the file was checked"))
                for i in new if i.checked.action_id in closed], rows=rows)
        fresh, also_held, clashes = _sort(new, _held(session, new), "Value")
        if clashes:
            raise RowsRejected(clashes, rows=rows)
        evidence_gate.add_evidence_many(session, [i.checked for i in fresh],
                                   audit_extra={"import_sha256": digest})
        audit_log.append(session, actor=actor, event="evidence.imported", action_ref=None,
                         details={"file": file, "sha256": digest, "rows": rows,
                                  "new": len(fresh), "already_held": len(old) + len(also_held),
                                  "on": transitions.business_day()})
    return fresh, old + also_held


def _tallies(new: list[_Item], old: list[_Item]) -> list[Tally]:
    tallies: dict[tuple[str, str], Tally] = {}
    for items, counted in ((new, "new"), (old, "already_held")):
        for item in items:
            evidence = item.checked.item
            key = (item.checked.ref, evidence.source.value)
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = Tally(
                    action=item.checked.ref, source=evidence.source.value,
                    pillar=evidence.pillar.value, first_observed=evidence.observed_on,
                    last_observed=evidence.observed_on)
            setattr(tally, counted, getattr(tally, counted) + 1)
            tally.first_observed = min(tally.first_observed, evidence.observed_on)
            tally.last_observed = max(tally.last_observed, evidence.observed_on)
    return [tallies[k] for k in sorted(tallies)]


def read_from_inbox(path: str) -> tuple[bytes, str]:
    """The file at `path` inside the evidence inbox (RECOVERY_EVIDENCE_INBOX, default
    <home>/inbox): the import-evidence deployment reads nothing outside it."""
    inbox = get_settings().inbox.resolve()
    given = Path(path.strip())
    wanted = (given if given.is_absolute() else inbox / given).resolve()
    if not wanted.is_relative_to(inbox):
        raise InvalidInput("file", f"is not inside the evidence inbox {inbox}: put the file "
                                   f"there and give its name")
    if not wanted.is_file():
        raise InvalidInput("file", f"there is no file {wanted.relative_to(inbox)} in the "
                                   f"evidence inbox {inbox}")
    with wanted.open("rb") as handle:
        return handle.read(LIMITS.file_bytes + 1), wanted.name


__all__ = ["COLUMNS", "LIMITS", "EvidenceImport", "RowsRejected", "Tally", "import_evidence",
           "read_from_inbox"]
