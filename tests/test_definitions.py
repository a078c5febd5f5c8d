"""The code location loads, and its layout is the one docs/architecture.md argues for."""

from __future__ import annotations

import yaml
from dagster import AssetKey, BackfillPolicy, Definitions

from biss_pipeline.definitions import build_definitions, defs
from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import PROJECT_ROOT


def test_the_code_location_loads() -> None:
    Definitions.validate_loadable(defs)


def test_every_practice_gets_its_own_single_run_raw_assets_in_its_own_pool() -> None:
    graph = defs.resolve_asset_graph()
    for practice in ("mb", "rb", "le"):
        for name in ("raw_appointments", "raw_patients", "raw_document_entries"):
            node = graph.get(AssetKey([practice, name]))
            assert node.backfill_policy == BackfillPolicy.single_run()
            assert node.pools == {f"ivoris_{practice}"}
            assert node.group_name == f"ivoris_{practice}"
        assert defs.resolve_job_def(f"extract_{practice}") is not None


def test_an_inactive_practice_has_no_assets(tmp_path) -> None:
    tabs = load_mapping_tabs(PROJECT_ROOT / "config" / "mapping.yaml")
    tabs["practices"][1]["active"] = False
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(tabs, allow_unicode=True), encoding="utf-8")
    keys = {k.to_user_string() for k in build_definitions(mapping).resolve_asset_graph().get_all_asset_keys()}
    assert "mb/raw_appointments" in keys and "le/deals" in keys
    assert not any(k.startswith("rb/") for k in keys)
