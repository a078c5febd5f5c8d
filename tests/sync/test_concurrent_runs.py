"""Two sync runs at the same moment against one portal cannot create duplicates.

In production the `hubspot` pool (limit 1, dagster.yaml) keeps HubSpot writers apart; this
test takes that guard away and lets two syncs race on purpose. What keeps HubSpot clean is
the write model itself: every record goes in by batch upsert on its unique Ivoris key, so
whichever run comes second updates instead of creating. The portal setup (properties,
pipeline), which HubSpot cannot upsert, runs once before the race, as the pool would order it.
"""

from __future__ import annotations

import threading
from collections import Counter

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.hubspot import SyncMapping, ensure_portal, portal_spec, sync_practice
from biss_pipeline.resources.warehouse import WarehouseResource
from tests.sync.conftest import make_client
from tests.sync.seed import Seed, portal_state
from tests.sync.test_sync import _reference_state

UNIQUE_KEYS = {"contacts": "ivoris_patient_id", "deals": "ivoris_deal_key", "0-421": "ivoris_appointment_id"}


def test_two_simultaneous_syncs_leave_exactly_one_object_per_key(
        emu: HubSpotEmulator, warehouse_url: str, tmp_path) -> None:
    seed = Seed(patients=60)
    reference = _reference_state(seed, emu, str(tmp_path / "reference.sqlite"))
    warehouse = WarehouseResource(url=warehouse_url).get()
    seed.write(warehouse)
    ensure_portal(make_client(emu), portal_spec(SyncMapping()))

    start_together = threading.Barrier(2)
    reports: list = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            client = make_client(emu)
            start_together.wait()
            reports.append(sync_practice(client, warehouse, "mb", batch_size=10))
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert not failures, failures
    for object_type, key in UNIQUE_KEYS.items():
        per_key = Counter(o["properties"].get(key) for o in emu.objects(object_type))
        assert per_key and max(per_key.values()) == 1, f"duplicate {object_type}"
    assert portal_state(emu) == reference
    # both runs did real work at the same time: each one sent upserts
    assert all(report.calls["write_calls"] > 0 for report in reports)
