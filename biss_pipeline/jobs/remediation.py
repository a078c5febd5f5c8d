"""Job `remediate_duplicate_deals`: close confirmed duplicate deals in HubSpot as lost. Dry run by default.

Built by `build_remediation_job(practice_ids, mapping=None)`; resource keys `hubspot` and `warehouse`.
Run config (one op, `close_duplicate_deals`):

    ops:
      close_duplicate_deals:
        config:
          dry_run: false          # default true: report only, write nothing
          practice_ids: [mb]      # default: every practice the job was built for

Per practice: read its deals from HubSpot (as the `duplicate_deals` check does), the ledger's deal ids,
and the sync pipeline's closed-lost stage (portal read, no writes); decide with
`biss_pipeline.remediation.plan_remediation` (which deal stays and why); then, unless dry run, make
sure the deal property `biss_remediation_reason` exists and move the other deals to closed lost with
their reason, by batch update through the HubSpot client. A closed duplicate carries the reason, so
the next run skips it: re-running changes nothing. `HubSpotResource(dry_run=True)` also forces a dry
run. Metadata and log: counts, deal ids, kept ids, keys — no names. A practice that fails does not stop
the others; the op fails at the end, naming it.
"""

# No `from __future__ import annotations`: Dagster reads the op's config and resource annotations.

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import Config, Failure, JobDefinition, Nothing, OpExecutionContext, Out, Output, job, op
from pydantic import Field

from biss_pipeline.assets.hubspot import HUBSPOT_POOL
from biss_pipeline.checks.hubspot import (
    METADATA_LIST_LIMIT,
    MappingSource,
    load_practice_deals,
    resolve_mapping,
)
from biss_pipeline.remediation import REASON_PROPERTY, LostStage, RemediationPlan, plan_remediation
from biss_pipeline.resources.hubspot import HubSpotClient, HubSpotResource
from biss_pipeline.resources.warehouse import Warehouse, WarehouseResource
from biss_pipeline.sync.api import HubSpotApiError, HubSpotError
from biss_pipeline.sync.ledger import Ledger
from biss_pipeline.sync.model import DEALS, PROPERTY_GROUP, PROPERTY_GROUP_LABEL, PropertyDef, SyncMapping
from biss_pipeline.sync.portal import ensure_portal, portal_spec

JOB_NAME = "remediate_duplicate_deals"
OP_NAME = "close_duplicate_deals"  # run config goes under ops.close_duplicate_deals.config
REASON_PROPERTY_DEF = PropertyDef(
    REASON_PROPERTY,
    "Bereinigungsgrund",
    "string",
    "text",
    False,
    "Warum die Pipeline diesen Deal als Duplikat geschlossen hat (ID des behaltenen Deals)",
)


class RemediationError(RuntimeError):
    """The portal is not in a state the remediation can work with (no sync pipeline yet)."""


@dataclass
class RemediationReport:
    practice_id: str
    dry_run: bool
    plan: RemediationPlan
    closed: list[str] = field(default_factory=list)  # HubSpot confirmed the update
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # code summaries
    property_created: bool = False

    def as_metadata(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "practice_id": self.practice_id,
            "dry_run": self.dry_run,
            **plan.counts(),
            "closed": len(self.closed),
            "failed": len(self.failed),
            "property_created": self.property_created,
            "closures": [
                {"deal_id": c.deal_id, "kind": c.kind, "kept_deal_id": c.kept_deal_id, "key": c.key}
                for c in plan.closures[:METADATA_LIST_LIMIT]
            ],
            "closed_ids": self.closed[:METADATA_LIST_LIMIT],
            "failed_ids": self.failed[:METADATA_LIST_LIMIT],
            "errors": self.errors[:METADATA_LIST_LIMIT],
            "needs_review": {
                c: list(ids) for c, ids in list(plan.needs_review.items())[:METADATA_LIST_LIMIT]
            },
        }


def lost_stage(client: HubSpotClient, mapping: SyncMapping) -> LostStage:
    """The sync pipeline's closed-lost stage, found the way the portal setup finds it (reads only)."""
    portal = ensure_portal(client, portal_spec(mapping), dry_run=True)
    spec = next(s for s in mapping.pipeline.stages if s.outcome == "lost")
    stage_id = portal.stage_ids.get(spec.stage, "")
    if (
        not portal.pipeline_id
        or portal.pipeline_id.startswith("<")
        or not stage_id
        or stage_id.startswith("<")
    ):
        raise RemediationError(
            "the deal pipeline or its lost stage is not in HubSpot yet; run hubspot/portal_setup first"
        )
    return LostStage(portal.pipeline_id, stage_id)


def ensure_reason_property(client: HubSpotClient) -> bool:
    """Create `biss_remediation_reason` on deals when missing; True when this call created it."""
    if REASON_PROPERTY in client.list_properties(DEALS.api_type):
        return False
    if PROPERTY_GROUP not in client.list_property_groups(DEALS.api_type):
        try:
            client.create_property_group(DEALS.api_type, PROPERTY_GROUP, PROPERTY_GROUP_LABEL)
        except HubSpotApiError as exc:
            if exc.status != 409:  # 409: created meanwhile, or by our own retried write
                raise
    for error in client.create_properties(DEALS.api_type, [REASON_PROPERTY_DEF]):
        if error.status != 409 and error.category != "OBJECT_ALREADY_EXISTS":
            raise RemediationError(f"creating deals.{REASON_PROPERTY} failed: {error.summary}")
    return True


def remediate_practice(
    client: HubSpotClient,
    warehouse: Warehouse,
    practice_id: str,
    mapping: SyncMapping | None = None,
    *,
    dry_run: bool = True,
    batch_size: int = 100,
) -> RemediationReport:
    mapping = mapping or SyncMapping()
    lost = lost_stage(client, mapping)
    deals = load_practice_deals(client, practice_id)
    ledger = Ledger(warehouse).load(practice_id, [DEALS.name]).get(DEALS.name, {})
    ledger_ids = {key: entry.hubspot_id for key, entry in ledger.items() if entry.hubspot_id}
    plan = plan_remediation(deals, practice_id, ledger_ids, lost)
    report = RemediationReport(practice_id, dry_run, plan)
    if dry_run or not plan.closures:
        return report
    report.property_created = ensure_reason_property(client)
    updates = [(c.deal_id, c.properties(lost)) for c in plan.closures]
    for start in range(0, len(updates), batch_size):
        chunk = updates[start : start + batch_size]
        outcome = client.batch_update(DEALS.api_type, chunk)
        confirmed = set(outcome.updated)
        report.closed.extend(i for i, _ in chunk if i in confirmed)
        report.failed.extend(i for i, _ in chunk if i not in confirmed)
        report.errors.extend(e.summary for e in outcome.errors)
    return report


class RemediationConfig(Config):
    dry_run: bool = Field(default=True, description="Report what would be closed; write nothing.")
    practice_ids: list[str] = Field(
        default_factory=list, description="Practices to remediate; empty: every practice of the job."
    )


def build_remediation_job(
    practice_ids: Sequence[str], mapping: MappingSource = None, name: str = JOB_NAME
) -> JobDefinition:
    """The remediation job for these practices. `mapping` as for the sync assets (a `SyncMapping` or a
    zero-argument callable returning one) — it locates the pipeline's closed-lost stage."""
    known = list(practice_ids)

    @op(
        name=OP_NAME,
        pool=HUBSPOT_POOL,
        out=Out(Nothing),
        description="Close confirmed duplicate deals in HubSpot as lost (dry run by default).",
    )
    def close_duplicate_deals(
        context: OpExecutionContext,
        config: RemediationConfig,
        hubspot: HubSpotResource,
        warehouse: WarehouseResource,
    ):
        selected = config.practice_ids or known
        unknown = sorted(set(selected) - set(known))
        if unknown:
            raise Failure(description=f"unknown practices {unknown}; this job covers {known}")
        dry_run = config.dry_run or hubspot.dry_run
        resolved = resolve_mapping(mapping)
        store = warehouse.get()
        metadata: dict[str, Any] = {"dry_run": dry_run}
        failures: dict[str, str] = {}
        for practice_id in selected:
            client = hubspot.get_client()
            try:
                report = remediate_practice(
                    client, store, practice_id, resolved, dry_run=dry_run, batch_size=hubspot.batch_size
                )
            except (HubSpotError, RemediationError) as exc:
                failures[practice_id] = str(exc)
                context.log.error("Duplicate remediation of %s failed: %s", practice_id, exc)
                continue
            practice_metadata = report.as_metadata()
            practice_metadata["calls"] = client.stats.as_metadata()
            metadata[practice_id] = practice_metadata
            plan = report.plan
            context.log.info(
                "Duplicate remediation of %s%s: %d to close %s, kept %s, %d closed, %d failed, %d already "
                "remediated, %d contacts need review",
                practice_id,
                " (dry run)" if dry_run else "",
                len(plan.closures),
                list(plan.closed_ids[:METADATA_LIST_LIMIT]),
                list(plan.kept[:METADATA_LIST_LIMIT]),
                len(report.closed),
                len(report.failed),
                len(plan.already_remediated),
                len(plan.needs_review),
            )
            if report.failed:
                failures[practice_id] = f"{len(report.failed)} deals not closed: {report.errors[:3]}"
        metadata["to_close"] = sum(m["to_close"] for m in metadata.values() if isinstance(m, dict))
        metadata["closed"] = sum(m["closed"] for m in metadata.values() if isinstance(m, dict))
        if failures:
            raise Failure(
                description=f"duplicate remediation failed for {sorted(failures)}",
                metadata={**metadata, "failures": failures},
            )
        yield Output(None, metadata=metadata)

    @job(
        name=name,
        description="Close confirmed duplicate HubSpot deals as lost, keeping the one the ledger knows "
        "(run config `dry_run: false` to write; dry run by default).",
        tags={"kind": "remediation"},
    )
    def remediation_job() -> None:
        close_duplicate_deals()

    return remediation_job
