"""The mapping spreadsheet as an asset: its content hash is the data version, so an edit to
the sheet shows up in the UI as a new version and marks everything downstream stale."""

from dagster import AssetExecutionContext, DataVersion, MaterializeResult, MetadataValue, asset

from biss_pipeline.keys import MAPPING_ASSET_KEY, MAPPING_GROUP
from biss_pipeline.resources.mapping import MappingResource


@asset(key=MAPPING_ASSET_KEY, group_name=MAPPING_GROUP, kinds={"googlesheets"},
       description="The BISS mapping spreadsheet (practices, appointment types, entry rules, stages, "
                   "settings), parsed and validated; an invalid sheet fails here with tab, row and column.")
def mapping_config(context: AssetExecutionContext, mapping: MappingResource) -> MaterializeResult:
    config = mapping.load()
    context.log.info(f"mapping {config.content_hash[:12]} from {mapping.mapping_source().describe()}")
    return MaterializeResult(
        data_version=DataVersion(config.content_hash),
        metadata={
            "content_hash": config.content_hash,
            "tab_hashes": MetadataValue.json({tab: digest[:12] for tab, digest in config.tab_hashes.items()}),
            "practices_active": len(config.active_practices),
            "appointment_types": len(config.appointment_types),
            "entry_rules": len(config.entry_rules),
            "close_after_days": config.settings.close_after_days,
            "hubspot_contact_fields": ", ".join(config.settings.hubspot_contact_fields),
        },
    )
