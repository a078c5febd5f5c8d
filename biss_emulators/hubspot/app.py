"""The Starlette app: HubSpot's routes, and around every API call the things a client meets before and
after HubSpot's own logic (auth, rate limits, gateway faults, latency, lost responses)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from biss_emulators.hubspot.errors import (
    AUTH_MISSING_MESSAGE,
    HubSpotError,
    new_correlation_id,
    validation_error,
)
from biss_emulators.hubspot.faults import Faults
from biss_emulators.hubspot.limits import RateLimiter
from biss_emulators.hubspot.portal import object_scope, schema_scope
from biss_emulators.hubspot.schema import resolve_object_type
from biss_emulators.hubspot.state import HubSpotState
from biss_emulators.hubspot.values import now_iso

JSON_TYPE = "application/json;charset=utf-8"
_GATEWAY_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int  # what the client received
    batch_size: int | None  # number of `inputs` for batch calls
    timestamp: float
    fault: str | None = None  # "random_502", "lost_response", "rate_limited", "rate_limit_storm", …
    committed_status: int | None = None  # for a lost response: what HubSpot did before the 502

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Runtime:
    """What the routes share with the Python handle."""

    state: HubSpotState
    limiter: RateLimiter
    faults: Faults
    token: str | None
    request_log: list[RequestRecord] = field(default_factory=list)
    writes_since_save: int = 0
    max_log_entries: int = 200_000  # a long demo run must not grow the log without bound
    on_save: Callable[[], None] | None = None
    log_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Call:
    params: dict[str, str]
    query: QueryParams
    body: Any

    def json_object(self) -> dict[str, Any]:
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise validation_error("Invalid input JSON: expected an object")
        return self.body

    def flag(self, name: str) -> bool:
        return self.query.get(name, "false").lower() == "true"

    def listed(self, name: str) -> list[str]:
        """`?properties=a,b` and `?properties=a&properties=b` (what the SDK sends) both work."""
        return [item for raw in self.query.getlist(name) for item in raw.split(",") if item]

    def integer(self, name: str, default: int) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise validation_error(f"{name} must be an integer, got {raw!r}") from None


Reply = tuple[int, Any]
Handler = Callable[[Call], Reply]


def _json_response(status: int, payload: Any, headers: dict[str, str]) -> Response:
    if status == 204 or payload is None:
        return Response(status_code=status, headers=headers)
    return Response(
        content=json.dumps(payload), status_code=status, headers={**headers, "Content-Type": JSON_TYPE}
    )


def _gateway_response(status: int, headers: dict[str, str]) -> Response:
    # HubSpot's gateway errors come from its CDN as HTML pages, not JSON
    title = _GATEWAY_PAGES.get(status, f"{status} Error")
    html = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
    return Response(content=html, status_code=status, headers={**headers, "Content-Type": "text/html"})


def _batch_reply(
    results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str, ok_status: int = 200
) -> Reply:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": now_iso(),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return 207, body
    return ok_status, body


MISSING_SCOPES_MESSAGE = (
    "This app hasn't been granted all required scopes to make this call. Read more about required scopes "
    "here: https://developers.hubspot.com/scopes."
)


def _portal_refusal(rt: Runtime, request: Request, write: bool, correlation: str) -> tuple[int, Any] | None:
    """What the portal answers before HubSpot's own logic: an object type that is not enabled, or a
    token without the scopes the call needs (HubSpot's 403 MISSING_SCOPES body)."""
    portal = rt.state.portal
    params = request.path_params
    refs = [params[k] for k in ("object_type", "from_type", "to_type") if k in params]
    types = [ot for ot in (resolve_object_type(str(r)) for r in refs) if ot is not None]
    if not portal.appointments_enabled:
        for ref in refs:
            ot = resolve_object_type(str(ref))
            if ot is not None and ot.name == "appointments":
                status = portal.disabled_appointments_status
                if status == 404:
                    return 404, HubSpotError(404, "OBJECT_NOT_FOUND", f"Object type {ref} not found").body(
                        correlation
                    )
                return status, validation_error(f"Unable to infer object type from: {ref}").body(correlation)
    scope_of = schema_scope if request.url.path.startswith("/crm/v3/properties") else object_scope
    access = "write" if write else "read"
    required = sorted({scope_of(ot.name, access) for ot in types})
    granted = portal.granted(rt.token)
    if required and not set(required) <= granted:
        return 403, {
            "status": "error",
            "message": MISSING_SCOPES_MESSAGE,
            "correlationId": correlation,
            "errors": [
                {
                    "message": "All of the following scopes are required.",
                    "context": {"requiredGranularScopes": required},
                }
            ],
            "links": {"scopes": "https://developers.hubspot.com/scopes"},
            "category": "MISSING_SCOPES",
        }
    return None


def build_app(rt: Runtime) -> Starlette:
    state = rt.state

    def endpoint(handler: Handler, *, kind: str = "api", write: bool = False) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            correlation = new_correlation_id()
            base_headers = {"X-HubSpot-Correlation-Id": correlation}
            raw = await request.body()
            body: Any = None
            bad_json: str | None = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    bad_json = str(exc)
            batch_size = None
            if (
                "/batch/" in request.url.path
                and isinstance(body, dict)
                and isinstance(body.get("inputs"), list)
            ):
                batch_size = len(body["inputs"])

            def log(status: int, fault: str | None = None, committed: int | None = None) -> None:
                with rt.log_lock:
                    if len(rt.request_log) >= rt.max_log_entries:
                        del rt.request_log[: rt.max_log_entries // 10]
                    rt.request_log.append(
                        RequestRecord(
                            request.method,
                            request.url.path,
                            status,
                            batch_size,
                            time.time(),
                            fault,
                            committed,
                        )
                    )

            if rt.token is not None and request.headers.get("authorization") != f"Bearer {rt.token}":
                log(401, "unauthorized")
                return _json_response(
                    401,
                    {
                        "status": "error",
                        "message": AUTH_MISSING_MESSAGE,
                        "correlationId": correlation,
                        "category": "INVALID_AUTHENTICATION",
                    },
                    {**base_headers, "X-HubSpot-Auth-Failure": "401 Unauthorized"},
                )

            refusal = _portal_refusal(rt, request, write, correlation)
            if refusal is not None:
                log(refusal[0], "portal_refusal")
                return _json_response(refusal[0], refusal[1], base_headers)

            storm = rt.faults.roll_rate_limit()
            decision = rt.limiter.storm(kind) if storm else rt.limiter.acquire(kind)
            headers = {**base_headers, **decision.headers}
            if not decision.allowed:
                log(429, "rate_limit_storm" if storm else "rate_limited")
                assert decision.body is not None
                return _json_response(429, {**decision.body, "correlationId": correlation}, headers)

            gateway = rt.faults.roll_gateway()
            if rt.faults.latency_s > 0:
                await asyncio.sleep(rt.faults.latency_s)
            if gateway is not None:
                log(gateway, f"random_{gateway}")
                return _gateway_response(gateway, base_headers)

            try:
                if bad_json is not None:
                    raise validation_error(f"Invalid input JSON: {bad_json}")
                status, payload = handler(Call(dict(request.path_params), request.query_params, body))
            except HubSpotError as exc:
                status, payload = exc.status, exc.body(correlation)

            if write and 200 <= status < 300:
                rt.writes_since_save += 1
                if rt.faults.roll_lost_response():
                    log(502, "lost_response", status)
                    return _gateway_response(502, base_headers)
            log(status)
            return _json_response(status, payload, headers)

        return run

    # ------------------------------------------------------------------ CRM objects

    def search(c: Call) -> Reply:
        return 200, state.search(c.params["object_type"], c.json_object())

    def batch_create(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.batch_create(c.params["object_type"], c.json_object())
        return _batch_reply(results, errors, started, 201)

    def batch_read(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.batch_read(
            c.params["object_type"], c.json_object(), archived=c.flag("archived")
        )
        return _batch_reply(results, errors, started)

    def batch_update(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.batch_update(c.params["object_type"], c.json_object())
        return _batch_reply(results, errors, started)

    def batch_upsert(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.batch_upsert(c.params["object_type"], c.json_object())
        return _batch_reply(results, errors, started)

    def batch_archive(c: Call) -> Reply:
        state.batch_archive(c.params["object_type"], c.json_object())
        return 204, None

    def list_objects(c: Call) -> Reply:
        return 200, state.list_page(
            c.params["object_type"],
            limit=c.integer("limit", 10),
            after=c.query.get("after"),
            properties=c.listed("properties") or None,
            archived=c.flag("archived"),
            associations=c.listed("associations"),
        )

    def create_object(c: Call) -> Reply:
        return 201, state.create(c.params["object_type"], c.json_object())

    def get_object(c: Call) -> Reply:
        return 200, state.get(
            c.params["object_type"],
            c.params["object_id"],
            properties=c.listed("properties") or None,
            id_property=c.query.get("idProperty"),
            archived=c.flag("archived"),
            associations=c.listed("associations"),
        )

    def update_object(c: Call) -> Reply:
        return 200, state.update(
            c.params["object_type"], c.params["object_id"], c.json_object(), c.query.get("idProperty")
        )

    def archive_object(c: Call) -> Reply:
        state.archive(c.params["object_type"], c.params["object_id"])
        return 204, None

    # ------------------------------------------------------------------ properties

    def list_properties(c: Call) -> Reply:
        return 200, {"results": state.list_properties(c.params["object_type"], archived=c.flag("archived"))}

    def create_property(c: Call) -> Reply:
        return 201, state.create_property(c.params["object_type"], c.json_object())

    def get_property(c: Call) -> Reply:
        return 200, state.get_property(c.params["object_type"], c.params["name"])

    def update_property(c: Call) -> Reply:
        return 200, state.update_property(c.params["object_type"], c.params["name"], c.json_object())

    def archive_property(c: Call) -> Reply:
        state.archive_property(c.params["object_type"], c.params["name"])
        return 204, None

    def batch_create_properties(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.batch_create_properties(c.params["object_type"], c.json_object())
        return _batch_reply(results, errors, started, 201)

    def batch_read_properties(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.batch_read_properties(c.params["object_type"], c.json_object())
        return _batch_reply(results, errors, started)

    def batch_archive_properties(c: Call) -> Reply:
        for item in c.json_object().get("inputs") or []:
            try:
                state.archive_property(c.params["object_type"], str((item or {}).get("name", "")))
            except HubSpotError as exc:
                if exc.status != 404:
                    raise
        return 204, None

    def list_groups(c: Call) -> Reply:
        return 200, {"results": state.list_groups(c.params["object_type"])}

    def create_group(c: Call) -> Reply:
        return 201, state.create_group(c.params["object_type"], c.json_object())

    def get_group(c: Call) -> Reply:
        return 200, state.get_group(c.params["object_type"], c.params["name"])

    def update_group(c: Call) -> Reply:
        return 200, state.update_group(c.params["object_type"], c.params["name"], c.json_object())

    def archive_group(c: Call) -> Reply:
        state.archive_group(c.params["object_type"], c.params["name"])
        return 204, None

    # ------------------------------------------------------------------ pipelines

    def list_pipelines(c: Call) -> Reply:
        return 200, {"results": state.list_pipelines(c.params["object_type"])}

    def create_pipeline(c: Call) -> Reply:
        return 201, state.create_pipeline(c.params["object_type"], c.json_object())

    def get_pipeline(c: Call) -> Reply:
        return 200, state.get_pipeline(c.params["object_type"], c.params["pipeline_id"])

    def update_pipeline(c: Call) -> Reply:
        return 200, state.update_pipeline(c.params["object_type"], c.params["pipeline_id"], c.json_object())

    def replace_pipeline(c: Call) -> Reply:
        return 200, state.replace_pipeline(c.params["object_type"], c.params["pipeline_id"], c.json_object())

    def archive_pipeline(c: Call) -> Reply:
        state.archive_pipeline(c.params["object_type"], c.params["pipeline_id"])
        return 204, None

    def list_stages(c: Call) -> Reply:
        return 200, {"results": state.list_stages(c.params["object_type"], c.params["pipeline_id"])}

    def create_stage(c: Call) -> Reply:
        return 201, state.create_stage(c.params["object_type"], c.params["pipeline_id"], c.json_object())

    def get_stage(c: Call) -> Reply:
        return 200, state.get_stage(c.params["object_type"], c.params["pipeline_id"], c.params["stage_id"])

    def update_stage(c: Call) -> Reply:
        return 200, state.update_stage(
            c.params["object_type"],
            c.params["pipeline_id"],
            c.params["stage_id"],
            c.json_object(),
            replace=False,
        )

    def replace_stage(c: Call) -> Reply:
        return 200, state.update_stage(
            c.params["object_type"],
            c.params["pipeline_id"],
            c.params["stage_id"],
            c.json_object(),
            replace=True,
        )

    def archive_stage(c: Call) -> Reply:
        state.archive_stage(c.params["object_type"], c.params["pipeline_id"], c.params["stage_id"])
        return 204, None

    # ------------------------------------------------------------------ associations v4

    def assoc_default_batch(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.associate_default_batch(
            c.params["from_type"], c.params["to_type"], c.json_object()
        )
        _, body = _batch_reply(results, errors, started)
        return 200, body  # the SDK maps only 200 for this call, errors or not

    def assoc_create_batch(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.associate_batch(c.params["from_type"], c.params["to_type"], c.json_object())
        return _batch_reply(results, errors, started, 201)

    def assoc_read_batch(c: Call) -> Reply:
        started = now_iso()
        results, errors = state.read_associations_batch(
            c.params["from_type"], c.params["to_type"], c.json_object()
        )
        return _batch_reply(results, errors, started)

    def assoc_archive_batch(c: Call) -> Reply:
        state.disassociate_batch(c.params["from_type"], c.params["to_type"], c.json_object())
        return 204, None

    def token_info(c: Call) -> Reply:
        body = c.json_object()
        if not state.portal.token_info_available:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found")
        if rt.token is not None and body.get("tokenKey") != rt.token:
            raise validation_error("tokenKey does not belong to a private app of this account")
        return 200, {
            "userId": 1,
            "hubId": 1,
            "appId": 1,
            "scopes": sorted(state.portal.granted(rt.token)),
        }

    def assoc_labels(c: Call) -> Reply:
        return 200, {"results": state.association_labels(c.params["from_type"], c.params["to_type"])}

    def assoc_list(c: Call) -> Reply:
        return 200, state.list_associations(
            c.params["object_type"],
            c.params["object_id"],
            c.params["to_type"],
            limit=c.integer("limit", 500),
            after=c.query.get("after"),
        )

    def assoc_put_default(c: Call) -> Reply:
        started = now_iso()
        _, _, type_ids = state.associate_one(
            c.params["object_type"], c.params["object_id"], c.params["to_type"], c.params["to_id"], None
        )
        results = [
            {
                "from": {"id": c.params["object_id"]},
                "to": {"id": c.params["to_id"]},
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
            }
            for type_id in type_ids
        ]
        return _batch_reply(results, [], started)

    def assoc_put(c: Call) -> Reply:
        specs = c.body if isinstance(c.body, list) else []
        f, t, _ = state.associate_one(
            c.params["object_type"], c.params["object_id"], c.params["to_type"], c.params["to_id"], specs
        )
        return 201, {
            "fromObjectTypeId": f.type_id,
            "fromObjectId": int(c.params["object_id"]),
            "toObjectTypeId": t.type_id,
            "toObjectId": int(c.params["to_id"]),
            "labels": [],
        }

    def assoc_delete(c: Call) -> Reply:
        state.disassociate_one(
            c.params["object_type"], c.params["object_id"], c.params["to_type"], c.params["to_id"]
        )
        return 204, None

    # ------------------------------------------------------------------ inspection (no auth, not logged)

    async def inspect_state(request: Request) -> Response:
        data = state.to_dict()
        data["request_count"] = len(rt.request_log)
        return _json_response(200, data, {})

    async def inspect_requests(request: Request) -> Response:
        with rt.log_lock:
            entries = [r.as_dict() for r in rt.request_log]
        return _json_response(200, {"results": entries}, {})

    async def inspect_reset(request: Request) -> Response:
        state.reset()
        rt.limiter.reset()
        with rt.log_lock:
            rt.request_log.clear()
        return Response(status_code=204)

    async def inspect_save(request: Request) -> Response:
        if rt.on_save is None:
            return _json_response(400, {"status": "error", "message": "no state file configured"}, {})
        rt.on_save()
        return Response(status_code=204)

    async def inspect_faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                rt.faults.update(json.loads(await request.body() or b"{}"))
            except (ValueError, TypeError) as exc:
                return _json_response(400, {"status": "error", "message": str(exc)}, {})
        return _json_response(200, rt.faults.as_dict(), {})

    async def unknown(request: Request) -> Response:
        return _json_response(
            404,
            {"status": "error", "message": "resource not found", "correlationId": new_correlation_id()},
            {},
        )

    objects = "/crm/v3/objects/{object_type}"
    props = "/crm/v3/properties/{object_type}"
    pipes = "/crm/v3/pipelines/{object_type}"
    assoc = "/crm/v4/associations/{from_type}/{to_type}"
    v4obj = "/crm/v4/objects/{object_type}/{object_id}/associations"

    def r(path: str, methods: list[str], handler: Handler, **kw: Any) -> Route:
        return Route(path, endpoint(handler, **kw), methods=methods)

    routes = [
        r(f"{objects}/search", ["POST"], search, kind="search"),
        r(f"{objects}/batch/create", ["POST"], batch_create, write=True),
        r(f"{objects}/batch/read", ["POST"], batch_read),
        r(f"{objects}/batch/update", ["POST"], batch_update, write=True),
        r(f"{objects}/batch/upsert", ["POST"], batch_upsert, write=True),
        r(f"{objects}/batch/archive", ["POST"], batch_archive, write=True),
        r(objects, ["GET"], list_objects),
        r(objects, ["POST"], create_object, write=True),
        r(f"{objects}/{{object_id}}", ["GET"], get_object),
        r(f"{objects}/{{object_id}}", ["PATCH"], update_object, write=True),
        r(f"{objects}/{{object_id}}", ["DELETE"], archive_object, write=True),
        r(f"{props}/groups", ["GET"], list_groups),
        r(f"{props}/groups", ["POST"], create_group, write=True),
        r(f"{props}/groups/{{name}}", ["GET"], get_group),
        r(f"{props}/groups/{{name}}", ["PATCH"], update_group, write=True),
        r(f"{props}/groups/{{name}}", ["DELETE"], archive_group, write=True),
        r(f"{props}/batch/create", ["POST"], batch_create_properties, write=True),
        r(f"{props}/batch/read", ["POST"], batch_read_properties),
        r(f"{props}/batch/archive", ["POST"], batch_archive_properties, write=True),
        r(props, ["GET"], list_properties),
        r(props, ["POST"], create_property, write=True),
        r(f"{props}/{{name}}", ["GET"], get_property),
        r(f"{props}/{{name}}", ["PATCH"], update_property, write=True),
        r(f"{props}/{{name}}", ["DELETE"], archive_property, write=True),
        r(pipes, ["GET"], list_pipelines),
        r(pipes, ["POST"], create_pipeline, write=True),
        r(f"{pipes}/{{pipeline_id}}", ["GET"], get_pipeline),
        r(f"{pipes}/{{pipeline_id}}", ["PATCH"], update_pipeline, write=True),
        r(f"{pipes}/{{pipeline_id}}", ["PUT"], replace_pipeline, write=True),
        r(f"{pipes}/{{pipeline_id}}", ["DELETE"], archive_pipeline, write=True),
        r(f"{pipes}/{{pipeline_id}}/stages", ["GET"], list_stages),
        r(f"{pipes}/{{pipeline_id}}/stages", ["POST"], create_stage, write=True),
        r(f"{pipes}/{{pipeline_id}}/stages/{{stage_id}}", ["GET"], get_stage),
        r(f"{pipes}/{{pipeline_id}}/stages/{{stage_id}}", ["PATCH"], update_stage, write=True),
        r(f"{pipes}/{{pipeline_id}}/stages/{{stage_id}}", ["PUT"], replace_stage, write=True),
        r(f"{pipes}/{{pipeline_id}}/stages/{{stage_id}}", ["DELETE"], archive_stage, write=True),
        r(f"{assoc}/batch/associate/default", ["POST"], assoc_default_batch, write=True),
        r(f"{assoc}/batch/create", ["POST"], assoc_create_batch, write=True),
        r(f"{assoc}/batch/read", ["POST"], assoc_read_batch),
        r(f"{assoc}/batch/archive", ["POST"], assoc_archive_batch, write=True),
        r(f"{assoc}/labels", ["GET"], assoc_labels),
        r(f"{v4obj}/{{to_type}}", ["GET"], assoc_list),
        r(f"{v4obj}/default/{{to_type}}/{{to_id}}", ["PUT"], assoc_put_default, write=True),
        r(f"{v4obj}/{{to_type}}/{{to_id}}", ["PUT"], assoc_put, write=True),
        r(f"{v4obj}/{{to_type}}/{{to_id}}", ["DELETE"], assoc_delete, write=True),
        r("/oauth/v2/private-apps/get/access-token-info", ["POST"], token_info),
        Route("/_emulator/state", inspect_state, methods=["GET"]),
        Route("/_emulator/requests", inspect_requests, methods=["GET"]),
        Route("/_emulator/reset", inspect_reset, methods=["POST"]),
        Route("/_emulator/save", inspect_save, methods=["POST"]),
        Route("/_emulator/faults", inspect_faults, methods=["GET", "POST"]),
        Route("/{path:path}", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    return Starlette(routes=routes)
