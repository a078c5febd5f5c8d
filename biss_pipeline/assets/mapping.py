"""The mapping spreadsheet as an asset: its content hash is the data version, so an edit to
the sheet shows up in the UI as a new version and marks everything downstream stale.

Two checks say what the pipeline made of the sheet: `practices_valid` fails (ERROR) naming tab, row
and column for every practice its own rows disabled, and `sheet_readable` warns while the last good
mapping stands in for a sheet that cannot be read. Each successful read is saved as the last good
mapping (warehouse table `mapping_last_good`)."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from biss_pipeline.domain.mapping.isolation import INVALID
from biss_pipeline.domain.mapping.last_good import save_last_good
from biss_pipeline.keys import MAPPING_ASSET_KEY, MAPPING_GROUP, MAPPING_READABLE_CHECK, MAPPING_VALID_CHECK
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


@asset(key=MAPPING_ASSET_KEY, group_name=MAPPING_GROUP, kinds={"googlesheets"},
       check_specs=[
           AssetCheckSpec(MAPPING_VALID_CHECK, asset=MAPPING_ASSET_KEY,
                          description="Every practice's own rows are valid; a practice with an invalid "
                                      "row is disabled (its runs fail) and named here with tab, row, "
                                      "column."),
           AssetCheckSpec(MAPPING_READABLE_CHECK, asset=MAPPING_ASSET_KEY,
                          description="The sheet was read just now; warns while the last good mapping "
                                      "stands in (Sheets outage, missing credentials)."),
       ],
       description="The BISS mapping spreadsheet (practices, appointment types, entry rules, stages, "
                   "settings), parsed and validated; an invalid shared tab fails here with tab, row and "
                   "column, an invalid practice row disables that practice only.")
def mapping_config(context: AssetExecutionContext, mapping: MappingResource,
                   warehouse: WarehouseResource) -> Iterator[MaterializeResult | AssetCheckResult]:
    state = mapping.load_state()
    config = state.config
    source = mapping.mapping_source().describe()
    if state.fallback is None:
        save_last_good(warehouse.get().engine, state, source)
        context.log.info(f"mapping {config.content_hash[:12]} from {source}")
    else:
        context.log.warning(f"mapping source not usable, last good mapping {config.content_hash[:12]} in "
                            f"use: {state.fallback[1]}")
    for practice_id, problem in state.describe_disabled().items():
        context.log.error(f"practice {practice_id} disabled: {problem}")
    yield MaterializeResult(
        data_version=DataVersion(config.content_hash),
        metadata={
            "content_hash": config.content_hash,
            "tab_hashes": MetadataValue.json({tab: digest[:12] for tab, digest in config.tab_hashes.items()}),
            "practices_active": len(config.active_practices),
            "practices_disabled": len(state.disabled),
            "appointment_types": len(config.appointment_types),
            "entry_rules": len(config.entry_rules),
            "close_after_days": config.settings.close_after_days,
            "hubspot_contact_fields": ", ".join(config.settings.hubspot_contact_fields),
        },
    )
    yield AssetCheckResult(
        check_name=MAPPING_VALID_CHECK, asset_key=MAPPING_ASSET_KEY, passed=not state.disabled,
        severity=AssetCheckSeverity.ERROR,
        description=("; ".join(f"{pid}: {text}" for pid, text in state.describe_disabled().items())
                     or "every practice's rows are valid"),
        metadata={"disabled": MetadataValue.json(state.describe_disabled())})
    yield AssetCheckResult(
        check_name=MAPPING_READABLE_CHECK, asset_key=MAPPING_ASSET_KEY, passed=state.fallback is None,
        # unreadable (outage, credentials): a warning, it heals by itself; read but invalid: a person
        # must fix the sheet
        severity=AssetCheckSeverity.ERROR if state.fallback and state.fallback[0] == INVALID
        else AssetCheckSeverity.WARN,
        description=state.fallback[1] if state.fallback else f"read from {source}",
        metadata={"fallback": state.fallback[0] if state.fallback else "none"})
