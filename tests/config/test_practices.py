from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from biss_pipeline.domain.mapping.practices import ConfigError, load_practices, parse_practices
from biss_pipeline.domain.paths import PROJECT_ROOT

GOOD = {"id": "mb", "name": "Praxis Magdeburg", "key_prefix": "MB_",
        "ivoris_base_url": "https://ivoris.mb.example/api/", "api_key_env": "IVORIS_API_KEY_MB",
        "active": "ja"}


def test_the_shipped_mapping_has_three_practices_with_distinct_prefixes() -> None:
    practices = load_practices(PROJECT_ROOT / "config" / "mapping.yaml")
    assert [p.key_prefix for p in practices] == ["MB_", "RB_", "LE_"]
    assert all(p.active for p in practices)


def test_a_row_becomes_a_practice() -> None:
    [practice] = parse_practices([GOOD])
    assert practice.ivoris_base_url == "https://ivoris.mb.example/api"
    assert practice.resource_key == "ivoris_mb"
    assert practice.history_start == dt.date(2026, 1, 1)
    assert practice.active


@pytest.mark.parametrize(("change", "row", "column", "problem"), [
    ({"key_prefix": "mb"}, 2, "key_prefix", "does not match"),
    ({"id": ""}, 2, "id", "is empty"),
    ({"ivoris_base_url": "ftp://x"}, 2, "ivoris_base_url", "http"),
    ({"api_key_env": "not-an-env-var"}, 2, "api_key_env", "does not match"),
    ({"history_start": "1.1.2026"}, 2, "history_start", "not a date"),
])
def test_invalid_rows_name_tab_row_and_column(change: dict, row: int, column: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_practices([{**GOOD, **change}])
    assert (error.value.tab, error.value.row, error.value.column) == ("practices", row, column)
    assert problem in str(error.value)
    assert f"tab 'practices', row {row}, column '{column}'" in str(error.value)


def test_duplicate_ids_and_prefixes_are_refused() -> None:
    with pytest.raises(ConfigError, match="row 3, column 'id'"):
        parse_practices([GOOD, {**GOOD, "key_prefix": "XY_"}])
    with pytest.raises(ConfigError, match="row 3, column 'key_prefix'"):
        parse_practices([GOOD, {**GOOD, "id": "xy"}])


def test_an_inactive_practice_is_parsed_but_marked(tmp_path: Path) -> None:
    [practice] = parse_practices([{**GOOD, "active": "no"}])
    assert not practice.active
