"""The Ivoris emulator over real HTTP: contract shapes, determinism, clock and fault knobs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from biss_emulators.ivoris import (
    APPOINTMENT_TYPES,
    ENTRY_TYPES,
    PRESETS,
    STATUSES,
    DatasetSize,
    FaultConfig,
    IvorisEmulator,
)
from biss_emulators.ivoris import cli as ivoris_cli

LOCAL_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
UTC_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RAW_AMOUNT = re.compile(r'"amount":(-?\d+(?:\.\d+)?)')
UMLAUTS = set("äöüÄÖÜß")
EXAMPLE_MAIL = re.compile(r"@([a-z-]+\.)?example\.(com|net|org)$")  # RFC 2606 names only
PAST = {"from": "2026-06-16", "to": "2026-06-30"}  # tiny's whole history up to the default clock
AHEAD = {"from": "2026-06-30", "to": "2026-07-20"}
# one pooled client: building an httpx client per request costs more than the request itself
HTTP = httpx.Client(timeout=30)


def get(emu: IvorisEmulator, site: str, path: str, **params: Any) -> httpx.Response:
    return HTTP.get(f"{emu.site_url(site)}{path}", params=params, headers={"X-Api-Key": emu.api_key(site)})


def get_json(emu: IvorisEmulator, site: str, path: str, **params: Any) -> Any:
    response = get(emu, site, path, **params)
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def all_pages(emu: IvorisEmulator, site: str, path: str, page_size: int,
              **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = get_json(emu, site, path, page=page, pageSize=page_size, **params)
        assert body["page"] == page and body["pageSize"] == page_size
        items.extend(body["items"])
        if page * page_size >= body["total"]:
            return items
        page += 1


@pytest.fixture(scope="module")
def tiny() -> Iterator[IvorisEmulator]:
    with IvorisEmulator(seed=7, size="tiny") as emu:
        yield emu


@pytest.fixture(scope="module")
def demo() -> Iterator[IvorisEmulator]:
    """Read-only: tests that change clock or faults build their own emulator."""
    with IvorisEmulator(seed=7, size="demo") as emu:
        yield emu


@pytest.fixture
def fresh() -> Iterator[IvorisEmulator]:
    with IvorisEmulator(seed=7, size="tiny") as emu:
        yield emu


# -- determinism -----------------------------------------------------------------------------------

ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/practices", {}),
    ("/chairs", {}),
    ("/appointment-types", {}),
    ("/appointments", {"from": "2026-06-16", "to": "2026-07-14", "pageSize": 1000}),
    ("/document-entries", {"from": "2026-06-16", "to": "2026-06-30", "pageSize": 1000}),
    ("/patients", {"ids": ",".join(str(i) for i in range(1, 41))}),
    ("/patients", {"modifiedSince": "2020-01-01T00:00:00Z", "pageSize": 1000}),
    ("/patients/3/document-entries", {}),
]


def test_same_seed_gives_byte_identical_answers_and_another_seed_does_not(tiny: IvorisEmulator) -> None:
    with IvorisEmulator(seed=7, size="tiny") as twin, IvorisEmulator(seed=8, size="tiny") as other:
        for site in ("mb", "rb", "le"):
            for path, params in ROUTES:
                first = get(tiny, site, path, **params)
                assert first.status_code == 200
                assert get(twin, site, path, **params).content == first.content, (site, path)
            for path in ("/appointments", "/document-entries", "/chairs"):
                params = dict(ROUTES)[path]
                assert get(other, site, path, **params).content != get(tiny, site, path, **params).content


# -- contract shapes ----------------------------------------------------------------------------------


def test_reference_routes(tiny: IvorisEmulator) -> None:
    assert [s.site_id for s in tiny.sites] == ["mb", "rb", "le"]
    assert [s.key_prefix for s in tiny.sites] == ["MB_", "RB_", "LE_"]
    for site in tiny.sites:
        assert tiny.site_url(site.site_id).endswith(f"/sites/{site.site_id}")
        assert get_json(tiny, site.site_id, "/practices") == [{"id": site.practice_id, "name": site.name}]
        chairs = get_json(tiny, site.site_id, "/chairs")
        assert 6 <= len(chairs) <= 12
        assert all(set(c) == {"id", "name", "dentist"} and c["dentist"].startswith("Dr.") for c in chairs)
        types = get_json(tiny, site.site_id, "/appointment-types")
        assert types == [{"id": t.id, "code": t.code, "name": t.name, "duration_min": t.duration_min}
                         for t in APPOINTMENT_TYPES]
    catalogue = [(t.id, t.code, t.duration_min) for t in APPOINTMENT_TYPES]
    assert catalogue[0] == (1, "ERST", 30) and catalogue[-1] == (14, "BLCK", 60) and len(catalogue) == 14
    # the shared base URL serves every site as well
    response = HTTP.get(f"{tiny.base_url}/sites/le/practices", headers={"X-Api-Key": "dev-key-le"})
    assert response.status_code == 200


def test_appointments_shape(tiny: IvorisEmulator) -> None:
    body = get_json(tiny, "mb", "/appointments", **{"from": "2026-06-16", "to": "2026-07-14"}, pageSize=1000)
    assert set(body) == {"items", "page", "pageSize", "total"}
    assert body["total"] == len(body["items"]) > 0
    chairs = {c["id"] for c in get_json(tiny, "mb", "/chairs")}
    for item in body["items"]:
        assert set(item) == {"id", "patientId", "chairId", "typeId", "start", "end", "status", "modifiedAt"}
        assert LOCAL_TS.match(item["start"]) and LOCAL_TS.match(item["end"])
        assert UTC_TS.match(item["modifiedAt"])
        assert item["start"] < item["end"] and item["start"][:10] == item["end"][:10]
        assert item["start"][11:] >= "08:00:00" and item["end"][11:] <= "18:00:00"
        assert "2026-06-16" <= item["start"][:10] <= "2026-07-14"
        assert dt.date.fromisoformat(item["start"][:10]).weekday() != 6  # no Sundays
        assert item["status"] in STATUSES and item["chairId"] in chairs and 1 <= item["typeId"] <= 14
    ids = [item["id"] for item in body["items"]]
    assert ids == sorted(ids)


def test_document_entries_shape_and_exact_amounts(tiny: IvorisEmulator) -> None:
    response = get(tiny, "rb", "/document-entries", **PAST, pageSize=1000)
    raw_amounts = RAW_AMOUNT.findall(response.text)
    assert raw_amounts and all(re.fullmatch(r"-?\d+\.\d{2}", a) for a in raw_amounts)
    body = json.loads(response.text, parse_float=Decimal)
    assert body["total"] == len(body["items"]) == len(raw_amounts)
    for item in body["items"]:
        assert set(item) == {"id", "patientId", "appointmentId", "date", "type", "code", "description",
                             "amount", "modifiedAt"}
        assert DATE.match(item["date"]) and UTC_TS.match(item["modifiedAt"])
        assert item["type"] in ENTRY_TYPES
        assert isinstance(item["amount"], Decimal) and item["amount"].as_tuple().exponent == -2
        if item["type"] == "text":
            assert item["amount"] == Decimal("0.00")
    # the truth gives the same records with exact Decimals
    assert body["items"] == tiny.truth.document_entries("rb", "2026-06-16", "2026-06-30")


def test_patients_shapes(tiny: IvorisEmulator) -> None:
    listed = get_json(tiny, "le", "/patients", ids="3,1,2,999")
    assert [p["id"] for p in listed] == [1, 2, 3]  # plain list, ascending, unknown ids omitted
    paged = get_json(tiny, "le", "/patients", modifiedSince="2000-01-01T00:00:00Z", pageSize=5)
    assert set(paged) == {"items", "page", "pageSize", "total"} and paged["total"] == 40
    for patient in listed + paged["items"]:
        assert set(patient) == {"id", "firstName", "lastName", "birthDate", "email", "phone", "insurance",
                                "modifiedAt"}
        assert DATE.match(patient["birthDate"]) and UTC_TS.match(patient["modifiedAt"])
        assert patient["insurance"] in ("GKV", "PKV", "self")
        assert patient["email"] is None or EXAMPLE_MAIL.search(patient["email"])
    since = get_json(tiny, "le", "/patients", modifiedSince="2026-06-01T00:00:00+02:00", pageSize=100)
    assert all(p["modifiedAt"] >= "2026-05-31T22:00:00Z" for p in since["items"])
    assert 0 < since["total"] < 40
    patient_id = listed[0]["id"]
    entries = get_json(tiny, "le", f"/patients/{patient_id}/document-entries")
    assert isinstance(entries, list) and all(e["patientId"] == patient_id for e in entries)
    assert get(tiny, "le", "/patients/999/document-entries").status_code == 404


def test_referential_integrity(tiny: IvorisEmulator) -> None:
    for site in ("mb", "rb", "le"):
        appointments = tiny.truth.appointments(site, "2026-06-16", "2026-08-31")
        patient_ids = {a["patientId"] for a in appointments}
        assert {p["id"] for p in tiny.truth.patients(site, patient_ids)} == patient_ids
        by_id = {a["id"]: a for a in appointments}
        entries = tiny.truth.document_entries(site, "2026-06-16", "2026-06-30")
        for entry in entries:
            if entry["appointmentId"] is not None:
                appointment = by_id[entry["appointmentId"]]
                assert appointment["patientId"] == entry["patientId"]
                assert appointment["start"][:10] == entry["date"]
        # the per-patient route holds exactly the patient's entries
        for patient_id in sorted(patient_ids)[:10]:
            mine = [e for e in entries if e["patientId"] == patient_id]
            own = tiny.truth.patient_document_entries(site, patient_id)
            assert {e["id"] for e in own} >= {e["id"] for e in mine}


def test_auth_and_bad_requests(tiny: IvorisEmulator) -> None:
    url = f"{tiny.site_url('mb')}/practices"
    for headers in ({}, {"X-Api-Key": "wrong"}, {"X-Api-Key": "dev-key-rb"}):
        response = HTTP.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    bad = [
        ("/appointments", {}),
        ("/appointments", {"from": "2026-06-01"}),
        ("/appointments", {"from": "01.06.2026", "to": "2026-06-02"}),
        ("/appointments", {"from": "2026-06-05", "to": "2026-06-01"}),
        ("/appointments", {"from": "2025-01-01", "to": "2026-06-01"}),
        ("/document-entries", {"from": "2026-06-01", "to": "2026-06-02", "page": "0"}),
        ("/document-entries", {"from": "2026-06-01", "to": "2026-06-02", "pageSize": "abc"}),
        ("/document-entries", {"from": "2026-06-01", "to": "2026-06-02", "pageSize": "5000"}),
        ("/patients", {"ids": "1,x"}),
        ("/patients", {"ids": "1", "modifiedSince": "2026-01-01T00:00:00Z"}),
        ("/patients", {"modifiedSince": "yesterday"}),
    ]
    for path, params in bad:
        response = get(tiny, "mb", path, **params)
        assert response.status_code == 400, (path, params)
        assert response.json()["error"] == "bad_request" and response.json()["message"]
    assert HTTP.get(f"{tiny.base_url}/sites/zz/practices").status_code == 404
    assert HTTP.get(f"{tiny.base_url}/nope").status_code == 404


def test_custom_size_and_validation() -> None:
    size = PRESETS["tiny"].replace(name="ten", sites=10, patients_per_site=12)
    emu = IvorisEmulator(seed=1, size=size, api_keys={"ro": "secret"})
    assert len(emu.sites) == 10
    assert emu.site("ro").api_key == "secret" and emu.site("mb").api_key == "dev-key-mb"
    assert emu.truth.counts("ro")["patients"] == 12
    with pytest.raises(ValueError):
        DatasetSize(sites=11)
    with pytest.raises(ValueError):
        DatasetSize(entries_per_appointment=(5, 3))
    with pytest.raises(ValueError):
        IvorisEmulator(size="huge")
    with pytest.raises(ValueError):
        FaultConfig(random_504_rate=1.5)


# -- paging and data realism --------------------------------------------------------------------------


def test_paging_covers_every_record_exactly_once(tiny: IvorisEmulator) -> None:
    for site in ("mb", "le"):
        window = {"from": "2026-06-16", "to": "2026-07-14"}
        paged = all_pages(tiny, site, "/appointments", 7, **window)
        truth = tiny.truth.appointments(site, window["from"], window["to"])
        assert [a["id"] for a in paged] == [a["id"] for a in truth]
        entries = all_pages(tiny, site, "/document-entries", 13, **{"from": "2026-06-16", "to": "2026-06-30"})
        expected = tiny.truth.document_entries(site, "2026-06-16", "2026-06-30")
        assert [e["id"] for e in entries] == [e["id"] for e in expected] and len(expected) > 13
        patients = all_pages(tiny, site, "/patients", 9, modifiedSince="2000-01-01T00:00:00Z")
        assert [p["id"] for p in patients] == list(range(1, 41))
    beyond = get_json(tiny, "mb", "/appointments", **{"from": "2026-06-16", "to": "2026-06-20"}, page=99)
    assert beyond["items"] == [] and beyond["total"] > 0


def test_patient_realism(demo: IvorisEmulator) -> None:
    patients = all_pages(demo, "mb", "/patients", 1000, modifiedSince="2000-01-01T00:00:00Z")
    assert len(patients) == 400
    names = "".join(p["firstName"] + p["lastName"] for p in patients)
    assert UMLAUTS & set(names)
    by_email: dict[str, list[dict[str, Any]]] = {}
    for patient in patients:
        if patient["email"]:
            by_email.setdefault(patient["email"], []).append(patient)
    families = [group for group in by_email.values() if len(group) > 1]
    assert families and all(len({p["lastName"] for p in group}) == 1 for group in families)
    insurance = Counter(p["insurance"] for p in patients)
    assert insurance["GKV"] > insurance["PKV"] > insurance["self"] > 0
    assert 0.75 < insurance["GKV"] / len(patients) < 0.95


def test_demo_covers_all_statuses_entry_types_and_journeys(demo: IvorisEmulator) -> None:
    counts = demo.truth.counts()
    assert all(counts[f"status_{status}"] > 0 for status in STATUSES), counts
    assert counts["appointments"] > 30 * 60 * 3 and counts["patients"] == 1200
    entries = demo.truth.document_entries("rb", "2026-06-01", "2026-06-30")
    assert {e["type"] for e in entries} == set(ENTRY_TYPES)
    unlinked = sum(e["appointmentId"] is None for e in entries)
    assert 0.02 < unlinked / len(entries) < 0.10
    assert any(e["amount"] < 0 for e in entries)  # corrections
    assert {"01", "13a", "2080"} & {e["code"] for e in entries}
    appointments = demo.truth.appointments("rb", "2026-04-01", "2026-06-30")
    per_day = Counter(a["start"][:10] for a in appointments)
    weekday_counts = [n for day, n in per_day.items() if dt.date.fromisoformat(day).weekday() < 5]
    saturday_counts = [n for day, n in per_day.items() if dt.date.fromisoformat(day).weekday() == 5]
    assert 25 < sum(weekday_counts) / len(weekday_counts) < 70
    assert saturday_counts and max(saturday_counts) < min(weekday_counts) + 10
    types = Counter(a["typeId"] for a in appointments)
    assert types[2] + types[3] + types[4] > len(appointments) / 3 and types[1] > len(appointments) / 20
    # journeys: an Erstberatung followed weeks later by a treatment of the same patient
    visits: dict[int, list[tuple[str, int]]] = {}
    for appointment in appointments:
        visits.setdefault(appointment["patientId"], []).append((appointment["start"], appointment["typeId"]))
    journeys = 0
    for seq in visits.values():
        seq.sort()
        for index, (start, type_id) in enumerate(seq):
            if type_id == 1 and any(t in (4, 5, 6, 7, 8, 9, 13) and s > start for s, t in seq[index + 1:]):
                journeys += 1
                break
    assert journeys > 20


def test_advancing_the_clock_adds_and_changes_appointments() -> None:
    with IvorisEmulator(seed=7, size="demo") as emu:
        window = {"from": "2026-06-15", "to": "2026-08-15"}
        before = {a["id"]: a for a in all_pages(emu, "mb", "/appointments", 1000, **window)}
        entries_before = get_json(emu, "mb", "/document-entries", **AHEAD)
        clock_before = emu.clock
        emu.advance_clock(dt.timedelta(days=14))
        assert emu.clock == clock_before + dt.timedelta(days=14)
        after = {a["id"]: a for a in all_pages(emu, "mb", "/appointments", 1000, **window)}
        entries_after = get_json(emu, "mb", "/document-entries", **AHEAD)
    assert set(before) < set(after)  # nothing vanishes, new bookings appear
    changed = {i: (before[i]["status"], after[i]["status"]) for i in before if before[i] != after[i]}
    assert changed
    assert all(after[i]["modifiedAt"] > before[i]["modifiedAt"] for i in changed)
    transitions = Counter(changed.values())
    assert transitions[("completed", "booked")] > 0  # a set-back correction
    assert transitions[("booked", "completed")] + transitions[("confirmed", "completed")] > 0
    assert entries_after["total"] > entries_before["total"]


# -- faults ------------------------------------------------------------------------------------------


def test_random_504_rate_is_roughly_honoured_and_counted(fresh: IvorisEmulator) -> None:
    fresh.faults.random_504_rate = 0.3
    statuses = [get(fresh, "mb", "/practices").status_code for _ in range(300)]
    gateway = get(fresh, "mb", "/practices")
    while gateway.status_code != 504:
        gateway = get(fresh, "mb", "/practices")
    assert 60 < statuses.count(504) < 120 and statuses.count(200) == 300 - statuses.count(504)
    assert gateway.headers["content-type"].startswith("text/html") and "504" in gateway.text
    stats = fresh.stats()
    assert stats["requests"][("/sites/{site_id}/practices", 504)] >= statuses.count(504)
    assert stats["faults"]["random_504"] == stats["requests"][("/sites/{site_id}/practices", 504)]
    fresh.faults.random_504_rate = 0.0
    assert get(fresh, "mb", "/practices").status_code == 200
    fresh.reset_stats()
    assert fresh.stats()["requests"] == {}


def test_overload_answers_504_under_concurrency(fresh: IvorisEmulator) -> None:
    fresh.faults = FaultConfig(max_in_flight=2, latency_s=0.4)

    def call(_: int) -> int:
        return get(fresh, "rb", "/chairs").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(call, range(8)))
    assert statuses.count(504) >= 1 and statuses.count(200) >= 1
    stats = fresh.stats()
    assert stats["peak_in_flight"] >= 3 and stats["faults"]["overload_504"] == statuses.count(504)
    # sequential requests stay under the limit
    assert [call(0) for _ in range(3)] == [200, 200, 200]


def test_latency_lets_requests_overlap(fresh: IvorisEmulator) -> None:
    fresh.faults = FaultConfig(latency_s=0.3, latency_jitter_s=0.1)
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: get(fresh, "le", "/practices").status_code, range(6)))
    assert statuses == [200] * 6
    assert fresh.stats()["peak_in_flight_by_site"]["le"] >= 2


def test_503_outage_for_one_site_and_recovery(fresh: IvorisEmulator) -> None:
    fresh.set_outage("mb", mode="503")
    response = get(fresh, "mb", "/practices")
    assert response.status_code == 503 and "503" in response.text
    assert get(fresh, "rb", "/practices").status_code == 200
    fresh.clear_outage()
    assert get(fresh, "mb", "/practices").status_code == 200
    fresh.set_outage(None, mode="503", seconds=0.5)
    assert {get(fresh, s, "/practices").status_code for s in ("mb", "rb", "le")} == {503}
    assert fresh.stats()["faults"]["outage_503"] >= 4
    time.sleep(0.7)
    assert get(fresh, "le", "/practices").status_code == 200


def _wait_until_up(emu: IvorisEmulator, site: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if get(emu, site, "/practices").status_code == 200:
                return
        except httpx.ConnectError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{site} did not come back")
        time.sleep(0.05)


def test_refused_connections_and_recovery(fresh: IvorisEmulator) -> None:
    fresh.set_outage("mb", mode="refuse")
    with pytest.raises(httpx.ConnectError):
        get(fresh, "mb", "/practices")
    assert get(fresh, "rb", "/practices").status_code == 200
    # through the shared port a refused site can only answer 503
    shared = HTTP.get(f"{fresh.base_url}/sites/mb/practices", headers={"X-Api-Key": "dev-key-mb"})
    assert shared.status_code == 503
    fresh.clear_outage()
    assert get(fresh, "mb", "/practices").status_code == 200
    fresh.set_outage(mode="refuse", seconds=1.0)
    for site in ("mb", "rb"):
        with pytest.raises(httpx.ConnectError):
            get(fresh, site, "/practices")
    with pytest.raises(httpx.ConnectError):
        HTTP.get(f"{fresh.base_url}/_emulator/stats")
    _wait_until_up(fresh, "mb")
    _wait_until_up(fresh, "le")
    assert HTTP.get(f"{fresh.base_url}/_emulator/stats").status_code == 200


def test_duplicates_repeat_records_but_never_skip_any(fresh: IvorisEmulator) -> None:
    fresh.faults.duplicate_rate = 0.3
    window = {"from": "2026-06-16", "to": "2026-07-14"}
    for path, window_ in (("/appointments", window), ("/document-entries", PAST)):
        items = all_pages(fresh, "mb", path, 10, **window_)
        ids = [item["id"] for item in items]
        expected = (fresh.truth.appointments("mb", window_["from"], window_["to"]) if path == "/appointments"
                    else fresh.truth.document_entries("mb", window_["from"], window_["to"]))
        assert set(ids) == {e["id"] for e in expected}
        assert len(ids) > len(set(ids))
        latest = {e["id"]: e["modifiedAt"] for e in expected}
        assert all(item["modifiedAt"] <= latest[item["id"]] for item in items)
        if path == "/document-entries":
            assert any(item["modifiedAt"] < latest[item["id"]] for item in items)  # stale copies
    assert fresh.stats()["faults"]["duplicates"] > 0


def test_date_route_gaps_only_on_the_date_route(fresh: IvorisEmulator) -> None:
    fresh.faults.date_route_gap_rate = 0.1
    window = ("2026-06-16", "2026-06-30")
    route = all_pages(fresh, "le", "/document-entries", 50, **{"from": window[0], "to": window[1]})
    truth = fresh.truth.document_entries("le", *window)
    hidden = fresh.truth.hidden_document_entry_ids("le", *window)
    assert hidden and {e["id"] for e in route} == {e["id"] for e in truth} - hidden
    # the same subset on every call
    again = all_pages(fresh, "le", "/document-entries", 1000, **{"from": window[0], "to": window[1]})
    assert [e["id"] for e in again] == [e["id"] for e in route]
    for entry in (e for e in truth if e["id"] in hidden):
        per_patient = get_json(fresh, "le", f"/patients/{entry['patientId']}/document-entries")
        assert entry["id"] in {e["id"] for e in per_patient}


# -- paging lies and garbled answers (SPEC §3 rev. 2) ----------------------------------------------------

WINDOW = {"from": "2026-06-16", "to": "2026-07-14"}  # tiny's history and bookings ahead


def page_of(emu: IvorisEmulator, site: str, path: str, number: int, size: int, **params: Any) -> Any:
    body = get_json(emu, site, path, page=number, pageSize=size, **params)
    assert body["page"] == number and body["pageSize"] == size
    return body


def slices(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[start: start + size] for start in range(0, len(records), size)]


def ordered_subset(part: list[Any], whole: list[Any]) -> bool:
    rest = iter(whole)
    return all(any(item == candidate for candidate in rest) for item in part)


def days(window: dict[str, str]) -> list[str]:
    first, last = dt.date.fromisoformat(window["from"]), dt.date.fromisoformat(window["to"])
    return [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def test_short_pages_are_transient_so_a_re_read_is_whole(fresh: IvorisEmulator) -> None:
    fresh.faults = FaultConfig(short_page_rate=0.5)
    truth = fresh.truth.document_entries("mb", PAST["from"], PAST["to"])
    expected = slices(truth, 20)
    assert len(expected) > 3
    got: list[dict[str, Any]] = []
    short = 0
    for number, whole in enumerate(expected, start=1):
        for _ in range(40):
            body = page_of(fresh, "mb", "/document-entries", number, 20, **PAST)
            assert body["total"] == len(truth)  # only the items lie
            assert ordered_subset(body["items"], whole)  # nothing foreign, nothing reordered
            if body["items"] == whole:
                break
            short += 1
        else:
            raise AssertionError(f"page {number} never came back whole")
        got.extend(body["items"])
    assert got == truth and short > 0
    assert fresh.stats()["faults"]["short_page"] == short
    # "empty before total is reached" is one of the shapes a short page takes
    fresh.faults = FaultConfig(short_page_rate=1.0)
    answers = [(page_of(fresh, "mb", "/document-entries", number, 20, **PAST)["items"], whole)
               for _ in range(3) for number, whole in enumerate(expected, start=1)]
    assert all(len(items) < len(whole) for items, whole in answers)
    assert any(items == [] for items, _ in answers) and any(items for items, _ in answers)


def test_wide_requests_are_short_on_every_read_and_narrow_ones_are_whole(fresh: IvorisEmulator) -> None:
    # wide: more than 1 day, or pageSize above 100. The drifting total only makes the emulator count
    # attempts, so the test sees whether a re-read of a wide page is really the same.
    fresh.faults = FaultConfig(wide_short_page_rate=0.5, total_drift_rate=0.5)
    truth = fresh.truth.appointments("mb", WINDOW["from"], WINDOW["to"])
    expected = slices(truth, 10)

    def read() -> list[list[dict[str, Any]]]:
        return [page_of(fresh, "mb", "/appointments", n, 10, **WINDOW)["items"]
                for n in range(1, len(expected) + 1)]

    served = read()
    assert read() == served == read()  # persistent: re-reading the wide request never helps
    short = [n for n, (items, whole) in enumerate(zip(served, expected, strict=True)) if items != whole]
    assert short and all(ordered_subset(served[n], expected[n]) for n in short)
    assert {a["id"] for items in served for a in items} < {a["id"] for a in truth}
    # the client narrows to one day at a time and small pages: everything, consistently
    narrow: list[dict[str, Any]] = []
    for day in days(WINDOW):
        day_truth = [a for a in truth if a["start"][:10] == day]
        for number, whole in enumerate(slices(day_truth, 2), start=1):
            body = page_of(fresh, "mb", "/appointments", number, 2, **{"from": day, "to": day})
            assert body["items"] == whole
        narrow.extend(day_truth)
    assert narrow == truth
    assert fresh.stats()["faults"]["wide_short_page"] == len(short) * 3


def test_page_size_alone_makes_a_request_wide(fresh: IvorisEmulator) -> None:
    fresh.faults = FaultConfig(wide_short_page_rate=1.0)
    truth = fresh.truth.appointments("rb", WINDOW["from"], WINDOW["to"])
    busiest = Counter(a["start"][:10] for a in truth).most_common(1)[0][0]
    day = {"from": busiest, "to": busiest}
    whole = [a for a in truth if a["start"][:10] == busiest]
    assert len(whole) > 1
    assert page_of(fresh, "rb", "/appointments", 1, 101, **day)["items"] != whole
    assert page_of(fresh, "rb", "/appointments", 1, 100, **day)["items"] == whole
    # routes without a date window are judged by page size only
    patients = fresh.truth.patients("rb", fresh.truth.patient_ids("rb"))
    since = {"modifiedSince": "2000-01-01T00:00:00Z"}
    assert len(page_of(fresh, "rb", "/patients", 1, 1000, **since)["items"]) < len(patients)
    assert all_pages(fresh, "rb", "/patients", 100, **since) == patients
    # either criterion can be switched off
    fresh.faults = FaultConfig(wide_short_page_rate=1.0, wide_after_page_size=None)
    assert page_of(fresh, "rb", "/patients", 1, 1000, **since)["items"] == patients
    assert page_of(fresh, "rb", "/appointments", 1, 1000, **WINDOW)["items"] != truth
    fresh.faults = FaultConfig(wide_short_page_rate=1.0, wide_after_days=None)
    assert page_of(fresh, "rb", "/appointments", 1, 100, **WINDOW)["items"] == truth[:100]


def test_phantom_total_on_every_request_however_narrow(fresh: IvorisEmulator) -> None:
    extra = 617
    fresh.faults = FaultConfig(phantom_total_extra=extra)
    one_day = {"from": "2026-06-29", "to": "2026-06-29"}
    cases: list[tuple[str, dict[str, str], list[dict[str, Any]]]] = [
        ("/appointments", WINDOW, fresh.truth.appointments("le", WINDOW["from"], WINDOW["to"])),
        ("/appointments", one_day, fresh.truth.appointments("le", one_day["from"], one_day["to"])),
        ("/document-entries", one_day, fresh.truth.document_entries("le", one_day["from"], one_day["to"])),
        ("/patients", {"modifiedSince": "2000-01-01T00:00:00Z"},
         fresh.truth.patients("le", fresh.truth.patient_ids("le"))),
    ]
    size = 50
    for path, params, truth in cases:
        assert truth
        real_pages = -(-len(truth) // size)
        items: list[dict[str, Any]] = []
        for number in range(1, -(-(len(truth) + extra) // size) + 1):
            body = page_of(fresh, "le", path, number, size, **params)
            assert body["total"] == len(truth) + extra, (path, params, number)
            if number > real_pages:
                assert body["items"] == [], (path, params, number)  # past the real end
            items.extend(body["items"])
        assert items == truth, (path, params)  # everything is there; only total lies


def test_total_drifts_between_pages_and_items_stay_whole(fresh: IvorisEmulator) -> None:
    largest = 4
    fresh.faults = FaultConfig(total_drift_rate=0.5, total_drift_max=largest)
    truth = fresh.truth.document_entries("le", PAST["from"], PAST["to"])
    pages = len(slices(truth, 20))
    totals: list[int] = []
    for _ in range(4):
        items: list[dict[str, Any]] = []
        for number in range(1, pages + 1):
            body = page_of(fresh, "le", "/document-entries", number, 20, **PAST)
            totals.append(body["total"])
            items.extend(body["items"])
        assert items == truth
    deltas = [total - len(truth) for total in totals]
    assert all(-largest <= delta <= largest for delta in deltas)
    assert 0 in deltas and any(d > 0 for d in deltas) and any(d < 0 for d in deltas)  # grows and shrinks
    assert fresh.stats()["faults"]["total_drift"] == sum(delta != 0 for delta in deltas)


def test_paged_lists_switch_pages_ids_and_per_patient_routes(fresh: IvorisEmulator) -> None:
    ids = ",".join(str(n) for n in range(1, 41))
    patients = fresh.truth.patients("mb", range(1, 41))
    assert get_json(fresh, "mb", "/patients", ids=ids) == patients  # default: the plain list
    fresh.faults = FaultConfig(paged_lists_page_size=7)
    first = get_json(fresh, "mb", "/patients", ids=ids)
    assert first == {"items": patients[:7], "page": 1, "pageSize": 7, "total": len(patients)}
    assert all_pages(fresh, "mb", "/patients", 7, ids=ids) == patients
    assert all_pages(fresh, "mb", "/patients", 15, ids=ids) == patients  # pageSize honoured
    beyond = page_of(fresh, "mb", "/patients", 99, 7, ids=ids)
    assert beyond["items"] == [] and beyond["total"] == len(patients)
    patient_id = max(range(1, 41), key=lambda pid: len(fresh.truth.patient_document_entries("mb", pid)))
    entries = fresh.truth.patient_document_entries("mb", patient_id)
    path = f"/patients/{patient_id}/document-entries"
    assert len(entries) > 7
    assert get_json(fresh, "mb", path)["items"] == entries[:7]
    assert all_pages(fresh, "mb", path, 7) == entries and all_pages(fresh, "mb", path, 3) == entries
    assert get(fresh, "mb", path, pageSize=0).status_code == 400
    assert get(fresh, "mb", "/patients/999/document-entries").status_code == 404
    # they are page envelopes like any other, so the paging lies reach them too
    fresh.faults = FaultConfig(paged_lists_page_size=7, phantom_total_extra=5)
    assert get_json(fresh, "mb", path)["total"] == len(entries) + 5


def test_html_and_truncated_json_answers_with_status_200(fresh: IvorisEmulator) -> None:
    params = {**PAST, "pageSize": 1000}
    clean = get(fresh, "rb", "/document-entries", **params).content
    fresh.faults = FaultConfig(html_200_rate=0.25, truncated_json_rate=0.25)
    kinds: Counter[str] = Counter()
    for _ in range(60):
        response = get(fresh, "rb", "/document-entries", **params)
        assert response.status_code == 200
        if response.headers["content-type"].startswith("text/html"):
            kinds["html"] += 1
            assert response.text.startswith("<!DOCTYPE html>")
            with pytest.raises(ValueError):
                json.loads(response.content)
        elif response.content == clean:
            kinds["whole"] += 1
        else:
            kinds["cut"] += 1
            assert response.headers["content-type"] == "application/json"
            assert 0 < len(response.content) < len(clean) and clean.startswith(response.content)
            with pytest.raises(ValueError):  # JSONDecodeError, or UnicodeDecodeError mid-character
                json.loads(response.content)
    assert kinds["html"] and kinds["cut"] and kinds["whole"]  # the same request also succeeds
    faults = fresh.stats()["faults"]
    assert (faults["html_200"], faults["truncated_json"]) == (kinds["html"], kinds["cut"])
    # every site route, not only the paged ones; a test's own injection is never garbled
    fresh.faults = FaultConfig(html_200_rate=1.0)
    assert get(fresh, "rb", "/chairs").headers["content-type"].startswith("text/html")
    fresh.inject_response("/chairs", body=b"[]", times=1)
    assert get(fresh, "rb", "/chairs").content == b"[]"


def served_as(value: Any, bad: Any) -> bool:
    """Whether a parsed JSON value is the non-integer form `bad` (floats arrive as Decimal here)."""
    if isinstance(bad, float):
        return isinstance(value, Decimal) and value == Decimal(repr(bad))
    return type(value) is type(bad) and value == bad


def test_non_integer_ids_in_every_answer_holding_the_record(fresh: IvorisEmulator) -> None:
    fresh.faults = FaultConfig(non_integer_id_rate=0.2)
    truth = fresh.truth
    forms: list[Any] = []
    appointments = truth.appointments("mb", WINDOW["from"], WINDOW["to"])
    entries = truth.document_entries("mb", PAST["from"], PAST["to"])
    patients = truth.patients("mb", range(1, 41))
    ids = ",".join(str(p["id"]) for p in patients)
    served_routes = [
        ("appointments", appointments, all_pages(fresh, "mb", "/appointments", 1000, **WINDOW)),
        ("document_entries", entries, all_pages(fresh, "mb", "/document-entries", 1000, **PAST)),
        ("patients", patients, get_json(fresh, "mb", "/patients", ids=ids)),
        ("patients", patients,
         all_pages(fresh, "mb", "/patients", 1000, modifiedSince="2000-01-01T00:00:00Z")),
    ]
    for entity, expected, served in served_routes:
        bad = truth.non_integer_ids("mb", entity, [r["id"] for r in expected])
        assert 0 < len(bad) < len(expected), entity
        assert len(served) == len(expected)
        for got, true in zip(served, expected, strict=True):
            assert {**got, "id": true["id"]} == true  # nothing else changes
            if true["id"] in bad:
                assert served_as(got["id"], bad[true["id"]]) and type(got["id"]) is not int
            else:
                assert type(got["id"]) is int
            # references stay integers unless asked for
            assert all(type(got[f]) is int for f in ("patientId", "appointmentId") if got.get(f) is not None)
        forms.extend(bad.values())
    # the per-patient route serves a spoiled entry exactly as the date route does
    bad_entries = truth.non_integer_ids("mb", "document_entries", [e["id"] for e in entries])
    spoiled = next(e for e in entries if e["id"] in bad_entries)
    own = get_json(fresh, "mb", f"/patients/{spoiled['patientId']}/document-entries")
    assert any(served_as(e["id"], bad_entries[spoiled["id"]]) for e in own)
    # every form a lenient client might let through
    assert {type(form) for form in forms} == {str, float, bool}
    texts = [form for form in forms if isinstance(form, str)]
    assert any(t.isalpha() for t in texts) and any(t.isdigit() for t in texts)
    assert any(t[:-1].isdigit() and t[-1].isalpha() for t in texts)
    assert all(type(a["id"]) is int for a in truth.appointments("mb", WINDOW["from"], WINDOW["to"]))
    assert fresh.stats()["faults"]["non_integer_ids"] > 0
    # another data seed spoils other records
    other = IvorisEmulator(seed=8, size="tiny").truth
    assert (other.non_integer_ids("mb", "patients", range(1, 41), rate=0.2)
            != truth.non_integer_ids("mb", "patients", range(1, 41)))


def test_non_integer_id_references_carry_the_same_value(fresh: IvorisEmulator) -> None:
    fresh.faults = FaultConfig(non_integer_id_rate=0.2, non_integer_id_references=True)
    truth = fresh.truth
    bad_patients = truth.non_integer_ids("mb", "patients", range(1, 41))
    appointments = truth.appointments("mb", WINDOW["from"], WINDOW["to"])
    bad_appointments = truth.non_integer_ids("mb", "appointments", [a["id"] for a in appointments])
    served = all_pages(fresh, "mb", "/appointments", 1000, **WINDOW)
    pointing = [(got, true) for got, true in zip(served, appointments, strict=True)
                if true["patientId"] in bad_patients]
    assert pointing
    assert all(served_as(got["patientId"], bad_patients[true["patientId"]]) for got, true in pointing)
    assert all(type(got["patientId"]) is int for got, true in zip(served, appointments, strict=True)
               if true["patientId"] not in bad_patients)
    entries = truth.document_entries("mb", PAST["from"], PAST["to"])
    served_entries = all_pages(fresh, "mb", "/document-entries", 1000, **PAST)
    linked = [(got, true) for got, true in zip(served_entries, entries, strict=True)
              if true["appointmentId"] in bad_appointments]
    assert linked and all(served_as(got["appointmentId"], bad_appointments[true["appointmentId"]])
                          for got, true in linked)
    unlinked = [got for got, true in zip(served_entries, entries, strict=True)
                if true["appointmentId"] is None]
    assert unlinked and all(got["appointmentId"] is None for got in unlinked)  # null is never a bad form


LIES: dict[str, Any] = {
    "short_page_rate": 0.3, "wide_short_page_rate": 0.5, "phantom_total_extra": 11, "total_drift_rate": 0.3,
    "html_200_rate": 0.1, "truncated_json_rate": 0.1, "non_integer_id_rate": 0.2,
    "non_integer_id_references": True,
}


def script(emu: IvorisEmulator, site: str) -> list[tuple[int, str, bytes]]:
    """A client's reads, twice over: paged routes at several sizes, plain lists, a catalogue."""
    requests: list[tuple[str, dict[str, Any]]] = [
        *[("/appointments", {**WINDOW, "page": n, "pageSize": 10}) for n in range(1, 5)],
        *[("/document-entries", {**PAST, "page": n, "pageSize": 150}) for n in range(1, 3)],
        ("/patients", {"modifiedSince": "2000-01-01T00:00:00Z", "pageSize": 20}),
        ("/patients", {"ids": "1,2,3,4,5,6,7,8,9,10"}),
        ("/patients/3/document-entries", {}),
        ("/chairs", {}),
    ]
    out = []
    for path, params in requests * 2:
        response = get(emu, site, path, **params)
        out.append((response.status_code, response.headers["content-type"], response.content))
    return out


def test_lies_are_deterministic_for_a_seed_and_silent_outside_their_scope() -> None:
    with (IvorisEmulator(seed=7, size="tiny") as one, IvorisEmulator(seed=7, size="tiny") as twin,
          IvorisEmulator(seed=7, size="tiny") as clean):
        one.faults, twin.faults = FaultConfig(**LIES), FaultConfig(**LIES)
        lying = script(one, "mb")
        assert script(twin, "mb") == lying and lying != script(clean, "mb")
        one.faults = FaultConfig(**LIES)  # a new config restarts every request's attempt count
        twin.faults = FaultConfig(**LIES, seed=99)
        assert script(one, "mb") == lying and script(twin, "mb") != lying
        one.faults = FaultConfig(**LIES, lie_sites=("rb",))
        assert script(one, "mb") == script(clean, "mb") and script(one, "rb") != script(clean, "rb")
        routed = {key: value for key, value in LIES.items() if not key.startswith("non_integer")}
        one.faults = FaultConfig(**routed, lie_routes=("/document-entries",))
        scoped, plain = script(one, "le"), script(clean, "le")
        assert [a for a, b in zip(scoped, plain, strict=True) if a != b]
        assert all(a == b for n, (a, b) in enumerate(zip(scoped, plain, strict=True)) if n % 10 not in (4, 5))
        one.faults = FaultConfig()
        assert script(one, "mb") == script(clean, "mb")


def test_lie_knobs_are_off_by_default_and_validated() -> None:
    defaults = FaultConfig()
    assert not defaults.transient_on and defaults.paged_lists_page_size is None
    assert defaults.wide_short_page_rate == defaults.phantom_total_extra == defaults.non_integer_id_rate == 0
    for bad in ({"short_page_rate": 1.5}, {"html_200_rate": -0.1}, {"truncated_json_rate": 2.0},
                {"non_integer_id_rate": 1.01}, {"phantom_total_extra": -1}, {"total_drift_max": 0},
                {"paged_lists_page_size": 0}, {"wide_after_days": 0}, {"lie_routes": ("/nope",)},
                {"wide_short_page_rate": 0.5, "wide_after_days": None, "wide_after_page_size": None}):
        with pytest.raises(ValueError):
            FaultConfig(**bad)
    with pytest.raises(ValueError):
        IvorisEmulator(faults=FaultConfig(lie_sites=("zz",)))
    emu = IvorisEmulator(seed=7, size="tiny")
    with pytest.raises(ValueError):
        emu.faults = FaultConfig(lie_sites=("mb", "xx"))
    with pytest.raises(ValueError):
        emu.truth.non_integer_ids("mb", "chairs", [1])


# -- stats, bench, CLI ---------------------------------------------------------------------------------


def test_stats_endpoint(tiny: IvorisEmulator) -> None:
    get(tiny, "mb", "/chairs")
    body = HTTP.get(f"{tiny.base_url}/_emulator/stats").json()
    assert {"requests", "peak_in_flight", "faults", "clock"} <= set(body)
    assert any(r["route"] == "/sites/{site_id}/chairs" and r["status"] == 200 for r in body["requests"])
    assert body["clock"] == "2026-06-30T18:00:00Z"


def test_bench_is_lazy_and_holds_a_million_entries() -> None:
    emu = IvorisEmulator(seed=7, size="bench")
    with emu:
        # construction and start generate nothing; a single day is served on demand
        assert all(len(site.days) == 0 and site.meta is None for site in emu.dataset.sites.values())
        body = get_json(emu, "mb", "/document-entries", **{"from": "2026-06-29", "to": "2026-06-29"},
                        pageSize=100)
        assert body["total"] > 1000 and len(body["items"]) == 100
    counts = emu.truth.counts()
    assert counts["document_entries"] >= 1_000_000
    assert counts["patients"] >= 3 * 20_000 and counts["appointments"] > 150_000


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    ivoris_cli.add_arguments(parser)
    args = parser.parse_args(["--port", "8711", "--size", "tiny", "--random-504", "0.1",
                              "--max-in-flight", "4", "--latency", "0.5", "--duplicate-rate", "0.05",
                              "--date-route-gap-rate", "0.02"])
    assert (args.port, args.host, args.seed, args.size) == (8711, "127.0.0.1", 7, "tiny")
    assert (args.random_504, args.max_in_flight, args.latency) == (0.1, 4, 0.5)
    assert not args.allow_non_loopback
    assert (ivoris_cli.__doc__ or "").strip().splitlines()[0]
    with pytest.raises(ValueError):
        IvorisEmulator(host="0.0.0.0")


def test_cli_sets_the_lie_knobs_and_leaves_them_off_by_default() -> None:
    parser = argparse.ArgumentParser()
    ivoris_cli.add_arguments(parser)
    assert ivoris_cli.faults_from_args(parser.parse_args([])) == FaultConfig()
    args = parser.parse_args([
        "--short-page-rate", "0.1", "--wide-short-page-rate", "0.2", "--wide-after-days", "7",
        "--wide-after-page-size", "none", "--phantom-total-extra", "617", "--total-drift-rate", "0.3",
        "--total-drift-max", "4", "--paged-lists-page-size", "50", "--html-200-rate", "0.04",
        "--truncated-json-rate", "0.05", "--non-integer-id-rate", "0.06", "--non-integer-id-references",
        "--lie-sites", "mb,rb", "--lie-routes", "/appointments,/document-entries"])
    assert ivoris_cli.faults_from_args(args) == FaultConfig(
        short_page_rate=0.1, wide_short_page_rate=0.2, wide_after_days=7, wide_after_page_size=None,
        phantom_total_extra=617, total_drift_rate=0.3, total_drift_max=4, paged_lists_page_size=50,
        html_200_rate=0.04, truncated_json_rate=0.05, non_integer_id_rate=0.06,
        non_integer_id_references=True, lie_sites=("mb", "rb"),
        lie_routes=("/appointments", "/document-entries"))
    with pytest.raises(ValueError):
        ivoris_cli.faults_from_args(parser.parse_args(["--lie-routes", "/nope"]))
