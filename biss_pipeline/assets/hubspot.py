"""HubSpot sync assets, built per practice by `build_hubspot_assets`.

- `hubspot/portal_setup` (unpartitioned): property groups, properties and the deal pipeline.
- `hubspot/<practice_id>/sync` (unpartitioned), after `hubspot/portal_setup` and the practice's deal
  and contact roll-up assets (keys passed in): contacts, deals, appointments, associations.

Both run in the concurrency pool `hubspot`: HubSpot's rate limit is per app, so one writer at a time
(the instance config sets that pool's limit to 1). A sync asset is unpartitioned because it syncs
the practice's whole current state; the ledger makes that cheap (unchanged records cost nothing).
Resource keys: `hubspot` (`HubSpotResource`), `warehouse` (`WarehouseResource`) and `mapping`. With
`HubSpotResource(dry_run=True)` the assets report what would change and write nothing.

Reconciliation (SPEC §8, docs/hubspot-sync.md): a run tagged `sync=nightly` (the nightly schedule), or
any run with `HubSpotResource(verify="full")`, reads every object of the ledger back by id and repairs
drift, deletions and suppressions; other runs verify what they write. A mass disappearance fails the
asset with the rebuild command in its message.

Metadata: counts per object and action (`contacts_create`, `deals_update`, `appointments_unchanged`,
`assoc_contacts_deals_add`, …), `errors`, `write_calls`, `calls` (by endpoint kind, retries, 429s),
`dry_run`, and in a dry run `samples` (keys and changed property names only).
"""

# No `from __future__ import annotations`: Dagster reads the resource parameters' annotations at
# definition time, inside the factory's closures.

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    asset,
)

from biss_pipeline.domain.hubspot import (
    PortalSetupError,
    SyncAborted,
    SyncEngine,
    SyncMapping,
    ensure_portal,
    portal_spec,
)
from biss_pipeline.domain.hubspot.api import HubSpotError
from biss_pipeline.keys import HUBSPOT_GROUP, HUBSPOT_POOL, PORTAL_SETUP_KEY, SYNC_KIND_TAG, sync_asset_key
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


class PracticeLike(Protocol):
    """What the factory needs from a practice (the config's `PracticeConfig` fits)."""

    @property
    def practice_id(self) -> str: ...


def build_portal_setup_asset(sync_mapping: SyncMapping | None = None) -> AssetsDefinition:

    @asset(
        key=PORTAL_SETUP_KEY,
        group_name=HUBSPOT_GROUP,
        pool=HUBSPOT_POOL,
        kinds={"hubspot"},
        description="Property groups, custom properties and the deal pipeline in HubSpot (idempotent).",
    )
    def hubspot_portal_setup(context: AssetExecutionContext, hubspot: HubSpotResource,
                             mapping: MappingResource) -> MaterializeResult:
        client = hubspot.get_client()
        resolved = sync_mapping or SyncMapping.from_mapping(mapping.load())
        try:
            state = ensure_portal(client, portal_spec(resolved), dry_run=hubspot.dry_run)
        except (HubSpotError, PortalSetupError) as exc:
            # a portal that is not ready names what to enable or change (`hubspot doctor` too)
            raise Failure(
                description=f"HubSpot portal setup failed: {exc}",
                metadata={"calls": client.stats.as_metadata()},
            ) from None
        context.log.info(
            "HubSpot portal: pipeline %s, %d created, %d updated, %d planned (dry run: %s)",
            state.pipeline_id,
            len(state.created),
            len(state.updated),
            len(state.planned),
            hubspot.dry_run,
        )
        return MaterializeResult(
            metadata={
                "dry_run": hubspot.dry_run,
                "pipeline_id": state.pipeline_id,
                "created": len(state.created),
                "updated": len(state.updated),
                "planned": len(state.planned),
                "write_calls": client.stats.write_calls,
                "details": state.as_metadata(),
                "calls": client.stats.as_metadata(),
            }
        )

    return hubspot_portal_setup


def build_practice_sync_asset(
    practice_id: str,
    deps: Sequence[AssetKey] = (),
    sync_mapping: SyncMapping | None = None,
) -> AssetsDefinition:

    @asset(
        key=sync_asset_key(practice_id),
        deps=[PORTAL_SETUP_KEY, *deps],
        group_name=HUBSPOT_GROUP,
        pool=HUBSPOT_POOL,
        kinds={"hubspot"},
        tags={"practice": practice_id},
        description=f"Contacts, deals, appointments and associations of {practice_id} → HubSpot.",
    )
    def hubspot_practice_sync(
        context: AssetExecutionContext, hubspot: HubSpotResource, warehouse: WarehouseResource,
        mapping: MappingResource,
    ) -> MaterializeResult:
        # the nightly run reconciles in full (every ledger id read back, drift set back); any other run
        # verifies what it writes (docs/hubspot-sync.md)
        nightly = context.run.tags.get(SYNC_KIND_TAG) == "nightly" or hubspot.verify == "full"
        engine = SyncEngine(
            hubspot.get_client(),
            warehouse.get(),
            sync_mapping or SyncMapping.from_mapping(mapping.load()),
            batch_size=hubspot.batch_size,
            dry_run=hubspot.dry_run,
            verify="full" if nightly else "written",
            run_id=context.run.run_id,
            max_concurrency=hubspot.max_concurrency,
        )
        try:
            report = engine.sync_practice(practice_id)
        except SyncAborted as exc:
            metadata: dict[str, Any] = exc.report.as_metadata() if exc.report is not None else {}
            raise Failure(
                description=f"HubSpot sync of {practice_id} stopped: {exc}", metadata=metadata
            ) from None
        for name, counts in report.objects.items():
            context.log.info(
                "HubSpot %s %s: %d create, %d update, %d unchanged, %d failed%s",
                practice_id,
                name,
                counts.create,
                counts.update,
                counts.unchanged,
                counts.failed,
                " (dry run)" if report.dry_run else "",
            )
        if report.errors:
            context.log.warning(
                "HubSpot sync of %s: %d records or pairs failed; they are in the ledger and retried next run",
                practice_id,
                report.errors,
            )
        return MaterializeResult(metadata=report.as_metadata())

    return hubspot_practice_sync


def build_hubspot_assets(
    practices: Sequence[PracticeLike],
    deps_by_practice: Mapping[str, Sequence[AssetKey]],
    sync_mapping: SyncMapping | None = None,
) -> list[AssetsDefinition]:
    """`hubspot/portal_setup` plus one `hubspot/<practice_id>/sync` per practice.

    `deps_by_practice[practice_id]` lists the asset keys the practice's sync waits for (its deals and
    contact roll-ups). The sync mapping is read from the `mapping` resource at run time, so a changed
    mapping sheet applies without a code reload; `sync_mapping` fixes it instead (tests).
    """
    return [
        build_portal_setup_asset(sync_mapping),
        *(
            build_practice_sync_asset(p.practice_id, deps_by_practice.get(p.practice_id, ()), sync_mapping)
            for p in practices
        ),
    ]
