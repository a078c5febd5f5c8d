"""Job `preview_<practice>`: the HubSpot sync of one practice as a dry run, launched with no config.

It computes what the practice's sync would send from the warehouse as it is now (the last pipeline
run's deals) and HubSpot's ledger, reads HubSpot (portal, sample records) and writes nothing: no
HubSpot call that changes anything, no ledger row and no asset materialization, so the sync asset's
history and the catch-up sensor never see a preview. The diff summary is the op's output metadata,
shown on the run page: per object create / update / unchanged, associations to add or remove, and
sample keys with the properties that would change (keys and property names, never values).
"""

# No `from __future__ import annotations`: Dagster reads the op's resource annotations.

from typing import Any

from dagster import Failure, JobDefinition, MetadataValue, Nothing, OpExecutionContext, Out, Output, job, op

from biss_pipeline.domain.hubspot.engine import SyncAborted, SyncEngine, SyncReport
from biss_pipeline.domain.hubspot.model import SyncMapping
from biss_pipeline.keys import HUBSPOT_POOL, PRACTICE_TAG, TRIGGER_TAG, preview_job_name
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


def diff_summary(report: SyncReport) -> str:
    """The report as a Markdown table, for the run page."""
    lines = ["| object | create | update | unchanged | retrying | stale |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, counts in report.objects.items():
        lines.append(f"| {name} | {counts.create} | {counts.update} | {counts.unchanged} | "
                     f"{counts.retrying} | {counts.stale} |")
    lines += ["", "| association | add | remove | unchanged |", "| --- | ---: | ---: | ---: |"]
    for name, pairs in report.associations.items():
        lines.append(f"| {name.removeprefix('association:')} | {pairs.add} | {pairs.remove} | "
                     f"{pairs.unchanged} |")
    return "\n".join(lines)


def build_preview_job(practice_id: str, sync_mapping: SyncMapping | None = None) -> JobDefinition:
    name = preview_job_name(practice_id)

    @op(name=f"{name}_hubspot_diff", pool=HUBSPOT_POOL, out=Out(Nothing),
        description=f"What the HubSpot sync of {practice_id} would change now (dry run: nothing written).")
    def preview(context: OpExecutionContext, hubspot: HubSpotResource, warehouse: WarehouseResource,
                mapping: MappingResource):
        engine = SyncEngine(hubspot.get_client(), warehouse.get(),
                            sync_mapping or SyncMapping.from_mapping(mapping.load_for(practice_id)),
                            batch_size=hubspot.batch_size, dry_run=True)
        try:
            report = engine.sync_practice(practice_id)
        except SyncAborted as exc:
            raise Failure(description=f"HubSpot preview of {practice_id} stopped: {exc}",
                          metadata=exc.report.as_metadata() if exc.report is not None else {}) from None
        metadata: dict[str, Any] = report.as_metadata()
        metadata["diff"] = MetadataValue.md(diff_summary(report))
        changes = sum(c.create + c.update for c in report.objects.values())
        context.log.info(f"HubSpot preview of {practice_id}: {changes} records would be written "
                         f"({metadata['write_calls']} write calls made: a preview makes none)")
        yield Output(None, metadata=metadata)

    @job(name=name, tags={PRACTICE_TAG: practice_id, TRIGGER_TAG: "preview"},
         description=f"Dry run of {practice_id}'s HubSpot sync: the diff summary on the run page, nothing "
                     "written to HubSpot or the ledger, no materialization recorded. Needs no config.")
    def preview_job() -> None:
        preview()

    return preview_job
