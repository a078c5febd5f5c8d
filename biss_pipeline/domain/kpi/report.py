"""The KPI refresh (SPEC §6): recompute and store the tables (`biss_pipeline.domain.kpi.store`), then
render a PNG chart (weekly completed appointments, revenue and no-show rate per practice) and a
self-contained HTML report under `data_dir()/reports`. The measures are defined in
`biss_pipeline.domain.kpi.metrics`.

The as-of date that picks the headline week and the chart window is never the wall clock: it is
`as_of` from the run config, or else `chain_as_of` (the newest practice as-of day, the function the
deals use too), so the same data gives the same report.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from biss_pipeline.domain.kpi import metrics as kpi
from biss_pipeline.domain.kpi.metrics import KpiTables, WeekHeadline
from biss_pipeline.domain.kpi.store import practice_ids, practice_kpis, write_kpis
from biss_pipeline.domain.paths import data_dir
from biss_pipeline.domain.staging.as_of import chain_as_of
from biss_pipeline.domain.warehouse.store import Warehouse

CHART_FILE = "kpi_weekly.png"
REPORT_FILE = "kpi.html"
DEFAULT_CHART_WEEKS = 26


@dataclass(frozen=True, eq=False)
class KpiRefresh:
    tables: KpiTables
    as_of: dt.date | None
    headlines: list[WeekHeadline]
    chart_png: bytes
    chart_path: Path
    report_path: Path


def chart_weeks(as_of: dt.date, weeks: int) -> list[dt.date]:
    """Mondays of the `weeks` full weeks that end with the last full week before `as_of`."""
    last_monday, _ = kpi.last_full_week(as_of)
    return [last_monday - dt.timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]


def weekly_series(tables: KpiTables, mondays: Sequence[dt.date]) -> dict[str, pd.DataFrame]:
    """Per measure, a frame indexed by week (Monday) with one column per practice."""
    practices = sorted(set(tables.appointments["practice_id"]) | set(tables.revenue["practice_id"]))
    index = pd.Index(list(mondays), name="week")

    def pivot(frame: pd.DataFrame, column: str, fill: Any) -> pd.DataFrame:
        weekly = frame.loc[frame["grain"] == "week"]
        table = (
            weekly.pivot_table(
                index="period_start", columns="practice_id", values=column, aggfunc="sum", dropna=False
            )
            if not weekly.empty
            else pd.DataFrame()
        )
        return table.reindex(index=index, columns=practices).astype("float64").fillna(fill)

    appointments = tables.appointments.loc[tables.appointments["grain"] == "week"]
    rates = (
        appointments.pivot(index="period_start", columns="practice_id", values="no_show_rate")
        if not appointments.empty
        else pd.DataFrame()
    )
    # A practice's week in which no appointment at all was seen (booked, scheduled, cancelled, ...)
    # was not extracted, or the practice was closed: its lines break there instead of dropping to a
    # zero that reads as a week without work.
    activity = tables.appointments.assign(
        activity=tables.appointments[list(kpi.APPOINTMENT_COUNTS)].sum(axis=1))
    extracted = pivot(activity, "activity", 0.0) > 0
    return {
        "completed": pivot(tables.appointments, "completed", 0.0).where(extracted),
        "revenue_cents": pivot(tables.revenue, "amount_cents", 0.0).where(extracted),
        # a week without settled appointments has no rate; the line shows a gap, not a zero
        "no_show_rate": rates.reindex(index=index, columns=practices).astype("float64"),
    }


def render_chart(tables: KpiTables, as_of: dt.date | None, weeks: int = DEFAULT_CHART_WEEKS) -> bytes:
    """PNG: weekly completed appointments, revenue (EUR) and no-show rate per practice."""
    figure = Figure(figsize=(11, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # headless: render with Agg, whatever backend the process has chosen
    axes = figure.subplots(3, 1, sharex=True)
    if as_of is None:
        figure.suptitle("BISS KPIs: no data yet")
    else:
        mondays = chart_weeks(as_of, weeks)
        series = weekly_series(tables, mondays)
        first, last = mondays[0].isocalendar(), mondays[-1].isocalendar()
        figure.suptitle(
            f"BISS KPIs per week, {first.year}-W{first.week:02d} to {last.year}-W{last.week:02d} "
            f"(data as of {as_of.isoformat()})"
        )
        panels = [
            (axes[0], series["completed"], 1.0, "Completed appointments"),
            # float only for drawing; the tables and the report keep exact cents
            (axes[1], series["revenue_cents"], 0.01, "Revenue (EUR)"),
            (axes[2], series["no_show_rate"], 100.0, "No-show rate (%)"),
        ]
        for ax, frame, scale, title in panels:
            for practice in frame.columns:
                ax.plot(
                    list(frame.index),
                    frame[practice].to_numpy() * scale,
                    marker="o",
                    markersize=3,
                    label=practice,
                )
            ax.set_title(title, loc="left")
            ax.grid(True, alpha=0.3)
            ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
            if not (frame.min().min() < 0):  # corrections can make a week's revenue negative
                ax.set_ylim(bottom=0)
        if len(series["completed"].columns):
            axes[0].legend(title="Practice", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
        axes[2].set_xlabel("Week (Monday)")
    buffer = io.BytesIO()
    # no software version in the file: the same figures give the same bytes after an upgrade too
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _display_appointments(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame[["practice_id", "period_start", *kpi.APPOINTMENT_COUNTS]].copy()
    shown["no_show_rate"] = [kpi.format_rate(r) for r in frame["no_show_rate"]]
    return shown


def _display_deals(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame[
        [
            "practice_id",
            "period_start",
            "deals_opened",
            "deals_won",
            "deals_lost",
            "cohort_erstberatung",
            "cohort_behandlung",
        ]
    ].copy()
    shown["conversion_rate"] = [kpi.format_rate(r) for r in frame["conversion_rate"]]
    shown["treatments_started"] = frame["treatments_started"]
    shown["treatments_completed"] = frame["treatments_completed"]
    shown["treatment_completion_rate"] = [kpi.format_rate(r) for r in frame["treatment_completion_rate"]]
    for column in (*kpi.LOST_BY_REASON, "deals_reopened"):
        shown[column] = frame[column]
    return shown


def _display_uncounted(frame: pd.DataFrame) -> pd.DataFrame:
    """Periods down, reasons across: the euros of billable entries counted for no deal."""
    if frame.empty:
        return pd.DataFrame(columns=["practice_id", "period_start", "total"])
    cents = frame.pivot_table(index=["practice_id", "period_start"], columns="reason", values="amount_cents",
                              aggfunc="sum", fill_value=0)
    cents = cents.reindex(columns=sorted(cents.columns))
    cents["total"] = cents.sum(axis=1)
    shown = cents.apply(lambda column: column.map(lambda value: kpi.format_eur(int(value))))
    shown.columns.name = None
    return shown.reset_index()


def _display_revenue(frame: pd.DataFrame) -> pd.DataFrame:
    """Months down, categories across, exact totals formatted as EUR."""
    if frame.empty:
        return pd.DataFrame(columns=["practice_id", "period_start", "total"])
    cents = frame.pivot_table(
        index=["practice_id", "period_start"],
        columns="treatment_category",
        values="amount_cents",
        aggfunc="sum",
        fill_value=0,
    )
    cents = cents.reindex(columns=sorted(cents.columns))
    cents["total"] = cents.sum(axis=1)
    shown = cents.apply(lambda column: column.map(lambda value: kpi.format_eur(int(value))))
    shown.columns.name = None
    return shown.reset_index()


def _html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>No rows.</em></p>"
    return frame.to_html(index=False, border=0, classes="kpi", escape=True, na_rep="")


def render_html(
    tables: KpiTables,
    headlines: Sequence[WeekHeadline],
    chart_png: bytes,
    as_of: dt.date | None,
    weeks: int = DEFAULT_CHART_WEEKS,
) -> str:
    """A self-contained page: headline, the chart (embedded), weekly and monthly tables, definitions."""
    mondays = set(chart_weeks(as_of, weeks)) if as_of else set()

    def weekly(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[(frame["grain"] == "week") & frame["period_start"].isin(mondays)]

    def monthly(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[frame["grain"] == "month"]

    headline = pd.DataFrame(
        [
            {
                "practice_id": h.practice_id,
                "week": f"{h.week_start.isoformat()} – {h.week_end.isoformat()}",
                "completed": h.completed,
                "no_show": h.no_show,
                "no_show_rate": kpi.format_rate(h.no_show_rate),
                "revenue": kpi.format_eur(h.revenue_cents),
                "deals_opened": h.deals_opened,
                "deals_won": h.deals_won,
            }
            for h in headlines
        ]
    )
    image = base64.b64encode(chart_png).decode("ascii")
    sections = [
        ("Last full week", _html_table(headline)),
        ("Weekly appointments", _html_table(_display_appointments(weekly(tables.appointments)))),
        ("Weekly deals", _html_table(_display_deals(weekly(tables.deals)))),
        ("Weekly revenue by treatment category", _html_table(_display_revenue(weekly(tables.revenue)))),
        ("Monthly appointments", _html_table(_display_appointments(monthly(tables.appointments)))),
        ("Monthly deals", _html_table(_display_deals(monthly(tables.deals)))),
        ("Monthly revenue by treatment category", _html_table(_display_revenue(monthly(tables.revenue)))),
        ("Monthly uncounted revenue by reason (billable entries counted for no deal)",
         _html_table(_display_uncounted(monthly(tables.uncounted)))),
    ]
    stamp = as_of.isoformat() if as_of else "no data yet"
    body = "\n".join(f"<h2>{html.escape(title)}</h2>\n{content}" for title, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>BISS KPI report ({html.escape(stamp)})</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table.kpi {{ border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }}
table.kpi th, table.kpi td {{ padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }}
table.kpi th {{ background: #f3f3f3; }}
pre {{ white-space: pre-wrap; font-size: 0.85em; }}
</style>
</head>
<body>
<h1>BISS KPI report</h1>
<p>Data as of {html.escape(stamp)}. Weekly tables cover the {weeks} full weeks of the chart; the warehouse
tables <code>kpi_appointments</code>, <code>kpi_deals</code> and <code>kpi_revenue</code> also hold
daily figures. Aggregates only: no patient data.</p>
<img alt="Weekly completed appointments, revenue and no-show rate per practice"
 src="data:image/png;base64,{image}">
{body}
<details><summary>Definitions</summary>
<pre>{html.escape(kpi.__doc__ or "")}</pre>
</details>
</body>
</html>
"""


def _write_file(path: Path, content: bytes) -> None:
    """Write beside the target, then rename: a reader never sees half a report."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    partial.replace(path)


def refresh_kpis(
    warehouse: Warehouse, as_of: dt.date | None = None, weeks: int = DEFAULT_CHART_WEEKS
) -> KpiRefresh:
    """Recompute and store the KPI tables, and write the chart and the HTML report."""
    tables = kpi.concat_tables([practice_kpis(warehouse, p) for p in practice_ids(warehouse)])
    write_kpis(warehouse, tables)
    as_of = as_of or chain_as_of(warehouse)
    headlines = kpi.week_headlines(tables, as_of) if as_of else []
    chart = render_chart(tables, as_of, weeks)
    reports = data_dir() / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    chart_path, report_path = reports / CHART_FILE, reports / REPORT_FILE
    _write_file(chart_path, chart)
    _write_file(report_path, render_html(tables, headlines, chart, as_of, weeks).encode("utf-8"))
    return KpiRefresh(tables, as_of, headlines, chart, chart_path, report_path)


def headline_markdown(headlines: Sequence[WeekHeadline]) -> str:
    if not headlines:
        return "No KPI data yet."
    first = headlines[0]
    lines = [
        f"**Week {first.week_start.isoformat()} – {first.week_end.isoformat()}**",
        "",
        "| practice | completed | no-show rate | revenue | deals opened | deals won |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {h.practice_id} | {h.completed} | {kpi.format_rate(h.no_show_rate)} | "
        f"{kpi.format_eur(h.revenue_cents)} | {h.deals_opened} | {h.deals_won} |"
        for h in headlines
    ]
    return "\n".join(lines)
