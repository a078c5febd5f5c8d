"""The historical CSV import: a sample export generated from the Ivoris emulator (never a committed
file of personal data), plus malformed lines, through the asset on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import zipfile
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from dagster import AssetsDefinition, RunConfig, materialize

from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.assets.deals import build_practice_deal_assets
from biss_pipeline.assets.migration_import import (
    HistoricalImportConfig,
    build_migration_import_assets,
)
from biss_pipeline.domain.mapping.practices import ConfigError, PracticeConfig, load_mapping_tabs
from biss_pipeline.domain.migration.csv_import import (
    APPOINTMENTS,
    DOCUMENT_ENTRIES,
    PATIENTS,
    ImportFileError,
    ImportFiles,
    import_window,
    month_chunks,
    read_export,
    run_import,
)
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse, dispose_engine
from biss_pipeline.keys import practice_asset_key
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource

# The tiny emulator dataset runs 2026-06-17 .. 06-30 with bookings two weeks ahead. With API
# extraction starting 06-27, the export's earlier days are the history to import.
HISTORY_START = dt.date(2026, 6, 27)
LAST_HISTORY_DAY = HISTORY_START - dt.timedelta(days=1)
EXPORT_FROM, EXPORT_TO = dt.date(2026, 6, 17), dt.date(2026, 7, 14)
PRACTICE = PracticeConfig(practice_id="mb", name="Zahnarztpraxis Magdeburg", key_prefix="MB_",
                          ivoris_base_url="http://127.0.0.1:9/sites/mb", api_key_env="TEST_IVORIS_KEY_MB",
                          history_start=HISTORY_START, active=True)
MAPPING_FILE = PROJECT_ROOT / "config" / "mapping.yaml"
IMPORT_TABLES = (schema.raw_appointments, schema.raw_patients, schema.raw_document_entries,
                 schema.stg_appointments, schema.stg_patients, schema.stg_document_entries, schema.quarantine)


@pytest.fixture(scope="module")
def emulator() -> IvorisEmulator:
    """The dataset only (no server): `truth` has the API's record shapes."""
    return IvorisEmulator(seed=7, size="tiny")


def write_export(path: Path, fields: Sequence[str], records: Iterable[dict[str, Any]], delimiter: str = ",",
                 bom: bool = False, raw_lines: Sequence[str] = ()) -> Path:
    """A CSV as a spreadsheet would write it; `raw_lines` are appended verbatim (malformed on purpose)."""
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(fields)
        for record in records:
            writer.writerow(["" if record.get(name) is None else str(record[name]) for name in fields])
        for line in raw_lines:
            handle.write(line + "\r\n")
    return path


def data_lines(path: Path) -> int:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


class SampleExport:
    """Appointments (German Excel: ';' and a BOM), patients (','), entries (';'), each with bad lines."""

    def __init__(self, emulator: IvorisEmulator, directory: Path) -> None:
        truth = emulator.truth
        self.appointments = truth.appointments("mb", EXPORT_FROM, EXPORT_TO)
        self.entries = truth.document_entries("mb", EXPORT_FROM, EXPORT_TO)
        self.patients = truth.patients("mb", truth.patient_ids("mb"))
        first = self.appointments[0]
        good_entry = self.entries[0]
        self.appointments_csv = write_export(
            directory / "termine.csv", APPOINTMENTS.fields, self.appointments, ";", bom=True, raw_lines=[
                # a date as German Excel reformats it
                "990001;15;1;4;17.06.2026 08:00;17.06.2026 08:30;completed;2026-06-17T07:00:00Z",
                ";15;1;4;2026-06-18T09:00:00;2026-06-18T09:30:00;booked;2026-06-10T07:00:00Z",  # no id
                "990002;15;1",  # wrong column count
                "",  # blank lines are skipped
                ";;;;;;;",
            ])
        control = {**good_entry, "id": 99000002, "description": "Füllung\x07mehrflächig"}
        self.entries_csv = write_export(
            directory / "leistungen.csv", DOCUMENT_ENTRIES.fields, [*self.entries, control], ";", raw_lines=[
                f"99000001;{first['patientId']};{first['id']};2026-06-17;goz;2197;Befestigung;12,5x;"
                "2026-06-17T09:02:00Z",  # a non-numeric amount
                f"99000003;{first['patientId']};;2026-13-45;goz;2197;Befestigung;10.00;2026-06-17T09:02:00Z",
            ])
        nul = {**self.patients[0], "id": 990777, "lastName": "Mül\x00ler"}
        self.patients_csv = write_export(directory / "patienten.csv", PATIENTS.fields, [*self.patients, nul])
        self.lines = {"appointment": data_lines(self.appointments_csv) - 2, "document_entry":
                      data_lines(self.entries_csv), "patient": data_lines(self.patients_csv)}

    def files(self, entries: bool = True) -> ImportFiles:
        return ImportFiles(self.appointments_csv, self.patients_csv, self.entries_csv if entries else None)

    def config(self, **overrides: Any) -> HistoricalImportConfig:
        values = {"appointments_csv": str(self.appointments_csv), "patients_csv": str(self.patients_csv),
                  "document_entries_csv": str(self.entries_csv), **overrides}
        return HistoricalImportConfig(**values)

    def in_history(self, records: Iterable[dict[str, Any]], date_field: str) -> list[dict[str, Any]]:
        return [r for r in records if dt.date.fromisoformat(str(r[date_field])[:10]) <= LAST_HISTORY_DAY]


def seed_appointment_types(warehouse: Warehouse, emulator: IvorisEmulator) -> None:
    """What the reference asset writes for mb: its 14 Ivoris appointment types."""
    warehouse.replace_practice_rows(schema.appointment_types, "mb", [
        {"type_key": f"MB_{t['id']}", "practice_id": "mb", "ivoris_id": str(t["id"]), "code": t["code"],
         "name": t["name"], "duration_min": str(t["duration_min"])}
        for t in emulator.dataset.appointment_types()])


def import_asset() -> AssetsDefinition:
    return build_migration_import_assets([PRACTICE])[0]


def run_asset(url: str, config: HistoricalImportConfig, mapping_path: Path = MAPPING_FILE,
              raise_on_error: bool = True) -> Any:
    asset = import_asset()
    return materialize(
        [asset], raise_on_error=raise_on_error,
        resources={"warehouse": WarehouseResource(url=url),
                   "mapping": MappingResource(path=str(mapping_path))},
        run_config=RunConfig(ops={asset.op.name: config}))


def snapshot(warehouse: Warehouse, tables: Sequence[sa.Table] = IMPORT_TABLES) -> dict[str, list[tuple]]:
    return {t.name: sorted(tuple(map(str, row.values())) for row in warehouse.read_rows(sa.select(t)))
            for t in tables}


def keys(warehouse: Warehouse, table: sa.Table, column: str) -> set[str]:
    return {row[column] for row in warehouse.read_rows(sa.select(table.c[column]))}


@pytest.fixture
def sample(emulator: IvorisEmulator, tmp_path: Path) -> SampleExport:
    return SampleExport(emulator, tmp_path)


def test_the_import_lands_history_with_the_api_paths_validation_and_is_repeatable(
        warehouse_url: str, emulator: IvorisEmulator, sample: SampleExport) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    seed_appointment_types(warehouse, emulator)

    result = run_asset(warehouse_url, sample.config())
    first = snapshot(warehouse)
    again = run_asset(warehouse_url, sample.config())

    assert result.success and again.success
    assert snapshot(warehouse) == first  # re-importing the same files gives identical tables

    appointments = sample.in_history(sample.appointments, "start")
    entries = sample.in_history(sample.entries, "date")
    assert len(appointments) > 10 and len(entries) > 50
    appointment_keys = {f"MB_{a['id']}" for a in appointments}
    assert keys(warehouse, schema.raw_appointments, "appointment_key") == appointment_keys
    assert keys(warehouse, schema.stg_appointments, "appointment_key") == appointment_keys
    assert keys(warehouse, schema.stg_document_entries, "entry_key") == {f"MB_{e['id']}" for e in entries}
    # money arrives exact: the staged cents add up to the export's written amounts
    staged_cents = sum(r["amount_cents"] for r in warehouse.read_rows(sa.select(schema.stg_document_entries)))
    assert staged_cents == int(sum(Decimal(str(e["amount"])) for e in entries) * 100)
    # patients: the ones the history's appointments reference, and every one modified before history_start
    referenced = {f"MB_{a['patientId']}" for a in appointments}
    modified = {f"MB_{p['id']}" for p in sample.in_history(sample.patients, "modifiedAt")}
    assert keys(warehouse, schema.stg_patients, "patient_key") == referenced | modified
    referencing_rows = warehouse.read_rows(sa.select(schema.raw_patients).where(
        schema.raw_patients.c.reason == "referenced"))
    assert {(r["patient_key"], r["partition_date"]) for r in referencing_rows} == {
        (f"MB_{a['patientId']}", dt.date.fromisoformat(a["start"][:10])) for a in appointments}
    # nothing from the days the API extraction owns
    for table in IMPORT_TABLES:
        latest = warehouse.read_rows(sa.select(sa.func.max(table.c.partition_date)))[0]
        assert next(iter(latest.values())) <= LAST_HISTORY_DAY

    window_start = warehouse.read_rows(sa.select(sa.func.min(schema.raw_patients.c.partition_date)))[0]
    start = next(iter(window_start.values()))
    june = dt.date(2026, 6, 1)
    quarantine = {(r["entity"], r["stage"], r["partition_date"], r["record_key"], r["reason"])
                  for r in warehouse.read_rows(sa.select(schema.quarantine))}
    line_of_short_row = len(sample.appointments) + 4  # header, records, two bad lines, then the short one
    assert quarantine == {
        ("appointment", "raw", start, "MB_990001", "unparsable start"),
        ("appointment", "raw", june, "record-without-id-1", "missing or invalid id"),
        ("appointment", "raw", start, f"line-{line_of_short_row}", "wrong column count"),
        ("document_entry", "raw", start, "MB_99000003", "unparsable date"),
        ("document_entry", "staging", dt.date(2026, 6, 17), "MB_99000001", "non-numeric amount"),
        ("document_entry", "staging", dt.date.fromisoformat(sample.entries[0]["date"]), "MB_99000002",
         "control characters in description"),
        ("patient", "raw", start, f"line-{len(sample.patients) + 2}", "NUL character in lastName"),
    }

    metadata = result.asset_materializations_for_node(import_asset().op.name)[0].metadata
    assert metadata["window"].value == f"{start.isoformat()} .. {LAST_HISTORY_DAY.isoformat()}"
    assert metadata["rows_by_table"].value["raw_appointments"] == len(appointments)
    assert metadata["lines_read"].value == sample.lines
    assert metadata["quarantined"].value == len(quarantine)
    assert metadata["quarantine_reasons"].value["document_entry/staging"] == {
        "control characters in description": 1, "non-numeric amount": 1}
    assert metadata["outside_window_not_imported"].value == {
        "appointment": len(sample.appointments) - len(appointments),
        "document_entry": len(sample.entries) - len(entries)}


def test_the_deals_asset_picks_up_the_imported_history(sqlite_url: str, emulator: IvorisEmulator,
                                                       sample: SampleExport) -> None:
    warehouse = WarehouseResource(url=sqlite_url).get()
    seed_appointment_types(warehouse, emulator)
    run_asset(sqlite_url, sample.config())

    deals = build_practice_deal_assets(PRACTICE, upstream=[])
    result = materialize(deals, resources={"warehouse": WarehouseResource(url=sqlite_url),
                                           "mapping": MappingResource(path=str(MAPPING_FILE))})

    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert practice_asset_key(PRACTICE, "deals") in materialized
    history = {f"MB_{a['id']}" for a in sample.in_history(sample.appointments, "start")}
    in_deals = keys(warehouse, schema.deal_appointments, "appointment_key")
    assert in_deals and in_deals <= history
    assert sum(r["amount_cents"] for r in warehouse.read_rows(sa.select(schema.deals))) > 0


def test_the_import_equals_the_api_extraction_of_the_same_window(
        sqlite_url: str, tmp_path: Path, mapping_file: Path, ivoris: IvorisEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Same records, same functions: the import's raw rows match what the API path extracts."""
    from dagster._core.instance_for_test import instance_for_test

    from tests.assets.test_ivoris_raw import extract

    window = (EXPORT_FROM, LAST_HISTORY_DAY)
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    with instance_for_test() as instance:
        extract(mapping_file, instance, start=window[0], end=window[1])
    api = WarehouseResource(url=sqlite_url).get()

    imported_url = f"sqlite:///{tmp_path / 'imported.sqlite'}"
    try:
        imported = WarehouseResource(url=imported_url).get()
        seed_appointment_types(imported, ivoris)
        truth = ivoris.truth
        files = ImportFiles(
            write_export(tmp_path / "a.csv", APPOINTMENTS.fields, truth.appointments("mb", *window), ";"),
            write_export(tmp_path / "p.csv", PATIENTS.fields, truth.patients("mb", truth.patient_ids("mb"))),
            write_export(tmp_path / "e.csv", DOCUMENT_ENTRIES.fields, truth.document_entries("mb", *window)))
        run_import(imported, "mb", "MB_", HISTORY_START, files,
                   keys(api, schema.appointment_types, "type_key"), date_from=window[0])
        tables = (schema.raw_appointments, schema.raw_patients, schema.raw_document_entries,
                  schema.quarantine)
        api_rows = snapshot(api, tables)
        assert snapshot(imported, tables) == api_rows
        assert len(api_rows["raw_appointments"]) > 10 and len(api_rows["raw_patients"]) > 10
    finally:
        dispose_engine(imported_url)


def test_duplicates_resolve_like_the_api_client_and_entries_are_optional(
        sqlite_url: str, emulator: IvorisEmulator, sample: SampleExport, tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=sqlite_url).get()
    seed_appointment_types(warehouse, emulator)
    types = keys(warehouse, schema.appointment_types, "type_key")
    run_import(warehouse, "mb", "MB_", HISTORY_START, sample.files(), types)
    clean = snapshot(warehouse)

    # an older copy of an appointment and a patient twice, in a file exported again
    older = {**sample.appointments[0], "status": "booked", "modifiedAt": "2026-06-01T08:00:00Z"}
    appointments = write_export(tmp_path / "twice.csv", APPOINTMENTS.fields,
                                [older, *sample.appointments, sample.appointments[1]], ";")
    patients = write_export(tmp_path / "patients-twice.csv", PATIENTS.fields,
                            [*sample.patients, *sample.patients[:3]])
    written = sample.appointments_csv.read_text(encoding="utf-8-sig").splitlines()
    raw_lines = written[len(sample.appointments) + 1:]
    with appointments.open("a", encoding="utf-8", newline="") as handle:
        handle.write("".join(line + "\r\n" for line in raw_lines))
    nul_line = sample.patients_csv.read_text(encoding="utf-8").splitlines()[-1]
    with patients.open("a", encoding="utf-8", newline="") as handle:
        handle.write(nul_line + "\r\n")
    result = run_import(warehouse, "mb", "MB_", HISTORY_START,
                        ImportFiles(appointments, patients, sample.entries_csv), types)
    assert result.duplicates_dropped == {"appointment": 2, "patient": 3}
    after = snapshot(warehouse)
    # only the quarantine's line numbers moved (two extra lines above them in each file)
    assert {k: v for k, v in after.items() if k != "quarantine"} == {
        k: v for k, v in clean.items() if k != "quarantine"}
    assert len(after["quarantine"]) == len(clean["quarantine"])

    # without the entries file, the entry tables are left as they are
    entries_before = snapshot(warehouse, (schema.raw_document_entries, schema.stg_document_entries))
    result = run_import(warehouse, "mb", "MB_", HISTORY_START, sample.files(entries=False), types)
    assert "raw_document_entries" not in result.rows
    assert snapshot(warehouse, (schema.raw_document_entries, schema.stg_document_entries)) == entries_before


def test_comma_semicolon_bom_and_header_variants_read_alike(tmp_path: Path) -> None:
    records = [{"id": "1", "firstName": "Anna", "lastName": "Zahn, geb. Krone", "birthDate": "1980-01-02",
                "email": None, "phone": "0391 1234", "insurance": "GKV",
                "modifiedAt": "2025-01-01T10:00:00Z"}]
    comma = write_export(tmp_path / "comma.csv", PATIENTS.fields, records)
    semicolon = write_export(tmp_path / "semicolon.csv", PATIENTS.fields, records, ";", bom=True)
    # retyped header (case, blanks), reordered, with an extra column the import ignores
    fields = ["Notiz", " modifiedat ", *reversed(PATIENTS.fields[:-1])]
    row = {**records[0], "Notiz": "x", " modifiedat ": records[0]["modifiedAt"]}
    variant = write_export(tmp_path / "variant.csv", fields, [row], ";")
    readings = [[(line.line, line.record) for line in read_export(path, PATIENTS)]
                for path in (comma, semicolon, variant)]
    assert readings[0] == readings[1] == readings[2] == [(2, records[0])]
    assert readings[0][0][1]["email"] is None  # empty cell = null


def test_a_file_lacking_columns_or_not_csv_is_a_clear_error(sqlite_url: str, sample: SampleExport,
                                                            tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=sqlite_url).get()
    no_status = write_export(tmp_path / "termine-alt.csv",
                             [f for f in APPOINTMENTS.fields if f not in ("start", "status")], [])
    with pytest.raises(ImportFileError, match=r"appointments file '.*termine-alt\.csv': missing required "
                                              r"columns: start, status"):
        run_import(warehouse, "mb", "MB_", HISTORY_START, ImportFiles(no_status, sample.patients_csv), set())

    workbook = tmp_path / "patienten.xlsx"
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>" * 200)
    with pytest.raises(ImportFileError, match=r"patients file '.*patienten\.xlsx': is not UTF-8 text"):
        run_import(warehouse, "mb", "MB_", HISTORY_START,
                   ImportFiles(sample.appointments_csv, workbook), set())

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ImportFileError, match=r"document entries file '.*empty\.csv': is empty"):
        run_import(warehouse, "mb", "MB_", HISTORY_START,
                   ImportFiles(sample.appointments_csv, sample.patients_csv, empty), set())
    with pytest.raises(ImportFileError, match="file not found"):
        run_import(warehouse, "mb", "MB_", HISTORY_START,
                   ImportFiles(tmp_path / "missing.csv", sample.patients_csv), set())
    assert all(count == 0 for count in warehouse.table_counts().values())


def test_an_unmapped_type_or_missing_reference_data_fails_before_any_write(
        sqlite_url: str, emulator: IvorisEmulator, sample: SampleExport, tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=sqlite_url).get()
    with pytest.raises(ValueError, match=r"no appointment types in the warehouse; materialize "
                                         r"mb/appointment_types"):
        run_import(warehouse, "mb", "MB_", HISTORY_START, sample.files(), set())

    seed_appointment_types(warehouse, emulator)
    tabs = load_mapping_tabs(MAPPING_FILE)
    used = str(sample.appointments[0]["typeId"])
    tabs["appointment_types"] = [row for row in tabs["appointment_types"]
                                 if not (row["practice"] == "mb" and str(row["type_id"]) == used)]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(tabs, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"practice 'mb' type id {used} is used by the data"):
        run_asset(sqlite_url, sample.config(), mapping_path=mapping)
    assert warehouse.count_rows(schema.raw_appointments) == 0 and warehouse.count_rows(schema.quarantine) == 0


def test_the_window_ends_before_history_start() -> None:
    assert import_window(HISTORY_START, None, None) == (None, LAST_HISTORY_DAY)
    assert import_window(HISTORY_START, dt.date(2025, 1, 1), dt.date(2025, 12, 31)) == (
        dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    with pytest.raises(ValueError, match="not before the practice's history_start 2026-06-27"):
        import_window(HISTORY_START, None, HISTORY_START)
    with pytest.raises(ValueError, match="is after the window's end"):
        import_window(HISTORY_START, dt.date(2026, 6, 27), None)


def test_months_without_data_are_replaced_together() -> None:
    chunks = month_chunks(dt.date(2025, 1, 15), dt.date(2025, 6, 10),
                          {dt.date(2025, 3, 1), dt.date(2025, 6, 1)})
    assert chunks == [
        (dt.date(2025, 1, 15), dt.date(2025, 1, 31), True),  # the first chunk always holds data
        (dt.date(2025, 2, 1), dt.date(2025, 2, 28), False),
        (dt.date(2025, 3, 1), dt.date(2025, 3, 31), True),
        (dt.date(2025, 4, 1), dt.date(2025, 5, 31), False),
        (dt.date(2025, 6, 1), dt.date(2025, 6, 10), True),
    ]


def test_the_factory_gives_every_practice_its_own_asset() -> None:
    practices = MappingResource(path=str(MAPPING_FILE)).load().active_practices
    assets = build_migration_import_assets(practices)
    for practice, asset in zip(practices, assets, strict=True):
        assert asset.key == practice_asset_key(practice, "historical_import")
        assert asset.group_names_by_key[asset.key] == f"migration_{practice.practice_id}"
        assert {"warehouse", "mapping"} <= asset.required_resource_keys
