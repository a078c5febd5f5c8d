"""In-memory spreadsheets, service accounts and access tokens behind the Sheets stand-in.

Cells hold what a person typed, as Python values: `str` (a text cell, so `"0010"` keeps its zeros),
`int`/`float` (a number cell), `bool` (a checkbox), `datetime.date` (a date cell) or None (empty).
Reads render them the way the Sheets API does for the requested `valueRenderOption`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

DEFAULT_ROW_COUNT = 1000
DEFAULT_COLUMN_COUNT = 26
SERIAL_EPOCH = dt.date(1899, 12, 30)  # day 0 of spreadsheet date serial numbers
READ_SCOPES = frozenset({
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/spreadsheets.readonly",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/drive.readonly",
})
_PLAIN_TITLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_A1 = re.compile(r"^([A-Za-z]*)(\d*)(?::([A-Za-z]*)(\d*))?$")


class RangeError(ValueError):
    """A range the API would answer with 400 "Unable to parse range"."""


@dataclass
class StoredWorksheet:
    sheet_id: int
    title: str
    cells: list[list[Any]]

    @property
    def row_count(self) -> int:
        return max(DEFAULT_ROW_COUNT, len(self.cells))

    @property
    def column_count(self) -> int:
        return max([DEFAULT_COLUMN_COUNT, *(len(row) for row in self.cells)])


@dataclass
class StoredSpreadsheet:
    spreadsheet_id: str
    title: str
    locale: str
    time_zone: str
    worksheets: list[StoredWorksheet]
    # None: every service account may read it; otherwise only the client emails it is shared with.
    readers: frozenset[str] | None = None

    def worksheet(self, title: str) -> StoredWorksheet | None:
        return next((sheet for sheet in self.worksheets if sheet.title == title), None)


@dataclass(frozen=True)
class Grant:
    client_email: str
    scopes: frozenset[str]
    expires_at: float


@dataclass
class SheetsState:
    """Everything the stand-in serves. Tests mutate it while the server thread reads, hence the lock."""

    spreadsheets: dict[str, StoredSpreadsheet] = field(default_factory=dict)
    service_accounts: dict[str, RSAPublicKey] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def put_spreadsheet(self, spreadsheet_id: str, tabs: Mapping[str, Sequence[Sequence[Any]]],
                        title: str = "BISS Mapping", locale: str = "de_DE", time_zone: str = "Europe/Berlin",
                        readers: Iterable[str] | None = None) -> StoredSpreadsheet:
        """Create or replace a spreadsheet; `tabs` maps a tab title to its grid of cells (row 1 first)."""
        worksheets = [StoredWorksheet(index, sheet_title, [list(row) for row in grid])
                      for index, (sheet_title, grid) in enumerate(tabs.items())]
        spreadsheet = StoredSpreadsheet(spreadsheet_id, title, locale, time_zone, worksheets,
                                        None if readers is None else frozenset(readers))
        with self.lock:
            self.spreadsheets[spreadsheet_id] = spreadsheet
        return spreadsheet

    def record(self, method: str, path: str) -> None:
        with self.lock:
            self.requests.append((method, path))


def grid_from_records(records: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """A header row (every column in first-seen order) plus one row per record: a tab as a person lays
    it out from row dicts such as the local mapping file's."""
    header: list[str] = []
    for record in records:
        header.extend(str(column) for column in record if str(column) not in header)
    rows = [[record.get(column) for column in header] for record in records]
    return [list(header), *rows] if header else []


# --- rendering ------------------------------------------------------------------------------------------


def _number_text(value: float, locale: str) -> str:
    text = str(int(value)) if value.is_integer() else format(value, ".15g")
    return text.replace(".", ",") if locale.startswith(("de", "fr", "es", "it", "nl", "pl")) else text


def render_cell(value: Any, value_render: str, date_render: str, locale: str) -> Any:
    """One cell as the API returns it for `valueRenderOption` / `dateTimeRenderOption`."""
    if value is None:
        return ""
    formatted = value_render == "FORMATTED_VALUE"
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if formatted else value
    if isinstance(value, dt.date):
        as_date = value.date() if isinstance(value, dt.datetime) else value
        if formatted or date_render == "FORMATTED_STRING":
            return as_date.isoformat()
        return (as_date - SERIAL_EPOCH).days
    if isinstance(value, int | float):
        return _number_text(float(value), locale) if formatted else value
    return str(value)


# --- ranges ---------------------------------------------------------------------------------------------


def column_letters(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters.upper():
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def quoted_title(title: str) -> str:
    return title if _PLAIN_TITLE.match(title) else "'" + title.replace("'", "''") + "'"


@dataclass(frozen=True)
class GridRange:
    """Zero-based, end-exclusive bounds; None means unbounded on that side."""

    worksheet: StoredWorksheet
    first_row: int = 0
    first_column: int = 0
    end_row: int | None = None
    end_column: int | None = None

    def a1(self) -> str:
        end_row = self.end_row if self.end_row is not None else self.worksheet.row_count
        end_column = self.end_column if self.end_column is not None else self.worksheet.column_count
        start = f"{column_letters(self.first_column)}{self.first_row + 1}"
        return f"{quoted_title(self.worksheet.title)}!{start}:{column_letters(end_column - 1)}{end_row}"


def _split_title(text: str) -> tuple[str | None, str]:
    if text.startswith("'"):
        position, title = 1, []
        while position < len(text):
            char = text[position]
            if char == "'" and text[position + 1:position + 2] == "'":
                title.append("'")
                position += 2
            elif char == "'":
                rest = text[position + 1:]
                if rest and not rest.startswith("!"):
                    raise RangeError(text)
                return "".join(title), rest[1:]
            else:
                title.append(char)
                position += 1
        raise RangeError(text)
    if "!" in text:
        title, _, rest = text.partition("!")
        return title, rest
    return None, text


def parse_range(spreadsheet: StoredSpreadsheet, text: str) -> GridRange:
    """`'Tab'`, `Tab`, `Tab!A1:C5`, `'Tab'!A:C`, `A2:C` (first tab), … → the grid range."""
    title, a1 = _split_title(text.strip())
    if title is None:
        by_title = spreadsheet.worksheet(a1)
        if by_title is not None:
            return GridRange(by_title)
        if not spreadsheet.worksheets:
            raise RangeError(text)
        worksheet = spreadsheet.worksheets[0]
    else:
        found = spreadsheet.worksheet(title)
        if found is None:
            raise RangeError(text)
        worksheet = found
    if not a1:
        return GridRange(worksheet)
    match = _A1.match(a1)
    if match is None or not any(match.groups()):
        raise RangeError(text)
    start_letters, start_digits, end_letters, end_digits = match.groups()
    single = match.group(0).find(":") < 0
    first_row = int(start_digits) - 1 if start_digits else 0
    first_column = _column_index(start_letters) if start_letters else 0
    if single:
        end_row = first_row + 1 if start_digits else None
        end_column = first_column + 1 if start_letters else None
    else:
        end_row = int(end_digits) if end_digits else None
        end_column = _column_index(end_letters) + 1 if end_letters else None
    if first_row < 0 or (end_row is not None and end_row <= first_row) or (
            end_column is not None and end_column <= first_column):
        raise RangeError(text)
    return GridRange(worksheet, first_row, first_column, end_row, end_column)


def read_values(grid: GridRange, value_render: str, date_render: str, locale: str,
                major_dimension: str = "ROWS") -> dict[str, Any]:
    """A `ValueRange` body: the cells inside the range, trailing empty cells and rows left out."""
    rows: list[list[Any]] = []
    for row in grid.worksheet.cells[grid.first_row:grid.end_row]:
        cells = [render_cell(value, value_render, date_render, locale)
                 for value in row[grid.first_column:grid.end_column]]
        while cells and cells[-1] == "":
            cells.pop()
        rows.append(cells)
    while rows and not rows[-1]:
        rows.pop()
    if major_dimension == "COLUMNS":
        width = max((len(row) for row in rows), default=0)
        columns = [[row[index] if index < len(row) else "" for row in rows] for index in range(width)]
        for column in columns:
            while column and column[-1] == "":
                column.pop()
        rows = columns
    body: dict[str, Any] = {"range": grid.a1(), "majorDimension": major_dimension}
    if rows:
        body["values"] = rows
    return body
