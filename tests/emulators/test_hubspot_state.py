"""The Python handle, persistence between runs, and the `emulate hubspot` CLI hook."""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicDefaultAssociationMultiPost,
    PublicDefaultAssociationMultiPost,
    PublicObjectId,
)
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealCreate

from biss_emulators.hubspot import HubSpotEmulator, cli
from biss_emulators.server import free_port
from tests.emulators.conftest_hubspot import TOKEN, add_unique_property, client, emu, hubspot_server

__all__ = ["client", "emu", "hubspot_server"]


def _upsert(client: HubSpot, key: str, **props: str) -> bool:
    result = client.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(id=key, id_property="ivoris_patient_id", properties=props)
            ]
        )
    )
    return bool(result.results[0].new)


def _seed_portal(client: HubSpot) -> tuple[str, str]:
    add_unique_property(client, "contacts", "ivoris_patient_id")
    _upsert(client, "MB_1", firstname="Anna")
    contact_id = client.crm.contacts.basic_api.get_by_id("MB_1", id_property="ivoris_patient_id").id
    deal_id = client.crm.deals.basic_api.create(DealCreate(properties={"dealname": "MB_A1"})).id
    client.crm.associations.v4.batch_api.create_default(
        "deals",
        "contacts",
        BatchInputPublicDefaultAssociationMultiPost(
            inputs=[
                PublicDefaultAssociationMultiPost(
                    _from=PublicObjectId(id=deal_id), to=PublicObjectId(id=contact_id)
                )
            ]
        ),
    )
    return contact_id, deal_id


def test_handle_exposes_state_objects_associations_and_log(emu: HubSpotEmulator, client: HubSpot) -> None:
    contact_id, deal_id = _seed_portal(client)
    deal = emu.state.objects["deals"][deal_id]
    assert set(deal) >= {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert emu.objects("0-3")[0]["properties"]["dealname"] == "MB_A1"
    assert emu.associations("deals", "contacts") == [(deal_id, contact_id, 3)]
    assert ("contacts", contact_id, "deals", deal_id, 4) in emu.state.associations
    assert "default" in emu.state.pipelines["deals"]
    assert emu.state.properties["contacts"]["ivoris_patient_id"]["hasUniqueValue"] is True
    entry = emu.requests(path_contains="/batch/upsert")[0]
    assert (entry.method, entry.status, entry.batch_size) == ("POST", 200, 1)
    assert entry.timestamp <= time.time()
    emu.reset()
    assert emu.objects("contacts") == [] and emu.request_log == []
    assert "ivoris_patient_id" not in emu.state.properties["contacts"]


def test_state_file_keeps_the_portal_between_runs(tmp_path: Path) -> None:
    state_file = tmp_path / "hubspot.json"
    with HubSpotEmulator(token=TOKEN, state_path=state_file, search_index_delay_s=3600) as first:
        contact_id, deal_id = _seed_portal(HubSpot(access_token=TOKEN, host=first.base_url))
    assert json.loads(state_file.read_text())["version"] == 1

    with HubSpotEmulator(token=TOKEN, state_path=state_file, search_index_delay_s=3600) as second:
        client = HubSpot(access_token=TOKEN, host=second.base_url)
        assert [o["id"] for o in second.objects("contacts")] == [contact_id]
        assert second.associations("deals", "contacts") == [(deal_id, contact_id, 3)]
        assert _upsert(client, "MB_1", lastname="B") is False  # the unique index came back too
        found = client.crm.contacts.search_api.do_search(PublicObjectSearchRequest())
        assert found.total == 1  # a loaded portal is fully indexed
        new_deal = client.crm.deals.basic_api.create(DealCreate(properties={"dealname": "MB_A2"}))
        assert int(new_deal.id) > int(deal_id)


def test_save_needs_a_path(tmp_path: Path) -> None:
    emulator = HubSpotEmulator()
    with pytest.raises(ValueError):
        emulator.save()
    target = emulator.save(tmp_path / "nested" / "state.json")
    assert target.exists()


def test_inspection_save_route(tmp_path: Path) -> None:
    state_file = tmp_path / "s.json"
    with HubSpotEmulator(token=TOKEN, state_path=state_file) as emulator:
        assert httpx.post(f"{emulator.base_url}/_emulator/save").status_code == 204
        assert state_file.exists()
    with HubSpotEmulator(token=TOKEN) as emulator:
        assert httpx.post(f"{emulator.base_url}/_emulator/save").status_code == 400


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_arguments_and_build() -> None:
    assert cli.__doc__ is not None and cli.__doc__.strip().splitlines()[0]
    defaults = _parse()
    assert (defaults.host, defaults.tier, defaults.search_delay) == ("127.0.0.1", "professional", 2.0)
    args = _parse(
        "--port",
        "0",
        "--token",
        "T",
        "--tier",
        "starter",
        "--random-502",
        "0.1",
        "--random-504",
        "0.2",
        "--lost-response-rate",
        "0.3",
        "--latency",
        "0.4",
        "--search-delay",
        "0.5",
    )
    emulator = cli.build(args)
    assert emulator.token == "T"
    assert emulator.rate_limits.ten_secondly == 100
    assert emulator.search_index_delay_s == 0.5
    assert emulator.faults.as_dict()["lost_response_rate"] == 0.3
    with pytest.raises(ValueError):
        cli.build(_parse("--host", "0.0.0.0"))


def test_cli_runs_in_the_foreground_and_saves_on_exit(tmp_path: Path) -> None:
    port, state_file = free_port(), tmp_path / "portal.json"
    script = (
        "import argparse, sys\n"
        "from biss_emulators.hubspot import cli\n"
        "p = argparse.ArgumentParser(); cli.add_arguments(p)\n"
        "sys.exit(cli.run(p.parse_args(sys.argv[1:])))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "--port", str(port), "--token", "T", "--state-file", str(state_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/_emulator/state", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "emulator did not come up"
                time.sleep(0.1)
        HubSpot(access_token="T", host=base).crm.deals.basic_api.create(
            DealCreate(properties={"dealname": "x"})
        )
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 0, output
    saved = json.loads(state_file.read_text())
    assert [d["properties"]["dealname"] for d in saved["objects"]["deals"].values()] == ["x"]


@pytest.mark.skipif(
    importlib.util.find_spec("biss_emulators.ivoris.cli") is None,
    reason="the project CLI imports the Ivoris emulator's CLI, which is not there yet",
)
def test_project_cli_knows_the_hubspot_emulator() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "biss_pipeline.cli", "emulate", "hubspot", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for option in (
        "--port",
        "--token",
        "--tier",
        "--state-file",
        "--lost-response-rate",
        "--allow-non-loopback",
    ):
        assert option in result.stdout
