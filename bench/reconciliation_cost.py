"""What the HubSpot verification costs in calls: an intraday tick and a nightly run, each with its checks,
measured against the emulator on a seeded practice, then extrapolated to a spec-size practice
(docs/hubspot-sync.md).

    .venv/bin/python -m bench.reconciliation_cost [--patients 200]
        [--contacts 60000 --deals 60000 --appointments 150000]

Measured: calls the emulator received per step (portal setup, sync, each check), for a no-change intraday
tick and a no-change nightly run after a first sync. Extrapolated: the same steps with the call formulas
(a batch read takes 100 ids, a v4 association read 1,000) for the object counts given; the defaults are
SPEC §3's 60,000 patients, and, as an assumption, one journey per patient and 120 appointments a day
× 250 working days × 5 years in deals.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.hubspot import SyncMapping, ensure_portal, portal_spec, sync_practice
from biss_pipeline.domain.hubspot.client import HubSpotClient
from biss_pipeline.domain.hubspot.verification import ROTATING_SLICE, check_duplicates, check_reconciliation
from biss_pipeline.domain.warehouse.store import Warehouse, dispose_engine
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.sync.seed import Seed

TOKEN = "bench-token"
PID = "mb"
DAILY_BUDGET = 650_000
TICKS_PER_DAY = 47  # 30-minute cadence, the nightly run replacing one tick
PRACTICES = 10


def _client(emu: HubSpotEmulator) -> HubSpotClient:
    return HubSpotResource(access_token=TOKEN, host=emu.base_url).get_client()


def _calls(emu: HubSpotEmulator, since: int) -> int:
    return len(emu.request_log) - since


def measure(emu: HubSpotEmulator, warehouse: Warehouse, nightly: bool, run_id: str) -> Counter[str]:
    """One run as Dagster runs it: portal setup asset, sync asset, then the two HubSpot checks."""
    calls: Counter[str] = Counter()
    mark = len(emu.request_log)
    ensure_portal(_client(emu), portal_spec(SyncMapping()))
    calls["portal setup"] = _calls(emu, mark)
    mark = len(emu.request_log)
    report = sync_practice(_client(emu), warehouse, PID, verify="full" if nightly else "written",
                           run_id=run_id)
    assert report.errors == 0 and report.calls["write_calls"] == 0, "a no-change run must not write"
    calls["sync (incl. its reconciliation reads)"] = _calls(emu, mark)
    scope = None if nightly else run_id
    mark = len(emu.request_log)
    outcome, _ = check_reconciliation(_client(emu), warehouse, PID, run_id=scope)
    assert outcome.passed, outcome.description
    calls["check ledger_reconciliation"] = _calls(emu, mark)
    mark = len(emu.request_log)
    dup, _ = check_duplicates(_client(emu), warehouse, PID, scope)
    assert dup.passed, dup.description
    calls["check duplicate_deals"] = _calls(emu, mark)
    return calls


def extrapolate(contacts: int, deals: int, appointments: int, setup: int) -> dict[str, dict[str, int]]:
    """The same steps by formula. `setup`: the portal reads one run makes (measured, size-independent)."""
    reads = sum(math.ceil(n / 100) for n in (contacts, deals, appointments))
    slice_reads = 3 * math.ceil(ROTATING_SLICE / 100)
    # duplicate check: deals→contacts and contacts→deals (1,000 per v4 read), then the union of the deals
    # (≈ the ledger's) by id, and the pipelines for the closed stages
    dup_full = math.ceil(deals / 100) + math.ceil(deals / 1000) + math.ceil(contacts / 1000) + 1
    dup_tick = 1 + 1 + 1 + math.ceil(ROTATING_SLICE / 100) + 1  # pipelines, 2 association reads, slice, own
    return {
        "intraday tick (no change)": {
            "portal setup": setup, "sync": setup + slice_reads,
            "check ledger_reconciliation": setup + slice_reads, "check duplicate_deals": dup_tick,
        },
        "nightly run (no change)": {
            "portal setup": setup, "sync": setup + reads, "check ledger_reconciliation": setup + reads,
            "check duplicate_deals": dup_full,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=60_000)
    parser.add_argument("--deals", type=int, default=60_000)
    parser.add_argument("--appointments", type=int, default=120 * 250 * 5)
    args = parser.parse_args(argv)
    print(f"# .venv/bin/python -m bench.reconciliation_cost {' '.join(argv or sys.argv[1:])}")

    with tempfile.TemporaryDirectory(prefix="bench-recon-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'w.sqlite'}"
        warehouse = WarehouseResource(url=url).get()
        seed = Seed(practice_id=PID, patients=args.patients).write(warehouse)
        emu = HubSpotEmulator(token=TOKEN, search_index_delay_s=0.0)
        emu.start()
        try:
            sync_practice(_client(emu), warehouse, PID, run_id="first")
            tick = measure(emu, warehouse, nightly=False, run_id="tick")
            night = measure(emu, warehouse, nightly=True, run_id="night")
        finally:
            emu.stop()
            dispose_engine(url)

    counts = seed.counts
    print(f"\nMeasured on the seeded practice: {args.patients} patients → {counts['contacts']} contacts, "
          f"{counts['deals']} deals, {counts['appointments']} appointments (emulator, no change since)")
    for label, calls in (("intraday tick", tick), ("nightly run", night)):
        print(f"  {label}: {sum(calls.values())} calls")
        for step, n in calls.items():
            print(f"    {step:<45} {n}")

    setup = tick["portal setup"]
    print(f"\nExtrapolated to one practice with {args.contacts:,} contacts, {args.deals:,} deals, "
          f"{args.appointments:,} appointments:")
    figures = extrapolate(args.contacts, args.deals, args.appointments, setup)
    totals = {}
    for label, steps in figures.items():
        totals[label] = sum(steps.values())
        print(f"  {label}: {totals[label]:,} calls")
        for step, n in steps.items():
            print(f"    {step:<45} {n:,}")
    per_day = PRACTICES * (TICKS_PER_DAY * totals["intraday tick (no change)"]
                           + totals["nightly run (no change)"])
    print(f"\n  {PRACTICES} practices, {TICKS_PER_DAY} ticks + 1 nightly run a day: {per_day:,} calls "
          f"= {per_day / DAILY_BUDGET:.1%} of {DAILY_BUDGET:,} (writes for actual changes come on top)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
