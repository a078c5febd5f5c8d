"""The mapping's `ivoris_client` tab (SPEC §4 rev. 2): per-practice Ivoris client settings, validated
like the other tabs, and the practice's resource built with them."""

from __future__ import annotations

from typing import Any

import pytest

from biss_pipeline.domain.mapping.config import parse_mapping
from biss_pipeline.resources import ivoris_resource
from tests.config.test_mapping import assert_config_error, minimal_tabs


def with_client_rows(*rows: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    tabs = minimal_tabs()
    tabs["ivoris_client"] = list(rows)
    return tabs


def test_the_tab_sets_routes_paging_concurrency_timeouts_and_retries_per_practice() -> None:
    config = parse_mapping(with_client_rows(
        {"practice": "mb", "setting": "page_size", "value": "100"},
        {"practice": "mb", "setting": "max_concurrency", "value": 2},
        {"practice": "mb", "setting": "timeout_s", "value": "12,5"},
        {"practice": "mb", "setting": "max_attempts", "value": 5},
        {"practice": "mb", "setting": "route.appointments", "value": "/api/v2/termine"},
        {"practice": "mb", "setting": "param.page_size", "value": "limit"},
    ))
    settings = config.ivoris_client["mb"]
    assert settings == {"page_size": 100, "max_concurrency": 2, "timeout_s": 12.5, "max_attempts": 5,
                        "routes": {"appointments": "/api/v2/termine"}, "params": {"page_size": "limit"}}
    practice = config.practice("mb")
    client = ivoris_resource(practice, settings).settings
    assert (client.page_size, client.max_concurrency) == (100, 2)
    assert (client.timeout_s, client.max_attempts) == (12.5, 5)
    assert client.routes.appointments == "/api/v2/termine" and client.params.page_size == "limit"
    # round trip through the canonical tabs
    assert parse_mapping(config.canonical_tabs()).ivoris_client == config.ivoris_client


def test_a_practice_s_client_rows_are_part_of_its_mapping_hash_only() -> None:
    plain = parse_mapping(minimal_tabs())
    tuned = parse_mapping(with_client_rows({"practice": "mb", "setting": "page_size", "value": "100"}))
    assert tuned.practice_hash("mb") != plain.practice_hash("mb")
    others = [p.practice_id for p in plain.practices if p.practice_id != "mb"]
    assert all(tuned.practice_hash(pid) == plain.practice_hash(pid) for pid in others)


def test_without_the_tab_every_practice_keeps_the_defaults() -> None:
    assert parse_mapping(minimal_tabs()).ivoris_client == {}


@pytest.mark.parametrize(("row", "column", "problem"), [
    ({"practice": "xx", "setting": "page_size", "value": 10}, "practice", "unknown practice 'xx'"),
    ({"practice": "mb", "setting": "pagesize", "value": 10}, "setting", "unknown Ivoris client setting"),
    ({"practice": "mb", "setting": "page_size", "value": 0}, "value", "page_size must be at least 1"),
    ({"practice": "mb", "setting": "page_size", "value": "viele"}, "value", "expected a whole number"),
    ({"practice": "mb", "setting": "timeout_s", "value": "0"}, "value", "more than 0 seconds"),
    ({"practice": "mb", "setting": "route.appointments", "value": "termine"}, "value", "starting with '/'"),
    ({"practice": "mb", "setting": "route.patient_document_entries", "value": "/p/entries"}, "value",
     "{patient_id}"),
    ({"practice": "mb", "setting": "param.ids", "value": "a b"}, "value", "not a query parameter name"),
])
def test_a_bad_row_names_tab_row_and_column(row: dict[str, Any], column: str, problem: str) -> None:
    assert_config_error(with_client_rows(row), "ivoris_client", 2, column, problem)


def test_a_setting_twice_for_one_practice() -> None:
    row = {"practice": "mb", "setting": "page_size", "value": 10}
    assert_config_error(with_client_rows(row, row), "ivoris_client", 3, "setting", "already on row 2")


def test_the_quarantine_share_setting() -> None:
    tabs = minimal_tabs()
    tabs.setdefault("settings", []).append({"key": "max_quarantined_share", "value": "35%"})
    config = parse_mapping(tabs)
    assert str(config.settings.max_quarantined_share) == "0.35"
    again = parse_mapping(config.canonical_tabs())
    assert again.settings.max_quarantined_share == config.settings.max_quarantined_share
    tabs["settings"][-1]["value"] = "1.5"
    assert_config_error(tabs, "settings", len(tabs["settings"]) + 1, "value", "outside 0..1")
