"""The resources of the code location, chosen per environment from one place.

`resources_for(practices)` reads the environment once: the warehouse URL, the mapping source, the
HubSpot host and tier, and one Ivoris resource per practice whose API key comes from the variable the
mapping names. Secrets are `EnvVar`s, resolved by Dagster when a run starts, never read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import EnvVar

from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.ivoris import IvorisResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import ProductionConfigError, WarehouseResource


def warehouse_resource() -> WarehouseResource:
    if os.environ.get("BISS_WAREHOUSE_URL"):
        return WarehouseResource(url=EnvVar("BISS_WAREHOUSE_URL"))
    return WarehouseResource()


def mapping_resource(mapping_path: Path | None = None) -> MappingResource:
    # The last good mapping (warehouse) stands in when the sheet cannot be read, also at load time.
    if os.environ.get("BISS_MAPPING_SOURCE", "local") == "gsheet":
        # BISS_GSHEETS_API_URL: only to point the sheet reads at the stand-in (`emulate sheets`)
        return MappingResource(source="gsheet", sheet_id=os.environ.get("BISS_GSHEET_ID"),
                               sheets_api_url=os.environ.get("BISS_GSHEETS_API_URL") or None,
                               last_good_in_warehouse=True)
    return MappingResource(path=str(mapping_path) if mapping_path else None, last_good_in_warehouse=True)


def hubspot_resource() -> HubSpotResource:
    """Token from HUBSPOT_ACCESS_TOKEN; BISS_HUBSPOT_HOST points the SDK elsewhere (the emulator)."""
    overrides = {"host": os.environ["BISS_HUBSPOT_HOST"]} if os.environ.get("BISS_HUBSPOT_HOST") else {}
    return HubSpotResource.from_env(tier=os.environ.get("BISS_HUBSPOT_TIER", "professional"), **overrides)


def ivoris_resource(practice: PracticeConfig, overrides: Mapping[str, Any] | None = None) -> IvorisResource:
    """`overrides`: the mapping's `ivoris_client` rows of the practice (SPEC §4 rev. 2), resource field
    → value; the parser has validated them."""
    return IvorisResource(practice_id=practice.practice_id, base_url=practice.ivoris_base_url,
                          api_key=EnvVar(practice.api_key_env), **dict(overrides or {}))


ENVIRONMENT_ENV = "BISS_ENVIRONMENT"
# A production code location cannot do without these; in development the emulators stand in.
REQUIRED_IN_PRODUCTION = ("BISS_WAREHOUSE_URL", "HUBSPOT_ACCESS_TOKEN")


def check_production_settings() -> None:
    """With BISS_ENVIRONMENT=production (the Helm values and the production guide set it), a missing
    required variable fails the code location at load, naming it, instead of a run hours later."""
    if os.environ.get(ENVIRONMENT_ENV, "").strip().lower() != "production":
        return
    missing = [name for name in REQUIRED_IN_PRODUCTION if not os.environ.get(name, "").strip()]
    if missing:
        raise ProductionConfigError(
            f"{ENVIRONMENT_ENV}=production, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set (see docs/deployment.md)")


def resources_for(practices: Sequence[PracticeConfig], mapping: MappingResource) -> dict[str, Any]:
    check_production_settings()
    client_settings = mapping.load().ivoris_client
    return {
        "warehouse": warehouse_resource(),
        "mapping": mapping,
        "hubspot": hubspot_resource(),
        **{p.resource_key: ivoris_resource(p, client_settings.get(p.practice_id)) for p in practices},
    }
