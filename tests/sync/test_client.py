"""The HubSpot client: retries, rate limiter and statistics, against the emulator (SDK over HTTP)."""

from __future__ import annotations

import socket

import pytest

from biss_emulators.hubspot import HubSpotEmulator
from biss_pipeline.domain.hubspot.api import (
    HubSpotApiError,
    HubSpotDailyLimitError,
    HubSpotTransientError,
    UpsertInput,
)
from biss_pipeline.domain.hubspot.client import HubSpotClient, RateLimiter, RetrySettings
from biss_pipeline.domain.hubspot.model import SyncMapping
from biss_pipeline.domain.hubspot.portal import ensure_portal, portal_spec
from tests.sync.conftest import TOKEN, make_client


class Sleeps:
    """Records the pauses instead of taking them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def portal(emu: HubSpotEmulator) -> HubSpotEmulator:
    ensure_portal(make_client(emu), portal_spec(SyncMapping()))
    return emu


def _contact(key: str) -> UpsertInput:
    return UpsertInput(key, {"lastname": f"N{key}"})


def test_gateway_errors_are_retried_and_counted(portal: HubSpotEmulator) -> None:
    sleeps = Sleeps()
    client = make_client(portal, sleep=sleeps)
    portal.faults.fail_next_requests(2, status=503)
    portal.faults.fail_next_requests(1, status=524)

    outcome = client.batch_upsert("contacts", "ivoris_patient_id", [_contact("MB_1")])

    assert [r.key for r in outcome.results] == ["MB_1"]
    assert (client.stats.retries, client.stats.server_errors, client.stats.write_calls) == (3, 3, 4)
    assert len(sleeps.calls) == 3 and all(0 < s <= 0.2 for s in sleeps.calls)


def test_a_locked_record_waits_at_least_two_seconds(portal: HubSpotEmulator) -> None:
    sleeps = Sleeps()
    client = make_client(portal, sleep=sleeps)
    portal.faults.fail_next_requests(1, status=423)

    client.batch_upsert("contacts", "ivoris_patient_id", [_contact("MB_1")])

    assert client.stats.locked == 1 and sleeps.calls and sleeps.calls[0] >= 2.0


def test_the_daily_cap_is_not_retried(portal: HubSpotEmulator) -> None:
    portal.rate_limits = {"daily": 1, "search_per_second": 1000}
    client = make_client(portal, sleep=Sleeps())
    client.list_pipelines()

    with pytest.raises(HubSpotDailyLimitError) as error:
        client.list_pipelines()

    assert "DAILY" in str(error.value)
    assert client.stats.retries == 0 and client.stats.rate_limited == 1


def test_client_errors_are_not_retried_and_carry_no_values(portal: HubSpotEmulator) -> None:
    client = make_client(portal, sleep=Sleeps())
    invalid = UpsertInput("MB_1", {"email": "geheim-at-example.org"})

    with pytest.raises(HubSpotApiError) as error:
        client.batch_upsert("contacts", "ivoris_patient_id", [invalid])

    assert error.value.status == 400 and client.stats.retries == 0
    assert "geheim" not in str(error.value)
    assert error.value.__context__ is None and error.value.__cause__ is None  # no SDK body riding along
    assert error.value.info.problems == (("INVALID_EMAIL", "email"),)


def test_rate_limited_calls_are_retried_after_the_window(portal: HubSpotEmulator) -> None:
    portal.rate_limits = {"ten_secondly": 2, "window_s": 0.5, "search_per_second": 1000}
    client = HubSpotClient(TOKEN, portal.base_url, retry=RetrySettings(max_retries=6, backoff_base_s=0.01))
    for _ in range(2):  # someone else used the window up
        make_client(portal).list_pipelines()

    for _ in range(4):
        client.list_pipelines()

    assert client.stats.rate_limited >= 1
    assert client.limiter.capacity == 1 and client.limiter.window_s == 0.5


def test_connection_errors_are_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    client = HubSpotClient(
        TOKEN,
        f"http://127.0.0.1:{port}",
        sleep=sleeps,
        retry=RetrySettings(max_retries=2, backoff_base_s=0.01),
    )

    with pytest.raises(HubSpotTransientError):
        client.list_pipelines()

    assert client.stats.connection_errors == 3 and client.stats.gave_up == 1 and len(sleeps.calls) == 2


def test_upsert_207_errors_are_attributed_to_their_inputs(portal: HubSpotEmulator) -> None:
    portal.batch_conflicts = "per_input"
    client = make_client(portal)
    client.batch_upsert("contacts", "ivoris_patient_id", [UpsertInput("MB_1", {"email": "a@b.de"})])

    outcome = client.batch_upsert(
        "contacts",
        "ivoris_patient_id",
        [UpsertInput("MB_2", {"email": "a@b.de"}), UpsertInput("MB_3", {"email": "c@d.de"})],
    )

    assert [r.key for r in outcome.results] == ["MB_3"]
    assert [(e.key, e.info.email_conflict, e.info.status) for e in outcome.errors] == [("MB_2", True, 409)]


# ---------------------------------------------------------------------------------------------- limiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_limiter_keeps_below_the_tier_limit_in_a_rolling_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, 10.0, safety=0.9, reserve_share=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(90):
        limiter.acquire()
    assert clock.slept == []
    limiter.acquire()  # the 91st waits until the first leaves the window
    assert clock.slept == [pytest.approx(10.0)]


def test_limiter_adopts_headers_and_pauses_when_the_shared_budget_runs_out() -> None:
    clock = FakeClock()
    limiter = RateLimiter(190, clock=clock, sleep=clock.sleep)
    limiter.observe(
        {
            "X-HubSpot-RateLimit-Max": "250",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Remaining": "200",
        }
    )
    assert limiter.capacity == 180  # never above the tier's limit, minus the 5 % reserve
    limiter.observe(
        {
            "x-hubspot-ratelimit-max": "20",
            "x-hubspot-ratelimit-interval-milliseconds": "2000",
            "x-hubspot-ratelimit-remaining": "0",
        }
    )
    assert (limiter.capacity, limiter.window_s) == (19, 2.0)
    limiter.acquire()  # remaining 0 is below the reserve of 1: others use the budget, wait two slots
    assert clock.slept == [pytest.approx(2.0 / 20 * 2)]


def test_the_reserve_for_other_integrations_is_configurable() -> None:
    clock = FakeClock()
    limiter = RateLimiter(190, reserve_share=0.2, clock=clock, sleep=clock.sleep)
    limiter.observe({"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "100"})
    assert (limiter.capacity, limiter.reserve) == (152, 38)
    limiter.observe({"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "38"})
    limiter.acquire()  # our own use stops at the capacity, which leaves exactly the reserve: no pause
    assert clock.slept == []
    limiter.observe({"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "30"})
    limiter.acquire()  # someone else ate into the reserve
    assert clock.slept == [pytest.approx(10.0 / 190 * 9)]


def test_search_has_its_own_window_below_five_per_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(190, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        limiter.acquire(search=True)
    assert clock.slept == []
    limiter.acquire(search=True)
    assert clock.slept == [pytest.approx(1.0)]


def test_search_goes_through_the_sdk_and_its_own_limiter(portal: HubSpotEmulator) -> None:
    client = make_client(portal)
    client.batch_upsert("contacts", "ivoris_patient_id", [_contact("MB_1")])
    portal.flush_search_index()

    page = client.search(
        "contacts",
        {
            "filter_groups": [
                {"filters": [{"propertyName": "ivoris_patient_id", "operator": "EQ", "value": "MB_1"}]}
            ],
            "properties": ["lastname"],
        },
    )

    assert page["total"] == 1 and page["results"][0]["properties"]["lastname"] == "NMB_1"
    assert client.stats.calls_by_kind["objects.search"] == 1 and client.stats.write_calls == 1


def test_the_resource_validates_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from biss_pipeline.resources.hubspot import HubSpotResource

    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    with pytest.raises(ValueError, match="batch_size"):
        HubSpotResource(access_token=TOKEN, batch_size=101).get_client()
    with pytest.raises(ValueError, match="tier"):
        HubSpotResource(access_token=TOKEN, tier="platinum").get_client()
    client = HubSpotResource(access_token=TOKEN, tier="starter").get_client()
    assert client.limiter.capacity == 95  # starter: 100 per 10 s, 5 % kept for other integrations


def test_reads_by_record_id_leave_id_property_out(portal: HubSpotEmulator) -> None:
    """The strict emulator answers 400 to `idProperty: "hs_object_id"`, as HubSpot does."""
    client = make_client(portal)
    outcome = client.batch_upsert("contacts", "ivoris_patient_id", [_contact("MB_1"), _contact("MB_2")])
    ids = [r.hubspot_id for r in outcome.results]

    by_id = client.batch_read("contacts", "hs_object_id", [*ids, "999999"], ["lastname"])
    direct = client.read_by_ids("contacts", ids, ["lastname"])

    assert by_id == direct and set(by_id) == set(ids)
    assert {values["lastname"] for values in by_id.values()} == {"NMB_1", "NMB_2"}
    by_key = client.batch_read("contacts", "ivoris_patient_id", ["MB_2"], ["lastname"])
    assert by_key["MB_2"]["lastname"] == "NMB_2"


def test_association_reads_follow_paging(portal: HubSpotEmulator) -> None:
    portal.state.portal = portal.portal.with_changes(association_read_page_size=2)
    client = make_client(portal)
    contact = client.batch_upsert("contacts", "ivoris_patient_id", [_contact("MB_1")]).results[0].hubspot_id
    appointments = client.batch_upsert(
        "0-421", "ivoris_appointment_id",
        [UpsertInput(f"MB_{i}", {"hs_appointment_status": "SCHEDULED"}) for i in range(5)])
    targets = [r.hubspot_id for r in appointments.results]
    labels = client.association_labels("contacts", "0-421")
    type_id = next(label.type_id for label in labels if label.label is None)
    client.create_associations("contacts", "0-421", type_id, [(contact, t) for t in targets])
    mark = len(portal.request_log)

    found = client.read_associations("contacts", "0-421", [contact])

    assert found == {contact: set(targets)}
    reads = [r for r in portal.request_log[mark:] if r.path.endswith("/batch/read")]
    assert len(reads) == 3  # 2 + 2 + 1 targets
