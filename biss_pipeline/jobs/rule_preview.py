"""`rule_preview_<practice>`: the practice's deals under the mapping now in the sheet against the deals in
the warehouse (`biss_pipeline.domain.deals.preview`). A plain op job: it materializes no asset and
writes nothing to the warehouse; the figures are in the run's log and the op's output metadata.
Launch it with no config (an as-of date may be set)."""

# No `from __future__ import annotations`: Dagster reads the op's config and resource annotations.

import datetime as dt
from collections.abc import Iterator

from dagster import Config, JobDefinition, Nothing, OpExecutionContext, Out, Output, job, op
from pydantic import Field

from biss_pipeline.domain.deals.preview import preview_lines, preview_rule_change
from biss_pipeline.domain.deals.refresh import deal_rules_for
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.keys import PRACTICE_TAG, rule_preview_job_name
from biss_pipeline.resources.mapping import MappingResource
from biss_pipeline.resources.warehouse import WarehouseResource


class RulePreviewConfig(Config):
    as_of: str | None = Field(default=None, description="As-of date (YYYY-MM-DD); default: the one the "
                              "deals step uses (the newest Ivoris modification seen).")


def build_rule_preview_job(practice: PracticeConfig) -> JobDefinition:
    pid = practice.practice_id

    # A Nothing output: the figures go to the event log as metadata, no IO manager stores a value.
    @op(name=f"{pid}_rule_preview", out=Out(Nothing),
        description=f"{practice.name}: deals under the sheet's mapping against the warehouse, per stage, "
                    "stage changes and revenue moved. Writes nothing.")
    def rule_preview(context: OpExecutionContext, config: RulePreviewConfig, warehouse: WarehouseResource,
                     mapping: MappingResource) -> Iterator[Output]:
        rules = deal_rules_for(mapping.load(), practice)
        as_of = dt.date.fromisoformat(config.as_of) if config.as_of else None
        figures = preview_rule_change(warehouse.get(), pid, rules, as_of)
        for line in preview_lines(pid, figures):
            context.log.info(line)
        metadata = {key: value for key, value in figures.items() if value is not None}
        yield Output(None, metadata=metadata)

    @job(name=rule_preview_job_name(practice), tags={PRACTICE_TAG: pid},
         description=f"{practice.name}: preview a deal-rule change (dry run, writes nothing).")
    def preview_job() -> None:
        rule_preview()

    return preview_job
