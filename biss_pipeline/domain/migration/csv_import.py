"""Historical migration import: prepared Ivoris CSV exports → raw, staging and quarantine rows.

History from before a practice's `history_start` never comes through the API extraction (its
partitions start there), so it arrives once as CSV exports and takes the API path's own route:
CSV rows become records shaped like the API's (strings, amounts as written), then
the entities' `rows` (`domain.ivoris.entities`) / `patient_rows`, then `staging.stage_*`.
Nothing is validated here that those functions validate; this module only adds what a file
brings that an API response cannot (see docs/migration-import.md for the operator's side):

- a file that cannot be read as CSV, or lacks a contract column, is an `ImportFileError` naming
  the file and the missing columns, raised before anything is written;
- a line whose cell count differs from the header's is quarantined (`wrong column count`), and
  so is a line with a NUL character (`NUL character in <field>`): PostgreSQL text cannot hold
  NUL, so such a row would fail the whole window instead of reaching staging's control-character
  check like other control characters do;
- a patient that nothing places on a day (no usable `modifiedAt`, no appointment in the window)
  is quarantined as `unparsable modifiedAt` rather than silently left out;
- a record dated outside the import window (by default: on or after `history_start`, which the
  API extraction owns) is skipped and counted, not quarantined: an export taken today holds the
  recent days too, and quarantine rows for them would keep the quarantine check warning forever.

Memory: each file is read once and spilled, one JSON record per line, into a temporary SQLite
file with its id, modification time and day. Duplicates are resolved there across the whole
file like the API client does per response (newest `modifiedAt` wins, the first line on a tie),
and the window is then processed one calendar month at a time, so only a month's records are in
memory. Each month's raw, staging and quarantine rows replace the old ones in one transaction
(`Warehouse.replace_partitions`); a stretch of months without data is one more (empty)
replacement, so a re-import of other files leaves nothing behind. Re-importing the same files
gives identical tables. The import is not one transaction across months: a run that fails
midway has replaced whole months only, and a re-run completes it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from biss_pipeline.domain.ivoris.entities import APPOINTMENT, DOCUMENT_ENTRY, PATIENT_FIELDS
from biss_pipeline.domain.ivoris.extract import (
    REFERENCE_FIELDS,
    ExtractedRows,
    day_of,
    modification_day,
    patient_rows,
    usable_id,
)
from biss_pipeline.domain.staging.rules import (
    StagedRows,
    stage_appointments,
    stage_document_entries,
    stage_patients,
)
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

Record = dict[str, str | None]
Row = dict[str, Any]

DELIMITERS = (",", ";")  # German Excel writes ';'
SPILL_BATCH = 5_000
_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class ExportKind:
    """One kind of export file: its entity name in the warehouse and its contract columns."""

    entity: str  # as in the quarantine table: appointment | patient | document_entry
    label: str  # for messages
    fields: tuple[str, ...]
    date_field: str  # the field that places a record on a day

    def day(self, record: Record) -> dt.date | None:
        if self.entity == "patient":
            return modification_day(record)  # UTC day, as the API path places modified patients
        return day_of(record.get(self.date_field))


APPOINTMENTS = ExportKind("appointment", "appointments",
                          ("id", "patientId", "chairId", "typeId", "start", "end", "status", "modifiedAt"),
                          "start")
PATIENTS = ExportKind("patient", "patients",
                      ("id", "firstName", "lastName", "birthDate", "email", "phone", "insurance",
                       "modifiedAt"), "modifiedAt")
DOCUMENT_ENTRIES = ExportKind("document_entry", "document entries",
                              ("id", "patientId", "appointmentId", "date", "type", "code", "description",
                               "amount", "modifiedAt"), "date")


class ImportFileError(ValueError):
    """A file the import cannot read at all; the message names the file and the problem."""

    def __init__(self, kind: ExportKind, path: Path | str, problem: str) -> None:
        super().__init__(f"{kind.label} file {str(path)!r}: {problem}")
        self.path, self.problem = str(path), problem


@dataclass(frozen=True)
class CsvLine:
    """One data line: the record, or the reason it could not become one."""

    line: int  # physical line number where the record starts (the header is line 1)
    record: Record | None
    problem: str | None = None


@dataclass(frozen=True)
class CsvLayout:
    delimiter: str
    columns: tuple[str | None, ...]  # per position: the contract field, or None (ignored column)


@contextmanager
def _open(path: Path, kind: ExportKind) -> Iterator[Any]:
    # utf-8-sig drops the byte-order mark Excel's "CSV UTF-8" writes; newline="" lets csv see
    # line breaks inside quoted cells.
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise ImportFileError(kind, path, "file not found") from None
    except OSError as exc:
        raise ImportFileError(kind, path, f"cannot be read ({exc.strerror or exc})") from None
    with handle:
        try:
            yield handle
        except UnicodeDecodeError:
            raise ImportFileError(
                kind, path, "is not UTF-8 text (an Excel workbook or a legacy encoding?); "
                "save it as 'CSV UTF-8'") from None


def _layout(header_line: str, kind: ExportKind, path: Path) -> CsvLayout:
    """Pick the delimiter under which the header names the most contract columns."""
    if not header_line.strip():
        raise ImportFileError(kind, path, f"is empty; the first line must be the header "
                                          f"{', '.join(kind.fields)}")
    if "\x00" in header_line:
        raise ImportFileError(kind, path, "is not a CSV text file (binary content)")
    # Headers are matched without regard to case or surrounding blanks: a retyped header in a
    # spreadsheet is the usual way they drift.
    canonical = {name.casefold(): name for name in kind.fields}
    best: CsvLayout | None = None
    for delimiter in DELIMITERS:
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        columns = tuple(canonical.get(cell.strip().casefold()) for cell in cells)
        if best is None or len(set(columns) - {None}) > len(set(best.columns) - {None}):
            best = CsvLayout(delimiter, columns)
    assert best is not None
    missing = [name for name in kind.fields if name not in best.columns]
    if missing:
        raise ImportFileError(
            kind, path, f"missing required columns: {', '.join(missing)} (the header must name "
            f"{', '.join(kind.fields)}, separated by ',' or ';')")
    repeated = sorted({c for c in best.columns if c is not None and best.columns.count(c) > 1})
    if repeated:
        raise ImportFileError(kind, path, f"columns named more than once: {', '.join(repeated)}")
    return best


def read_layout(path: Path | str, kind: ExportKind) -> CsvLayout:
    """Check a file's header (and that it is UTF-8 text) without reading the data lines."""
    path = Path(path)
    with _open(path, kind) as handle:
        return _layout(handle.readline(), kind, path)


def read_export(path: Path | str, kind: ExportKind) -> Iterator[CsvLine]:
    """The file's data lines as API-shaped records, streamed.

    Cells stay text exactly as written (so an amount keeps its digits); an empty or blank cell is
    null; columns outside the contract are ignored; empty lines (also Excel's `;;;;`) are skipped.
    """
    path = Path(path)
    with _open(path, kind) as handle:
        layout = _layout(handle.readline(), kind, path)
        reader = csv.reader(handle, delimiter=layout.delimiter)
        previous_end = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a cell over the csv module's size limit
                raise ImportFileError(kind, path, f"is not valid CSV at line {previous_end + 1} "
                                                  f"({exc})") from None
            line, previous_end = previous_end + 1, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(layout.columns):
                yield CsvLine(line, None, "wrong column count")
                continue
            record: Record = {}
            problem = None
            for name, cell in zip(layout.columns, cells, strict=True):
                if name is None:
                    continue
                if "\x00" in cell and problem is None:
                    problem = f"NUL character in {name}"
                record[name] = cell if cell.strip() else None
            yield CsvLine(line, None if problem else record, problem)



# A CSV has no integer type: an id written as plain digits is the integer the API would have sent, and
# anything else in an id column stays text, so extraction quarantines it as a non-integer id.
_ID_COLUMNS = frozenset({"id"}) | REFERENCE_FIELDS


def _api_typed(record: dict[str, Any]) -> dict[str, Any]:
    for name in _ID_COLUMNS.intersection(record):
        text = record[name].strip() if isinstance(record[name], str) else None
        if text is not None and text.isascii() and text.isdigit():
            record[name] = int(text)
    return record


# -- spill: every record once on disk, resolved and read back month by month ------------------------

class _Spill:
    """A temporary SQLite file holding the export's records (never the warehouse)."""

    def __init__(self, directory: str) -> None:
        self.db = sqlite3.connect(str(Path(directory) / "import-spill.sqlite"))
        self.db.executescript("""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE records (
                entity TEXT NOT NULL, line INTEGER NOT NULL, ivoris_id TEXT, modified TEXT NOT NULL,
                day TEXT, patient_ref TEXT, type_ref TEXT, winner INTEGER NOT NULL DEFAULT 1,
                record TEXT NOT NULL, PRIMARY KEY (entity, line));
            CREATE TABLE problems (entity TEXT NOT NULL, line INTEGER NOT NULL, reason TEXT NOT NULL);
        """)

    def close(self) -> None:
        self.db.close()

    def load(self, path: Path, kind: ExportKind) -> int:
        """Read one file into the spill; returns the number of data lines."""
        lines = 0
        batch: list[tuple[Any, ...]] = []
        problems: list[tuple[str, int, str]] = []

        def flush() -> None:
            self.db.executemany("INSERT INTO records (entity, line, ivoris_id, modified, day, patient_ref, "
                                "type_ref, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
            self.db.executemany("INSERT INTO problems VALUES (?, ?, ?)", problems)
            batch.clear()
            problems.clear()

        for item in read_export(path, kind):
            lines += 1
            if item.record is None:
                problems.append((kind.entity, item.line, item.problem or "unreadable line"))
            else:
                record = item.record
                day = kind.day(record)
                batch.append((
                    kind.entity, item.line, usable_id(record.get("id")), record.get("modifiedAt") or "",
                    day.isoformat() if day else None,
                    usable_id(record.get("patientId")) if kind is APPOINTMENTS else None,
                    usable_id(record.get("typeId")) if kind is APPOINTMENTS else None,
                    json.dumps(record, ensure_ascii=False)))
            if len(batch) + len(problems) >= SPILL_BATCH:
                flush()
        flush()
        return lines

    def resolve_duplicates(self) -> dict[str, int]:
        """Keep one version per id and entity, like the API client's `newest_by_id` (newest
        `modifiedAt` as text, ISO UTC sorts by time; the first line on a tie), over the whole file."""
        self.db.execute("CREATE INDEX records_id ON records (entity, ivoris_id, modified, line)")
        self.db.execute("""
            UPDATE records SET winner = 0 WHERE ivoris_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM records AS other
                WHERE other.entity = records.entity AND other.ivoris_id = records.ivoris_id
                  AND (other.modified > records.modified
                       OR (other.modified = records.modified AND other.line < records.line)))""")
        self.db.execute("CREATE INDEX records_day ON records (entity, winner, day)")
        return dict(self.db.execute(
            "SELECT entity, COUNT(*) FROM records WHERE winner = 0 GROUP BY entity").fetchall())

    def earliest_day(self, date_to: dt.date) -> dt.date | None:
        value = self.db.execute("SELECT MIN(day) FROM records WHERE winner = 1 AND day <= ?",
                                (date_to.isoformat(),)).fetchone()[0]
        return dt.date.fromisoformat(value) if value else None

    def months_with_data(self, date_from: dt.date, date_to: dt.date) -> set[dt.date]:
        rows = self.db.execute(
            "SELECT DISTINCT substr(day, 1, 7) FROM records WHERE winner = 1 AND day BETWEEN ? AND ?",
            (date_from.isoformat(), date_to.isoformat())).fetchall()
        return {dt.date.fromisoformat(f"{month}-01") for (month,) in rows}

    def used_type_ids(self, date_from: dt.date, date_to: dt.date) -> set[str]:
        """Type ids of the appointments the window imports (what the staging asset checks)."""
        rows = self.db.execute(
            "SELECT DISTINCT type_ref FROM records WHERE entity = 'appointment' AND winner = 1 "
            "AND ivoris_id IS NOT NULL AND type_ref IS NOT NULL AND day BETWEEN ? AND ?",
            (date_from.isoformat(), date_to.isoformat())).fetchall()
        return {type_id for (type_id,) in rows}

    def records(self, entity: str, date_from: dt.date, date_to: dt.date,
                undated: bool = False) -> list[dict[str, Any]]:
        """The window's records in file order; with `undated`, also those without a usable day."""
        rows = self.db.execute(
            "SELECT record FROM records WHERE entity = ? AND winner = 1 "
            "AND (day BETWEEN ? AND ? OR (? AND day IS NULL)) ORDER BY line",
            (entity, date_from.isoformat(), date_to.isoformat(), undated)).fetchall()
        return [_api_typed(json.loads(record)) for (record,) in rows]

    def patients_modified(self, date_from: dt.date, date_to: dt.date) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT record FROM records WHERE entity = 'patient' AND winner = 1 AND ivoris_id IS NOT NULL "
            "AND day BETWEEN ? AND ? ORDER BY line", (date_from.isoformat(), date_to.isoformat())).fetchall()
        return [_api_typed(json.loads(record)) for (record,) in rows]

    def patients(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """The patients with these ids, in file order."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (ivoris_id TEXT PRIMARY KEY)")
        self.db.execute("DELETE FROM wanted")
        self.db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((i,) for i in ids))
        rows = self.db.execute(
            "SELECT record FROM records WHERE entity = 'patient' AND winner = 1 "
            "AND ivoris_id IN (SELECT ivoris_id FROM wanted) ORDER BY line").fetchall()
        return [_api_typed(json.loads(record)) for (record,) in rows]

    def unkeyed_patients(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT record FROM records WHERE entity = 'patient' AND ivoris_id IS NULL "
                               "ORDER BY line").fetchall()
        return [_api_typed(json.loads(record)) for (record,) in rows]

    def _unreferenced_patients(self, date_from: dt.date, date_to: dt.date, inside: bool | None) -> list[str]:
        """Keyed patients no appointment of the window references, by modification day: none
        (`inside` None), or one outside the window (`inside` False)."""
        window = (date_from.isoformat(), date_to.isoformat())
        day_condition = "day IS NULL" if inside is None else "day IS NOT NULL AND day NOT BETWEEN ? AND ?"
        rows = self.db.execute(
            "SELECT ivoris_id FROM records WHERE entity = 'patient' AND winner = 1 AND ivoris_id IS NOT NULL "
            f"AND {day_condition} AND ivoris_id NOT IN ("
            "  SELECT patient_ref FROM records WHERE entity = 'appointment' AND winner = 1 "
            "  AND ivoris_id IS NOT NULL AND patient_ref IS NOT NULL AND day BETWEEN ? AND ?) ORDER BY line",
            (*(() if inside is None else window), *window)).fetchall()
        return [ivoris_id for (ivoris_id,) in rows]

    def undatable_patients(self, date_from: dt.date, date_to: dt.date) -> list[str]:
        """Patients nothing places on a day: no usable modifiedAt and no appointment in the window."""
        return self._unreferenced_patients(date_from, date_to, inside=None)

    def outside_window(self, date_from: dt.date, date_to: dt.date) -> dict[str, int]:
        """Per entity, the records dated outside the window (skipped; patients only if unreferenced)."""
        counts = dict(self.db.execute(
            "SELECT entity, COUNT(*) FROM records WHERE winner = 1 AND entity != 'patient' "
            "AND day IS NOT NULL AND day NOT BETWEEN ? AND ? GROUP BY entity",
            (date_from.isoformat(), date_to.isoformat())).fetchall())
        patients = self._unreferenced_patients(date_from, date_to, inside=False)
        if patients:
            counts["patient"] = len(patients)
        return counts

    def problems(self) -> list[tuple[str, int, str]]:
        return self.db.execute("SELECT entity, line, reason FROM problems ORDER BY entity, line").fetchall()


# -- the flow --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportFiles:
    appointments: Path
    patients: Path
    document_entries: Path | None = None  # without it, the entry tables are left as they are

    def kinds(self) -> list[tuple[ExportKind, Path]]:
        files = [(APPOINTMENTS, self.appointments), (PATIENTS, self.patients)]
        if self.document_entries is not None:
            files.append((DOCUMENT_ENTRIES, self.document_entries))
        return files


@dataclass
class ImportResult:
    """What an import wrote; counts and reasons only, never record content."""

    date_from: dt.date
    date_to: dt.date
    lines: Counter[str] = field(default_factory=Counter)  # entity → data lines read
    rows: Counter[str] = field(default_factory=Counter)  # table → rows written
    quarantined: dict[str, Counter[str]] = field(default_factory=dict)  # "entity/stage" → reason → n
    duplicates_dropped: Counter[str] = field(default_factory=Counter)
    outside_window: Counter[str] = field(default_factory=Counter)  # entity → records not imported
    transactions: int = 0

    @property
    def window(self) -> str:
        return f"{self.date_from.isoformat()} .. {self.date_to.isoformat()}"

    @property
    def quarantined_total(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.quarantined.values())

    def add_quarantine(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.quarantined.setdefault(f"{row['entity']}/{row['stage']}", Counter())[row["reason"]] += 1


@dataclass(frozen=True)
class _Entity:
    kind: ExportKind
    raw: sa.Table
    staging: sa.Table


ENTITIES = (
    _Entity(APPOINTMENTS, schema.raw_appointments, schema.stg_appointments),
    _Entity(PATIENTS, schema.raw_patients, schema.stg_patients),
    _Entity(DOCUMENT_ENTRIES, schema.raw_document_entries, schema.stg_document_entries),
)


def import_window(history_start: dt.date, date_from: dt.date | None, date_to: dt.date | None,
                  ) -> tuple[dt.date | None, dt.date]:
    """The requested window; its end defaults to, and may not pass, the day before `history_start`."""
    last_allowed = history_start - _ONE_DAY
    end = date_to or last_allowed
    if end > last_allowed:
        raise ValueError(f"date_to {end} is not before the practice's history_start {history_start}: "
                         "those days belong to the API extraction, and an import would replace its rows")
    if date_from is not None and date_from > end:
        raise ValueError(f"date_from {date_from} is after the window's end {end}")
    return date_from, end


def month_chunks(date_from: dt.date, date_to: dt.date, months_with_data: set[dt.date],
                 ) -> list[tuple[dt.date, dt.date, bool]]:
    """Calendar months of the window as (first, last, has_data); consecutive months without data
    merge into one chunk (only deleted), and the first chunk always counts as having data, since it
    takes the rows no day places (quarantine rows need a partition)."""
    chunks: list[tuple[dt.date, dt.date, bool]] = []
    month = date_from.replace(day=1)
    while month <= date_to:
        following = (month + dt.timedelta(days=32)).replace(day=1)
        first, last = max(month, date_from), min(following - _ONE_DAY, date_to)
        has_data = month in months_with_data or not chunks
        if not has_data and not chunks[-1][2]:
            chunks[-1] = (chunks[-1][0], last, False)
        else:
            chunks.append((first, last, has_data))
        month = following
    return chunks


def _line_quarantine(practice_id: str, day: dt.date, entity: str, record_key: str, reason: str) -> Row:
    return {"practice_id": practice_id, "partition_date": day, "entity": entity, "stage": "raw",
            "record_key": record_key, "reason": reason}


def _unique(rows: Sequence[Row]) -> list[Row]:
    """One quarantine row per primary key (as the staging asset does)."""
    return list({tuple(sorted(row.items())): row for row in rows}.values())


def _patient_reasons(raw_appointments: Sequence[Row], modified: Iterable[dict[str, Any]],
                     date_from: dt.date, date_to: dt.date) -> dict[str, dict[dt.date, str]]:
    """Per patient id, the days of the chunk that need the patient and why (as the API path's raw
    patients asset decides: a referencing appointment wins over a modification that day)."""
    reasons: dict[str, dict[dt.date, str]] = {}
    for record in modified:
        ivoris_id, day = usable_id(record.get("id")), modification_day(record)
        if ivoris_id is not None and day is not None and date_from <= day <= date_to:
            reasons.setdefault(ivoris_id, {})[day] = "modified"
    for row in raw_appointments:
        patient_id = usable_id(row["patient_id"])
        if patient_id is not None:
            reasons.setdefault(patient_id, {})[row["partition_date"]] = "referenced"
    return reasons


class _Importer:
    def __init__(self, warehouse: Warehouse, practice_id: str, key_prefix: str, spill: _Spill,
                 entities: Sequence[_Entity], known_type_keys: set[str], result: ImportResult) -> None:
        self.warehouse, self.pid, self.prefix, self.spill = warehouse, practice_id, key_prefix, spill
        self.entities, self.known_type_keys, self.result = entities, known_type_keys, result

    def _has(self, kind: ExportKind) -> bool:
        return any(entity.kind is kind for entity in self.entities)

    def _extract(self, first: dt.date, last: dt.date, is_first: bool) -> dict[str, ExtractedRows]:
        r = self.result
        appointments = APPOINTMENT.rows(self.pid, self.prefix, self.spill.records(
            "appointment", first, last, undated=is_first), first, last)
        reasons = _patient_reasons(appointments.rows, self.spill.patients_modified(first, last), first, last)
        patient_records = self.spill.patients(reasons)
        if is_first:
            patient_records += self.spill.unkeyed_patients()  # patient_rows quarantines them
        patients = patient_rows(self.pid, self.prefix, PATIENT_FIELDS, patient_records, reasons, first, last)
        extracted = {"appointment": appointments, "patient": patients}
        if self._has(DOCUMENT_ENTRIES):
            extracted["document_entry"] = DOCUMENT_ENTRY.rows(self.pid, self.prefix, self.spill.records(
                "document_entry", first, last, undated=is_first), first, last)
        if is_first:
            # Lines no day can place: unreadable ones, and patients with neither a modification
            # day nor an appointment. They are quarantined on the window's first day.
            for entity, line, reason in self.spill.problems():
                if entity in extracted:
                    extracted[entity].quarantined.append(
                        _line_quarantine(self.pid, first, entity, f"line-{line}", reason))
            patients.quarantined.extend(
                _line_quarantine(self.pid, first, "patient", f"{self.prefix}{ivoris_id}",
                                 "unparsable modifiedAt")
                for ivoris_id in self.spill.undatable_patients(r.date_from, r.date_to))
        return extracted

    def _stage(self, extracted: dict[str, ExtractedRows]) -> dict[str, StagedRows]:
        patients = extracted["patient"].rows
        # as the staging asset does: birth dates are checked against the window's end
        staged = {
            "patient": stage_patients(patients, as_of=self.result.date_to),
            "appointment": stage_appointments(extracted["appointment"].rows, self.prefix,
                                              {row["patient_key"] for row in patients}, self.known_type_keys),
        }
        if "document_entry" in extracted:
            staged["document_entry"] = stage_document_entries(extracted["document_entry"].rows, self.prefix)
        return staged

    def write_chunk(self, first: dt.date, last: dt.date, has_data: bool, is_first: bool) -> None:
        extracted: dict[str, ExtractedRows] = {}
        staged: dict[str, StagedRows] = {}
        if has_data:
            extracted = self._extract(first, last, is_first)
            staged = self._stage(extracted)
        quarantine = schema.quarantine
        with self.warehouse.transaction() as connection:
            for entity in self.entities:
                name = entity.kind.entity
                for stage, table, result in (("raw", entity.raw, extracted.get(name)),
                                             ("staging", entity.staging, staged.get(name))):
                    rows = result.rows if result else []
                    held = _unique(result.quarantined) if result else []
                    self.warehouse.replace_partitions(table, self.pid, first, last, rows, connection)
                    self.warehouse.replace_partitions(
                        quarantine, self.pid, first, last, held, connection,
                        extra_filter=sa.and_(quarantine.c.entity == name, quarantine.c.stage == stage))
                    self.result.rows[table.name] += len(rows)
                    self.result.add_quarantine(held)
        self.result.transactions += 1


def run_import(
    warehouse: Warehouse,
    practice_id: str,
    key_prefix: str,
    history_start: dt.date,
    files: ImportFiles,
    known_type_keys: set[str],
    check_types: Callable[[set[str]], None] | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> ImportResult:
    """Import one practice's exports for a window before `history_start` (see the module docstring).

    `known_type_keys` are the practice's Ivoris appointment types (the `appointment_types` table);
    `check_types(used_type_keys)` may refuse types the mapping lacks (it runs before any write).
    """
    requested_from, window_end = import_window(history_start, date_from, date_to)
    kinds = files.kinds()
    for kind, path in kinds:  # every header first, so a bad file fails before any work
        read_layout(path, kind)
    entities = [e for e in ENTITIES if any(e.kind is kind for kind, _ in kinds)]
    with tempfile.TemporaryDirectory(prefix="biss-import-") as directory:
        spill = _Spill(directory)
        try:
            lines = Counter({kind.entity: spill.load(Path(path), kind) for kind, path in kinds})
            duplicates = spill.resolve_duplicates()
            # Without a requested start, the window opens on the earliest day in the files; with
            # nothing dated before its end it is that one day, so quarantine rows still have a home.
            window_start = requested_from or spill.earliest_day(window_end) or window_end
            result = ImportResult(window_start, window_end, lines=lines,
                                  duplicates_dropped=Counter(duplicates),
                                  outside_window=Counter(spill.outside_window(window_start, window_end)))
            used_types = {f"{key_prefix}{type_id}"
                          for type_id in spill.used_type_ids(window_start, window_end)}
            if used_types and not known_type_keys:
                raise ValueError(f"practice {practice_id!r} has no appointment types in the warehouse; "
                                 f"materialize {practice_id}/appointment_types (job refresh_reference_data) "
                                 "before importing, or every appointment would be quarantined")
            if check_types is not None:
                check_types(used_types & known_type_keys)
            importer = _Importer(warehouse, practice_id, key_prefix, spill, entities, known_type_keys, result)
            chunks = month_chunks(window_start, window_end, spill.months_with_data(window_start, window_end))
            for index, (first, last, has_data) in enumerate(chunks):
                importer.write_chunk(first, last, has_data, is_first=index == 0)
        finally:
            spill.close()
    return result
