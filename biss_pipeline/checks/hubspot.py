"""Asset checks on `hubspot/<practice_id>/sync`: `duplicate_deals`, `ledger_reconciliation` and
`suppressed_patients` (the rules: `biss_pipeline.domain.hubspot.verification`; what they cost:
docs/hubspot-sync.md).

Scope: in a nightly run (run tag `sync=nightly`) the HubSpot checks read every ledger object by id; in
any other run what that run's sync wrote (plus a rotating slice for the reconciliation). All run in the
`hubspot` pool (one HubSpot client at a time: the rate limit is per app). A check that cannot read
HubSpot raises (the check errored) rather than reporting a pass or a fail it does not know.
"""

# No `from __future__ import annotations`: Dagster reads the check functions' resource annotations.

from collections.abc import Sequence

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, Failure, asset_check

from biss_pipeline.checks import check_result
from biss_pipeline.domain.hubspot.api import HubSpotError
from biss_pipeline.domain.hubspot.client import HubSpotClient
from biss_pipeline.domain.hubspot.model import SyncMapping
from biss_pipeline.domain.hubspot.verification import (
    check_duplicates,
    check_reconciliation,
    suppressed_outcome,
)
from biss_pipeline.keys import HUBSPOT_POOL, SYNC_KIND_TAG, sync_asset_key
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


def _hubspot_failure(what: str, practice_id: str, exc: HubSpotError, client: HubSpotClient) -> Failure:
    return Failure(
        description=f"{what} of {practice_id}: HubSpot could not be read: {exc}",
        metadata={"calls": client.stats.as_metadata()},
    )


def _run_scope(context: AssetCheckExecutionContext, hubspot: HubSpotResource) -> str | None:
    """None: read everything (nightly, or `verify="full"`); else the run id whose writes to verify."""
    if context.run.tags.get(SYNC_KIND_TAG) == "nightly" or hubspot.verify == "full":
        return None
    return context.run.run_id


def build_duplicate_deals_check(practice_id: str) -> AssetChecksDefinition:
    @asset_check(
        asset=sync_asset_key(practice_id),
        name="duplicate_deals",
        pool=HUBSPOT_POOL,
        blocking=False,
        description=(
            "HubSpot has at most one deal per ivoris_deal_key and at most one open deal per contact; "
            "open deals without key next to pipeline deals are flagged. Reads by id, never by search."
        ),
    )
    def duplicate_deals(context: AssetCheckExecutionContext, hubspot: HubSpotResource,
                        warehouse: WarehouseResource) -> AssetCheckResult:
        client = hubspot.get_client()
        try:
            outcome, findings = check_duplicates(client, warehouse.get(), practice_id,
                                                 _run_scope(context, hubspot))
        except HubSpotError as exc:
            raise _hubspot_failure("duplicate check", practice_id, exc, client) from None
        context.log.info(
            "HubSpot %s duplicates: %d deals read, %d duplicate keys, %d contacts with several open "
            "deals, %d open keyless deals",
            practice_id,
            findings.deals_read,
            len(findings.duplicate_keys),
            len(findings.multi_open_contacts),
            len(findings.keyless_open),
        )
        return check_result(outcome)

    return duplicate_deals


def build_reconciliation_check(practice_id: str,
                               sync_mapping: SyncMapping | None = None) -> AssetChecksDefinition:
    @asset_check(
        asset=sync_asset_key(practice_id),
        name="ledger_reconciliation",
        pool=HUBSPOT_POOL,
        blocking=False,
        description=(
            "The sync ledger against HubSpot, read by record id: objects that are gone or fewer read "
            "than the ledger holds (ERROR), pipeline-owned values edited in HubSpot (WARN)."
        ),
    )
    def ledger_reconciliation(
        context: AssetCheckExecutionContext, hubspot: HubSpotResource, warehouse: WarehouseResource,
        mapping: MappingResource,
    ) -> AssetCheckResult:
        client = hubspot.get_client()
        try:
            outcome, report = check_reconciliation(
                client, warehouse.get(), practice_id,
                sync_mapping or SyncMapping.from_mapping(mapping.load()),
                run_id=_run_scope(context, hubspot),
            )
        except HubSpotError as exc:
            raise _hubspot_failure("reconciliation", practice_id, exc, client) from None
        context.log.info(
            "HubSpot %s reconciliation (%s): %d of %d ledger objects read, %d missing, %d drifted",
            practice_id,
            report.scope,
            report.read,
            report.ledger_objects,
            report.missing,
            report.drifted,
        )
        return check_result(outcome)

    return ledger_reconciliation


def build_suppressed_check(practice_id: str) -> AssetChecksDefinition:
    @asset_check(
        asset=sync_asset_key(practice_id),
        name="suppressed_patients",
        blocking=False,
        description=(
            "Patients whose HubSpot contact was deleted (SPEC §8): nothing of theirs is sent. Lift one with "
            "`biss-pipeline hubspot unsuppress`."
        ),
    )
    def suppressed_patients(context: AssetCheckExecutionContext,
                            warehouse: WarehouseResource) -> AssetCheckResult:
        outcome = suppressed_outcome(warehouse.get(), practice_id)
        context.log.info("HubSpot %s: %d suppressed patients", practice_id,
                         outcome.metadata["suppressed_patients"])
        return check_result(outcome)

    return suppressed_patients


def build_hubspot_checks(practice_ids: Sequence[str], *,
                         sync_mapping: SyncMapping | None = None) -> list[AssetChecksDefinition]:
    """`duplicate_deals`, `ledger_reconciliation` and `suppressed_patients` on every
    `hubspot/<practice_id>/sync`. Resource keys: `hubspot`, `warehouse`, `mapping` (to rebuild the
    payloads the sync sent; as for the sync assets, `sync_mapping` fixes it instead)."""
    checks: list[AssetChecksDefinition] = []
    for practice_id in practice_ids:
        checks.append(build_duplicate_deals_check(practice_id))
        checks.append(build_reconciliation_check(practice_id, sync_mapping))
        checks.append(build_suppressed_check(practice_id))
    return checks
