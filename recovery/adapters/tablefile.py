"""One table from a file a person gives us (a sheet of an .xlsx workbook, or a CSV file),
read with the work bounded by what is really in the file.

A workbook is a zip of XML: 5 KB can declare a sheet of 16,384 columns by 1,048,576 rows, or
inflate to gigabytes. So before openpyxl opens anything, every member of the zip is
inflated once, counting the bytes it really gives (zipfile stops a member at its declared
size and checks its CRC, so a member cannot give more than it says); then the sheet's own
dimension is ignored and its rows are read as they come, each only as wide as its last
cell, counting every row (blank ones too), its width and its filled cells against
`Limits`. The first bound passed ends the read with an error naming that bound.

Then the header row is matched against an import's columns (`match_headers`: names in any
case and spacing), and every problem a row has is a `RowError`; a file with any is refused
whole (`RowsRejected`), nothing written.

Used by `recovery import tracker` (recovery/reporting/spreadsheets.py) and
`recovery import evidence` (recovery/application/evidence_import.py), each with its own
`Limits` and columns.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, field_validator

from models.errors import DomainError, InvalidInput

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    file_bytes: int = 10 * MB  # the file as given (compressed, for a workbook)
    unpacked_bytes: int = 40 * MB  # every member of a workbook after decompression
    members: int = 500  # files inside a workbook
    rows: int = 5000  # rows below the header, blank ones included
    columns: int = 100  # a row's width, to its last cell (blank or not)
    cells: int = 250_000  # cells holding something
    cell_chars: int = 32_767  # one cell's text (Excel's own limit)


DEFAULT_LIMITS = Limits()


class Formula(str):
    """A workbook cell holding a formula (its text, starting with '='), not a value: the
    caller decides (a tracker refuses it and names the cell)."""


@dataclass
class Table:
    header_row: int
    headers: list[str]
    rows: list[tuple[int, list[Any]]] = field(default_factory=list)


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _column_letter(number: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(min(number, 18278))


def _bounded(records: Iterable[tuple[int, list[Any]]], limits: Limits) -> Table:
    """The first row with anything in it is the header; every row after it, blank or not,
    counts toward the row bound, and blank rows are then dropped."""
    header: tuple[int, list[Any]] | None = None
    rows: list[tuple[int, list[Any]]] = []
    filled = 0
    for number, cells in records:
        if len(cells) > limits.columns:
            raise InvalidInput("file", f"row {number} reaches column "
                                       f"{_column_letter(len(cells))}: more than "
                                       f"{limits.columns} columns (the column bound)")
        if number > limits.rows + (header[0] if header else 1):
            raise InvalidInput("file", f"has more than {limits.rows} rows below the header, "
                                       f"blank rows included (the row bound)")
        used = sum(1 for c in cells if not blank(c))
        if any(isinstance(c, str) and len(c) > limits.cell_chars for c in cells):
            raise InvalidInput("file", f"row {number} has a cell of more than "
                                       f"{limits.cell_chars} characters (the cell size bound)")
        if not used:
            continue
        filled += used
        if filled > limits.cells:
            raise InvalidInput("file", f"has more than {limits.cells} filled cells "
                                       f"(the cell bound)")
        if header is None:
            header = (number, cells)
        else:
            rows.append((number, cells))
    if header is None:
        raise InvalidInput("file", "is empty: the first row must name the columns")
    return Table(header_row=header[0],
                 headers=["" if blank(h) else str(h).strip() for h in header[1]], rows=rows)


# ---------------------------------------------------------------- xlsx

_MERGE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?mergeCell\b[^>]*?\bref=\"([^\"]{1,40})\"")


def _unreadable(why: str) -> InvalidInput:
    return InvalidInput("file", f"is not a readable .xlsx workbook ({why})")


def _inflate_checked(data: bytes, limits: Limits) -> zipfile.ZipFile:
    """The archive, once every member has been inflated within the bound on bytes after
    decompression (declared sizes first, then what each member really gives)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _unreadable(type(exc).__name__) from None
    too_big = InvalidInput("file", f"unpacks to more than {limits.unpacked_bytes // MB} MB "
                                   f"(the bound on bytes after decompression)")
    if len(members) > limits.members:
        raise InvalidInput("file", f"holds more than {limits.members} files inside "
                                   f"(the bound on a workbook's members)")
    if sum(m.file_size for m in members) > limits.unpacked_bytes:
        raise too_big
    inflated = 0
    try:
        for member in members:
            with archive.open(member) as stream:
                while chunk := stream.read(1 << 16):
                    inflated += len(chunk)
                    if inflated > limits.unpacked_bytes:
                        raise too_big
    except InvalidInput:
        raise
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError,
            OSError, EOFError) as exc:
        raise _unreadable(type(exc).__name__) from None
    return archive


def _first_merge(archive: zipfile.ZipFile, member: str) -> str | None:
    """The first merged range of a sheet (mergeCells follow the sheet's data, so this
    scans the member's XML as it inflates)."""
    tail = b""
    with archive.open(member) as stream:
        while chunk := stream.read(1 << 16):
            window = tail + chunk
            found = _MERGE.search(window)
            if found:
                return found.group(1).decode("ascii", "replace")
            tail = window[-256:]
    return None


def _xlsx_records(sheet: Any) -> Iterator[tuple[int, list[Any]]]:
    for number, row in enumerate(sheet.iter_rows(), start=1):
        # a row is as wide as its last cell: openpyxl pads nothing further once the
        # sheet's declared dimension is reset
        yield number, [Formula(c.value) if c.data_type == "f" else c.value for c in row]


def _read_xlsx(data: bytes, limits: Limits, sheet_name: str | None) -> Table:
    from openpyxl import load_workbook

    archive = _inflate_checked(data, limits)
    try:
        # data_only=False: a formula arrives as its text, marked, never as a cached result
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable workbook is bad input
        raise _unreadable(type(exc).__name__) from None
    try:
        names = {name.lower(): name for name in book.sheetnames}
        wanted = (sheet_name or "").lower()
        sheet = book[names[wanted]] if wanted in names else book.worksheets[0]
        sheet.reset_dimensions()  # the declared dimension is not trusted
        try:
            table = _bounded(_xlsx_records(sheet), limits)
        except InvalidInput:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed sheet XML is bad input
            raise _unreadable(type(exc).__name__) from None
        merged = _first_merge(archive, getattr(sheet, "_worksheet_path", ""))
        if merged:
            raise InvalidInput("file", f"sheet '{sheet.title}' has merged cells ({merged}): "
                                       f"unmerge them so each row holds its own values")
        return table
    finally:
        book.close()


# ---------------------------------------------------------------- csv


def _read_csv(data: bytes, limits: Limits) -> Table:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes almost anything
        raise InvalidInput("file", "is not UTF-8 or Windows-1252 text")
    sample = text[:4096]
    try:
        delimiter = csv.Sniffer().sniff(sample.splitlines()[0] if sample else ",",
                                        delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    # only the delimiter is guessed (from the header): quoting is Excel's, whatever the
    # header shows (a header without quotes made the sniffer turn off doubled quotes, so
    # a cell holding "" was split in two)
    try:
        return _bounded(enumerate(csv.reader(io.StringIO(text, newline=""), csv.excel,
                                             delimiter=delimiter), start=1), limits)
    except csv.Error as exc:
        raise InvalidInput("file", f"is not valid CSV: {exc}") from None


def read_table(data: bytes, name: str, limits: Limits = DEFAULT_LIMITS, *,
               sheet: str | None = None) -> Table:
    """The table in `data` (named `name`): the sheet called `sheet` (any case) or the
    first, or the CSV; InvalidInput on field `file` naming the bound a file passes."""
    if len(data) > limits.file_bytes:
        raise InvalidInput("file", f"is larger than {limits.file_bytes // MB} MB "
                                   f"(the file size bound)")
    suffix = Path(name).suffix.lower()
    if data[:2] == b"PK" or suffix in {".xlsx", ".xlsm"}:
        return _read_xlsx(data, limits, sheet)
    if suffix in {".csv", ".txt", ""}:
        return _read_csv(data, limits)
    raise InvalidInput("file", f"'{Path(name).name}' is not a .xlsx or .csv file")


# ---------------------------------------------------------------- columns and row errors


@dataclass(frozen=True)
class Column:
    """One column of an import's layout (and of the matching export, `width`)."""

    key: str
    header: str
    width: int = 12
    aliases: tuple[str, ...] = ()
    imported: bool = True
    required: bool = False
    meaning: str = ""


def column_key(header: str) -> str:
    """Headers match case- and space-insensitively (underscores and hyphens too)."""
    return re.sub(r"[\s_\-]+", "", str(header)).lower()


def quote(value: Any, limit: int = 60) -> str:
    """A cell's value inside a message: one line, control characters shown, capped."""
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return "'" + (flat if len(flat) <= limit else flat[:limit] + "...") + "'"


class RowError(BaseModel):
    row: int
    column: str
    error: str

    @field_validator("column", "error")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # messages can echo what a person typed into a cell or a header
        return quote(value, 300)[1:-1]

    def line(self) -> str:
        return f"row {self.row}, column '{self.column}': {self.error}"


class RowsRejected(DomainError):
    """The file has bad rows: nothing was imported. Carries every row's problems."""

    def __init__(self, errors: list[RowError], *, rows: int) -> None:
        bad = len({e.row for e in errors})
        super().__init__(f"{bad} of {rows} rows have errors; nothing was imported")
        self.errors = errors
        self.rows = rows
        self.bad_rows = bad


def iter_errors(errors: list[RowError]) -> Iterator[str]:
    """The row-by-row report, one line per problem, rows in order."""
    for error in sorted(errors, key=lambda e: e.row):
        yield error.line()


def match_headers(table: Table, columns: tuple[Column, ...], *,
                  unknown: Literal["ignore", "refuse"] = "ignore",
                  unknown_rule: str = "") -> tuple[dict[int, Column], list[str], list[RowError]]:
    """Which column each header names (by position), the headers not read, and the
    header's problems: a column named twice, a required one missing, and (with
    unknown="refuse") a column the layout does not know, or values under no header.
    Unknown headers are refused only once every required column is found: a row without
    them is no header (a file that starts with data), so its cells are not repeated."""
    lookup = {column_key(name): c for c in columns for name in (c.header, c.key, *c.aliases)}
    matched: dict[int, Column] = {}
    ignored: list[tuple[int, str]] = []
    errors: list[RowError] = []
    seen: dict[str, str] = {}
    for index, header in enumerate(table.headers):
        if not header:
            continue
        column = lookup.get(column_key(header))
        if column is None or not column.imported:
            ignored.append((index, header))
            continue
        if column.key in seen:
            errors.append(RowError(row=table.header_row, column=header,
                                   error=f"the same column as '{seen[column.key]}'"))
            continue
        seen[column.key] = header
        matched[index] = column
    missing = [c for c in columns if c.required and c.key not in seen]
    for column in missing:
        errors.append(RowError(row=table.header_row, column=column.header,
                               error="this column is missing"))
    if unknown == "refuse" and not missing:
        for _, header in ignored:
            errors.append(RowError(row=table.header_row, column=header, error=unknown_rule))
        named = {i for i, h in enumerate(table.headers) if h}
        unnamed = sorted({i for _, cells in table.rows for i, c in enumerate(cells)
                          if not blank(c) and i not in named})
        for index in unnamed:
            errors.append(RowError(row=table.header_row, column=_column_letter(index + 1),
                                   error=f"column {_column_letter(index + 1)} has values "
                                         f"but no name; {unknown_rule}"))
    return matched, [h for _, h in ignored], errors
