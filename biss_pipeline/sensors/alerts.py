"""Run-failure alerts: every failed run is logged, and POSTed to a webhook when one is configured.

`run_failure_alert` is a `@run_failure_sensor` over the code location's jobs. For each failed run it
logs one line and, if `BISS_ALERT_WEBHOOK_URL` is set, POSTs it in the shape the webhook's service
reads (`BISS_ALERT_WEBHOOK_FORMAT`: `slack`, `teams`, `json`, or `auto`, the default, which picks
Slack for hooks.slack.com, Teams for Office 365 and Power Automate webhook hosts, else `json`):

* Slack incoming webhook: `{"text": ..., "blocks": [...]}` (`text` is what notifications show);
* Teams (Workflows webhook): a message with one Adaptive Card (the line, and a button to the run);
* json: `{"event": "run_failure", "text": ..., "run_url": ..., "job": ..., "run_id": ...,
  "practice": ..., "window_start": ..., "window_end": ..., "partition": ..., "failed_steps": [...],
  "error_class": ..., "error_message": ...}`.

The run's URL is `$BISS_DAGSTER_URL/runs/<run id>` (default `http://127.0.0.1:3000`, where
`make dev` serves the UI).

What it never sends: payloads or personal data. The error message is passed on only for the
pipeline's own error classes, whose messages are written to name site, route, tab or HTTP status and
nothing else; any other exception (a library's, a bug's) may carry data in its text, so only its class
goes out and the message stays in Dagster's run log, where access is controlled.

One POST per failure, with a timeout and no retries: an alert storm helps nobody, and a webhook that
is down must not fail or slow the sensor. A failed POST is logged (class or HTTP status, never the URL,
which for chat webhooks is itself a secret).
"""

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx
from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorDefinition,
    run_failure_sensor,
)

from biss_pipeline.keys import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

WEBHOOK_ENV = "BISS_ALERT_WEBHOOK_URL"
FORMAT_ENV = "BISS_ALERT_WEBHOOK_FORMAT"
UI_URL_ENV = "BISS_DAGSTER_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
FORMATS = ("auto", "slack", "teams", "json")
TEAMS_HOSTS = ("webhook.office.com", "logic.azure.com", "powerplatform.com", "powerautomate.com")
SENSOR_NAME = "run_failure_alert"
MAX_MESSAGE_CHARS = 500
# Errors whose messages this project writes without data (see the module docstring).
SAFE_MESSAGE_ERRORS: frozenset[str] = frozenset({
    "IvorisError", "IvorisUnavailableError", "IvorisResponseError",
    "ConfigError", "MappingSourceError",
    "HubSpotError", "HubSpotApiError", "HubSpotTransientError", "HubSpotDailyLimitError",
    "SyncAborted", "PortalSetupError", "RemediationError",
    "Failure",  # raised by the pipeline's assets with descriptions written for this log
    "DagsterExecutionInterruptedError",
})
# Dagster's wrappers around the asset's own exception: the useful error is their cause.
WRAPPERS: frozenset[str] = frozenset({
    "DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError", "RetryRequestedFromPolicy",
    "DagsterRunWorkerFailedError",
})


def _chain(error: Any) -> Iterator[Any]:
    while error is not None:
        yield error
        error = getattr(error, "cause", None) or getattr(error, "context", None)


def root_error(error: Any) -> Any:
    """The first error in the cause chain that is not one of Dagster's wrappers (else the innermost)."""
    chain = list(_chain(error))
    return next((e for e in chain if e.cls_name not in WRAPPERS), chain[-1] if chain else None)


def error_fields(error: Any) -> tuple[str | None, str | None]:
    """(class, message) of a Dagster `SerializableErrorInfo`, the message only for safe classes."""
    if error is None:
        return None, None
    name = str(error.cls_name)
    if name not in SAFE_MESSAGE_ERRORS:
        return name, "message withheld (may contain data); see the run's log in Dagster"
    # The stored message is "module.Class: text\n"; keep the text, first line only.
    text = str(error.message).strip()
    head, separator, rest = text.partition(": ")
    if separator and head.split(".")[-1] == name:
        text = rest
    return name, text.splitlines()[0][:MAX_MESSAGE_CHARS] if text else ""


def _step_errors(events: Iterable[Any]) -> tuple[list[str], Any]:
    steps: list[str] = []
    first_error = None
    for event in events:
        if event.step_key:
            steps.append(event.step_key)
        error = getattr(event.event_specific_data, "error", None)
        first_error = first_error or error
    return steps, first_error


def run_url(run_id: str) -> str:
    base = os.environ.get(UI_URL_ENV, "").strip() or DEFAULT_UI_URL
    return f"{base.rstrip('/')}/runs/{run_id}"


def alert_payload(context: RunFailureSensorContext) -> dict[str, Any]:
    """The fields of one failure: run identity and URL, practice and window tags, error class and
    message, and `text`, the one line a person reads."""
    run = context.dagster_run
    tags: Mapping[str, str] = run.tags
    steps, error = _step_errors(context.get_step_failure_events())
    if error is None:  # failed outside any step (e.g. a resource or the run worker)
        error = getattr(context.failure_event.event_specific_data, "error", None)
    error_class, error_message = error_fields(root_error(error))
    if error_class is None:
        # Dagster's own run failure text ("Execution of run for ... failed. ...") names no data.
        error_message = (context.failure_event.message or "")[:MAX_MESSAGE_CHARS]
    payload = {
        "event": "run_failure",
        "run_url": run_url(run.run_id),
        "job": run.job_name,
        "run_id": run.run_id,
        "practice": tags.get("practice"),
        "window_start": tags.get(RANGE_START_TAG),
        "window_end": tags.get(RANGE_END_TAG),
        "partition": tags.get(PARTITION_TAG),
        "failed_steps": steps,
        "error_class": error_class,
        "error_message": error_message,
    }
    payload["text"] = f"{describe(payload)} ({payload['run_url']})"
    return payload


def webhook_format(url: str) -> str:
    """The configured format, or for `auto` the service the URL's host belongs to."""
    chosen = os.environ.get(FORMAT_ENV, "auto").strip().lower() or "auto"
    if chosen not in FORMATS:
        raise ValueError(f"{FORMAT_ENV} must be one of {', '.join(FORMATS)}, got {chosen!r}")
    if chosen != "auto":
        return chosen
    host = httpx.URL(url).host
    if host == "hooks.slack.com":
        return "slack"
    if any(host == suffix or host.endswith("." + suffix) for suffix in TEAMS_HOSTS):
        return "teams"
    return "json"


def webhook_body(payload: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """What the service reads: Slack's `text` (plus a block with a link), Teams' Adaptive Card, or the
    fields as they are."""
    text, url = str(payload["text"]), str(payload["run_url"])
    if kind == "slack":
        return {"text": text, "blocks": [{"type": "section", "text": {
            "type": "mrkdwn", "text": f"{describe(payload)}\n<{url}|Open the run in Dagster>"}}]}
    if kind == "teams":
        return {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard", "version": "1.4",
                "body": [{"type": "TextBlock", "text": describe(payload), "wrap": True}],
                "actions": [{"type": "Action.OpenUrl", "title": "Open the run in Dagster", "url": url}],
            },
        }]}
    return dict(payload)


def describe(payload: Mapping[str, Any]) -> str:
    window = (f"{payload['window_start']}..{payload['window_end']}" if payload["window_start"]
              else payload["partition"] or "-")
    steps = ",".join(payload["failed_steps"]) or "-"
    return (f"run failed: job={payload['job']} run_id={payload['run_id']} "
            f"practice={payload['practice'] or '-'} window={window} steps={steps} "
            f"error={payload['error_class'] or '-'}: {payload['error_message'] or ''}")


class _HideUrls(logging.Filter):
    """Drops httpx's per-request INFO line ("HTTP Request: POST <url> ...") for the webhook URLs: a chat
    webhook's URL carries its token, and httpx would otherwise print it wherever INFO logs go."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(str(arg) in self.urls for arg in args)


_HIDE_URLS = _HideUrls()
logging.getLogger("httpx").addFilter(_HIDE_URLS)


def post_alert(url: str, payload: Mapping[str, Any], timeout_s: float) -> str | None:
    """POST once; None on success, else what went wrong (status or error class, never the URL)."""
    _HIDE_URLS.urls.add(str(httpx.URL(url)))
    try:
        response = httpx.post(url, json=dict(payload), timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if response.status_code >= 300:
        return f"HTTP {response.status_code}"
    return None


def build_run_failure_alert_sensor(
    *, name: str = SENSOR_NAME, webhook_env: str = WEBHOOK_ENV, timeout_s: float = 5.0,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """Running by default: it only logs unless the webhook variable is set."""

    @run_failure_sensor(name=name, default_status=default_status,
                        description="Logs every failed run (job, run, practice, window, error class) and "
                                    f"POSTs it as JSON to ${webhook_env} when that is set.")
    def run_failure_alert(context: RunFailureSensorContext) -> None:
        payload = alert_payload(context)
        context.log.error(describe(payload))
        url = os.environ.get(webhook_env, "").strip()
        if not url:
            return
        try:
            body = webhook_body(payload, webhook_format(url))
        except ValueError as exc:  # a misconfigured format must not crash the sensor
            context.log.warning(f"alert for run {payload['run_id']} not delivered: {exc}")
            return
        problem = post_alert(url, body, timeout_s)
        if problem is None:
            context.log.info(f"alert for run {payload['run_id']} posted to the webhook in {webhook_env}")
        else:
            context.log.warning(f"alert for run {payload['run_id']} not delivered to the webhook in "
                                f"{webhook_env}: {problem}")

    return run_failure_alert


run_failure_alert_sensor = build_run_failure_alert_sensor()
