"""Staging validation: one test per quarantine case, and the rest of the partition goes through."""

from __future__ import annotations

import datetime as dt

import pytest

from biss_pipeline.domain.staging.rules import (
    newest_rows,
    parse_amount_cents,
    stage_appointments,
    stage_document_entries,
    stage_patients,
)

DAY = dt.date(2026, 3, 3)
PATIENTS = {"MB_7"}
TYPES = {"MB_1", "MB_4"}


def appointment(key: str = "MB_1", **changes: object) -> dict:
    row = {"practice_id": "mb", "partition_date": DAY, "appointment_key": key,
           "ivoris_id": key.removeprefix("MB_"), "patient_id": "7", "chair_id": "2", "type_id": "4",
           "start": "2026-03-03T09:00:00", "end": "2026-03-03T09:45:00", "status": "completed",
           "modified_at": "2026-03-03T10:00:00Z"}
    row.update(changes)
    return row


def patient(key: str = "MB_7", **changes: object) -> dict:
    row = {"practice_id": "mb", "partition_date": DAY, "patient_key": key, "ivoris_id": "7",
           "first_name": "Jürgen", "last_name": "Müller-Lüdenscheidt", "birth_date": "1970-05-01",
           "email": "jm@example.de", "phone": "+49 391 12345", "insurance": "GKV",
           "modified_at": "2026-03-01T08:00:00Z", "reason": "referenced"}
    row.update(changes)
    return row


def entry(key: str = "MB_100", **changes: object) -> dict:
    row = {"practice_id": "mb", "partition_date": DAY, "entry_key": key, "ivoris_id": "100",
           "patient_id": "7", "appointment_id": "1", "entry_date": "2026-03-03", "entry_type": "goz",
           "code": "2080", "description": "Füllung", "amount": "480.00",
           "modified_at": "2026-03-03T12:00:00Z"}
    row.update(changes)
    return row


def reasons(result) -> list[tuple[str, str]]:
    return sorted((q["record_key"], q["reason"]) for q in result.quarantined)


def test_good_rows_are_typed() -> None:
    [staged] = stage_appointments([appointment()], "MB_", PATIENTS, TYPES).rows
    assert staged["start"] == dt.datetime(2026, 3, 3, 9, 0)
    assert staged["modified_at"] == dt.datetime(2026, 3, 3, 10, 0, tzinfo=dt.UTC)
    assert (staged["patient_key"], staged["type_key"], staged["chair_key"]) == ("MB_7", "MB_4", "MB_2")
    [money] = stage_document_entries([entry()], "MB_").rows
    assert money["amount_cents"] == 48000 and money["appointment_key"] == "MB_1"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"patient_id": None}, "missing patient"),
    ({"patient_id": "999"}, "unknown patient"),
    ({"start": "03.03.2026 09:00"}, "unparsable start"),
    ({"end": "2026-02-30T09:00:00"}, "unparsable end"),
    ({"start": "1899-03-03T09:00:00", "end": "1899-03-03T09:30:00"}, "start out of range"),
    ({"end": "2026-03-03T08:00:00"}, "end before start"),
    ({"status": "vielleicht"}, "unknown status"),
    ({"type_id": "77"}, "unknown appointment type"),
    ({"status": "completed\x07"}, "control characters in status"),
    ({"modified_at": "gestern"}, "unparsable modified_at"),
])
def test_bad_appointments_are_quarantined_and_the_rest_goes_through(changes: dict, reason: str) -> None:
    result = stage_appointments([appointment("MB_1", **changes), appointment("MB_2")], "MB_", PATIENTS, TYPES)
    assert [r["appointment_key"] for r in result.rows] == ["MB_2"]
    assert reasons(result) == [("MB_1", reason)]
    assert result.quarantined[0]["stage"] == "staging"
    assert result.quarantined[0]["partition_date"] == DAY


@pytest.mark.parametrize(("changes", "reason"), [
    ({"amount": "vierhundert"}, "non-numeric amount"),
    ({"amount": "NaN"}, "non-numeric amount"),
    ({"amount": None}, "non-numeric amount"),
    ({"amount": "480.001"}, "amount with more than 2 decimals"),
    ({"amount": "4800000.00"}, "absurd amount"),
    ({"entry_type": "xyz"}, "unknown entry type"),
    ({"entry_date": "2026-13-01"}, "unparsable entry_date"),
    ({"patient_id": ""}, "missing patient"),
    ({"description": "x" * 501}, "oversize description"),
    ({"code": "20\x0080"}, "control characters in code"),
])
def test_bad_entries_are_quarantined_and_the_rest_goes_through(changes: dict, reason: str) -> None:
    result = stage_document_entries([entry("MB_100", **changes), entry("MB_101")], "MB_")
    assert [r["entry_key"] for r in result.rows] == ["MB_101"]
    assert reasons(result) == [("MB_100", reason)]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"birth_date": "1970-02-30"}, "unparsable birth_date"),
    ({"birth_date": "2027-01-01"}, "birth_date out of range"),
    ({"last_name": "M" * 201}, "oversize last_name"),
    ({"first_name": "Jür\x1bgen"}, "control characters in first_name"),
])
def test_bad_patients_are_quarantined(changes: dict, reason: str) -> None:
    result = stage_patients([patient("MB_7", **changes), patient("MB_8")], as_of=DAY)
    assert [r["patient_key"] for r in result.rows] == ["MB_8"]
    assert reasons(result) == [("MB_7", reason)]


def test_a_malformed_email_is_dropped_but_the_patient_kept() -> None:
    result = stage_patients([patient(email="kein-at-zeichen"), patient("MB_8", insurance="AOK")], as_of=DAY)
    by_key = {r["patient_key"]: r for r in result.rows}
    assert by_key["MB_7"]["email"] is None and by_key["MB_7"]["last_name"] == "Müller-Lüdenscheidt"
    assert by_key["MB_8"]["insurance"] is None
    assert reasons(result) == [("MB_7", "invalid email (dropped)"), ("MB_8", "unknown insurance (dropped)")]


def test_quarantine_rows_never_hold_personal_data() -> None:
    result = stage_patients([patient(first_name="Jür\x1bgen"), patient("MB_8", email="nope")], as_of=DAY)
    text = repr(result.quarantined)
    for secret in ("Jür", "Müller", "example.de", "1970-05-01", "391"):
        assert secret not in text


def test_the_newest_version_of_a_key_wins() -> None:
    older = appointment(status="booked", modified_at="2026-03-01T10:00:00Z")
    newer = appointment(status="completed", modified_at="2026-03-03T10:00:00Z")
    [staged] = stage_appointments([newer, older], "MB_", PATIENTS, TYPES).rows
    assert staged["status"] == "completed"


def test_the_same_key_and_time_with_different_content_is_a_conflict() -> None:
    one = appointment(status="completed")
    other = appointment(status="cancelled")
    same = appointment(status="completed")
    result = stage_appointments([one, other, same, appointment("MB_2")], "MB_", PATIENTS, TYPES)
    assert [r["appointment_key"] for r in result.rows] == ["MB_2"]
    assert reasons(result) == [("MB_1", "conflicting versions with the same modifiedAt")] * 3


def test_identical_copies_are_not_a_conflict() -> None:
    result = stage_appointments([appointment(), appointment()], "MB_", PATIENTS, TYPES)
    assert len(result.rows) == 1 and result.quarantined == []


def test_a_moved_appointment_keeps_its_newest_day_across_partitions() -> None:
    rows = [{"appointment_key": "MB_1", "partition_date": DAY, "modified_at": 1, "status": "booked"},
            {"appointment_key": "MB_1", "partition_date": DAY + dt.timedelta(days=7), "modified_at": 2,
             "status": "booked"}]
    [current] = newest_rows(rows, "appointment_key")
    assert current["partition_date"] == DAY + dt.timedelta(days=7)


@pytest.mark.parametrize(("written", "cents"), [("480.00", 48000), ("-35.5", -3550), ("0", 0), (12, 1200),
                                                ("0.01", 1)])
def test_amounts_are_exact_cents(written: object, cents: int) -> None:
    assert parse_amount_cents(written) == cents
