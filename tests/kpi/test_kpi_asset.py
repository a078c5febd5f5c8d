"""The KPI multi-asset on both warehouse backends: tables, chart, HTML report, idempotent re-runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetKey, materialize

from biss_pipeline.assets.kpi import REPORT_KEY, build_kpi_assets
from biss_pipeline.domain.kpi.store import KPI_TABLES, kpi_headline
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse
from biss_pipeline.keys import kpi_asset_key
from biss_pipeline.resources.warehouse import WarehouseResource

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UTC = dt.UTC


def appointment(
    practice: str,
    key: str,
    patient: str,
    start: str,
    status: str,
    modified: str,
    partition: str | None = None,
) -> dict:
    begin = dt.datetime.fromisoformat(start)
    return {
        "practice_id": practice,
        "partition_date": dt.date.fromisoformat(partition or start[:10]),
        "appointment_key": key,
        "patient_key": patient,
        "chair_key": None,
        "type_key": f"{key.split('_')[0]}_1",
        "start": begin,
        "end": begin + dt.timedelta(minutes=30),
        "status": status,
        "modified_at": dt.datetime.fromisoformat(modified).replace(tzinfo=UTC),
    }


def deal(
    practice: str,
    key: str,
    patient: str,
    stage: str,
    number: int,
    first: str,
    last: str,
    started: str | None = None,
    closed: str | None = None,
    amount: int = 0,
    lost_reason: str | None = None,
) -> dict:
    day = dt.date.fromisoformat
    return {
        "deal_key": key,
        "practice_id": practice,
        "patient_key": patient,
        "stage": stage,
        "stage_label": stage,
        "stage_number": number,
        "is_open": number <= 3,
        "opened_by_appointment_key": key,
        "driving_appointment_key": key,
        "first_appointment_date": day(first),
        "last_appointment_date": day(last),
        "behandlungsstart": day(started) if started else None,
        "closed_date": day(closed) if closed else None,
        "amount_cents": amount,
        "treatment_category": None,
        "lost_reason": lost_reason,
        "num_appointments": 1,
        # every seeded deal past stage 1 began with a completed lead
        "lead_completed": number in (2, 3, 4),
    }


def entry(practice: str, key: str, deal_key: str, patient: str, on: str, category: str, cents: int) -> dict:
    return {
        "deal_key": deal_key,
        "practice_id": practice,
        "patient_key": patient,
        "entry_key": key,
        "appointment_key": None,
        "entry_date": dt.date.fromisoformat(on),
        "revenue_bucket": "goz",
        "treatment_category": category,
        "amount_cents": cents,
        "counted_by": "window",
    }


def seed(warehouse: Warehouse) -> None:
    appointments = [
        appointment("mb", "MB_1", "MB_P1", "2026-03-02T09:00", "completed", "2026-03-02T12:00"),
        appointment("mb", "MB_2", "MB_P1", "2026-03-05T10:00", "completed", "2026-03-05T12:00"),
        # moved from 03-03 to 03-04 and then missed: the newest version counts, once
        appointment("mb", "MB_3", "MB_P2", "2026-03-03T11:00", "booked", "2026-03-01T08:00"),
        appointment("mb", "MB_3", "MB_P2", "2026-03-04T11:00", "no_show", "2026-03-04T12:00"),
        appointment("mb", "MB_4", "MB_P3", "2026-03-06T08:00", "cancelled", "2026-03-05T08:00"),
        appointment("mb", "MB_5", "MB_P4", "2026-03-12T09:00", "booked", "2026-03-10T08:00"),
        # an internal blocker: no deal, not a patient appointment
        appointment("mb", "MB_9", "MB_P9", "2026-03-03T13:00", "completed", "2026-03-03T14:00"),
        appointment("rb", "RB_1", "RB_P1", "2026-03-03T09:00", "completed", "2026-03-03T10:00"),
    ]
    deals = [
        deal(
            "mb",
            "MB_1",
            "MB_P1",
            "in_behandlung",
            3,
            "2026-03-02",
            "2026-03-05",
            started="2026-03-05",
            amount=49000,
        ),
        deal("mb", "MB_3", "MB_P2", "verloren", 5, "2026-03-04", "2026-03-04", closed="2026-03-04",
             lost_reason="no_show"),
        deal("mb", "MB_4", "MB_P3", "verloren", 5, "2026-03-06", "2026-03-06", closed="2026-03-06",
             lost_reason="cancelled"),
        deal("mb", "MB_5", "MB_P4", "termin_gebucht", 1, "2026-03-12", "2026-03-12"),
        deal("rb", "RB_1", "RB_P1", "erstberatung", 2, "2026-03-03", "2026-03-03"),
    ]
    members = [
        ("mb", "MB_1", "MB_P1", "MB_1"),
        ("mb", "MB_1", "MB_P1", "MB_2"),
        ("mb", "MB_3", "MB_P2", "MB_3"),
        ("mb", "MB_4", "MB_P3", "MB_4"),
        ("mb", "MB_5", "MB_P4", "MB_5"),
        ("rb", "RB_1", "RB_P1", "RB_1"),
    ]
    entries = [
        entry("mb", "MB_E1", "MB_1", "MB_P1", "2026-03-05", "Füllung", 48000),
        entry("mb", "MB_E2", "MB_1", "MB_P1", "2026-03-05", "Sonstiges", 1250),
        entry("mb", "MB_E3", "MB_1", "MB_P1", "2026-03-05", "Prophylaxe", -250),
        entry("rb", "RB_E1", "RB_1", "RB_P1", "2026-03-03", "Prophylaxe", 3599),
    ]
    with warehouse.transaction() as connection:
        connection.execute(schema.stg_appointments.insert(), appointments)
        connection.execute(schema.deals.insert(), deals)
        connection.execute(
            schema.deal_appointments.insert(),
            [
                {"practice_id": p, "deal_key": d, "patient_key": patient, "appointment_key": a}
                for p, d, patient, a in members
            ],
        )
        connection.execute(schema.deal_entries.insert(), entries)
        connection.execute(schema.uncounted_entries.insert(), [
            uncounted("MB_U1", "2026-03-04", 1200, "appointment_not_completed", "arrived"),
            uncounted("MB_U2", "2026-03-20", 3000, "outside_deal_windows", "after_grace_window"),
            uncounted("MB_U3", "2026-03-04", 700, "not_billable", None),  # never revenue: left out
        ])


def uncounted(key: str, on: str, cents: int, reason: str, detail: str | None) -> dict:
    return {"entry_key": key, "practice_id": "mb", "patient_key": "MB_P1", "appointment_key": None,
            "entry_date": dt.date.fromisoformat(on), "amount_cents": cents, "reason": reason,
            "detail": detail}


def snapshot(warehouse: Warehouse) -> dict[str, list[tuple]]:
    return {
        name: sorted(tuple(r.values()) for r in warehouse.read_rows(sa.select(table)))
        for name, table in KPI_TABLES.items()
    }


def one(warehouse: Warehouse, table: sa.Table, **where: object) -> dict:
    statement = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
    [found] = warehouse.read_rows(statement)
    return found


@pytest.fixture
def reports_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BISS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "reports"


def run(url: str, run_config: dict | None = None):  # type: ignore[no-untyped-def]
    result = materialize(
        build_kpi_assets([AssetKey(["mb", "deals"])]),
        resources={"warehouse": WarehouseResource(url=url)},
        run_config=run_config,
    )
    assert result.success
    return result


def test_kpi_assets_write_tables_chart_and_report(warehouse_url: str, reports_home: Path) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    seed(warehouse)
    result = run(warehouse_url)

    keys = {event.asset_key for event in result.get_asset_materialization_events()}
    assert keys == {
        kpi_asset_key("appointments"),
        kpi_asset_key("deals"),
        kpi_asset_key("revenue"),
        REPORT_KEY,
    }

    week = {"grain": "week", "period_start": dt.date(2026, 3, 2)}
    appointments = one(warehouse, schema.kpi_appointments, practice_id="mb", **week)
    assert {
        k: appointments[k]
        for k in (
            "scheduled",
            "booked",
            "completed",
            "cancelled",
            "no_show",
            "clarified",
            "pending",
            "period_end",
        )
    } == {
        "scheduled": 4,
        "booked": 3,
        "completed": 2,
        "cancelled": 1,
        "no_show": 1,
        "clarified": 0,
        "pending": 0,
        "period_end": dt.date(2026, 3, 8),
    }
    assert appointments["no_show_rate"] == pytest.approx(1 / 3)
    assert (
        one(
            warehouse,
            schema.kpi_appointments,
            practice_id="mb",
            grain="week",
            period_start=dt.date(2026, 3, 9),
        )["pending"]
        == 1
    )
    moved_from = one(
        warehouse, schema.kpi_appointments, practice_id="mb", grain="day", period_start=dt.date(2026, 3, 3)
    )
    assert moved_from["scheduled"] == 0  # the old day of the moved appointment, and the blocker left out

    deals = one(warehouse, schema.kpi_deals, practice_id="mb", **week)
    assert {
        k: deals[k]
        for k in (
            "deals_opened",
            "deals_won",
            "deals_lost",
            "cohort_erstberatung",
            "cohort_behandlung",
            "conversion_rate",
            "treatments_started",
            "treatments_completed",
            "treatment_completion_rate",
        )
    } == {
        "deals_opened": 3,
        "deals_won": 0,
        "deals_lost": 2,
        "cohort_erstberatung": 1,
        "cohort_behandlung": 1,
        "conversion_rate": 1.0,
        "treatments_started": 1,
        "treatments_completed": 0,
        "treatment_completion_rate": 0.0,
    }
    assert (deals["lost_no_show"], deals["lost_cancelled"], deals["lost_inactive"]) == (1, 1, 0)
    month = {"grain": "month", "period_start": dt.date(2026, 3, 1)}
    lost = warehouse.read_rows(sa.select(schema.kpi_uncounted).where(
        schema.kpi_uncounted.c.practice_id == "mb", schema.kpi_uncounted.c.grain == "month"))
    assert sorted((r["reason"], r["entries"], r["amount_cents"]) for r in lost) == [
        ("appointment_not_completed", 1, 1200), ("outside_deal_windows", 1, 3000)]
    rb = one(warehouse, schema.kpi_deals, practice_id="rb", **month)
    assert (rb["cohort_erstberatung"], rb["cohort_behandlung"], rb["conversion_rate"]) == (1, 0, 0.0)
    assert rb["treatment_completion_rate"] is None

    revenue = warehouse.read_rows(
        sa.select(schema.kpi_revenue).where(
            schema.kpi_revenue.c.practice_id == "mb", schema.kpi_revenue.c.grain == "week"
        )
    )
    assert sorted((r["treatment_category"], r["amount_cents"]) for r in revenue) == [
        ("Füllung", 48000),
        ("Prophylaxe", -250),
        ("Sonstiges", 1250),
    ]
    entries_total = warehouse.read_rows(sa.select(sa.func.sum(schema.deal_entries.c.amount_cents).label("t")))
    for grain in ("day", "week", "month"):
        kpi_total = warehouse.read_rows(
            sa.select(sa.func.sum(schema.kpi_revenue.c.amount_cents).label("t")).where(
                schema.kpi_revenue.c.grain == grain
            )
        )
        assert int(kpi_total[0]["t"]) == int(entries_total[0]["t"]) == 52599

    chart, report = reports_home / "kpi_weekly.png", reports_home / "kpi.html"
    assert chart.read_bytes().startswith(PNG_MAGIC)
    html = report.read_text(encoding="utf-8")
    for text in (
        "Weekly appointments",
        "Weekly deals",
        "Monthly revenue by treatment category",
        "no_show_rate",
        "conversion_rate",
        "treatment_completion_rate",
        "490.00 EUR",
        "35.99 EUR",
        "33.3 %",
        "data:image/png;base64,",
        "2026-03-02",
        "Definitions",
    ):
        assert text in html, text
    assert "<table" in html and html.count("<h2>") == 8  # 7 KPI sections + uncounted revenue
    for personal in ("MB_P1", "RB_P1", "MB_1", "MB_E1"):
        assert personal not in html

    [report_event] = [e for e in result.get_asset_materialization_events() if e.asset_key == REPORT_KEY]
    metadata = report_event.materialization.metadata
    assert metadata["as_of"].value == "2026-03-10"  # the newest Ivoris change, not today
    assert "chart" not in metadata  # no base64 image in the event log: a link to the file
    assert metadata["chart_url"].value == chart.resolve().as_uri()
    assert metadata["chart_path"].value == str(chart)
    assert metadata["report_path"].value == str(report)
    assert "| mb | 2 | 33.3 % | 490.00 EUR | 3 | 0 |" in metadata["headline"].value

    assert kpi_headline(warehouse) == [
        "KPIs as of 2026-03-10",
        "Week 2026-W10 (02.03.–08.03.2026):",
        "  mb: 2 appointments completed, no-show rate 33.3 %, revenue 490.00 EUR, 3 deals opened, 0 won",
        "  rb: 1 appointments completed, no-show rate 0.0 %, revenue 35.99 EUR, 1 deals opened, 0 won",
    ]


def test_rematerializing_gives_identical_tables_and_replaces_everything(
    warehouse_url: str, reports_home: Path
) -> None:
    warehouse = WarehouseResource(url=warehouse_url).get()
    seed(warehouse)
    run(warehouse_url)
    first, first_chart = snapshot(warehouse), (reports_home / "kpi_weekly.png").read_bytes()
    run(warehouse_url)
    assert snapshot(warehouse) == first
    assert (reports_home / "kpi_weekly.png").read_bytes() == first_chart

    # rb's data disappears: a full replace leaves no stale rb rows behind
    with warehouse.transaction() as connection:
        for table in (schema.stg_appointments, schema.deals, schema.deal_appointments, schema.deal_entries):
            connection.execute(table.delete().where(table.c.practice_id == "rb"))
    run(warehouse_url, {"ops": {"kpi": {"config": {"as_of": "2026-03-17", "chart_weeks": 4}}}})
    after = snapshot(warehouse)
    assert after != first
    for name, rows in after.items():
        assert rows and all(row[0] == "mb" for row in rows), name
    assert kpi_headline(warehouse, dt.date(2026, 3, 17))[1] == "Week 2026-W11 (09.03.–15.03.2026):"


def test_an_empty_warehouse_gives_empty_tables_and_a_report(sqlite_url: str, reports_home: Path) -> None:
    warehouse = WarehouseResource(url=sqlite_url).get()
    run(sqlite_url)
    assert all(rows == [] for rows in snapshot(warehouse).values())
    assert (reports_home / "kpi_weekly.png").read_bytes().startswith(PNG_MAGIC)
    assert "No rows." in (reports_home / "kpi.html").read_text(encoding="utf-8")
    assert kpi_headline(warehouse) == ["No KPI data yet: run the kpi assets after a sync."]
