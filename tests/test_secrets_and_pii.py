"""Secrets and patient data stay out of logs, Dagster's storage and the non-patient tables (SPEC §7).

The pipeline runs end to end through Dagster (`refresh_reference_data`, then `pipeline_mb` over a
four-week window with its checks and KPIs) against both emulators, configured with distinctive
secrets (a HubSpot token and per-site Ivoris API keys that share a random canary), on a persistent
DagsterInstance in a temporary DAGSTER_HOME, so the event log and the compute logs are on disk.
Then every place a value could end up is scanned:

* every Python log record (caplog at DEBUG, message, arguments, exception and extra fields);
* everything written to the process' stdout/stderr (capfd; Dagster's console logger at DEBUG);
* every Dagster event log entry and run record of the runs (serialised, with messages and metadata);
* every file under DAGSTER_HOME: the compute logs, and the SQLite event-log and run databases byte
  by byte;
* every file under BISS_DATA_DIR (the KPI report and chart);
* every row of every warehouse table.

Secrets are looked for everywhere, patient values everywhere except in the patient identity
tables `PATIENT_IDENTITY_TABLES`. The patient values are each extracted patient's full name (also
"last, first"), email (also lower-cased), phone and birth date (ISO and German format), taken from
the Ivoris emulator's truth for the window and from what the warehouse's raw patient table holds;
in logs and Dagster storage a surname on its own (as a word) counts too. A finding names the kind of
value and the place, never the value.

The scan runs twice: with the default logging, and with the HTTP stacks' own DEBUG logging switched
on (httpx, httpcore, urllib3, the HubSpot SDK including the loggers that print response bodies),
which is what an operator chasing a problem would do.
"""

import datetime as dt
import logging
import re
import traceback
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance, RetryPolicy
from dagster._serdes import serialize_value

from biss_emulators.hubspot import HubSpotEmulator
from biss_emulators.ivoris import IvorisEmulator
from biss_emulators.ivoris.catalogue import SITE_DEFINITIONS
from biss_emulators.ivoris.sizes import resolve_size
from biss_pipeline.assets import ivoris as ivoris_assets
from biss_pipeline.definitions import build_definitions
from biss_pipeline.domain.ivoris.client import (
    IvorisClient,
    IvorisError,
    IvorisResponseError,
    IvorisUnavailableError,
)
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.assets.test_ivoris_raw import range_tags
from tests.test_tls_and_binding import Route, StubServer

SITE_IDS = [d.site_id for d in SITE_DEFINITIONS[: resolve_size("tiny").sites]]
CANARY = uuid.uuid4().hex[:20]  # shared by every secret below: a partial leak is found too
HUBSPOT_TOKEN = f"pat-eu1-{CANARY}-hubspot"
IVORIS_KEYS = {site: f"ivoris-{site}-{CANARY}" for site in SITE_IDS}
WINDOW = (dt.date(2026, 6, 17), dt.date(2026, 7, 14))
DEBUG_RUN = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}

# Tables that hold patients' identities by design. Every other table holds keys (`MB_123`), codes,
# dates, amounts and counts. The document-entry tables hold health data (billing codes and, for
# Ivoris `text` entries, a free-text line), but no identity, so they are scanned like the rest.
PATIENT_IDENTITY_TABLES = frozenset({"raw_patients", "stg_patients"})

# What an operator debugging HTTP would switch on. The SDK's `*.rest` loggers print whole response
# bodies (contacts with names and emails) at DEBUG.
HTTP_LOGGERS = ("httpx", "httpcore", "urllib3", "hubspot")


# -- the scanner -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    kind: str  # e.g. "email", "hubspot_token"
    where: str  # e.g. "event_log[412]", "table quarantine"

    def __str__(self) -> str:
        return f"{self.kind} in {self.where}"


@dataclass
class LeakScanner:
    """Literal values per kind, plus words per kind (a surname alone, matched as a whole word).

    Findings carry the kind and the place only: the values themselves are never printed.
    """

    values: dict[str, set[str]] = field(default_factory=dict)
    words: dict[str, set[str]] = field(default_factory=dict)
    scanned: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, *values: str | None) -> None:
        self.values.setdefault(kind, set()).update(v for v in values if v and len(v) >= 6)

    def add_word(self, kind: str, word: str | None) -> None:
        if word and len(word) >= 4 and re.fullmatch(r"\w+", word):
            self.words.setdefault(kind, set()).add(word)

    def count(self) -> int:
        return sum(map(len, self.values.values())) + sum(map(len, self.words.values()))

    def scan(self, where: str, text: str, *, words: bool = True,
             category: str | None = None) -> list[Finding]:
        self.scanned[category or where] += 1
        found = [Finding(kind, where) for kind, values in self.values.items()
                 if any(value in text for value in values)]
        if words and self.words:
            tokens = set(re.findall(r"\w+", text))
            found += [Finding(kind, where) for kind, values in self.words.items() if tokens & values]
        return found


def secrets_scanner() -> LeakScanner:
    scanner = LeakScanner()
    scanner.add("hubspot_token", HUBSPOT_TOKEN)
    scanner.add("ivoris_api_key", *IVORIS_KEYS.values())
    scanner.add("secret_fragment", CANARY)
    return scanner


def pii_scanner(patients: Iterable[Mapping[str, Any]]) -> LeakScanner:
    scanner = LeakScanner()
    for patient in patients:
        first, last = patient.get("first_name"), patient.get("last_name")
        if first and last:
            scanner.add("patient_name", f"{first} {last}", f"{last}, {first}", f"{last} {first}")
        scanner.add_word("patient_surname", last)
        email = patient.get("email")
        scanner.add("patient_email", email, email.lower() if email else None)
        scanner.add("patient_phone", patient.get("phone"))
        birth = patient.get("birth_date")
        if birth:
            day = dt.date.fromisoformat(str(birth))
            scanner.add("patient_birth_date", day.isoformat(), day.strftime("%d.%m.%Y"))
    return scanner


def test_the_scanner_finds_what_it_looks_for() -> None:
    """Positive controls: a planted value is found, as kind and place only, never echoed."""
    scanner = pii_scanner([{"first_name": "Erika", "last_name": "Mustermann", "email": "E.M@x.example.org",
                            "phone": "+49 391 123456", "birth_date": "1964-08-12"}])
    assert scanner.scan("a", "no personal data here, Mustermannstraße is a street") == []
    findings = scanner.scan("log", "upsert Erika Mustermann e.m@x.example.org 12.08.1964 +49 391 123456")
    assert {f.kind for f in findings} == {"patient_name", "patient_email", "patient_birth_date",
                                         "patient_phone", "patient_surname"}
    assert all("Mustermann" not in str(f) for f in findings)
    assert [f.kind for f in scanner.scan("log", "patient (Mustermann) failed")] == ["patient_surname"]
    assert not scanner.scan("log", "patient Mustermann failed", words=False)
    secrets = secrets_scanner()
    assert {f.kind for f in secrets.scan("x", f"Authorization: Bearer {HUBSPOT_TOKEN}")} == {
        "hubspot_token", "secret_fragment"}
    assert [f.kind for f in secrets.scan("x", f"key ...{CANARY}...")] == ["secret_fragment"]


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def ivoris() -> Iterator[IvorisEmulator]:
    """Overrides conftest's: the same chain, with distinctive API keys (mapping_file exports them)."""
    emulator = IvorisEmulator(seed=7, size="tiny", api_keys=IVORIS_KEYS).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def hubspot_token() -> str:
    """Overrides conftest's: the `hubspot` emulator accepts the distinctive token the scan looks for."""
    return HUBSPOT_TOKEN


def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, managed_loggers: list[str]) -> Path:
    """A persistent instance (SQLite event log and runs, compute logs on disk), with Python loggers
    routed into the event log at DEBUG."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "python_logs": {"managed_python_loggers": managed_loggers, "python_log_level": "DEBUG"},
        "telemetry": {"enabled": False},
    }), encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _record_text(record: logging.LogRecord) -> str:
    parts = [record.name, record.getMessage(), repr(record.args)]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    parts += [record.exc_text or "", record.stack_info or ""]
    parts += [repr(value) for key, value in vars(record).items()
              if key not in {"msg", "args", "exc_info", "exc_text", "stack_info"}]
    return "\n".join(parts)


def _row_text(row: Mapping[str, Any]) -> str:
    """A row's values side by side, as a report or a log line would show them."""
    return " ".join(str(value) for value in row.values())


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- the end-to-end scan -----------------------------------------------------------------------------


@pytest.mark.parametrize("http_debug", [False, True], ids=["default_logging", "http_debug_logging"])
def test_no_secret_or_patient_data_leaks(
        http_debug: bool, sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator,
        hubspot: HubSpotEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    managed = ["biss_pipeline", *HTTP_LOGGERS] if http_debug else ["biss_pipeline"]
    home = dagster_home(tmp_path, monkeypatch, managed)
    data = tmp_path / "data"
    monkeypatch.setenv("BISS_DATA_DIR", str(data))
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    caplog.set_level(logging.DEBUG)
    if http_debug:
        import hubspot as _sdk  # noqa: F401  (the SDK's loggers exist once it is imported)

        for name in [*HTTP_LOGGERS, *(n for n in logging.root.manager.loggerDict
                                      if n.startswith("hubspot.") and n.endswith(".rest"))]:
            caplog.set_level(logging.DEBUG, logger=name)

    defs = build_definitions(mapping_file)
    with DagsterInstance.get() as instance:
        reference = defs.resolve_job_def("refresh_reference_data").execute_in_process(
            instance=instance, run_config=DEBUG_RUN)
        pipeline = defs.resolve_job_def("pipeline_mb").execute_in_process(
            instance=instance, tags=range_tags(*WINDOW), run_config=DEBUG_RUN)
        assert reference.success and pipeline.success
        run_ids = [reference.run_id, pipeline.run_id]
        events = [(run_id, serialize_value(entry))
                  for run_id in run_ids for entry in instance.all_logs(run_id)]
        runs = [serialize_value(instance.get_run_by_id(run_id)) for run_id in run_ids]
    # take the output over, so a failure report does not print it again (it may hold the leak)
    captured = capfd.readouterr()
    records = list(caplog.records)
    caplog.clear()

    # the patients of the window: Ivoris' truth, and whatever the pipeline extracted
    warehouse = WarehouseResource(url=sqlite_url).get()
    appointments = ivoris.truth.appointments("mb", *WINDOW)
    truth = ivoris.truth.patients("mb", {a["patientId"] for a in appointments})
    patients = [{"first_name": p["firstName"], "last_name": p["lastName"], "email": p["email"],
                 "phone": p["phone"], "birth_date": p["birthDate"]} for p in truth]
    raw_patients = warehouse.read_rows(sa.select(schema.raw_patients))
    patients += raw_patients
    pii, secrets = pii_scanner(patients), secrets_scanner()
    assert len(truth) >= 20 and pii.count() > 100

    # control: the patient tables hold these values, so the list matches what was extracted
    # (counts only in the assertions: a failure report must not print patient data either)
    extracted = {(r["first_name"], r["last_name"]) for r in raw_patients}
    not_extracted = sum((p["firstName"], p["lastName"]) not in extracted for p in truth)
    assert not_extracted == 0, f"{not_extracted} patients of the window are missing from raw_patients"
    stg_patients = warehouse.read_rows(sa.select(schema.stg_patients))
    planted = pii.scan("stg_patients", "\n".join(map(_row_text, stg_patients)), words=False)
    assert {f.kind for f in planted} >= {"patient_name", "patient_email", "patient_phone",
                                         "patient_birth_date"}
    # control: the secrets were in use (the emulators reject anything else)
    assert hubspot.objects("contacts") and any(site.api_key == IVORIS_KEYS["mb"] for site in ivoris.sites)

    findings: list[Finding] = []

    def check(where: str, text: str, *, personal: bool = True, words: bool = True,
              category: str | None = None) -> None:
        findings.extend(secrets.scan(where, text, category=category))
        if personal:
            findings.extend(pii.scan(where, text, words=words, category=category))

    for number, record in enumerate(records):
        check(f"log record {number} ({record.name})", _record_text(record), category="log records")
    check("stdout", captured.out)
    check("stderr", captured.err)
    for number, (run_id, entry) in enumerate(events):
        check(f"event log entry {number} of run {run_id[:8]}", entry, category="event log entries")
    for number, run in enumerate(runs):
        check(f"run record {number}", run, category="run records")
    home_files = _files(home)
    compute_logs = [p for p in home_files if p.suffix in {".out", ".err", ".complete", ".log"}]
    for path in home_files:
        check(f"file DAGSTER_HOME/{path.relative_to(home)}", path.read_bytes().decode("utf-8", "replace"),
              category="DAGSTER_HOME files")
    data_files = _files(data)
    for path in data_files:
        check(f"file BISS_DATA_DIR/{path.relative_to(data)}", path.read_bytes().decode("utf-8", "replace"),
              words=False, category="BISS_DATA_DIR files")
    tables = sorted(sa.inspect(warehouse.engine).get_table_names())
    for name in tables:
        rows = warehouse.read_rows(sa.select(sa.table(name, *(sa.column(c["name"]) for c in
                                                              sa.inspect(warehouse.engine).get_columns(name)))))
        # chairs name their dentists: a surname on its own is not a patient's there
        check(f"table {name}", "\n".join(map(_row_text, rows)), personal=name not in PATIENT_IDENTITY_TABLES,
              words=False, category="warehouse tables")

    # the scan covered what it claims to cover
    assert len(records) > 100 and len(events) > 100
    assert compute_logs and sum(p.stat().st_size for p in compute_logs) > 0
    assert any(p.name.endswith(".html") for p in data_files)
    assert set(schema.metadata.tables) <= set(tables)
    coverage = {**secrets.scanned, "secret values": secrets.count(), "patient values": pii.count(),
                "compute log files": len(compute_logs)}
    print(f"scanned: {dict(sorted(coverage.items()))}")  # counts only
    assert not findings, (f"{len(findings)} leaks (kind and place; values withheld): "
                          + "; ".join(sorted(set(map(str, findings)))[:40]))


def test_a_failed_ivoris_call_leaks_no_key_through_dagster(
        sqlite_url: str, mapping_file: Path, ivoris: IvorisEmulator, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A wrongly configured key fails the run with 401, and the failure (event log, logs, output) does
    not show the key that was sent. One op retry (without the policy's 30 s wait) covers the retry path."""
    monkeypatch.setattr(ivoris_assets, "IVORIS_RETRY_POLICY", RetryPolicy(max_retries=1))
    home = dagster_home(tmp_path, monkeypatch, ["biss_pipeline"])
    monkeypatch.setenv("BISS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BISS_WAREHOUSE_URL", sqlite_url)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", HUBSPOT_TOKEN)
    wrong_key = f"ivoris-wrong-{CANARY}"
    monkeypatch.setenv("TEST_IVORIS_KEY_MB", wrong_key)
    caplog.set_level(logging.DEBUG)
    defs = build_definitions(mapping_file)
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def("extract_mb").execute_in_process(
            instance=instance, tags=range_tags(*WINDOW), run_config=DEBUG_RUN, raise_on_error=False)
        assert not result.success
        events = [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures and "HTTP 401" in str(failures[0].step_failure_data.error)
    assert any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    scanner = secrets_scanner()
    scanner.add("wrong_ivoris_key", wrong_key)
    captured = capfd.readouterr()
    records = list(caplog.records)
    caplog.clear()
    texts = {"stdout": captured.out, "stderr": captured.err, "event log": "\n".join(events),
             **{f"log record {n}": _record_text(r) for n, r in enumerate(records)},
             **{f"file {p.relative_to(home)}": p.read_bytes().decode("utf-8", "replace")
                for p in _files(home)}}
    findings = [f for where, text in texts.items() for f in scanner.scan(where, text)]
    assert not findings, "; ".join(sorted(set(map(str, findings))))


# -- Ivoris errors carry no key and no patient content --------------------------------------------------

PATIENT = {"id": 4711, "firstName": "Erika", "lastName": "Mustermann", "birthDate": "1964-08-12",
           "email": "erika.mustermann@example.org", "phone": "+49 391 5550123", "insurance": "GKV"}
SECRET = f"ivoris-errorpath-{CANARY}"


def _echoing_routes(path: str) -> Route:
    """Every answer breaks the contract and echoes the key and a patient back, as a confused proxy or
    a verbose server might."""
    echo = f"key {SECRET} patient {PATIENT}"
    answers: dict[str, Route] = {
        "/practices": (401, "application/json", f'{{"error": "unauthorized", "message": "{echo}"}}'.encode()),
        "/chairs": (200, "text/html", f"<html><body>{echo}</body></html>".encode()),
        "/appointment-types": (200, "application/json", f'{{"detail": "{echo}"}}'.encode()),
        "/appointments": (200, "application/json", f'{{"patient": "{echo}", "total": 1}}'.encode()),
        "/patients": (422, "application/json", f'{{"message": "{echo}"}}'.encode()),
        "/document-entries": (500, "text/plain", echo.encode()),
    }
    return answers.get(path, (503, "text/plain", echo.encode()))


@pytest.mark.parametrize("call", [
    lambda c: c.practices(), lambda c: c.chairs(), lambda c: c.appointment_types(),
    lambda c: c.appointments(WINDOW[0], WINDOW[1]), lambda c: c.patients_by_ids([4711]),
    lambda c: c.document_entries(WINDOW[0], WINDOW[1]), lambda c: c.patient_document_entries(4711),
], ids=["401", "non_json", "not_a_list", "bad_envelope", "422", "500", "503_exhausted"])
def test_ivoris_errors_carry_no_key_or_patient_content(call: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    scanner = pii_scanner([{"first_name": PATIENT["firstName"], "last_name": PATIENT["lastName"],
                            "email": PATIENT["email"], "phone": PATIENT["phone"],
                            "birth_date": PATIENT["birthDate"]}])
    scanner.add("ivoris_api_key", SECRET)
    scanner.add("secret_fragment", CANARY)
    with StubServer(_echoing_routes) as server, IvorisClient(
            site="mb", base_url=server.base_url, api_key=SECRET, max_attempts=2,
            backoff_initial_s=0.01, backoff_max_s=0.02) as client:
        with pytest.raises(IvorisError) as failure:
            call(client)
        assert server.handled and all(headers.get("X-Api-Key") == SECRET for _, headers in server.handled)
    error = failure.value
    assert isinstance(error, IvorisResponseError | IvorisUnavailableError)
    assert "'mb'" in str(error) and "route" in str(error)  # it still says where it failed
    texts = {"message": str(error), "repr": repr(error),
             "traceback": "".join(traceback.format_exception(error)),
             "chained": repr(error.__cause__) + repr(error.__context__),
             **{f"log record {n}": _record_text(r) for n, r in enumerate(caplog.records)}}
    findings = [f for where, text in texts.items() for f in scanner.scan(where, text)]
    assert not findings, "; ".join(sorted(set(map(str, findings))))
