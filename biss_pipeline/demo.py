"""`make demo`: the whole pipeline on the embedded defaults, with no credentials and no servers.

Starts the Ivoris emulator where the shipped mapping expects it (unless one already answers
there), runs the Dagster jobs for a demo window against a persistent Dagster instance (so
`make dev` shows the runs afterwards) and the SQLite warehouse, and prints what landed.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

import httpx

from biss_pipeline.domain.paths import PROJECT_ROOT, data_dir, mapping_file

DEMO_SEED = 7
HUBSPOT_PORT = 8720
DEMO_HUBSPOT_TOKEN = "demo-token"  # the emulator's, not a secret
# The run's full event log is in the Dagster UI; the terminal shows progress lines only.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The emulator's demo data runs from April to the end of June 2026 with bookings six weeks
# ahead; the window covers all of it, long enough for journeys to pass the 60-day quiet period.
DEMO_WINDOW = (dt.date(2026, 4, 1), dt.date(2026, 8, 11))
READ_ONLY_POSTS = ("/search", "/batch/read", "/access-token-info")


def _say(message: str) -> None:
    print(message, flush=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code < 500
    except httpx.HTTPError:
        return False


def _start_ivoris(stack: ExitStack, practices: list) -> None:
    from biss_emulators.ivoris import IvorisEmulator

    first = urlsplit(practices[0].ivoris_base_url)
    if _answers(f"{practices[0].ivoris_base_url}/practices"):
        _say(f"  Ivoris: using the server already answering at {first.scheme}://{first.netloc}")
        return
    emulator = IvorisEmulator(seed=DEMO_SEED, size="demo", host=first.hostname or "127.0.0.1",
                              port=first.port).start()
    stack.callback(emulator.stop)
    for site in emulator.sites:
        os.environ.setdefault(f"IVORIS_API_KEY_{site.site_id.upper()}", site.api_key)
    _say(f"  Ivoris emulator (demo size, seed {DEMO_SEED}) on {emulator.base_url}")


def _start_hubspot(stack: ExitStack) -> Any:
    """The HubSpot emulator, keeping its portal in data/ between demo runs."""
    from biss_emulators.hubspot import HubSpotEmulator

    os.environ["BISS_HUBSPOT_HOST"] = f"http://127.0.0.1:{HUBSPOT_PORT}"
    os.environ.setdefault("HUBSPOT_ACCESS_TOKEN", DEMO_HUBSPOT_TOKEN)
    emulator = HubSpotEmulator(token=os.environ["HUBSPOT_ACCESS_TOKEN"],
                               state_path=data_dir() / "hubspot_emulator_state.json",
                               search_index_delay_s=0.5, port=HUBSPOT_PORT).start()
    stack.callback(emulator.stop)
    _say(f"  HubSpot emulator on {emulator.base_url} (portal kept in data/hubspot_emulator_state.json)")
    return emulator


def _run(defs: Any, job_name: str, instance: Any, label: str, tags: dict[str, str] | None = None,
         checks: list[Any] | None = None) -> bool:
    started = time.monotonic()
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, tags=tags or {}, run_config=QUIET_RUN_CONFIG, raise_on_error=False)
    state = "ok" if result.success else "FAILED (see the run in the Dagster UI)"
    _say(f"  {label}: {state} in {time.monotonic() - started:.1f}s (run {result.run_id[:8]})")
    if checks is not None:
        checks.extend(result.get_asset_check_evaluations())
    return result.success


def _check_table(evaluations: list[Any]) -> None:
    rows = []
    for evaluation in sorted(evaluations, key=lambda e: (e.asset_key.to_user_string(), e.check_name)):
        verdict = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        rows.append([evaluation.asset_key.to_user_string(), evaluation.check_name, verdict])
    _table("Asset checks", ["asset", "check", "result"], rows)


def _table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    _say(title)
    for row in [header, *rows]:
        _say("  " + "  ".join(str(v).rjust(w) if i else str(v).ljust(w)
                              for i, (v, w) in enumerate(zip(row, widths, strict=True))))


def hubspot_write_calls(hubspot: Any, since: int = 0) -> int:
    return sum(1 for r in hubspot.request_log[since:]
               if r.method in ("POST", "PATCH", "PUT", "DELETE") and not r.path.startswith("/_emulator")
               and not any(marker in r.path for marker in READ_ONLY_POSTS))


def _summary(practices: list, hubspot: Any, writes: int) -> None:
    import sqlalchemy as sa

    from biss_pipeline.domain.deals.rules import Stage
    from biss_pipeline.domain.kpi.store import kpi_headline
    from biss_pipeline.domain.warehouse import schema
    from biss_pipeline.resources import warehouse_resource

    warehouse = warehouse_resource().get()
    ids = [p.practice_id for p in practices]
    tables = (schema.practices, schema.chairs, schema.appointment_types, schema.raw_appointments,
              schema.raw_patients, schema.raw_document_entries, schema.stg_appointments, schema.stg_patients,
              schema.stg_document_entries, schema.deals, schema.contact_rollups, schema.quarantine)
    _say("")
    _table(f"Warehouse {warehouse_resource().resolved_url()}", ["table", *ids, "total"],
           [[t.name, *(c := [warehouse.count_rows(t, p) for p in ids]), sum(c)] for t in tables])
    deals = warehouse.read_rows(sa.select(schema.deals.c.practice_id, schema.deals.c.stage,
                                          schema.deals.c.amount_cents))
    _say("")
    _table("Deals per stage and revenue per practice", ["stage", *ids, "total"], [
        [stage.label, *(c := [sum(1 for d in deals if d["practice_id"] == p and d["stage"] == stage.value)
                              for p in ids]), sum(c)] for stage in Stage
    ] + [["revenue EUR", *(f"{sum(d['amount_cents'] for d in deals if d['practice_id'] == p) / 100:,.2f}"
                           for p in ids), f"{sum(d['amount_cents'] for d in deals) / 100:,.2f}"]])
    _deal_rules_summary(warehouse, ids)
    _say("")
    _table(f"HubSpot (emulated): {writes} write calls in this demo run", ["object", "count"], [
        ["contacts", len(hubspot.objects("contacts"))], ["deals", len(hubspot.objects("deals"))],
        ["appointments", len(hubspot.objects("0-421"))],
        ["contact-deal associations", len(hubspot.associations("contacts", "deals"))],
        ["deal-appointment associations", len(hubspot.associations("deals", "0-421"))],
        ["contact-appointment associations", len(hubspot.associations("contacts", "0-421"))],
    ])
    _say("")
    _say("KPI headline")
    for line in kpi_headline(warehouse):
        _say(f"  {line}")
    _say(f"  report: {data_dir() / 'reports' / 'kpi.html'}")


def _doctor(hubspot: Any) -> None:
    """The readiness report `biss-pipeline hubspot doctor` prints, for the emulated portal."""
    from biss_pipeline.domain.hubspot.client import HubSpotClient
    from biss_pipeline.domain.hubspot.model import SyncMapping
    from biss_pipeline.domain.hubspot.portal import doctor_report, portal_spec
    from biss_pipeline.domain.mapping.sources import LocalMappingSource

    spec = portal_spec(SyncMapping.from_mapping(LocalMappingSource(mapping_file()).load()))
    client = HubSpotClient(os.environ["HUBSPOT_ACCESS_TOKEN"], hubspot.base_url)
    text, _ready = doctor_report(client, spec)
    _say("")
    _say(f"`biss-pipeline hubspot doctor` for the emulated portal ({hubspot.base_url})")
    for line in text.splitlines():
        _say(f"  {line}")


def _deal_rules_summary(warehouse: Any, ids: list[str]) -> None:
    """SPEC §5 r2 in figures: lost deals by reason, reopened deals, stale appointments and the revenue
    counted for no deal, per practice."""
    import sqlalchemy as sa

    from biss_pipeline.domain.deals.quality import stale_summary, uncounted_summary
    from biss_pipeline.domain.kpi.metrics import LOST_REASONS
    from biss_pipeline.domain.warehouse import schema

    deals = warehouse.read_rows(sa.select(schema.deals.c.practice_id, schema.deals.c.stage,
                                          schema.deals.c.lost_reason, schema.deals.c.reopened_count))

    def count(practice: str, keep: Any) -> int:
        return sum(1 for d in deals if d["practice_id"] == practice and keep(d))

    rows = [[f"Verloren ({reason})", *(c := [count(p, lambda d, r=reason: d["stage"] == "verloren"
                                                   and d["lost_reason"] == r) for p in ids]), sum(c)]
            for reason in LOST_REASONS]
    rows.append(["reopened by a rebooking", *(c := [count(p, lambda d: (d["reopened_count"] or 0) > 0)
                                                   for p in ids]), sum(c)])
    stale = {p: stale_summary(warehouse, p) for p in ids}
    rows.append(["stale appointments", *(c := [stale[p]["stale_appointments"] for p in ids]), sum(c)])
    _say("")
    _table("Lost deals by reason, reopened deals, stale appointments (SPEC §5 r2)", ["", *ids, "total"], rows)
    uncounted = {p: uncounted_summary(warehouse, p) for p in ids}
    labels = sorted({label for u in uncounted.values() for label in u["by_detail"]})

    def eur(cents: int) -> str:
        return f"{cents / 100:,.2f}"

    detail_rows = [[label, *(eur(uncounted[p]["by_detail"].get(label, {}).get("cents", 0)) for p in ids),
                    eur(sum(uncounted[p]["by_detail"].get(label, {}).get("cents", 0) for p in ids))]
                   for label in labels]
    detail_rows.append(["total EUR", *(eur(uncounted[p]["cents"]) for p in ids),
                        eur(sum(u["cents"] for u in uncounted.values()))])
    detail_rows.append(["entries", *(uncounted[p]["entries"] for p in ids),
                        sum(u["entries"] for u in uncounted.values())])
    _say("")
    _table("Uncounted revenue (billable entries counted for no deal), EUR by reason/detail",
           ["reason", *ids, "total"], detail_rows)


def run_demo() -> int:
    os.chdir(PROJECT_ROOT)  # dagster.yaml keeps its storage relative to the repository root
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    data_dir()

    from dagster import DagsterInstance

    from biss_pipeline.domain.mapping.practices import load_practices

    started = time.monotonic()
    practices = [p for p in load_practices(mapping_file()) if p.active]
    _say(f"BISS pipeline demo: {len(practices)} practices, window "
         f"{DEMO_WINDOW[0].isoformat()} .. {DEMO_WINDOW[1].isoformat()}")
    with ExitStack() as stack:
        _say("[1/3] starting emulators")
        _start_ivoris(stack, practices)
        hubspot = _start_hubspot(stack)

        from biss_pipeline.definitions import build_definitions, pipeline_job_name

        defs = build_definitions()
        instance = stack.enter_context(DagsterInstance.get())
        _say("[2/3] mapping and reference data (practices, chairs, appointment types)")
        if not _run(defs, "refresh_reference_data", instance, "reference data"):
            return 1
        _say("[3/3] one run per practice for the whole window: "
             "Ivoris → raw → staging → deals → HubSpot → KPIs")
        tags = {"dagster/asset_partition_range_start": DEMO_WINDOW[0].isoformat(),
                "dagster/asset_partition_range_end": DEMO_WINDOW[1].isoformat()}
        log_start = len(hubspot.request_log)
        evaluations: list[Any] = []
        for practice in practices:
            if not _run(defs, pipeline_job_name(practice), instance, practice.practice_id, tags, evaluations):
                return 1
        _summary(practices, hubspot, hubspot_write_calls(hubspot, log_start))
        _say("")
        _check_table(evaluations)
        _doctor(hubspot)
        _say(f"done in {time.monotonic() - started:.1f}s; `make dev` opens the Dagster UI on these runs")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
