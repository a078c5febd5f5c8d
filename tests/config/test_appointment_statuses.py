"""The mapping's `appointment_statuses` tab (SPEC §4 rev. 2): validated like every tab (the error names
tab, row and column), part of the hash every practice's processing depends on."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from biss_pipeline.domain.deals.rules import APPOINTMENT_STATUSES
from biss_pipeline.domain.hubspot import SyncMapping
from biss_pipeline.domain.mapping.config import DEFAULT_APPOINTMENT_STATUS_MAP, parse_mapping
from biss_pipeline.domain.mapping.practices import ConfigError
from tests.config.test_mapping import minimal_tabs, shipped_tabs


def _with_statuses(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tabs = minimal_tabs()
    tabs["appointment_statuses"] = rows
    return tabs


def _rows(overrides: dict[str, str] | None = None) -> list[dict[str, Any]]:
    mapped = {**DEFAULT_APPOINTMENT_STATUS_MAP, **(overrides or {})}
    return [{"ivoris_status": status, "hubspot_status": option} for status, option in sorted(mapped.items())]


def test_the_shipped_mapping_maps_every_ivoris_status() -> None:
    config = parse_mapping(shipped_tabs())
    assert set(config.appointment_statuses) == APPOINTMENT_STATUSES
    assert config.appointment_statuses["no_show"] == "NO_SHOW"
    assert SyncMapping.from_mapping(config).appointment_statuses == config.appointment_statuses


def test_without_the_tab_the_defaults_hold() -> None:
    assert dict(parse_mapping(minimal_tabs()).appointment_statuses) == dict(DEFAULT_APPOINTMENT_STATUS_MAP)


@pytest.mark.parametrize(
    ("rows", "row", "column", "fragment"),
    [
        ([*_rows(), {"ivoris_status": "gebucht", "hubspot_status": "SCHEDULED"}], 9, "ivoris_status",
         "unknown Ivoris status 'gebucht'"),
        ([*_rows(), {"ivoris_status": "booked", "hubspot_status": "COMPLETED"}], 9, "ivoris_status",
         "already on row"),
        ([r for r in _rows() if r["ivoris_status"] != "no_show"], None, "ivoris_status",
         "no row for Ivoris status(es) no_show"),
        (_rows({"arrived": "Im Wartezimmer"}), 2, "hubspot_status", "has no spaces"),
        (_rows({"arrived": ""}), 2, "hubspot_status", "is empty"),
    ],
)
def test_a_mistake_names_tab_row_and_column(rows: list[dict[str, Any]], row: int | None, column: str,
                                             fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_mapping(_with_statuses(rows))
    error = raised.value
    assert (error.tab, error.row, error.column) == ("appointment_statuses", row, column)
    assert fragment in str(error)


def test_the_tab_is_part_of_every_practice_hash() -> None:
    before = parse_mapping(_with_statuses(_rows()))
    after = parse_mapping(_with_statuses(_rows({"clarified": "RESCHEDULED"})))
    reordered = parse_mapping(_with_statuses(list(reversed(copy.deepcopy(_rows())))))

    assert after.content_hash != before.content_hash
    assert after.practice_hash("mb") != before.practice_hash("mb")
    assert reordered.content_hash == before.content_hash  # row order means nothing here
    assert after.tab_hashes["appointment_statuses"] != before.tab_hashes["appointment_statuses"]
