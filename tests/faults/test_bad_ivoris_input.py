"""The bad-input corpus: malformed Ivoris answers, end to end (docs/bad-input.md).

Every kind is served by the Ivoris emulator over real HTTP (`inject_response` replaces an answer,
`rewrite_response` corrupts the normal one) and consumed by the real `IvorisClient`, raw assets and
staging through Dagster (`execute_in_process`, one run over WINDOW, two extraction chunks). Each
kind has one expected outcome:

* `Quarantined`: the malformed record becomes quarantine rows with these reasons (keys only, never
  content), and every other record of the window is identical to the clean reference run;
* `Lands`: the answer is accepted; the warehouse equals the reference (with the served values where
  the record legitimately changed, e.g. emoji names);
* `Fails`: the run fails with an error naming site, route and the chunk's date window; the chunk
  before it is committed as in the reference, the failed chunk has no rows, nothing else is stored.
"""

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    EnvVar,
    ExecuteInProcessResult,
    RetryPolicy,
    define_asset_job,
)
from dagster._core.instance_for_test import instance_for_test

from biss_emulators.ivoris import IvorisEmulator
from biss_pipeline.assets import ivoris as ivoris_assets
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import dispose_engine
from biss_pipeline.keys import practice_asset_key
from biss_pipeline.resources.ivoris import IvorisResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.conftest import write_mapping_for

pytestmark = pytest.mark.faults

PRACTICE, PREFIX = "mb", "MB_"
WINDOW = (dt.date(2026, 6, 22), dt.date(2026, 7, 1))
CHUNK_DAYS = 7  # chunks 06-22 .. 06-28 and 06-29 .. 07-01
CHUNK_1 = (dt.date(2026, 6, 22), dt.date(2026, 6, 28))
CHUNK_2 = (dt.date(2026, 6, 29), dt.date(2026, 7, 1))
JOB = "bad_input_mb"
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# The raw assets' retry policy as in production (two retries), without its 30 s pauses.
FAST_RETRIES = RetryPolicy(max_retries=2, delay=0)
KEY_COLUMNS = {
    "raw_appointments": "appointment_key", "stg_appointments": "appointment_key",
    "raw_patients": "patient_key", "stg_patients": "patient_key",
    "raw_document_entries": "entry_key", "raw_repaired_document_entries": "entry_key",
    "stg_document_entries": "entry_key",
}
ENTITY_TABLES = {"appointment": ("raw_appointments", "stg_appointments"),
                 "patient": ("raw_patients", "stg_patients"),
                 "entry": ("raw_document_entries", "raw_repaired_document_entries", "stg_document_entries")}
ROUTES = {"appointment": ("/appointments",), "patient": ("/patients",),
          "entry": ("/document-entries", "/patients/{patient_id}/document-entries")}
ROUTE_TABLES = {"/appointments": "raw_appointments", "/document-entries": "raw_document_entries"}
ONE_MB = 1_000_000

Rows = dict[str, dict[tuple[str, str], tuple[str, ...]]]


@dataclass
class Snapshot:
    tables: Rows
    quarantine: set[tuple[str, str, str, str]]  # (entity, stage, record_key, reason)
    quarantine_days: set[str]


@dataclass
class Targets:
    """The records the kinds corrupt, chosen from the clean run: a completed appointment in chunk 1,
    its patient, one of its billing lines."""

    appointment: str
    patient: str
    entry: str
    patient_appointments: set[str]

    def key(self, entity: str) -> str:
        return PREFIX + getattr(self, entity)


# ------------------------------------------------------------------------------- serving helpers

Serve = Callable[[IvorisEmulator, Targets], None]


def records_of(answer: Any) -> list[Any]:
    return answer["items"] if isinstance(answer, dict) else answer


def edit(entity: str, mutate: Callable[[dict[str, Any]], None]) -> Serve:
    """Corrupt one record (the target of `entity`) wherever Ivoris serves it, on every request."""
    def serve(emu: IvorisEmulator, targets: Targets) -> None:
        wanted = int(getattr(targets, entity))

        def rewrite(answer: Any, _query: dict[str, str]) -> None:
            for record in records_of(answer):
                if record.get("id") == wanted:
                    mutate(record)

        for route in ROUTES[entity]:
            emu.rewrite_response(route, rewrite, site_id=PRACTICE)
    return serve


def set_field(entity: str, **values: Any) -> Serve:
    return edit(entity, lambda record: record.update(values))


def drop_field(entity: str, name: str) -> Serve:
    def mutate(record: dict[str, Any]) -> None:
        del record[name]
    return edit(entity, mutate)


def on_page(entity: str, change: Callable[[list[Any], int], list[Any]]) -> Serve:
    """Change the record list of the chunk-1 page that holds the target (`change(items, target_id)`)."""
    def serve(emu: IvorisEmulator, targets: Targets) -> None:
        wanted = int(getattr(targets, entity))

        def rewrite(answer: Any, _query: dict[str, str]) -> None:
            items = records_of(answer)
            if any(isinstance(r, dict) and r.get("id") == wanted for r in items):
                items[:] = change(list(items), wanted)

        emu.rewrite_response(ROUTES[entity][0], rewrite, site_id=PRACTICE)
    return serve


def chunk_2(route: str, *, rewrite: Callable[[Any, dict[str, str]], Any] | None = None,
            **answer: Any) -> Serve:
    """Replace (or rewrite) every answer of `route` for the second chunk's window."""
    def serve(emu: IvorisEmulator, _targets: Targets) -> None:
        params = {"from": CHUNK_2[0].isoformat()}
        if rewrite is not None:
            emu.rewrite_response(route, rewrite, site_id=PRACTICE, params=params, **answer)
        else:
            emu.inject_response(route, site_id=PRACTICE, params=params, times=None, **answer)
    return serve


def chunk_1_once(route: str, **answer: Any) -> Serve:
    """A single broken answer on the first chunk's first request (the retry gets a good one)."""
    def serve(emu: IvorisEmulator, _targets: Targets) -> None:
        emu.inject_response(route, site_id=PRACTICE, params={"from": CHUNK_1[0].isoformat()}, times=1,
                            **answer)
    return serve


def everywhere(rewrite: Callable[[Any, dict[str, str]], Any]) -> Serve:
    def serve(emu: IvorisEmulator, _targets: Targets) -> None:
        emu.rewrite_response("*", rewrite, site_id=PRACTICE)
    return serve


def truncated(answer: Any, _query: dict[str, str]) -> bytes:
    from biss_emulators.ivoris._util import dumps
    text = dumps(answer)
    return text[: len(text) // 2]


def as_plain_list(answer: Any, _query: dict[str, str]) -> Any:
    return answer["items"]


def without(name: str) -> Callable[[Any, dict[str, str]], None]:
    def rewrite(answer: Any, _query: dict[str, str]) -> None:
        del answer[name]
    return rewrite


def with_values(**values: Any) -> Callable[[Any, dict[str, str]], None]:
    return lambda answer, _query: answer.update(values)


def page_ignored(answer: Any, query: dict[str, str]) -> Any:
    """The server ignores `page`: every page is page 1 (echoing the page asked for), and the total
    says there are three pages."""
    first = page_ignored.__dict__.setdefault("first", {})  # page 1's items, per window
    window = query.get("from")
    if query.get("page") == "1":
        first[window] = answer["items"]
    return {**answer, "items": first.get(window, answer["items"]), "total": 3 * int(answer["pageSize"])}


def runaway_total(answer: Any, query: dict[str, str]) -> Any:
    """Every page claims one more record than fits up to itself: following `total` never ends."""
    return {**answer, "total": int(query["page"]) * int(answer["pageSize"]) + 1}


def extra_fields(answer: Any, _query: dict[str, str]) -> None:
    for record in records_of(answer):
        if isinstance(record, dict):
            record.update(practiceNote="neu seit v9", legacy={"a": [1, 2]}, flag=True)
    if isinstance(answer, dict):
        answer["serverVersion"] = "9.1.0"


def duplicated(items: list[Any], wanted: int) -> list[Any]:
    target = next(r for r in items if r.get("id") == wanted)
    return [*items, dict(target)]


def conflicting(items: list[Any], wanted: int) -> list[Any]:
    target = next(r for r in items if r.get("id") == wanted)
    other = "cancelled" if target["status"] != "cancelled" else "no_show"
    return [*items, {**target, "status": other}]


def not_objects(items: list[Any], _wanted: int) -> list[Any]:
    return [*items, None, 42]


def foreign_record(items: list[Any], wanted: int) -> list[Any]:
    target = next(r for r in items if r.get("id") == wanted)
    return [*items, {**target, "id": 990001, "patientId": 990001, "practiceId": 2}]


# ------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Quarantined:
    """The target record is quarantined with these (entity, stage, reason) rows; nothing else changes
    except the rows it brings along (its patient's row on its day if it never reaches raw)."""

    target: str
    rows: tuple[tuple[str, str, str], ...]
    keys: tuple[str, ...] = ()  # the quarantine keys, if not the target's key
    also_affected: tuple[str, ...] = ()  # further keys that may differ (e.g. the patient's)
    cascade_unknown_patient: bool = False  # the patient's appointments are then held back

    def describe(self) -> str:
        return "; ".join(f"quarantine {entity}/{stage}: `{reason}`" for entity, stage, reason in self.rows)


@dataclass(frozen=True)
class Lands:
    """Accepted; equal to the reference (with `values` on the target's rows in these tables)."""

    target: str | None = None
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    note: str = "lands intact, equal to the clean run"

    def describe(self) -> str:
        return self.note


@dataclass(frozen=True)
class Fails:
    """The run fails; the error names site, route and chunk window plus `message`."""

    route: str
    message: str

    def describe(self) -> str:
        return f"run fails: `{self.message}`"


Outcome = Quarantined | Lands | Fails


@dataclass(frozen=True)
class Kind:
    id: str
    served: str
    serve: Serve
    outcome: Outcome


HTML_PAGE = ("<!DOCTYPE html><html><head><title>Wartungsarbeiten</title></head><body><h1>Ivoris wird "
             "gewartet</h1></body></html>")
RTL_NAME = "\u200fعبد الله 🦷"
COMBINING_NAME = "Zoe\u0308 Ma\u0301ria"

# The corpus: one row per kind of malformed answer, what the emulator serves, the expected outcome.
CORPUS: list[Kind] = [
    # --- the body is not the JSON document the contract promises: the chunk fails, visibly
    Kind("non_json_body", "200, text/plain stack trace instead of JSON",
         chunk_2("/appointments", body="System.NullReferenceException at Ivoris.Api",
                 content_type="text/plain"),
         Fails("appointments", "answer is not JSON")),
    Kind("html_error_page_200", "200, text/html maintenance page",
         chunk_2("/appointments", body=HTML_PAGE, content_type="text/html"),
         Fails("appointments", "answer is not JSON")),
    Kind("truncated_json", "200, the page cut off halfway",
         chunk_2("/document-entries", rewrite=truncated),
         Fails("document-entries", "answer is not JSON")),
    Kind("empty_body_200", "200, empty body",
         chunk_2("/appointments", body=b""),
         Fails("appointments", "answer is not JSON")),
    Kind("invalid_utf8_bytes", "200, JSON with a raw 0xFF byte inside a string",
         chunk_2("/appointments", body=b'{"items": [{"id": 1, "status": "\xff"}], "page": 1, '
                                       b'"pageSize": 200, "total": 1}'),
         Fails("appointments", "answer is not JSON")),
    Kind("gzip_corrupt", "200, `Content-Encoding: gzip` over a body that is not gzip",
         chunk_2("/appointments", body=b'{"items": []}', headers={"Content-Encoding": "gzip"}),
         Fails("appointments", "answer body cannot be decoded")),
    # --- JSON, but not the page envelope {items, page, pageSize, total}
    Kind("top_level_list", "the page's records as a plain list instead of the envelope",
         chunk_2("/appointments", rewrite=as_plain_list),
         Fails("appointments", "not a {items, total} envelope")),
    Kind("missing_items", "envelope without `items`",
         chunk_2("/document-entries", rewrite=without("items")),
         Fails("document-entries", "not a {items, total} envelope")),
    Kind("missing_total", "envelope without `total`",
         chunk_2("/appointments", rewrite=without("total")),
         Fails("appointments", "no valid total")),
    Kind("total_as_string", '`"total": "17"`',
         chunk_2("/appointments", rewrite=with_values(total="17")),
         Fails("appointments", "no valid total")),
    Kind("error_object_200", '200 with `{"error": "internal", "message": ...}`',
         chunk_2("/appointments", body=b'{"error": "internal", "message": "database locked"}'),
         Fails("appointments", "error object with HTTP 200")),
    Kind("wrong_page_echoed", "the envelope says `page: 7` for page 1",
         chunk_2("/appointments", rewrite=with_values(page=7)),
         Fails("appointments", "answered page 7 instead")),
    # --- paging that would never end or silently repeat
    Kind("page_ignored_repeats_page_1", "every page serves page 1's records; total says 3 pages",
         chunk_2("/appointments", rewrite=page_ignored),
         Fails("appointments", "repeats page 1 exactly")),
    # a total that cannot be true (SPEC §3 rev. 2): every record is kept, the window is an anomaly
    Kind("runaway_total", "each page's total reaches one record past itself (endless paging)",
         chunk_2("/document-entries", rewrite=runaway_total),
         Lands(note="lands intact; reading ends at the first empty page, the window is a paging anomaly")),
    Kind("absurd_total", "`total: 10^12` on page 1",
         chunk_2("/appointments", rewrite=with_values(total=10**12)),
         Lands(note="lands intact; reading ends at the first empty page, the window is a paging anomaly")),
    # --- transport-level garbage that a retry cures
    Kind("content_length_too_long", "once: `Content-Length` larger than the body (connection cut)",
         chunk_1_once("/appointments", body=b'{"items": []}', headers={"Content-Length": "400"}),
         Lands(note="retried (RemoteProtocolError), then lands intact")),
    Kind("content_length_too_short", "once: `Content-Length` smaller than the body",
         chunk_1_once("/appointments", body=b'{"items": [], "page": 1, "pageSize": 200, "total": 0}',
                      headers={"Content-Length": "10"}),
         Lands(note="retried (RemoteProtocolError), then lands intact")),
    # --- a well-formed answer with a wrong Content-Type or extra fields: accepted
    Kind("wrong_content_type", "every answer labelled `text/html`",
         lambda emu, _t: emu.rewrite_response("*", lambda a, q: None, site_id=PRACTICE,
                                              content_type="text/html"),
         Lands(note="lands intact (the body decides, not the label)")),
    Kind("unknown_extra_fields", "every record and envelope with extra fields (text, object, bool)",
         everywhere(extra_fields),
         Lands(note="lands intact, extra fields ignored")),
    # --- wrong types, missing and null fields
    Kind("id_as_object", '`"id": {"value": 6001}`',
         edit("appointment", lambda r: r.update(id={"value": r["id"]})),
         Quarantined("appointment", (("appointment", "raw", "missing or invalid id"),),
                     keys=("record-without-id-1",), also_affected=("patient",))),
    Kind("amount_as_string_with_comma", '`"amount": "12,50"`',
         set_field("entry", amount="12,50"),
         Quarantined("entry", (("document_entry", "staging", "non-numeric amount"),))),
    Kind("date_as_number", '`"date": 20260623`',
         set_field("entry", date=20260623),
         Quarantined("entry", (("document_entry", "raw", "unparsable date"),))),
    Kind("null_status", '`"status": null`',
         set_field("appointment", status=None),
         Quarantined("appointment", (("appointment", "staging", "missing status"),))),
    Kind("missing_patient_id", "appointment without `patientId`",
         drop_field("appointment", "patientId"),
         Quarantined("appointment", (("appointment", "staging", "missing patient"),),
                     also_affected=("patient",))),
    Kind("missing_modified_at", "billing line without `modifiedAt`",
         drop_field("entry", "modifiedAt"),
         Quarantined("entry", (("document_entry", "staging", "unparsable modified_at"),))),
    Kind("items_not_objects", "`null` and `42` among a page's records",
         on_page("appointment", not_objects),
         Quarantined("appointment", (("appointment", "raw", "missing or invalid id"),),
                     keys=("record-without-id-1", "record-without-id-2"))),
    # --- strings
    Kind("huge_string_1mb", "a 1 MB `lastName`",
         set_field("patient", lastName="X" * ONE_MB),
         Quarantined("patient", (("patient", "staging", "oversize last_name"),))),
    Kind("nul_byte", "a NUL character in `description`",
         set_field("entry", description="Füllung\u0000mehrflächig"),
         Quarantined("entry", (("document_entry", "raw", "NUL character in description"),
                               ("document_entry_repair", "raw", "NUL character in description")))),
    Kind("lone_surrogate", '`"lastName": "M\\ud800ller"` (escape of a lone UTF-16 surrogate)',
         set_field("patient", lastName="M\ud800ller"),
         Quarantined("patient", (("patient", "raw", "lone surrogate in lastName"),),
                     cascade_unknown_patient=True)),
    Kind("rtl_combining_emoji", "valid: RTL mark + Arabic + emoji, combining accents",
         set_field("patient", lastName=RTL_NAME, firstName=COMBINING_NAME),
         Lands("patient", {"raw_patients": {"last_name": RTL_NAME, "first_name": COMBINING_NAME},
                           "stg_patients": {"last_name": RTL_NAME, "first_name": COMBINING_NAME}},
               note="lands intact, byte for byte")),
    # --- dates
    Kind("start_year_9999", '`"start": "9999-06-22T09:00:00"`',
         set_field("appointment", start="9999-06-22T09:00:00"),
         Quarantined("appointment", (("appointment", "raw", "start outside requested window"),),
                     also_affected=("patient",))),
    Kind("birth_date_year_0001", '`"birthDate": "0001-01-01"`',
         set_field("patient", birthDate="0001-01-01"),
         Quarantined("patient", (("patient", "staging", "birth_date out of range"),))),
    Kind("end_february_30", '`"end": "2026-02-30T10:00:00"`',
         set_field("appointment", end="2026-02-30T10:00:00"),
         Quarantined("appointment", (("appointment", "staging", "unparsable end"),))),
    Kind("modified_at_in_future", '`"modifiedAt": "2031-01-01T00:00:00Z"`',
         set_field("appointment", modifiedAt="2031-01-01T00:00:00Z"),
         Quarantined("appointment", (("appointment", "staging", "modified_at in the future"),))),
    # --- amounts
    Kind("absurd_negative_amount", '`"amount": -250000.00`',
         set_field("entry", amount=Decimal("-250000.00")),
         Quarantined("entry", (("document_entry", "staging", "absurd amount"),))),
    Kind("amount_exponent_overflow", '`"amount": 1E+400`',
         set_field("entry", amount=Decimal("1E+400")),
         Quarantined("entry", (("document_entry", "staging", "absurd amount"),))),
    Kind("amount_nan", '`"amount": NaN`',
         set_field("entry", amount=Decimal("NaN")),
         Quarantined("entry", (("document_entry", "staging", "non-numeric amount"),))),
    Kind("amount_three_decimals", '`"amount": 12.345`',
         set_field("entry", amount=Decimal("12.345")),
         Quarantined("entry", (("document_entry", "staging", "amount with more than 2 decimals"),))),
    # --- duplicates and strangers
    Kind("duplicate_identical_on_one_page", "the same record twice on one page",
         on_page("appointment", duplicated),
         Lands(note="lands once, equal to the clean run")),
    Kind("duplicate_conflicting_on_one_page", "the same id twice, same modifiedAt, other status",
         on_page("appointment", conflicting),
         Quarantined("appointment",
                     (("appointment", "raw", "conflicting versions with the same modifiedAt"),),
                     also_affected=("patient",))),
    Kind("record_of_another_site", "an extra record with `practiceId: 2` and a patient this site lacks",
         on_page("appointment", foreign_record),
         Quarantined("appointment", (("appointment", "staging", "unknown patient"),), keys=("MB_990001",))),
]


# ------------------------------------------------------------------------------- the harness


@dataclass
class World:
    emu: IvorisEmulator
    defs: Definitions
    instance: DagsterInstance
    base_db: Path
    directory: Path
    reference: Snapshot
    targets: Targets
    mp: pytest.MonkeyPatch

    def run(self, name: str) -> tuple[ExecuteInProcessResult, Snapshot]:
        db = self.directory / f"{name}.sqlite"
        shutil.copy(self.base_db, db)
        url = f"sqlite:///{db}"
        self.mp.setenv("BISS_WAREHOUSE_URL", url)
        try:
            result = self.defs.resolve_job_def(JOB).execute_in_process(
                instance=self.instance, tags=range_tags(*WINDOW), run_config=QUIET, raise_on_error=False)
            return result, snapshot(url)
        finally:
            dispose_engine(url)


def range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat()}


def snapshot(url: str) -> Snapshot:
    warehouse = WarehouseResource(url=url).get()
    tables: Rows = {}
    for name, key_column in KEY_COLUMNS.items():
        table = schema.metadata.tables[name]
        rows = warehouse.read_rows(sa.select(table).where(table.c.practice_id == PRACTICE))
        tables[name] = {(str(r["partition_date"]), r[key_column]): tuple(f"{c}={r[c]}" for c in sorted(r))
                        for r in rows}
    quarantine = warehouse.read_rows(sa.select(schema.quarantine))
    return Snapshot(tables, {(q["entity"], q["stage"], q["record_key"], q["reason"]) for q in quarantine},
                    {str(q["partition_date"]) for q in quarantine})


def definitions(mapping_file: Path) -> Definitions:
    """The project's definitions, with chunks of CHUNK_DAYS and a short retry budget for mb, plus a
    job of mb's raw assets and staging (what turns a bad answer into quarantine rows)."""
    defs = build_definitions(mapping_file)
    practice = next(p for p in MappingResource(path=str(mapping_file)).load().active_practices
                    if p.practice_id == PRACTICE)
    resources = dict(defs.resources or {})
    resources[practice.resource_key] = IvorisResource(
        practice_id=PRACTICE, base_url=practice.ivoris_base_url, api_key=EnvVar(practice.api_key_env),
        chunk_days=CHUNK_DAYS, max_attempts=3, backoff_initial_s=0.05, backoff_max_s=0.2, timeout_s=10.0)
    raw = [practice_asset_key(practice, n) for n in (
        "raw_appointments", "raw_patients", "raw_document_entries", "raw_repaired_document_entries")]
    staging = [practice_asset_key(practice, n) for n in ("stg_patients", "stg_appointments",
                                                        "stg_document_entries")]
    job = define_asset_job(JOB, selection=AssetSelection.assets(*raw, *staging))
    return Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=[*(defs.jobs or []), job],
                       resources=resources)


def choose_targets(reference: Snapshot) -> Targets:
    def fields(row: tuple[str, ...]) -> dict[str, str]:
        return dict(item.split("=", 1) for item in row)

    appointments = sorted(
        (fields(row) for (day, _), row in reference.tables["raw_appointments"].items()
         if CHUNK_1[0].isoformat() <= day <= CHUNK_1[1].isoformat()),
        key=lambda r: int(r["ivoris_id"]))
    entries = [fields(row) for row in reference.tables["raw_document_entries"].values()]
    for appointment in appointments:
        linked = sorted((e for e in entries if e["appointment_id"] == appointment["ivoris_id"]),
                        key=lambda e: int(e["ivoris_id"]))
        if appointment["status"] == "completed" and linked:
            patient = appointment["patient_id"]
            mine = {f"{PREFIX}{a['ivoris_id']}"
                    for a in map(fields, reference.tables["raw_appointments"].values())
                    if a["patient_id"] == patient}
            return Targets(appointment["ivoris_id"], patient, linked[0]["ivoris_id"], mine)
    raise AssertionError("no completed appointment with billing lines in chunk 1")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("bad_input")
    emu = IvorisEmulator(seed=7, size="tiny").start()
    try:
        with pytest.MonkeyPatch.context() as mp, instance_for_test() as instance:
            for site in emu.sites:
                mp.setenv(f"TEST_IVORIS_KEY_{site.site_id.upper()}", site.api_key)
            base_db = directory / "base.sqlite"
            base_url = f"sqlite:///{base_db}"
            mp.setenv("BISS_WAREHOUSE_URL", base_url)
            mp.setattr(ivoris_assets, "IVORIS_RETRY_POLICY", FAST_RETRIES)
            defs = definitions(write_mapping_for(emu, directory / "mapping.yaml"))
            assert defs.resolve_job_def("refresh_reference_data").execute_in_process(
                instance=instance, run_config=QUIET).success
            dispose_engine(base_url)
            world = World(emu, defs, instance, base_db, directory, Snapshot({}, set(), set()),
                          Targets("", "", "", set()), mp)
            result, world.reference = world.run("reference")
            assert result.success
            assert world.reference.quarantine == set(), "the clean run quarantines nothing"
            for table in KEY_COLUMNS:
                if table != "raw_repaired_document_entries":
                    days = {day for day, _ in world.reference.tables[table]}
                    assert min(days) <= CHUNK_1[1].isoformat() < max(days), f"{table} spans both chunks"
            world.targets = choose_targets(world.reference)
            yield world
    finally:
        emu.stop()


@pytest.fixture
def bad(world: World) -> Iterator[World]:
    world.emu.clear_injections()
    yield world
    world.emu.clear_injections()


def failure_text(result: ExecuteInProcessResult) -> str:
    texts = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            texts.append(event.step_failure_data.error.to_string())
    return "\n".join(texts)


def without_keys(rows: dict[tuple[str, str], tuple[str, ...]], keys: set[str]) -> dict:
    return {k: v for k, v in rows.items() if k[1] not in keys}


def in_days(rows: dict[tuple[str, str], tuple[str, ...]], days: tuple[dt.date, dt.date]) -> dict:
    return {k: v for k, v in rows.items() if days[0].isoformat() <= k[0] <= days[1].isoformat()}


# ------------------------------------------------------------------------------- the test


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", CORPUS, ids=[kind.id for kind in CORPUS])
def test_bad_ivoris_answer(bad: World, kind: Kind) -> None:
    kind.serve(bad.emu, bad.targets)
    result, got = bad.run(kind.id)
    reference, targets, outcome = bad.reference, bad.targets, kind.outcome

    if isinstance(outcome, Fails):
        text = failure_text(result)
        assert not result.success, "the run must fail"
        window = f"window {CHUNK_2[0].isoformat()} .. {CHUNK_2[1].isoformat()}"
        for part in ("Ivoris site 'mb'", f"route {outcome.route}", window, outcome.message,
                     f"partitions {CHUNK_2[0].isoformat()} .. {CHUNK_2[1].isoformat()} not written"):
            assert part in text, f"{part!r} missing from the error:\n{text[:2000]}"
        failed = ROUTE_TABLES["/" + outcome.route]
        assert in_days(got.tables[failed], CHUNK_1) == in_days(reference.tables[failed], CHUNK_1)
        assert in_days(got.tables[failed], CHUNK_2) == {}, "nothing of the failed chunk is committed"
        for name, rows in got.tables.items():  # whatever else ran is exactly the reference's
            assert rows.items() <= reference.tables[name].items(), f"{name} holds rows the clean run lacks"
        assert got.quarantine == set()
        return

    assert result.success, failure_text(result)
    if isinstance(outcome, Lands):
        assert got.quarantine == set()
        for name, rows in got.tables.items():
            expected = reference.tables[name]
            if outcome.target and name in outcome.values:
                key = targets.key(outcome.target)
                assert {k for k in rows if k[1] == key} == {k for k in expected if k[1] == key}
                for k, row in rows.items():
                    if k[1] == key:
                        values = dict(item.split("=", 1) for item in row)
                        for column, value in outcome.values[name].items():
                            assert values[column] == value, f"{name}.{column} changed on the way"
                rows, expected = without_keys(rows, {key}), without_keys(expected, {key})
            assert rows == expected, f"{name} differs from the clean run"
        return

    # Quarantined: exactly these quarantine rows, and nothing else lost or changed
    keys = set(outcome.keys or [targets.key(outcome.target)])
    wanted = {(entity, stage, key, reason) for entity, stage, reason in outcome.rows for key in keys}
    affected: dict[str, set[str]] = {entity: set() for entity in ENTITY_TABLES}
    affected[outcome.target] |= keys | {targets.key(outcome.target)}
    for entity in outcome.also_affected:
        affected[entity].add(targets.key(entity))
    rejected_patient = outcome.target == "patient" and any(
        not reason.endswith("(dropped)") for _, _, reason in outcome.rows)
    if outcome.cascade_unknown_patient or rejected_patient:
        # a patient with no good version: its appointments and entries are held back, never sent
        # to HubSpot as an empty contact
        patient = f"patient_key={targets.key('patient')}"
        held_entries = {k[1] for k, row in reference.tables["stg_document_entries"].items() if patient in row}
        wanted |= {("appointment", "staging", a, "patient quarantined") for a in targets.patient_appointments}
        wanted |= {("document_entry", "staging", e, "patient quarantined") for e in held_entries}
        affected["appointment"] |= targets.patient_appointments
        affected["entry"] |= held_entries
    assert got.quarantine == wanted
    assert got.quarantine_days <= {d.isoformat() for d in _days(WINDOW)}
    stg_table = ENTITY_TABLES[outcome.target][-1]
    assert not any(k[1] in keys for k in got.tables[stg_table]), "the bad record must not be staged"
    for entity, names in ENTITY_TABLES.items():
        for name in names:
            assert without_keys(got.tables[name], affected[entity]) == without_keys(
                reference.tables[name], affected[entity]), f"{name}: other records changed or got lost"


def _days(window: tuple[dt.date, dt.date]) -> list[dt.date]:
    return [window[0] + dt.timedelta(days=n) for n in range((window[1] - window[0]).days + 1)]


def test_other_practices_are_unaffected(bad: World) -> None:
    """mb serving garbage on every route does not touch rb's extraction."""
    bad.emu.inject_response("*", site_id=PRACTICE, body=HTML_PAGE, content_type="text/html", times=None)
    url = f"sqlite:///{bad.directory / 'other_practice.sqlite'}"
    shutil.copy(bad.base_db, bad.directory / "other_practice.sqlite")
    bad.mp.setenv("BISS_WAREHOUSE_URL", url)
    try:
        assert bad.defs.resolve_job_def("extract_rb").execute_in_process(
            instance=bad.instance, tags=range_tags(*WINDOW), run_config=QUIET).success
        warehouse = WarehouseResource(url=url).get()
        assert warehouse.count_rows(schema.raw_appointments, "rb") == len(
            bad.emu.truth.appointments("rb", *WINDOW))
    finally:
        dispose_engine(url)
    assert os.path.exists(bad.base_db)
