"""A backfill launched the way the Dagster UI launches it (GraphQL `launchPartitionBackfill`)
against the project's own definitions: one practice, a date window, one run, every record."""

from __future__ import annotations

import datetime as dt

from bench.backfill_runs import measure_project_definitions


def test_a_ui_backfill_of_one_practice_is_one_run_that_extracts_the_window() -> None:
    figures = measure_project_definitions(days=10, start=dt.date(2026, 6, 19))
    assert figures["status"] == "COMPLETED_SUCCESS"
    assert figures["runs"] == 1
    assert figures["raw_appointments"] == figures["expected_appointments"] > 0
    assert figures["raw_document_entries"] > 0
