"""The run-failure alert: logged always, POSTed to a webhook (a loopback Starlette app) when configured."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    job,
    op,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from biss_emulators.server import BackgroundServer
from biss_pipeline.domain.ivoris.client import IvorisUnavailableError
from biss_pipeline.keys import window_tags
from biss_pipeline.sensors.alerts import (
    FORMAT_ENV,
    UI_URL_ENV,
    WEBHOOK_ENV,
    build_run_failure_alert_sensor,
    run_failure_alert_sensor,
    webhook_format,
)

JUNE_1_TO_5 = window_tags(dt.date(2026, 6, 1), dt.date(2026, 6, 5))
PERSONAL = "Erika Mustermann, geb. 1970-01-01, erika@example.org"
FIELDS = {"event", "text", "run_url", "job", "run_id", "practice", "window_start", "window_end", "partition",
          "failed_steps", "error_class", "error_message"}


@op
def raw_appointments() -> None:
    raise IvorisUnavailableError("Ivoris site 'mb', route appointments: still HTTP 503 after 1 attempts")


@job(name="extract_mb", tags={"practice": "mb"})
def extract_mb() -> None:
    raw_appointments()


@op
def deals() -> None:
    raise ValueError(f"unexpected row for {PERSONAL}")


@job(name="pipeline_mb", tags={"practice": "mb"})
def pipeline_mb() -> None:
    deals()


class Webhook:
    """Records what was POSTed; `/broken` answers 500 like a webhook service having a bad day."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.server = BackgroundServer(Starlette(routes=[
            Route("/hook", self.hook, methods=["POST"]),
            Route("/broken", self.broken, methods=["POST"]),
        ]))

    async def hook(self, request: Request) -> Response:
        self.received.append(await request.json())
        return Response(status_code=204)

    async def broken(self, request: Request) -> Response:
        await request.body()
        return Response(status_code=500)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.server.start()
    try:
        yield hook
    finally:
        hook.server.stop()


class Logs(logging.Handler):
    """What gets logged: the sensor's own log (the context's logger, which is not in the logging tree)
    and any library's (httpx) through pytest's root-logger capture."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        super().__init__(logging.INFO)
        self.caplog = caplog
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def clear(self) -> None:
        self.lines.clear()
        self.caplog.clear()

    @property
    def text(self) -> str:
        return "\n".join([*self.lines, *(r.getMessage() for r in self.caplog.records)])


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Logs:
    caplog.set_level(logging.INFO)
    return Logs(caplog)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    # In memory (runs, events): quicker than a temporary instance on disk, same storage API.
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


def failure_context(instance: DagsterInstance, logs: Logs, failing_job, **tags: str):  # type: ignore[no-untyped-def]
    """A real failed run of `failing_job`, as the run-failure sensor sees it (its log going to `logs`)."""
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    assert not result.success
    [record] = instance.get_records_for_run(result.run_id, of_type=DagsterEventType.RUN_FAILURE).records
    context = build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name, dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance, dagster_run=instance.get_run_by_id(result.run_id)).for_run_failure()
    context.log.addHandler(logs)
    logs.clear()
    return context


def test_a_failure_is_posted_with_job_run_practice_window_and_error(
        instance: DagsterInstance, webhook: Webhook, monkeypatch: pytest.MonkeyPatch, logs: Logs) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, f"{webhook.server.base_url}/hook")
    context = failure_context(instance, logs, extract_mb, **JUNE_1_TO_5)
    run_failure_alert_sensor(context)

    [alert] = webhook.received
    assert set(alert) == FIELDS
    assert alert["event"] == "run_failure" and alert["job"] == "extract_mb"
    assert alert["run_id"] == context.dagster_run.run_id
    assert alert["practice"] == "mb"
    assert (alert["window_start"], alert["window_end"]) == ("2026-06-01", "2026-06-05")
    assert alert["failed_steps"] == ["raw_appointments"]
    assert alert["error_class"] == "IvorisUnavailableError"
    assert alert["error_message"] == "Ivoris site 'mb', route appointments: still HTTP 503 after 1 attempts"
    assert (f"run failed: job=extract_mb run_id={alert['run_id']} practice=mb window=2026-06-01..2026-06-05 "
            "steps=raw_appointments error=IvorisUnavailableError: Ivoris site 'mb'") in logs.text
    assert "posted to the webhook in BISS_ALERT_WEBHOOK_URL" in logs.text
    assert webhook.server.base_url not in logs.text  # the webhook URL may hold a token (httpx logs URLs)


def test_messages_of_unknown_errors_are_withheld(
        instance: DagsterInstance, webhook: Webhook, monkeypatch: pytest.MonkeyPatch, logs: Logs) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, f"{webhook.server.base_url}/hook")
    context = failure_context(instance, logs, pipeline_mb, **{"dagster/partition": "2026-06-03"})
    run_failure_alert_sensor(context)
    [alert] = webhook.received
    assert alert["error_class"] == "ValueError" and alert["partition"] == "2026-06-03"
    assert "withheld" in alert["error_message"]
    assert "Mustermann" not in str(alert)
    assert "error=ValueError: message withheld" in logs.text and "Mustermann" not in logs.text


def test_an_unreachable_or_failing_webhook_is_logged_not_raised(
        instance: DagsterInstance, webhook: Webhook, monkeypatch: pytest.MonkeyPatch, logs: Logs) -> None:
    context = failure_context(instance, logs, extract_mb)
    monkeypatch.setenv(WEBHOOK_ENV, f"{webhook.server.base_url}/broken")
    run_failure_alert_sensor(context)
    assert "not delivered to the webhook in BISS_ALERT_WEBHOOK_URL: HTTP 500" in logs.text

    logs.clear()
    url = f"{webhook.server.base_url}/hook"
    webhook.server.stop()  # connection refused now
    monkeypatch.setenv(WEBHOOK_ENV, url)
    build_run_failure_alert_sensor(timeout_s=1.0)(context)
    assert "not delivered to the webhook in BISS_ALERT_WEBHOOK_URL: ConnectError" in logs.text
    assert webhook.server.base_url not in logs.text
    assert webhook.received == []


def test_without_a_webhook_the_failure_is_only_logged(
        instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch, logs: Logs) -> None:
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    context = failure_context(instance, logs, extract_mb)
    run_failure_alert_sensor(context)
    assert "run failed: job=extract_mb" in logs.text and "window=-" in logs.text
    assert "webhook" not in logs.text


@pytest.mark.parametrize("kind", ["slack", "teams"])
def test_chat_services_get_the_shape_they_read_with_text_and_the_run_url(
        kind: str, instance: DagsterInstance, webhook: Webhook, monkeypatch: pytest.MonkeyPatch,
        logs: Logs) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, f"{webhook.server.base_url}/hook")
    monkeypatch.setenv(FORMAT_ENV, kind)
    monkeypatch.setenv(UI_URL_ENV, "https://dagster.example.org/")
    context = failure_context(instance, logs, extract_mb, **JUNE_1_TO_5)
    run_failure_alert_sensor(context)

    [body] = webhook.received
    url = f"https://dagster.example.org/runs/{context.dagster_run.run_id}"
    line = "run failed: job=extract_mb"
    if kind == "slack":
        # Slack incoming webhooks need `text` (notifications and fallback); blocks may add the link
        assert line in body["text"] and url in body["text"]
        [block] = body["blocks"]
        assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
        assert f"<{url}|" in block["text"]["text"]
    else:
        # Teams Workflows webhooks take a message whose attachment is an Adaptive Card
        assert body["type"] == "message"
        [attachment] = body["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["version"]
        [text] = card["body"]
        assert text["type"] == "TextBlock" and line in text["text"]
        [action] = card["actions"]
        assert action == {"type": "Action.OpenUrl", "title": "Open the run in Dagster", "url": url}
    assert "Mustermann" not in str(body)


def test_the_format_follows_the_webhook_host_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORMAT_ENV, raising=False)
    assert webhook_format("https://hooks.slack.com/services/T0/B0/x") == "slack"
    assert webhook_format("https://contoso.webhook.office.com/webhookb2/x") == "teams"
    assert webhook_format("https://prod-12.westeurope.logic.azure.com:443/workflows/x") == "teams"
    assert webhook_format("https://alerts.example.org/hook") == "json"
    monkeypatch.setenv(FORMAT_ENV, "slack")
    assert webhook_format("https://alerts.example.org/hook") == "slack"
    monkeypatch.setenv(FORMAT_ENV, "carrier-pigeon")
    with pytest.raises(ValueError, match=FORMAT_ENV):
        webhook_format("https://alerts.example.org/hook")
