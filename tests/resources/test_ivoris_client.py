"""The Ivoris client against the emulator over real HTTP: nothing lost, nothing duplicated,
through random 504s, an outage, repeated records across pages, and answers that break the contract."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from biss_emulators.ivoris import IvorisEmulator
from biss_emulators.server import BackgroundServer
from biss_pipeline.domain.ivoris.client import (
    IvorisClient,
    IvorisResponseError,
    IvorisUnavailableError,
    iter_date_chunks,
    newest_by_id,
)

WINDOW = (dt.date(2026, 6, 17), dt.date(2026, 7, 10))


def client_for(emulator: IvorisEmulator, site: str = "mb", **options: object) -> IvorisClient:
    settings: dict = {"page_size": 5, "max_concurrency": 4, "backoff_initial_s": 0.05,
                      "backoff_max_s": 1.0, "max_attempts": 30, "timeout_s": 5.0}
    settings.update(options)
    return IvorisClient(site=site, base_url=emulator.site_url(site), api_key=emulator.api_key(site),
                        **settings)


def identities(records: list[dict]) -> list[tuple[str, str]]:
    return sorted((str(r["id"]), str(r["modifiedAt"])) for r in records)


def test_reads_exactly_the_emulators_records(ivoris: IvorisEmulator) -> None:
    with client_for(ivoris) as client:
        appointments = client.appointments(*WINDOW)
        entries = client.document_entries(*WINDOW)
        patient_ids = {r["patientId"] for r in appointments}
        patients = client.patients_by_ids(patient_ids)
    assert len(appointments) > 20
    assert identities(appointments) == identities(ivoris.truth.appointments("mb", *WINDOW))
    assert identities(entries) == identities(ivoris.truth.document_entries("mb", *WINDOW))
    assert {p["id"] for p in patients} == patient_ids
    assert client.stats.duplicates_dropped == 0
    assert client.stats.retries == 0


def test_survives_thirty_percent_random_504s(ivoris: IvorisEmulator) -> None:
    ivoris.faults.random_504_rate = 0.3
    with client_for(ivoris) as client:
        appointments = client.appointments(*WINDOW)
        entries = client.document_entries(*WINDOW)
    ivoris.faults.random_504_rate = 0.0
    assert identities(appointments) == identities(ivoris.truth.appointments("mb", *WINDOW))
    assert identities(entries) == identities(ivoris.truth.document_entries("mb", *WINDOW))
    assert client.stats.status_counts["504"] > 0
    assert client.stats.retries == client.stats.status_counts["504"]


@pytest.mark.slow
def test_survives_a_thirty_second_outage_without_losing_or_duplicating(ivoris: IvorisEmulator) -> None:
    expected = identities(ivoris.truth.document_entries("mb", *WINDOW))
    results: dict[str, list[dict]] = {}

    def extract() -> None:
        with client_for(ivoris, backoff_max_s=4.0) as client:
            results["entries"] = client.document_entries(*WINDOW)
            results["stats"] = client.stats  # type: ignore[assignment]

    # Connection refused for 30 s, starting just after the first page was served.
    ivoris.faults.latency_s = 0.05
    worker = threading.Thread(target=extract)
    worker.start()
    time.sleep(0.1)
    started = time.monotonic()
    ivoris.set_outage(mode="refuse", seconds=30)
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert time.monotonic() - started >= 29
    assert identities(results["entries"]) == expected
    stats = results["stats"]
    assert stats.status_counts["connection_error"] > 0  # type: ignore[attr-defined]


def test_a_503_outage_longer_than_the_retry_budget_fails_with_a_clear_error(ivoris: IvorisEmulator) -> None:
    ivoris.set_outage("mb", mode="503")
    with client_for(ivoris, max_attempts=3) as client, pytest.raises(IvorisUnavailableError) as error:
        client.appointments(*WINDOW)
    assert "'mb'" in str(error.value) and "appointments" in str(error.value) and "503" in str(error.value)
    ivoris.clear_outage("mb")
    with client_for(ivoris, site="rb", max_attempts=1) as other:
        assert other.appointments(*WINDOW)  # the outage was one site's only


def test_records_repeated_across_pages_are_deduplicated_newest_first(ivoris: IvorisEmulator) -> None:
    ivoris.faults.duplicate_rate = 0.5
    with client_for(ivoris) as client:
        appointments = client.appointments(*WINDOW)
    ivoris.faults.duplicate_rate = 0.0
    assert client.stats.duplicates_dropped > 0
    assert identities(appointments) == identities(ivoris.truth.appointments("mb", *WINDOW))


def test_concurrency_stays_within_the_bound(ivoris: IvorisEmulator) -> None:
    ivoris.reset_stats()
    ivoris.faults.latency_s = 0.05
    with client_for(ivoris, max_concurrency=2, page_size=2) as client:
        client.document_entries(*WINDOW)
    ivoris.faults.latency_s = 0.0
    assert 1 <= ivoris.stats()["peak_in_flight"] <= 2


def test_newest_modification_wins() -> None:
    records = [{"id": 1, "modifiedAt": "2026-03-01T10:00:00Z", "status": "booked"},
               {"id": 2, "modifiedAt": "2026-03-01T10:00:00Z"},
               {"id": 1, "modifiedAt": "2026-03-02T10:00:00Z", "status": "completed"},
               {"id": 1, "modifiedAt": "2026-02-28T10:00:00Z", "status": "stale"}]
    unique, dropped = newest_by_id(records)
    assert dropped == 2
    assert [(r["id"], r.get("status")) for r in unique] == [(1, "completed"), (2, None)]


def test_date_chunks_cover_the_window_exactly() -> None:
    chunks = list(iter_date_chunks(dt.date(2026, 1, 1), dt.date(2026, 1, 17), 7))
    assert chunks == [(dt.date(2026, 1, 1), dt.date(2026, 1, 7)), (dt.date(2026, 1, 8), dt.date(2026, 1, 14)),
                      (dt.date(2026, 1, 15), dt.date(2026, 1, 17))]


def _contract_breaking_server() -> BackgroundServer:
    app = Starlette(routes=[
        Route("/html/appointments", lambda r: HTMLResponse("<html>Wartungsarbeiten</html>")),
        Route("/envelope/appointments", lambda r: JSONResponse({"rows": []})),
        Route("/missing/appointments", lambda r: JSONResponse({"error": "no"}, status_code=404)),
    ])
    return BackgroundServer(app).start()


@pytest.mark.parametrize(("variant", "message"), [
    ("html", "not JSON"),
    ("envelope", "envelope"),
    ("missing", "HTTP 404"),
])
def test_answers_outside_the_contract_raise_errors_naming_site_and_route(variant: str, message: str) -> None:
    server = _contract_breaking_server()
    try:
        client = IvorisClient(site="mb", base_url=f"{server.base_url}/{variant}", api_key="k", max_attempts=1)
        with client, pytest.raises(IvorisResponseError) as error:
            client.appointments(*WINDOW)
    finally:
        server.stop()
    assert message in str(error.value)
    assert "'mb'" in str(error.value) and "appointments" in str(error.value)
