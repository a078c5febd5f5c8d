"""Pure parts of the sync: value formats, payloads, hashes, plans, error summaries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from biss_pipeline.domain.hubspot.api import error_info, error_info_from_body
from biss_pipeline.domain.hubspot.diff import (
    LedgerEntry,
    PlannedWrite,
    chunks,
    dedupe_writes,
    plan_associations,
    plan_records,
    same_value,
)
from biss_pipeline.domain.hubspot.model import (
    CONTACT_PROPERTIES,
    PipelineSpec,
    StageSpec,
    SyncMapping,
    default_pipeline_spec,
    normalise_allowlist,
    slug,
)
from biss_pipeline.domain.hubspot.payloads import (
    FLAG_EMAIL_INVALID,
    FLAG_EMAIL_SHARED,
    DesiredRecord,
    association_hash,
    contact_records,
    deal_record,
    hs_date,
    hs_datetime,
    hs_day_instant,
    money,
)

# ---------------------------------------------------------------------------------------------- formats


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_money_is_exact_with_two_decimals(cents: int) -> None:
    text = money(cents)
    assert Decimal(text) * 100 == cents
    assert len(text.split(".")[1]) == 2


@pytest.mark.parametrize(
    ("cents", "text"),
    [(48000, "480.00"), (5, "0.05"), (-5, "-0.05"), (0, "0.00"), (-12345, "-123.45"), (None, "")],
)
def test_money_examples(cents: int | None, text: str) -> None:
    assert money(cents) == text


def test_dates_and_times_as_hubspot_expects() -> None:
    assert hs_date(dt.date(2026, 3, 10)) == "2026-03-10"
    assert hs_date(None) == ""
    assert hs_day_instant(dt.date(2026, 3, 10)) == "2026-03-10T00:00:00Z"
    # staging times are Berlin wall-clock: CET in winter, CEST in summer
    assert hs_datetime(dt.datetime(2026, 3, 10, 9, 30)) == "2026-03-10T08:30:00Z"
    assert hs_datetime(dt.datetime(2026, 7, 10, 9, 30)) == "2026-07-10T07:30:00Z"
    assert hs_datetime(dt.datetime(2026, 7, 10, 9, 30, tzinfo=dt.UTC)) == "2026-07-10T09:30:00Z"


def test_slugs_are_hubspot_property_names() -> None:
    assert slug("Füllung") == "fuellung"
    assert slug("KFO") == "kfo"
    assert slug("Prothetik / Labor") == "prothetik_labor"
    with pytest.raises(ValueError):
        slug("—")


# ---------------------------------------------------------------------------------------------- contacts


PATIENT = {
    "first_name": "Anna",
    "last_name": "Muster",
    "birth_date": dt.date(1990, 5, 17),
    "email": " Anna@Example.org ",
    "phone": "+49 30 1",
    "insurance": "GKV",
}
ROLLUP = {
    "num_deals": 2,
    "num_open_deals": 1,
    "last_appointment_date": dt.date(2026, 3, 1),
    "next_appointment_date": None,
    "lifetime_revenue_cents": 50550,
}


def test_contact_payload_carries_only_allowlisted_personal_fields() -> None:
    records = contact_records(
        "mb", ["MB_1"], {"MB_1": PATIENT}, {"MB_1": ROLLUP}, SyncMapping().allowed_contact_fields
    )
    properties = records["MB_1"].properties
    assert properties == {
        "biss_practice_id": "mb",
        "biss_num_deals": "2",
        "biss_num_open_deals": "1",
        "biss_last_appointment_date": "2026-03-01",
        "biss_next_appointment_date": "",
        "biss_lifetime_revenue": "505.50",
        "firstname": "Anna",
        "lastname": "Muster",
        "email": "anna@example.org",
        "phone": "+49 30 1",
    }
    assert "date_of_birth" not in properties and "biss_insurance" not in properties

    only_name = contact_records("mb", ["MB_1"], {"MB_1": PATIENT}, {}, normalise_allowlist(["last_name"]))
    assert {k for k in only_name["MB_1"].properties if not k.startswith("biss_")} == {"lastname"}


def test_a_patient_missing_from_staging_keeps_hubspots_personal_fields() -> None:
    record = contact_records("mb", ["MB_9"], {}, {"MB_9": ROLLUP}, ("firstname", "email"))["MB_9"]
    assert "firstname" not in record.properties and "email" not in record.properties


def test_shared_and_invalid_emails_are_withheld_and_flagged() -> None:
    patients = {
        "MB_2": {**PATIENT, "email": "family@example.org"},
        "MB_1": {**PATIENT, "email": "FAMILY@example.org"},
        "MB_3": {**PATIENT, "email": "no-at-sign"},
    }
    records = contact_records("mb", patients, patients, {}, ("email",))
    assert records["MB_1"].properties["email"] == "family@example.org" and records["MB_1"].flags == ()
    # cleared explicitly: if MB_2 owned the address before, HubSpot must not keep it
    assert records["MB_2"].properties["email"] == "" and records["MB_2"].flags == (FLAG_EMAIL_SHARED,)
    assert "email" not in records["MB_3"].properties and records["MB_3"].flags == (FLAG_EMAIL_INVALID,)


def test_the_email_owner_is_the_lowest_numeric_id_not_the_lowest_string() -> None:
    patients = {
        "RB_34": {**PATIENT, "email": "family@example.org"},
        "RB_7": {**PATIENT, "email": "family@example.org"},
        "RB_100": {**PATIENT, "email": "family@example.org"},
    }
    records = contact_records("rb", patients, patients, {}, ("email",))
    assert records["RB_7"].properties["email"] == "family@example.org"  # min() of strings: RB_100
    assert records["RB_34"].properties["email"] == records["RB_100"].properties["email"] == ""


def test_unknown_allowlist_fields_are_refused() -> None:
    assert normalise_allowlist(["First_Name", "email", "birth_date", "email"]) == (
        "firstname",
        "email",
        "date_of_birth",
    )
    with pytest.raises(ValueError, match="not one the sync can send"):
        normalise_allowlist(["firstname", "kontostand"])


def test_every_custom_contact_property_is_in_the_catalog() -> None:
    catalog = {p.name for p in CONTACT_PROPERTIES}
    record = contact_records(
        "mb", ["MB_1"], {"MB_1": PATIENT}, {"MB_1": ROLLUP}, ("firstname", "biss_insurance")
    )["MB_1"]
    assert {k for k in record.properties if k.startswith("biss_")} <= catalog


# ---------------------------------------------------------------------------------------------- deals


DEAL = {
    "deal_key": "MB_A1",
    "patient_key": "MB_1",
    "stage": "abgeschlossen",
    "amount_cents": 50550,
    "closed_date": dt.date(2026, 5, 9),
    "last_appointment_date": dt.date(2026, 3, 10),
    "first_appointment_date": dt.date(2026, 3, 1),
    "behandlungsstart": dt.date(2026, 3, 10),
    "treatment_category": "Füllung",
    "lost_reason": None,
    "num_appointments": 2,
}
REVENUE = [
    {"revenue_bucket": "goz", "treatment_category": "Füllung", "amount_cents": 48000},
    {"revenue_bucket": "bema", "treatment_category": "Prophylaxe", "amount_cents": 2550},
]


def _deal(deal: dict, revenue: list[dict], pipeline: PipelineSpec | None = None) -> DesiredRecord:
    pipeline = pipeline or default_pipeline_spec()
    return deal_record(
        deal,
        revenue,
        practice_id="mb",
        pipeline=pipeline,
        pipeline_id="P1",
        stage_ids={s.stage: f"S-{s.stage}" for s in pipeline.stages},
        buckets=["bema", "goz", "labor"],
        categories=["Füllung", "Prophylaxe"],
        name_prefix="Behandlung",
    )


def test_deal_payload() -> None:
    properties = _deal(DEAL, REVENUE).properties
    assert properties["pipeline"] == "P1" and properties["dealstage"] == "S-abgeschlossen"
    assert properties["amount"] == "505.50"
    assert properties["closedate"] == "2026-05-09T00:00:00Z"
    assert properties["biss_behandlungsstart"] == "2026-03-10"
    assert (
        properties["biss_revenue_bucket_goz"],
        properties["biss_revenue_bucket_bema"],
        properties["biss_revenue_bucket_labor"],
    ) == ("480.00", "25.50", "0.00")
    assert properties["biss_revenue_category_fuellung"] == "480.00"
    assert properties["dealname"] == "Behandlung MB_A1"


def test_an_open_deal_clears_closedate_and_moving_back_changes_the_hash() -> None:
    won = _deal(DEAL, REVENUE)
    back = _deal({**DEAL, "stage": "erstberatung", "behandlungsstart": None, "amount_cents": 0}, [])
    assert back.properties["closedate"] == "" and back.properties["biss_behandlungsstart"] == ""
    assert back.properties["biss_revenue_bucket_goz"] == "0.00"
    assert back.content_hash != won.content_hash
    assert _deal(DEAL, REVENUE).content_hash == won.content_hash


def test_pipeline_spec_needs_every_stage() -> None:
    with pytest.raises(ValueError, match="no HubSpot stage"):
        PipelineSpec("P", (StageSpec("termin_gebucht", "Termin", 0.2),))
    with pytest.raises(ValueError):
        StageSpec("verloren", "Verloren", 1.5)


# ---------------------------------------------------------------------------------------------- plans


def _entry(key: str, digest: str | None, hubspot_id: str | None = "1", status: str = "synced") -> LedgerEntry:
    return LedgerEntry("contacts", key, digest, hubspot_id, status)


def test_plan_records() -> None:
    desired = {k: DesiredRecord(k, {"x": k}) for k in ("new", "same", "changed", "failed", "failed_new")}
    ledger = {
        "same": _entry("same", desired["same"].content_hash),
        "changed": _entry("changed", "old"),
        "failed": _entry("failed", desired["failed"].content_hash, status="error"),
        "failed_new": _entry("failed_new", None, hubspot_id=None, status="error"),
        "gone": _entry("gone", "x"),
    }
    plan = plan_records(desired, ledger)
    assert {(w.key, w.action, w.retry) for w in plan.writes} == {
        ("new", "create", False),
        ("changed", "update", False),
        ("failed", "update", True),
        ("failed_new", "create", True),
    }
    assert plan.unchanged == ["same"] and plan.stale == ["gone"]


def test_plan_associations() -> None:
    ids_from, ids_to = {"C1": "11", "C2": "12"}, {"D1": "21", "D2": "22"}
    ledger = {
        "C1>D1": LedgerEntry("a", "C1>D1", association_hash("11", "21", 4), "11>21", "synced"),
        "C2>D1": LedgerEntry(
            "a", "C2>D1", association_hash("12", "99", 4), "12>99", "synced"
        ),  # D1 re-created
        "C2>D9": LedgerEntry("a", "C2>D9", association_hash("12", "29", 4), "12>29", "synced"),
        "C1>D2": LedgerEntry("a", "C1>D2", "x", "11>22", "synced"),  # no longer wanted, both ends live
    }
    plan = plan_associations(
        [("C1", "D1"), ("C2", "D1"), ("C1", "D3")],
        ids_from,
        ids_to,
        ledger,
        4,
        live_keys=({"C1", "C2"}, {"D1", "D2"}),
    )
    assert plan.unchanged == ["C1>D1"]
    assert [(p.key, p.ids) for p in plan.add] == [("C2>D1", ("12", "21"))]
    assert plan.waiting == ["C1>D3"]
    assert plan.remove == [("C1>D2", "11", "22")]  # C2>D9 has a stale end: left alone


def test_batches_are_deduplicated_and_bounded() -> None:
    writes = [PlannedWrite(DesiredRecord(k, {"v": str(i)}), "create", False) for i, k in enumerate("abcab")]
    deduped = dedupe_writes(writes)
    assert [w.key for w in deduped] == ["c", "a", "b"]
    assert [w.properties["v"] for w in deduped] == ["2", "3", "4"]
    assert [len(c) for c in chunks(list(range(250)), 100)] == [100, 100, 50]


def test_values_compare_by_type_for_dry_run_diffs() -> None:
    assert same_value("number", "480.00", "480")
    assert same_value("datetime", "2026-03-10T08:30:00Z", "2026-03-10T08:30:00.000Z")
    assert same_value("date", "2026-03-10", "2026-03-10")
    assert same_value("email", "A@b.de", "a@b.de")
    assert not same_value("string", "Muster", "muster")
    assert not same_value("string", "", "x")


# ---------------------------------------------------------------------------------------------- errors


def test_error_summaries_carry_codes_not_values() -> None:
    body = (
        '{"status":"error","message":"Property values were not valid: [{\\"isValid\\":false,'
        '\\"message\\":\\"Email address anna@secret.de is invalid\\",\\"error\\":\\"INVALID_EMAIL\\",'
        '\\"name\\":\\"email\\"}]","correlationId":"x","category":"VALIDATION_ERROR"}'
    )
    info = error_info_from_body(400, body)
    assert info.problems == (("INVALID_EMAIL", "email"),)
    assert info.is_per_record and not info.is_systemic
    assert "anna" not in info.summary and info.summary == "400 VALIDATION_ERROR [INVALID_EMAIL on email]"

    conflict = error_info(409, "CONFLICT", "Contact already exists. Existing ID: 1234")
    assert conflict.email_conflict and conflict.existing_id == "1234"
    assert conflict.summary == "409 CONFLICT contact email already used by 1234"

    missing = error_info_from_body(
        400,
        '{"message":"Property values were not valid: [{\\"error\\":'
        '\\"PROPERTY_DOESNT_EXIST\\",\\"name\\":\\"biss_x\\"}]"}',
    )
    assert missing.is_systemic
    assert error_info_from_body(502, "<html>502 Bad Gateway</html>").category == "NON_JSON_RESPONSE"
    assert error_info_from_body(429, '{"errorType":"RATE_LIMIT","policyName":"DAILY"}').policy == "DAILY"
