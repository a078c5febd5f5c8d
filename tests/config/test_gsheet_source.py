"""The Google Sheet source, exercised through gspread and google-auth against the Sheets stand-in."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gspread
import pytest
import requests
from google.auth.exceptions import RefreshError

from biss_emulators.sheets import SheetsEmulator, grid_from_records, render_cell
from biss_pipeline.domain.mapping.config import MappingConfig, parse_mapping
from biss_pipeline.domain.mapping.practices import ConfigError, load_mapping_tabs
from biss_pipeline.domain.mapping.sources import (
    GoogleSheetMappingSource,
    LocalMappingSource,
    MappingSourceError,
    google_http_client,
    records_from_values,
)
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.resources.mapping import MappingResource

SHIPPED = PROJECT_ROOT / "config" / "mapping.yaml"
CREDENTIALS_ENV = "TEST_BISS_GSHEET_CREDENTIALS"
SHEET = "1BissMappingSheet"


@pytest.fixture(scope="module")
def sheets() -> Iterator[SheetsEmulator]:
    with SheetsEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def account(sheets: SheetsEmulator) -> dict[str, Any]:
    return sheets.new_service_account()


@pytest.fixture
def credentials(account: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(CREDENTIALS_ENV, json.dumps(account))
    return account


@pytest.fixture(scope="module")
def local() -> MappingConfig:
    return LocalMappingSource(SHIPPED).load()


def source(sheets: SheetsEmulator, sheet_id: str = SHEET) -> GoogleSheetMappingSource:
    return GoogleSheetMappingSource(sheet_id, CREDENTIALS_ENV, sheets_api_url=sheets.base_url)


def gspread_client(sheets: SheetsEmulator, account: dict[str, Any]) -> gspread.Client:
    return gspread.service_account_from_dict(account, http_client=google_http_client(sheets.base_url))


# --- the source equals the local file ------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["de_DE", "en_US"])
def test_the_sheet_parses_to_the_same_config_as_the_local_file(
        sheets: SheetsEmulator, credentials: dict[str, Any], local: MappingConfig, locale: str) -> None:
    sheets.put_records(SHEET, load_mapping_tabs(SHIPPED), locale=locale)
    tabs = source(sheets).read_tabs()
    # What gspread hands over is text as displayed, decimal comma included in a German sheet.
    assert tabs["stages"][0]["probability"] == ("0,2" if locale == "de_DE" else "0.2")
    assert tabs["practices"][0]["active"] == "TRUE"
    config = parse_mapping(tabs)
    assert config == local
    assert config.content_hash == local.content_hash


def test_one_load_costs_a_constant_number_of_requests(sheets: SheetsEmulator, credentials: dict[str, Any],
                                                     local: MappingConfig) -> None:
    sheets.put_records(SHEET, load_mapping_tabs(SHIPPED))
    before = len(sheets.requests)
    assert source(sheets).load() == local
    paths = [path for _, path in sheets.requests[before:]]
    assert paths.count(f"/v4/spreadsheets/{SHEET}/values:batchGet") == 1
    assert not [path for path in paths if "/values/" in path]  # no request per tab
    assert paths.count(f"/v4/spreadsheets/{SHEET}") == 2
    assert paths.count("/token") == 1


def test_the_service_account_only_asks_for_read_scopes(sheets: SheetsEmulator,
                                                       credentials: dict[str, Any]) -> None:
    sheets.put_records(SHEET, load_mapping_tabs(SHIPPED))
    source(sheets).read_tabs()
    granted = {grant.scopes for grant in sheets.state.grants.values()
               if grant.client_email == credentials["client_email"]}
    assert granted == {frozenset(gspread.auth.READONLY_SCOPES)}


def test_the_resource_reads_the_sheet(sheets: SheetsEmulator, credentials: dict[str, Any],
                                      local: MappingConfig) -> None:
    sheets.put_records(SHEET, load_mapping_tabs(SHIPPED))
    resource = MappingResource(source="gsheet", sheet_id=SHEET, credentials_env=CREDENTIALS_ENV,
                               sheets_api_url=sheets.base_url)
    assert resource.load().content_hash == local.content_hash


def test_credentials_may_be_a_key_file_path(sheets: SheetsEmulator, account: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, local: MappingConfig) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(account), encoding="utf-8")
    monkeypatch.setenv(CREDENTIALS_ENV, str(key_file))
    sheets.put_records(SHEET, load_mapping_tabs(SHIPPED))
    assert source(sheets).load() == local


def test_a_sheet_laid_out_by_a_person(sheets: SheetsEmulator, credentials: dict[str, Any],
                                      local: MappingConfig) -> None:
    """Capitalised tab and column titles, a title row above the header, an empty separator row, an
    extra notes tab: the parser sees the same mapping."""
    tabs = load_mapping_tabs(SHIPPED)
    grids: dict[str, list[list[Any]]] = {"Notizen": [["frei"]]}
    for tab, rows in tabs.items():
        grid = grid_from_records(rows)
        grid[0] = [column.replace("_", " ").title() for column in grid[0]]
        grids[tab.replace("_", " ").title()] = [["BISS Mapping"], [], grid[0], [], *grid[1:]]
    sheets.put_spreadsheet(SHEET, grids)
    assert source(sheets).load().content_hash == local.content_hash


def test_an_error_names_the_row_the_maintainer_sees(sheets: SheetsEmulator,
                                                    credentials: dict[str, Any]) -> None:
    tabs = load_mapping_tabs(SHIPPED)
    tabs["appointment_types"][4]["deal_role"] = "Behandlung"
    grids = {tab: grid_from_records(rows) for tab, rows in tabs.items()}
    grids["appointment_types"] = [[], *grids["appointment_types"]]  # header on sheet row 2
    sheets.put_spreadsheet(SHEET, grids)
    with pytest.raises(ConfigError) as caught:
        source(sheets).load()
    assert (caught.value.tab, caught.value.row, caught.value.column) == ("appointment_types", 7, "deal_role")


# --- failures ------------------------------------------------------------------------------------------


def test_a_missing_tab_is_named(sheets: SheetsEmulator, credentials: dict[str, Any]) -> None:
    tabs = load_mapping_tabs(SHIPPED)
    del tabs["stages"]
    sheets.put_records(SHEET, tabs)
    with pytest.raises(ConfigError) as caught:
        source(sheets).read_tabs()
    assert (caught.value.tab, caught.value.row) == ("stages", None)
    assert f"missing from Google Sheet {SHEET}" in str(caught.value)


def test_a_missing_settings_tab_means_defaults(sheets: SheetsEmulator, credentials: dict[str, Any],
                                               local: MappingConfig) -> None:
    tabs = load_mapping_tabs(SHIPPED)
    del tabs["settings"]
    sheets.put_records(SHEET, tabs)
    assert source(sheets).load().settings == local.settings


def test_a_header_with_a_repeated_column(sheets: SheetsEmulator, credentials: dict[str, Any]) -> None:
    tabs = {tab: grid_from_records(rows) for tab, rows in load_mapping_tabs(SHIPPED).items()}
    tabs["entry_rules"][0][-1] = "Billable"
    sheets.put_spreadsheet(SHEET, tabs)
    with pytest.raises(ConfigError, match="tab 'entry_rules', row 1, column 'billable'"):
        source(sheets).read_tabs()


def test_no_credentials(sheets: SheetsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    with pytest.raises(MappingSourceError, match=f"{CREDENTIALS_ENV} is not set"):
        source(sheets).read_tabs()


def test_broken_credentials_never_show_up_in_the_error(sheets: SheetsEmulator, account: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    secret = json.dumps(account)[:-1]  # truncated: no longer JSON
    monkeypatch.setenv(CREDENTIALS_ENV, secret)
    with pytest.raises(MappingSourceError) as caught:
        source(sheets).read_tabs()
    assert "not valid JSON" in str(caught.value)
    assert account["private_key_id"] not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    broken_key = {**account, "private_key": "-----BEGIN PRIVATE KEY-----x"}
    monkeypatch.setenv(CREDENTIALS_ENV, json.dumps(broken_key))
    with pytest.raises(MappingSourceError, match="private key cannot be read"):
        source(sheets).read_tabs()
    monkeypatch.setenv(CREDENTIALS_ENV, json.dumps({"type": "authorized_user"}))
    with pytest.raises(MappingSourceError, match="not a service-account key"):
        source(sheets).read_tabs()


def test_an_unknown_key_gets_no_token(sheets: SheetsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = sheets.new_service_account("gone@x.iam.gserviceaccount.com", register=False)
    monkeypatch.setenv(CREDENTIALS_ENV, json.dumps(unknown))
    sheets.put_records(SHEET, load_mapping_tabs(SHIPPED))
    with pytest.raises(RefreshError, match="invalid_grant"):
        source(sheets).read_tabs()


def test_a_sheet_not_shared_with_the_account(sheets: SheetsEmulator, credentials: dict[str, Any]) -> None:
    sheets.put_records("private-sheet", load_mapping_tabs(SHIPPED), readers=["someone@else.example"])
    email = credentials["client_email"]
    with pytest.raises(MappingSourceError, match=f"service account {email} may not read"):
        source(sheets, "private-sheet").read_tabs()
    sheets.share("private-sheet", [credentials["client_email"]])
    source(sheets, "private-sheet").read_tabs()


def test_an_unknown_sheet(sheets: SheetsEmulator, credentials: dict[str, Any]) -> None:
    with pytest.raises(MappingSourceError, match="no spreadsheet nope"):
        source(sheets, "nope").read_tabs()


def test_the_redirect_lets_nothing_leave_the_machine(sheets: SheetsEmulator, account: dict[str, Any]) -> None:
    client = gspread_client(sheets, account)
    with pytest.raises(requests.ConnectionError, match="not a Google API host"):
        client.http_client.session.get("https://example.com/")


def test_without_the_hook_gspread_talks_to_google() -> None:
    assert google_http_client(None) is gspread.http_client.BackOffHTTPClient


# --- the stand-in through plain gspread ----------------------------------------------------------------


def test_stand_in_serves_gspreads_single_worksheet_reads(sheets: SheetsEmulator,
                                                         account: dict[str, Any]) -> None:
    sheets.put_spreadsheet("grid", {
        "Tab 1": [["code", "amount", "date", "flag", "empty"], ["0010", 0.5, dt.date(2026, 1, 2), True, None],
                  ["2080", 12, dt.date(1899, 12, 31), False]],
        "other": [["x"]],
    }, locale="de_DE")
    spreadsheet = gspread_client(sheets, account).open_by_key("grid")
    assert spreadsheet.title == "BISS Mapping"
    assert [w.title for w in spreadsheet.worksheets()] == ["Tab 1", "other"]
    worksheet = spreadsheet.worksheet("Tab 1")
    assert worksheet.get_all_records(numericise_ignore=["all"]) == [
        {"code": "0010", "amount": "0,5", "date": "2026-01-02", "flag": "TRUE", "empty": ""},
        {"code": "2080", "amount": "12", "date": "1899-12-31", "flag": "FALSE", "empty": ""},
    ]
    unformatted = worksheet.get("A2:D3", value_render_option=gspread.utils.ValueRenderOption.unformatted)
    assert unformatted == [["0010", 0.5, 46024, True], ["2080", 12, 1, False]]
    assert worksheet.get("B2") == [["0,5"]]
    assert worksheet.get("A:A", major_dimension="COLUMNS") == [["code", "0010", "2080"]]
    with pytest.raises(gspread.exceptions.APIError, match="Unable to parse range"):
        spreadsheet.values_batch_get(["'nope'!A1"])
    with pytest.raises(gspread.exceptions.WorksheetNotFound):
        spreadsheet.worksheet("nope")


def test_stand_in_refuses_requests_without_a_token(sheets: SheetsEmulator) -> None:
    response = requests.get(f"{sheets.base_url}/v4/spreadsheets/{SHEET}", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(("value", "option", "expected"), [
    (0.25, "FORMATTED_VALUE", "0,25"),
    (1.0, "FORMATTED_VALUE", "1"),
    (True, "UNFORMATTED_VALUE", True),
    (None, "UNFORMATTED_VALUE", ""),
    ("  text ", "FORMATTED_VALUE", "  text "),
])
def test_stand_in_renders_cells_like_the_api(value: Any, option: str, expected: Any) -> None:
    assert render_cell(value, option, "SERIAL_NUMBER", "de_DE") == expected


def test_records_keep_row_numbers_with_placeholders() -> None:
    records = records_from_values("t", [[], ["a", "b"], ["1"], [], ["2", "3"]])
    assert records == [None, {"a": "1", "b": ""}, {"a": "", "b": ""}, {"a": "2", "b": "3"}]
    assert records_from_values("t", []) == []
