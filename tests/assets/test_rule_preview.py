"""The rule-change preview job (`rule_preview_<practice>`): deals under the mapping now in the sheet
against the warehouse, with no config, writing nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from dagster import DagsterInstance

from biss_pipeline.domain.warehouse import schema
from biss_pipeline.jobs.rule_preview import build_rule_preview_job
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.assets.test_worked_example_dagster import (
    A2_ENTRY,
    MAPPING_FILE,
    PRACTICE,
    STEP_3,
    Step,
    Visit,
    run_step,
)

TABLES = (schema.deals, schema.deal_appointments, schema.deal_revenue, schema.deal_entries,
          schema.uncounted_entries, schema.contact_rollups, schema.deal_watermarks)


def snapshot(url: str) -> dict[str, list[tuple]]:
    warehouse = WarehouseResource(url=url).get()
    return {t.name: sorted(tuple(map(str, r.values())) for r in warehouse.read_rows(sa.select(t)))
            for t in TABLES}


def test_preview_of_a_longer_close_after_days(warehouse_url: str, tmp_path: Path) -> None:
    # Worked example step 7 as of 05-10: MB_1 won 60 days after A2. With close_after_days 90 it would
    # still be in treatment; the lead A5 on 05-10, which opens MB_5 today, joins MB_1 instead.
    visits = [*STEP_3, Visit(4, "followup", "03-17", "booked"), Visit(5, "lead", "05-10", "completed")]
    run_step(warehouse_url, Step(visits, [A2_ENTRY, (9002, 5, "05-10", "50.00")], as_of="05-10"))
    stored = snapshot(warehouse_url)
    assert sorted(r[0] for r in stored["deals"]) == ["MB_1", "MB_5"]

    sheet = tmp_path / "mapping.yaml"
    sheet.write_text(MAPPING_FILE.read_text().replace("{key: close_after_days, value: 60}",
                                                      "{key: close_after_days, value: 90}"))
    job = build_rule_preview_job(PRACTICE)
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, resources={
            "warehouse": WarehouseResource(url=warehouse_url), "mapping": MappingResource(path=str(sheet))})
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in event.step_output_data.metadata.items()}
    assert metadata["deals_per_stage_before"]["abgeschlossen"] == 1
    assert metadata["deals_per_stage_before"]["erstberatung"] == 1
    assert metadata["deals_per_stage_after"]["in_behandlung"] == 1
    assert metadata["deals_per_stage_after"]["abgeschlossen"] == 0
    assert metadata["stage_changes_from_to"] == {"abgeschlossen -> in_behandlung": 1,
                                                 "erstberatung -> (no deal)": 1}
    assert metadata["deal_revenue_eur_before"] == 530.0 and metadata["deal_revenue_eur_after"] == 530.0
    assert metadata["revenue_moved_eur"] == 100.0  # 50 EUR leave MB_5 and land on MB_1
    assert snapshot(warehouse_url) == stored  # wrote nothing
