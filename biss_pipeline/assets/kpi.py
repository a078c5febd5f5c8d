"""The KPI assets: `kpi/appointments`, `kpi/deals`, `kpi/revenue` and `kpi/report`, one multi-asset
that runs `biss_pipeline.domain.kpi.report.refresh_kpis` and attaches the chart to the report's
materialization so it shows in the Dagster UI."""

# Dagster reads the `config` annotation at definition time: no `from __future__ import annotations`
# in this module.

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    AutomationCondition,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from biss_pipeline.domain.kpi import metrics as kpi
from biss_pipeline.domain.kpi.report import DEFAULT_CHART_WEEKS, headline_markdown, refresh_kpis
from biss_pipeline.keys import KPI_GROUP, kpi_asset_key
from biss_pipeline.resources.warehouse import WarehouseResource

REPORT_KEY = kpi_asset_key("report")


class KpiConfig(Config):
    as_of: str | None = Field(
        default=None,
        description="As-of date (YYYY-MM-DD) that picks the headline "
        "week and the chart window; default: the day of the newest Ivoris change.",
    )
    chart_weeks: int = Field(
        default=DEFAULT_CHART_WEEKS,
        ge=1,
        le=260,
        description="Full weeks shown in the chart and the report's weekly tables.",
    )


TABLE_DESCRIPTIONS = {
    "appointments": "Appointments booked, completed, cancelled, no-show rate per practice and "
                    "day/week/month (table kpi_appointments).",
    "deals": "Deals opened, won, lost; conversion Erstberatung → Behandlung; treatment completion "
             "rate per practice and day/week/month (table kpi_deals).",
    "revenue": "Revenue by treatment category per practice and day/week/month, exact cents "
               "(table kpi_revenue).",
}


def build_kpi_assets(
    deps: Sequence[AssetKey], *, automation_condition: AutomationCondition | None = None
) -> list[Any]:
    """`deps`: the assets whose tables the KPIs read (every practice's staging and deals assets)."""
    table_specs = [
        AssetSpec(kpi_asset_key(name), group_name=KPI_GROUP, deps=list(deps),
                  automation_condition=automation_condition, description=description)
        for name, description in TABLE_DESCRIPTIONS.items()
    ]
    report_spec = AssetSpec(
        REPORT_KEY,
        group_name=KPI_GROUP,
        deps=[s.key for s in table_specs],
        automation_condition=automation_condition,
        description="Weekly KPI chart (PNG) and self-contained HTML report under "
        "data/reports, with the last full week's headline.",
    )

    @multi_asset(name="kpi", specs=[*table_specs, report_spec])
    def kpi_assets(context: AssetExecutionContext, config: KpiConfig,
                   warehouse: WarehouseResource) -> Iterator[MaterializeResult]:
        as_of = dt.date.fromisoformat(config.as_of) if config.as_of else None
        refresh = refresh_kpis(warehouse.get(), as_of, config.chart_weeks)
        for line in kpi.headline_lines(refresh.headlines):
            context.log.info(line)
        tables = refresh.tables
        yield MaterializeResult(asset_key=kpi_asset_key("appointments"),
                                metadata={"dagster/row_count": len(tables.appointments)})
        yield MaterializeResult(asset_key=kpi_asset_key("deals"),
                                metadata={"dagster/row_count": len(tables.deals)})
        month_revenue = tables.revenue.loc[tables.revenue["grain"] == "month", "amount_cents"]
        yield MaterializeResult(
            asset_key=kpi_asset_key("revenue"),
            metadata={
                "dagster/row_count": len(tables.revenue),
                "revenue_total": kpi.format_eur(int(month_revenue.sum())),
                # numbers, so the UI can plot them across materializations
                "revenue_total_eur": MetadataValue.float(int(month_revenue.sum()) / 100),
            },
        )
        # The chart is a file written once per refresh; the materialization links to it. Embedding it as
        # base64 put ~164 KB into the event log on every run (issue 16).
        yield MaterializeResult(
            asset_key=REPORT_KEY,
            metadata={
                "as_of": refresh.as_of.isoformat() if refresh.as_of else "no data",
                "headline": MetadataValue.md(headline_markdown(refresh.headlines)),
                "chart_url": MetadataValue.url(refresh.chart_path.resolve().as_uri()),
                "chart_path": MetadataValue.path(str(refresh.chart_path)),
                "report_path": MetadataValue.path(str(refresh.report_path)),
            },
        )

    return [kpi_assets]
