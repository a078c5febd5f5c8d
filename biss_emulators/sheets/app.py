"""The Starlette app: the Google endpoints a gspread 6 service-account client reads a spreadsheet with.

| route                                                      | real counterpart                             |
| ---------------------------------------------------------- | -------------------------------------------- |
| `POST /token`                                              | `token_uri` of the service-account JSON:     |
|                                                            | JWT-bearer grant → access token              |
| `GET /v1/projects/-/serviceAccounts/{email}/allowedLocations` | google-auth's regional access boundary     |
|                                                            | lookup on iamcredentials.googleapis.com      |
| `GET /v4/spreadsheets/{id}`                                | spreadsheets.get (metadata, no grid data)    |
| `GET /v4/spreadsheets/{id}/values/{range}`                 | spreadsheets.values.get                      |
| `GET /v4/spreadsheets/{id}/values:batchGet?ranges=…`       | spreadsheets.values.batchGet                 |

Read-only on purpose: the pipeline never writes the sheet. Errors use Google's bodies and statuses
(401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 400 INVALID_ARGUMENT), so gspread raises
the same exceptions it raises against Google.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from biss_emulators.sheets.state import (
    READ_SCOPES,
    Grant,
    RangeError,
    SheetsState,
    StoredSpreadsheet,
    parse_range,
    read_values,
)

# google-auth signs its assertion for this audience whatever the token_uri, and Google insists on it.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME_S = 3600
CLOCK_SKEW_S = 300
VALUE_RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
DATE_RENDER_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")


def api_error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status_code=code)


def _oauth_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class SheetsApi:
    def __init__(self, state: SheetsState) -> None:
        self.state = state
        self.app = Starlette(routes=[
            Route("/token", self.token, methods=["POST"]),
            Route("/v1/projects/-/serviceAccounts/{email}/allowedLocations", self.allowed_locations,
                  methods=["GET"]),
            Route("/v4/spreadsheets/{spreadsheet_id}/values:batchGet", self.values_batch_get,
                  methods=["GET"]),
            Route("/v4/spreadsheets/{spreadsheet_id}/values/{range:path}", self.values_get,
                  methods=["GET"]),
            Route("/v4/spreadsheets/{spreadsheet_id}", self.spreadsheet_get, methods=["GET"]),
        ])

    # -- auth -------------------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        self.state.record("POST", request.url.path)
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        try:
            claims = self._verified_claims(form.get("assertion", ""))
        except ValueError as error:
            return _oauth_error("invalid_grant", str(error))
        access_token = "ya29.standin-" + secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.grants[access_token] = Grant(
                client_email=claims["iss"], scopes=frozenset(str(claims.get("scope", "")).split()),
                expires_at=time.time() + TOKEN_LIFETIME_S)
        return JSONResponse({"access_token": access_token, "expires_in": TOKEN_LIFETIME_S,
                             "token_type": "Bearer"})

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        try:
            header_part, claims_part, signature_part = assertion.split(".")
            header = json.loads(_b64url(header_part))
            claims = json.loads(_b64url(claims_part))
            signature = _b64url(signature_part)
        except ValueError:
            raise ValueError("Invalid JWT: malformed assertion.") from None
        if header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: only RS256 is accepted.")
        with self.state.lock:
            public_key = self.state.service_accounts.get(str(claims.get("iss")))
        if public_key is None:
            raise ValueError("Invalid JWT Signature.")  # Google's wording for an unknown account, too
        try:
            public_key.verify(signature, f"{header_part}.{claims_part}".encode(), padding.PKCS1v15(),
                              hashes.SHA256())
        except InvalidSignature:
            raise ValueError("Invalid JWT Signature.") from None
        now = time.time()
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            raise ValueError("Invalid JWT: audience must be the token endpoint.")
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int | float) or not isinstance(expires, int | float):
            raise ValueError("Invalid JWT: iat and exp are required.")
        if issued > now + CLOCK_SKEW_S or expires < now - CLOCK_SKEW_S or expires - issued > TOKEN_LIFETIME_S:
            raise ValueError("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                             "reasonable timeframe.")
        return claims

    def _grant(self, request: Request) -> Grant | JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.state.lock:
            grant = self.state.grants.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires_at < time.time():
            return api_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                             "Expected OAuth 2 access token, login cookie or other valid authentication "
                             "credential.")
        return grant

    async def allowed_locations(self, request: Request) -> Response:
        self.state.record("GET", request.url.path)
        granted = self._grant(request)
        if isinstance(granted, JSONResponse):
            return granted
        # No regional restriction: the answer google-auth caches and then leaves requests alone with.
        return JSONResponse({"locations": [], "encodedLocations": "0x0"})

    # -- sheets -----------------------------------------------------------------------------------------

    def _readable(self, request: Request) -> StoredSpreadsheet | JSONResponse:
        granted = self._grant(request)
        if isinstance(granted, JSONResponse):
            return granted
        if not granted.scopes & READ_SCOPES:
            return api_error(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.")
        with self.state.lock:
            spreadsheet = self.state.spreadsheets.get(request.path_params["spreadsheet_id"])
        if spreadsheet is None:
            return api_error(404, "NOT_FOUND", "Requested entity was not found.")
        if spreadsheet.readers is not None and granted.client_email not in spreadsheet.readers:
            return api_error(403, "PERMISSION_DENIED", "The caller does not have permission")
        return spreadsheet

    async def spreadsheet_get(self, request: Request) -> Response:
        self.state.record("GET", request.url.path)
        spreadsheet = self._readable(request)
        if isinstance(spreadsheet, JSONResponse):
            return spreadsheet
        return JSONResponse({
            "spreadsheetId": spreadsheet.spreadsheet_id,
            "properties": {"title": spreadsheet.title, "locale": spreadsheet.locale,
                           "timeZone": spreadsheet.time_zone, "autoRecalc": "ON_CHANGE"},
            "sheets": [
                {"properties": {"sheetId": sheet.sheet_id, "title": sheet.title, "index": index,
                                "sheetType": "GRID",
                                "gridProperties": {"rowCount": sheet.row_count,
                                                   "columnCount": sheet.column_count}}}
                for index, sheet in enumerate(spreadsheet.worksheets)
            ],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{spreadsheet.spreadsheet_id}/edit",
        })

    @staticmethod
    def _render_options(request: Request) -> tuple[str, str, str] | JSONResponse:
        params = request.query_params
        value_render = params.get("valueRenderOption") or "FORMATTED_VALUE"
        date_render = params.get("dateTimeRenderOption") or "SERIAL_NUMBER"
        major_dimension = params.get("majorDimension") or "ROWS"
        for name, value, allowed in (("value_render_option", value_render, VALUE_RENDER_OPTIONS),
                                     ("date_time_render_option", date_render, DATE_RENDER_OPTIONS),
                                     ("major_dimension", major_dimension, ("ROWS", "COLUMNS"))):
            if value not in allowed:
                return api_error(400, "INVALID_ARGUMENT", f"Invalid value at '{name}' ({value})")
        return value_render, date_render, major_dimension

    async def values_get(self, request: Request) -> Response:
        self.state.record("GET", request.url.path)
        spreadsheet = self._readable(request)
        if isinstance(spreadsheet, JSONResponse):
            return spreadsheet
        options = self._render_options(request)
        if isinstance(options, JSONResponse):
            return options
        value_render, date_render, major_dimension = options
        text = request.path_params["range"]
        with self.state.lock:
            try:
                grid = parse_range(spreadsheet, text)
            except RangeError:
                return api_error(400, "INVALID_ARGUMENT", f"Unable to parse range: {text}")
            return JSONResponse(read_values(grid, value_render, date_render, spreadsheet.locale,
                                            major_dimension))

    async def values_batch_get(self, request: Request) -> Response:
        self.state.record("GET", request.url.path)
        spreadsheet = self._readable(request)
        if isinstance(spreadsheet, JSONResponse):
            return spreadsheet
        options = self._render_options(request)
        if isinstance(options, JSONResponse):
            return options
        value_render, date_render, major_dimension = options
        value_ranges: list[dict[str, Any]] = []
        with self.state.lock:
            # All or nothing, like the API: one bad range fails the whole batch.
            for text in request.query_params.getlist("ranges"):
                try:
                    grid = parse_range(spreadsheet, text)
                except RangeError:
                    return api_error(400, "INVALID_ARGUMENT", f"Unable to parse range: {text}")
                value_ranges.append(read_values(grid, value_render, date_render, spreadsheet.locale,
                                                major_dimension))
        return JSONResponse({"spreadsheetId": spreadsheet.spreadsheet_id, "valueRanges": value_ranges})


def create_app(state: SheetsState) -> Starlette:
    return SheetsApi(state).app
