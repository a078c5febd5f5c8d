"""Job `remediate_duplicate_deals`: close confirmed duplicate deals in HubSpot as lost. Dry run by
default.

Built by `build_remediation_job(practice_ids)`; resource keys `hubspot`, `warehouse` and `mapping`.
Run config (one op, `close_duplicate_deals`):

    ops:
      close_duplicate_deals:
        config:
          dry_run: false          # default true: report only, write nothing
          practice_ids: [mb]      # default: every practice the job was built for

Per practice: read its deals from HubSpot (as the `duplicate_deals` check does), the ledger's deal
ids, and the sync pipeline's closed-lost stage (portal read, no writes); decide with
`biss_pipeline.domain.hubspot.remediation.plan_remediation` (which deal stays and why); then, unless
dry run, make sure the deal property `biss_remediation_reason` exists and move the other deals to
closed lost with their reason, by batch update through the HubSpot client. A closed duplicate
carries the reason, so the next run skips it: re-running changes nothing.
`HubSpotResource(dry_run=True)` also forces a dry run. Metadata and log: counts, deal ids, kept ids,
keys — no names. A practice that fails does not stop the others; the op fails at the end, naming it."""

# No `from __future__ import annotations`: Dagster reads the op's config and resource annotations.

from collections.abc import Sequence
from typing import Any

from dagster import Config, Failure, JobDefinition, Nothing, OpExecutionContext, Out, Output, job, op
from pydantic import Field

from biss_pipeline.domain.hubspot.api import HubSpotError
from biss_pipeline.domain.hubspot.close_duplicates import RemediationError, remediate_practice
from biss_pipeline.domain.hubspot.model import SyncMapping
from biss_pipeline.domain.hubspot.verification import METADATA_LIST_LIMIT
from biss_pipeline.keys import HUBSPOT_POOL, REMEDIATION_JOB
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource

JOB_NAME = REMEDIATION_JOB
OP_NAME = "close_duplicate_deals"  # run config goes under ops.close_duplicate_deals.config
class RemediationConfig(Config):
    dry_run: bool = Field(default=True, description="Report what would be closed; write nothing.")
    practice_ids: list[str] = Field(
        default_factory=list, description="Practices to remediate; empty: every practice of the job."
    )


def build_remediation_job(
    practice_ids: Sequence[str], sync_mapping: SyncMapping | None = None, name: str = JOB_NAME
) -> JobDefinition:
    """The remediation job for these practices. The sync mapping (it locates the pipeline's closed-lost
    stage) is read from the `mapping` resource at run time; `sync_mapping` fixes it instead (tests)."""
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
        mapping: MappingResource,
    ):
        selected = config.practice_ids or known
        unknown = sorted(set(selected) - set(known))
        if unknown:
            raise Failure(description=f"unknown practices {unknown}; this job covers {known}")
        dry_run = config.dry_run or hubspot.dry_run
        resolved = sync_mapping or SyncMapping.from_mapping(mapping.load())
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
