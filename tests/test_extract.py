"""Raw extraction keeps every record it can key and place, and quarantines the rest with a reason."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from biss_pipeline.domain.ivoris.entities import APPOINTMENT, DOCUMENT_ENTRY, PATIENT_FIELDS
from biss_pipeline.domain.ivoris.extract import as_text, patient_rows, usable_id

MONDAY, FRIDAY = dt.date(2026, 3, 2), dt.date(2026, 3, 6)


def record(ivoris_id: object, start: object = "2026-03-03T09:00:00", **extra: object) -> dict:
    return {"id": ivoris_id, "patientId": 7, "chairId": 1, "typeId": 1, "start": start,
            "end": "2026-03-03T09:30:00", "status": "booked", "modifiedAt": "2026-03-01T08:00:00Z", **extra}


def test_good_records_become_rows_with_global_keys() -> None:
    result = APPOINTMENT.rows("mb", "MB_", [record(10423)], MONDAY, FRIDAY)
    assert result.quarantined == []
    [row] = result.rows
    assert row["appointment_key"] == "MB_10423"
    assert row["partition_date"] == dt.date(2026, 3, 3)
    assert row["patient_id"] == "7"


def test_bad_records_are_quarantined_and_the_rest_goes_through() -> None:
    records = [
        record(1),
        record(None),                          # no id
        record({"nested": 1}),                 # id of the wrong type
        record(-4),                            # negative id
        record(2, start="03.03.2026 09:00"),   # unparsable start
        record(3, start=None),                 # missing start
        record(4, start="2026-04-01T09:00:00"),  # outside the requested window
        record(5),
    ]
    result = APPOINTMENT.rows("mb", "MB_", records, MONDAY, FRIDAY)
    assert [r["appointment_key"] for r in result.rows] == ["MB_1", "MB_5"]
    reasons = sorted((q["record_key"], q["reason"]) for q in result.quarantined)
    assert reasons == [
        ("MB_2", "unparsable start"),
        ("MB_3", "unparsable start"),
        ("MB_4", "start outside requested window"),
        ("record-without-id-1", "missing or invalid id"),
        ("record-without-id-2", "missing or invalid id"),
        ("record-without-id-3", "missing or invalid id"),
    ]
    assert all(q["partition_date"] == MONDAY and q["stage"] == "raw" for q in result.quarantined)


def test_quarantine_rows_carry_no_personal_data() -> None:
    patient = {"id": None, "firstName": "Jürgen", "lastName": "Müller", "email": "j@example.de"}
    result = patient_rows("mb", "MB_", PATIENT_FIELDS, [patient], {}, MONDAY, FRIDAY)
    text = repr(result.quarantined)
    assert "Jürgen" not in text and "Müller" not in text and "example.de" not in text


def test_amounts_keep_their_written_digits() -> None:
    entry = {"id": 9, "patientId": 7, "appointmentId": None, "date": "2026-03-03", "type": "goz",
             "code": "2080", "description": "Füllung", "amount": Decimal("480.00"),
             "modifiedAt": "2026-03-03T12:00:00Z"}
    [row] = DOCUMENT_ENTRY.rows("mb", "MB_", [entry], MONDAY, FRIDAY).rows
    assert row["amount"] == "480.00"
    assert row["appointment_id"] is None
    assert as_text(Decimal("-35.50")) == "-35.50"


def test_patients_get_one_row_per_day_that_needs_them() -> None:
    patient = {"id": 7, "firstName": "A", "lastName": "B", "modifiedAt": "2026-03-04T08:00:00Z"}
    reasons = {"7": {dt.date(2026, 3, 3): "referenced", dt.date(2026, 3, 4): "modified",
                     dt.date(2026, 3, 20): "referenced"}}
    rows = patient_rows("mb", "MB_", PATIENT_FIELDS, [patient], reasons, MONDAY, FRIDAY).rows
    assert [(r["partition_date"], r["reason"]) for r in rows] == [
        (dt.date(2026, 3, 3), "referenced"), (dt.date(2026, 3, 4), "modified")]


def test_usable_ids() -> None:
    assert usable_id(12) == "12"
    assert usable_id("A-12") == "A-12"
    assert usable_id(True) is None
    assert usable_id("") is None
    assert usable_id("x" * 41) is None
    assert usable_id("1;DROP") is None


def test_ids_are_integers() -> None:
    """SPEC §3: ids are integers; a numeric string, a float or a boolean is bad input, and so is a
    reference to another record that is not an integer."""
    records = [record("12"), record("bc"), record(Decimal("12.5")), record(True), record(6),
               record(7, patientId="abc"), record(8, patientId="8"), record(9, patientId=None)]
    result = APPOINTMENT.rows("mb", "MB_", records, MONDAY, FRIDAY)
    assert [r["appointment_key"] for r in result.rows] == ["MB_6", "MB_9"]
    reasons = sorted((q["record_key"], q["reason"]) for q in result.quarantined)
    assert reasons == [
        ("MB_7", "non-integer patientId"), ("MB_8", "non-integer patientId"),
        *[(f"record-without-id-{n}", "non-integer id") for n in range(1, 5)],
    ]
