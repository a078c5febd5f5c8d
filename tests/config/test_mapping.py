from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biss_emulators.ivoris import APPOINTMENT_TYPES, IvorisEmulator, resolve_size
from biss_emulators.ivoris.catalogue import CODES, TEXT_CODE
from biss_pipeline.domain.deals.entry_rules import classify_entries, match_entry_rule
from biss_pipeline.domain.deals.rules import DEAL_ROLES, DealSettings, Stage
from biss_pipeline.domain.mapping.config import (
    DEAL_ROLE_NAMES,
    DEFAULT_CONTACT_FIELDS,
    MappingConfig,
    MappingSettings,
    check_types_mapped,
    parse_mapping,
)
from biss_pipeline.domain.mapping.practices import ConfigError, load_mapping_tabs
from biss_pipeline.domain.mapping.sources import LocalMappingSource
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.resources.mapping import MappingResource

SHIPPED = PROJECT_ROOT / "config" / "mapping.yaml"
PRACTICE_IDS = ("mb", "rb", "le")


def shipped_tabs() -> dict[str, list[dict[str, Any]]]:
    return load_mapping_tabs(SHIPPED)


@pytest.fixture(scope="module")
def shipped() -> MappingConfig:
    return parse_mapping(shipped_tabs())


def minimal_tabs() -> dict[str, list[dict[str, Any]]]:
    """A small valid mapping: one practice, two types, three rules, all stages, settings."""
    return {
        "practices": [{"id": "mb", "name": "Praxis Magdeburg", "key_prefix": "MB_",
                       "ivoris_base_url": "https://ivoris.mb.example", "api_key_env": "IVORIS_API_KEY_MB",
                       "active": True}],
        "appointment_types": [
            {"practice": "mb", "type_id": 1, "code": "ERST", "name": "Erstberatung", "deal_role": "lead",
             "hubspot_label": "Erstberatung"},
            {"practice": "mb", "type_id": 4, "code": "FUEL", "name": "Füllung", "deal_role": "treatment",
             "hubspot_label": ""},
        ],
        "entry_rules": [
            {"entry_type": "goz", "code_pattern": "2???", "billable": "ja", "revenue_bucket": "privat",
             "treatment_category": "Füllung"},
            {"entry_type": "pabg", "code_pattern": "*", "billable": "ja", "revenue_bucket": "eigenanteil",
             "treatment_category": "Sonstiges"},
            {"entry_type": "text", "code_pattern": "*", "billable": "nein", "revenue_bucket": "ohne_umsatz",
             "treatment_category": "Sonstiges"},
        ],
        "stages": [
            {"stage": "termin_gebucht", "pipeline_label": "Patientenreise", "stage_label": "Termin gebucht",
             "probability": 0.2},
            {"stage": "erstberatung", "pipeline_label": "Patientenreise", "stage_label": "Erstberatung",
             "probability": 0.4},
            {"stage": "in_behandlung", "pipeline_label": "Patientenreise", "stage_label": "In Behandlung",
             "probability": 0.8},
            {"stage": "abgeschlossen", "pipeline_label": "Patientenreise", "stage_label": "Abgeschlossen",
             "probability": 1},
            {"stage": "verloren", "pipeline_label": "Patientenreise", "stage_label": "Verloren",
             "probability": 0},
        ],
        "settings": [{"key": "close_after_days", "value": 60}],
    }


def with_cell(tab: str, index: int, **cells: Any) -> dict[str, list[dict[str, Any]]]:
    tabs = minimal_tabs()
    tabs[tab][index] = {**tabs[tab][index], **cells}
    return tabs


def assert_config_error(tabs: dict[str, Any], tab: str, row: int | None, column: str | None,
                        problem: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_mapping(tabs)
    error = caught.value
    assert (error.tab, error.row, error.column) == (tab, row, column), str(error)
    message = str(error)
    assert f"tab '{tab}'" in message
    if row is not None:
        assert f"row {row}" in message
    if column is not None:
        assert f"column '{column}'" in message
    assert problem in message
    return error


# --- the shipped mapping -------------------------------------------------------------------------------


def test_the_shipped_mapping_parses_with_every_tab(shipped: MappingConfig) -> None:
    assert [p.practice_id for p in shipped.practices] == list(PRACTICE_IDS)
    assert len(shipped.appointment_types) == 3 * len(APPOINTMENT_TYPES)
    assert [s.stage for s in shipped.stages] == list(Stage)
    assert shipped.deal_settings == DealSettings(
        close_after_days=60, lost_after_days=120, stale_after_days=3, rebook_days=30, entry_grace_days=30
    )
    assert shipped.settings.hubspot_contact_fields == DEFAULT_CONTACT_FIELDS
    assert shipped.pipeline_label == "Patientenreise"
    assert shipped.stage(Stage.ABGESCHLOSSEN).probability == 1
    assert shipped.stage("verloren").probability == 0
    assert shipped.pipeline_id is None


def test_the_shipped_mapping_covers_every_emulator_type_in_every_practice(shipped: MappingConfig) -> None:
    for practice_id in PRACTICE_IDS:
        for emulated in APPOINTMENT_TYPES:
            row = shipped.appointment_type(shipped.type_key(practice_id, emulated.id))
            assert (row.practice_id, row.type_id, row.code, row.name) == (
                practice_id, str(emulated.id), emulated.code, emulated.name)
    assert shipped.appointment_type("MB_1").deal_role == "lead"
    assert shipped.appointment_type("LE_14").deal_role == "ignore"
    assert shipped.deal_roles["RB_5"] == "treatment"
    check_types_mapped(shipped, {f"{p.upper()}_{t.id}" for p in PRACTICE_IDS for t in APPOINTMENT_TYPES})


@pytest.mark.parametrize(("entry_type", "code"),
                         [(spec.entry_type, code) for code, spec in CODES.items()] + [("text", TEXT_CODE)])
def test_every_catalogue_code_has_a_rule(shipped: MappingConfig, entry_type: str, code: str) -> None:
    index = match_entry_rule(entry_type, code, shipped.entry_rules)
    assert index is not None, f"{entry_type} {code} is unmatched"
    rule = shipped.entry_rules[index]
    assert rule.billable == (entry_type != "text")
    if entry_type == "pabg":
        assert rule.revenue_bucket == "eigenanteil"


@pytest.fixture(scope="module")
def emulator() -> IvorisEmulator:
    # Wider than the tiny preset so the sample reaches most of the catalogue; the truth reads the
    # dataset directly, no server is started.
    size = resolve_size("tiny").replace(history_start=dt.date(2026, 3, 1), patients_per_site=200)
    return IvorisEmulator(seed=7, size=size)


def test_no_entry_the_emulator_generates_goes_unmatched(shipped: MappingConfig,
                                                        emulator: IvorisEmulator) -> None:
    records = [entry for site in emulator.truth.site_ids
               for entry in emulator.truth.document_entries(site, "2026-03-01", "2026-06-30")]
    entries = pd.DataFrame({"entry_type": [r["type"] for r in records], "code": [r["code"] for r in records]})
    classified = classify_entries(entries, shipped.entry_rules)
    assert len(classified) > 1000
    assert classified["rule_matched"].all(), classified.loc[~classified["rule_matched"]].drop_duplicates()
    pabg = classified["entry_type"] == "pabg"
    assert set(classified.loc[pabg, "revenue_bucket"]) == {"eigenanteil"}
    assert "eigenanteil" not in set(classified.loc[~pabg, "revenue_bucket"])
    assert not classified.loc[classified["entry_type"] == "text", "billable"].any()


def test_every_type_the_emulator_books_is_mapped(shipped: MappingConfig, emulator: IvorisEmulator) -> None:
    prefixes = {site.site_id: site.key_prefix for site in emulator.sites}
    used = {f"{prefixes[site]}{a['typeId']}" for site in emulator.truth.site_ids
            for a in emulator.truth.appointments(site, "2026-03-01", "2026-07-15")}
    assert len(used) > 20
    check_types_mapped(shipped, used)


# --- validation: one test per rule ---------------------------------------------------------------------


def test_the_minimal_mapping_is_valid() -> None:
    config = parse_mapping(minimal_tabs())
    assert config.appointment_type("MB_4").hubspot_label == "Füllung"  # blank label falls back to the name
    assert config.settings.deal_pipeline_label == "Patientenreise"


def test_unknown_deal_role() -> None:
    assert set(DEAL_ROLE_NAMES) == DEAL_ROLES
    assert_config_error(with_cell("appointment_types", 1, deal_role="behandlung"),
                        "appointment_types", 3, "deal_role", "unknown deal role 'behandlung'")


def test_duplicate_type_id_for_a_practice() -> None:
    tabs = minimal_tabs()
    tabs["appointment_types"].append({**tabs["appointment_types"][0], "type_id": "01", "code": "X"})
    assert_config_error(tabs, "appointment_types", 4, "type_id",
                        "type id 1 of practice 'mb' is already on row 2")


def test_a_type_id_must_be_a_whole_number() -> None:
    assert_config_error(with_cell("appointment_types", 0, type_id="A1"),
                        "appointment_types", 2, "type_id", "whole number")


def test_appointment_type_of_an_unknown_practice() -> None:
    assert_config_error(with_cell("appointment_types", 1, practice="hh"),
                        "appointment_types", 3, "practice", "practice 'hh' is not in the 'practices' tab")


@pytest.mark.parametrize(("cells", "column", "problem"), [
    ({"entry_type": "gozz"}, "entry_type", "unknown entry_type 'gozz'"),
    ({"treatment_category": "Kosmetik"}, "treatment_category", "unknown treatment_category 'Kosmetik'"),
    ({"revenue_bucket": ""}, "revenue_bucket", "has no revenue_bucket"),
    ({"revenue_bucket": "Privat Leistung"}, "revenue_bucket", "lower-case"),
    ({"billable": "vielleicht"}, "billable", "expected yes or no"),
    ({"billable": None}, "billable", "is empty"),
    ({"code_pattern": ""}, "code_pattern", "is empty"),
    ({"code_pattern": 2080}, "code_pattern", "leading zeros"),
])
def test_invalid_entry_rules(cells: dict[str, Any], column: str, problem: str) -> None:
    assert_config_error(with_cell("entry_rules", 0, **cells), "entry_rules", 2, column, problem)


def test_a_pabg_bucket_shared_with_another_entry_type() -> None:
    tabs = minimal_tabs()
    tabs["entry_rules"].append({"entry_type": "lab", "code_pattern": "*", "billable": True,
                                "revenue_bucket": "eigenanteil", "treatment_category": "Prothetik"})
    assert_config_error(tabs, "entry_rules", 5, "revenue_bucket", "which belongs to pabg entries")


def test_a_non_billable_rule_may_name_the_pabg_bucket() -> None:
    # Only billable rows count revenue (entry_rule_problems): a non-billable row cannot double count.
    tabs = minimal_tabs()
    tabs["entry_rules"].append({"entry_type": "lab", "code_pattern": "*", "billable": False,
                                "revenue_bucket": "eigenanteil", "treatment_category": "Prothetik"})
    parse_mapping(tabs)


def test_a_rule_below_a_catch_all_of_its_type_never_matches() -> None:
    tabs = minimal_tabs()
    tabs["entry_rules"].insert(2, {"entry_type": "pabg", "code_pattern": "PABG-EA", "billable": "ja",
                                   "revenue_bucket": "eigenanteil", "treatment_category": "Prothetik"})
    assert_config_error(tabs, "entry_rules", 4, "code_pattern", "never matches: row 3")


def test_missing_stage_rows() -> None:
    tabs = minimal_tabs()
    del tabs["stages"][1]
    assert_config_error(tabs, "stages", None, "stage", "no row for stage(s) erstberatung")


def test_unknown_stage_name() -> None:
    assert_config_error(with_cell("stages", 2, stage="behandlung"), "stages", 4, "stage",
                        "unknown stage 'behandlung'")


def test_duplicate_stage_row() -> None:
    tabs = minimal_tabs()
    tabs["stages"].append({**tabs["stages"][0], "stage_label": "Nochmal"})
    assert_config_error(tabs, "stages", 7, "stage", "already on row 2")


@pytest.mark.parametrize(("index", "probability", "problem"), [
    (0, 1.5, "1.5 is outside 0..1"),
    (1, "-0,1", "-0.1 is outside 0..1"),
    (2, "150%", "1.5 is outside 0..1"),
    (2, "viel", "expected a number"),
    (3, 0.9, "closed won, its probability must be 1"),
    (4, "10%", "closed lost, its probability must be 0"),
])
def test_probability_out_of_range(index: int, probability: Any, problem: str) -> None:
    assert_config_error(with_cell("stages", index, probability=probability), "stages", index + 2,
                        "probability", problem)


def test_stages_belong_to_one_pipeline() -> None:
    assert_config_error(with_cell("stages", 3, pipeline_label="Andere"), "stages", 5, "pipeline_label",
                        "one pipeline")
    tabs = with_cell("stages", 0, pipeline_id="111")
    tabs["stages"][1]["pipeline_id"] = "222"
    assert_config_error(tabs, "stages", 2, "pipeline_id", "found ids 111, 222")
    tabs = with_cell("stages", 0, stage_id="s1")
    tabs["stages"][4]["stage_id"] = "s1"
    assert_config_error(tabs, "stages", 6, "stage_id", "already used by stage 'termin_gebucht'")
    assert_config_error(with_cell("stages", 1, stage_label="termin gebucht"), "stages", 3, "stage_label",
                        "already used")


def test_a_stage_pipeline_label_must_agree_with_the_setting() -> None:
    tabs = minimal_tabs()
    tabs["settings"].append({"key": "deal_pipeline_label", "value": "Behandlungen"})
    assert_config_error(tabs, "stages", 2, "pipeline_label", "differs from the setting")
    for row in tabs["stages"]:
        row["pipeline_label"] = ""
    assert parse_mapping(tabs).pipeline_label == "Behandlungen"


@pytest.mark.parametrize(("setting", "column", "problem"), [
    ({"key": "close_after_days", "value": "0"}, "value", "at least 1"),
    ({"key": "close_after_days", "value": "sechzig"}, "value", "whole number"),
    ({"key": "close_after_days", "value": ""}, "value", "is empty"),
    ({"key": "close_after_dayz", "value": 60}, "key", "unknown setting 'close_after_dayz'"),
    ({"key": "lost_after_days", "value": 0}, "value", "lost_after_days must be at least 1"),
    ({"key": "lost_after_days", "value": "vier Monate"}, "value", "whole number"),
    ({"key": "stale_after_days", "value": "0"}, "value", "stale_after_days must be at least 1"),
    ({"key": "stale_after_days", "value": 2.5}, "value", "whole number"),
    ({"key": "rebook_days", "value": "-1"}, "value", "rebook_days must be at least 0"),
    ({"key": "rebook_days", "value": None}, "value", "is empty"),
    ({"key": "entry_grace_days", "value": -3}, "value", "entry_grace_days must be at least 0"),
    ({"key": "entry_grace_days", "value": True}, "value", "expected text"),
    ({"key": "hubspot_contact_fields", "value": "firstname,emial"}, "value", "unknown contact field 'emial'"),
    ({"key": "hubspot_contact_fields", "value": "email, email"}, "value", "listed twice"),
    ({"key": "hubspot_contact_fields", "value": ""}, "value", "is empty"),
    ({"key": "deal_pipeline_label", "value": None}, "value", "is empty"),
])
def test_bad_settings_values(setting: dict[str, Any], column: str, problem: str) -> None:
    tabs = minimal_tabs()
    tabs["settings"] = [setting]
    assert_config_error(tabs, "settings", 2, column, problem)


def test_a_setting_given_twice() -> None:
    tabs = minimal_tabs()
    tabs["settings"].append({"key": "Close After Days", "value": 30})
    assert_config_error(tabs, "settings", 3, "key", "already on row 2")


def test_missing_tab() -> None:
    tabs = minimal_tabs()
    del tabs["entry_rules"]
    assert_config_error(tabs, "entry_rules", None, None, "the tab is missing")


def test_the_settings_tab_is_optional_and_defaults_send_no_health_data() -> None:
    tabs = minimal_tabs()
    del tabs["settings"]
    settings_ = parse_mapping(tabs).settings
    assert settings_.close_after_days == 60
    assert parse_mapping(tabs).deal_settings == DealSettings()
    assert settings_.hubspot_contact_fields == ("firstname", "lastname", "email", "phone")
    assert "date_of_birth" not in settings_.hubspot_contact_fields
    assert "insurance" not in settings_.hubspot_contact_fields


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("close_after_days", "45", 45),
        ("lost_after_days", 90.0, 90),
        ("stale_after_days", " 5 ", 5),
        ("rebook_days", 0, 0),
        ("entry_grace_days", "14", 14),
    ],
)
def test_each_deal_setting_is_read_and_the_others_keep_their_defaults(
    key: str, value: Any, expected: int
) -> None:
    tabs = minimal_tabs()
    tabs["settings"] = [{"key": key, "value": value}]
    config = parse_mapping(tabs)
    assert getattr(config.settings, key) == expected
    assert config.deal_settings == DealSettings(**{key: expected})


def test_a_deal_setting_row_left_out_keeps_its_default_beside_the_others() -> None:
    tabs = minimal_tabs()
    tabs["settings"] = [{"key": "Lost After Days", "value": 100}, {"key": "rebook_days", "value": 14}]
    assert parse_mapping(tabs).deal_settings == DealSettings(lost_after_days=100, rebook_days=14)


def test_the_settings_tab_knows_every_deal_setting() -> None:
    # A setting added to the deal logic must be settable in the sheet (and is then in the hash below).
    deal_keys = [setting.name for setting in dataclasses.fields(DealSettings)]
    assert [key for key in deal_keys if not hasattr(MappingSettings(), key)] == []
    rows = {row["key"]: row["value"] for row in parse_mapping(minimal_tabs()).canonical_tabs()["settings"]}
    assert {key: rows[key] for key in deal_keys} == {
        key: str(getattr(DealSettings(), key)) for key in deal_keys
    }


def test_contact_fields_can_be_widened_or_emptied_explicitly() -> None:
    tabs = minimal_tabs()
    tabs["settings"] = [{"key": "hubspot_contact_fields", "value": " Email , date_of_birth "}]
    assert parse_mapping(tabs).settings.hubspot_contact_fields == ("email", "date_of_birth")
    tabs["settings"] = [{"key": "hubspot_contact_fields", "value": "none"}]
    assert parse_mapping(tabs).settings.hubspot_contact_fields == ()


def test_practice_errors_keep_the_sheet_row_number_past_blank_rows() -> None:
    tabs = minimal_tabs()
    bad = {**tabs["practices"][0], "id": "hh", "key_prefix": "hh"}
    tabs["practices"] += [{"id": "", "name": None}, bad]
    assert_config_error(tabs, "practices", 4, "key_prefix", "does not match")


def test_a_row_that_is_not_a_mapping() -> None:
    tabs = minimal_tabs()
    tabs["stages"].append(["verloren", 0])  # type: ignore[arg-type]
    assert_config_error(tabs, "stages", 7, None, "expected a row")


# --- accepted values -----------------------------------------------------------------------------------


def test_sheet_text_and_yaml_values_parse_alike() -> None:
    typed = minimal_tabs()
    as_text = minimal_tabs()
    as_text["appointment_types"][0].update(type_id="1", deal_role=" Lead ")
    as_text["appointment_types"][1].update(type_id=4.0)
    as_text["entry_rules"][0].update(billable="TRUE", treatment_category="füllung", entry_type="GOZ")
    as_text["entry_rules"][2].update(billable="FALSE")
    as_text["stages"][0].update(probability="0,2")
    as_text["stages"][1].update(probability="40 %")
    as_text["stages"][2].update(probability="0.8")
    as_text["stages"][3].update(probability="1", stage="Abgeschlossen")
    as_text["stages"][4].update(probability="0,0")
    as_text["settings"][0].update(value="60")
    as_text["practices"][0].update(active="TRUE")
    assert parse_mapping(as_text) == parse_mapping(typed)
    assert parse_mapping(as_text).content_hash == parse_mapping(typed).content_hash


@pytest.mark.parametrize("word", [True, 1, "ja", "JA", "yes", "x", "TRUE", "wahr", " j "])
def test_billable_yes_words(word: Any) -> None:
    assert parse_mapping(with_cell("entry_rules", 2, billable=word)).entry_rules[2].billable


@pytest.mark.parametrize("word", [False, 0, "nein", "no", "FALSE", "falsch", "n", "0"])
def test_billable_no_words(word: Any) -> None:
    assert not parse_mapping(with_cell("entry_rules", 0, billable=word)).entry_rules[0].billable


def test_headers_match_case_and_space_insensitively_and_extra_columns_are_ignored() -> None:
    tabs = minimal_tabs()
    tabs["Appointment Types"] = [
        {" Practice": "mb", "Type ID": 1, "Code": "ERST", "Name": "Erstberatung", "Deal Role": "lead",
         "HubSpot Label": "Erstberatung", "Bemerkung": "nur dienstags"},
        {"Practice": "", "Type ID": None},  # a blank separator row
        {"Practice": "mb", "Type ID": 4, "Code": "FUEL", "Name": "Füllung", "Deal Role": "treatment"},
    ]
    del tabs["appointment_types"]
    assert parse_mapping(tabs) == parse_mapping(minimal_tabs())


def test_a_column_named_twice_after_normalising() -> None:
    tabs = with_cell("appointment_types", 0, **{"Deal Role": "lead"})
    assert_config_error(tabs, "appointment_types", 2, "deal_role", "appears twice")


# --- content hash --------------------------------------------------------------------------------------


def _reordered(tabs: dict[str, list[dict[str, Any]]], data: st.DataObject) -> dict[str, list[dict[str, Any]]]:
    shuffled: dict[str, list[dict[str, Any]]] = {}
    for tab in data.draw(st.permutations(list(tabs))):
        rows = tabs[tab]
        if tab != "entry_rules":  # only there does the order mean something
            rows = data.draw(st.permutations(rows))
        shuffled[tab] = [
            {key: f"  {row[key]}  " if isinstance(row[key], str) and row[key] else row[key]
             for key in data.draw(st.permutations(list(row)))}
            for row in rows
        ]
    return shuffled


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_content_hash_ignores_key_order_row_order_and_whitespace(data: st.DataObject) -> None:
    tabs = shipped_tabs()
    expected = parse_mapping(tabs).content_hash
    assert parse_mapping(_reordered(copy.deepcopy(tabs), data)).content_hash == expected


@pytest.mark.parametrize("edit", [
    lambda t: t["stages"][2].update(probability=0.7),
    lambda t: t["appointment_types"][1].update(deal_role="lead"),
    lambda t: t["entry_rules"].insert(0, t["entry_rules"].pop(1)),
    lambda t: t["settings"][0].update(value=45),
    lambda t: t["settings"][1].update(value=90),
    lambda t: t["settings"][2].update(value=5),
    lambda t: t["settings"][3].update(value=0),
    lambda t: t["settings"][4].update(value=45),
    lambda t: t["practices"][0].update(active=False),
    lambda t: t["stages"][0].update(stage_id="appointmentscheduled"),
])
def test_content_hash_changes_with_a_real_edit(edit: Any) -> None:
    tabs = shipped_tabs()
    before = parse_mapping(tabs)
    edit(tabs)
    after = parse_mapping(tabs)
    assert after.content_hash != before.content_hash
    assert after != before
    changed = [tab for tab in before.tab_hashes if before.tab_hashes[tab] != after.tab_hashes[tab]]
    assert len(changed) == 1


def test_canonical_tabs_parse_back_to_the_same_config(shipped: MappingConfig) -> None:
    again = parse_mapping(shipped.canonical_tabs())
    assert again.content_hash == shipped.content_hash
    # The config keeps the sheet's row order; the canonical form sorts where order means nothing.
    assert sorted(again.practices, key=str) == sorted(shipped.practices, key=str)
    assert set(again.appointment_types) == set(shipped.appointment_types)
    assert again.entry_rules == shipped.entry_rules
    assert (again.stages, again.settings) == (shipped.stages, shipped.settings)
    assert again.stage(Stage.IN_BEHANDLUNG).probability == Decimal("0.8")


# --- check_types_mapped --------------------------------------------------------------------------------


def test_check_types_mapped_names_practice_and_type_id(shipped: MappingConfig) -> None:
    check_types_mapped(shipped, ["MB_1", "RB_14", "LE_7"])
    with pytest.raises(ConfigError) as caught:
        check_types_mapped(shipped, ["MB_1", "RB_15"])
    error = caught.value
    assert (error.tab, error.row, error.column) == ("appointment_types", None, "type_id")
    assert "practice 'rb' type id 15" in str(error)
    assert str(error).startswith("tab 'appointment_types'")


def test_check_types_mapped_lists_every_missing_type(shipped: MappingConfig) -> None:
    with pytest.raises(ConfigError, match=r"practice 'le' type id 99 .* \(and 2 more: practice 'mb' type id "
                                          r"15; type key 'XX_3' \(its prefix belongs to no practice\)\)"):
        check_types_mapped(shipped, ["MB_15", "LE_99", "XX_3", "MB_2"])


# --- sources and resource ------------------------------------------------------------------------------


def test_local_source_and_resource_read_the_shipped_file(shipped: MappingConfig) -> None:
    assert LocalMappingSource(SHIPPED).load() == shipped
    assert MappingResource().load().content_hash == shipped.content_hash
    assert MappingResource(path=str(SHIPPED)).load() == shipped
    assert "mapping.yaml" in LocalMappingSource(SHIPPED).describe()


def test_resource_follows_the_mapping_file_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(minimal_tabs(), allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("BISS_MAPPING_FILE", str(path))
    assert MappingResource().load() == parse_mapping(minimal_tabs())


def test_resource_refuses_an_unknown_or_incomplete_source() -> None:
    with pytest.raises(ValueError, match="unknown source 'excel'"):
        MappingResource(source="excel").load()
    with pytest.raises(ValueError, match="needs sheet_id"):
        MappingResource(source="gsheet").load()
