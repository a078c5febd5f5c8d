"""Where the mapping comes from: the local YAML file or the client's Google Sheet (SPEC §4).

Both sources return the same shape, tab name → list of row dicts, and `load()` feeds it to the one
parser (`parse_mapping`). Neither caches: every `load()` reads the source again, so a sheet edit is
seen by the next run.

Google Sheet
------------
Read through gspread with a service account whose JSON key sits in an environment variable
(`credentials_env`, default `BISS_GSHEET_CREDENTIALS`); the variable may instead hold the path of the
JSON file. The key is never logged or put into an error message. The account gets read-only scopes;
share the sheet with its `client_email` (viewer is enough).

One read costs three API requests whatever the number of tabs (metadata on open, the tab list, one
`values:batchGet` for all tabs), which keeps well inside the Sheets read quota (60 a minute per user)
even when several runs start at once. Cells are read as displayed (`FORMATTED_VALUE`), so the parser
sees what the maintainer sees: `0,5` in a German sheet, `TRUE` for a checkbox, a text-formatted `0010`
with its zeros.

Test hook: `sheets_api_url`. When set, every request to a `*.googleapis.com` host (the Sheets API,
google-auth's token and IAM lookups) goes to that base URL instead, keeping path and query; requests to
any other https host fail rather than leave the machine. The token endpoint is whatever the key's
`token_uri` says. `biss_emulators.sheets.SheetsEmulator` serves all of these on loopback.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import gspread
import requests
from google.auth.transport.requests import AuthorizedSession, Request
from gspread.http_client import BackOffHTTPClient, HTTPClient
from gspread.utils import absolute_range_name, convert_credentials

from biss_pipeline.domain.mapping.config import (
    KEY_COLUMNS,
    MAPPING_TABS,
    REQUIRED_TABS,
    MappingConfig,
    column_name,
    parse_mapping,
)
from biss_pipeline.domain.mapping.practices import ConfigError, load_mapping_tabs

DEFAULT_CREDENTIALS_ENV = "BISS_GSHEET_CREDENTIALS"
# Tab name → rows: dicts of column → cell value, or None where a row only keeps the numbering.
Tabs = dict[str, list[Any]]


class MappingSourceError(RuntimeError):
    """The mapping could not be read at all (credentials, access); the content was never seen."""


class MappingSource(ABC):
    @abstractmethod
    def read_tabs(self) -> Tabs:
        """Tab name → rows; a None row is a placeholder that keeps the sheet's row numbers."""

    @abstractmethod
    def describe(self) -> str:
        """Where the mapping is read from, for logs and run metadata (no secrets)."""

    def load(self) -> MappingConfig:
        return parse_mapping(self.read_tabs())


@dataclass(frozen=True)
class LocalMappingSource(MappingSource):
    """The YAML file with the sheet's tabs (`config/mapping.yaml` by default)."""

    path: Path

    def read_tabs(self) -> Tabs:
        return load_mapping_tabs(Path(self.path))

    def describe(self) -> str:
        return f"local file {self.path}"


# --- Google Sheet --------------------------------------------------------------------------------------


def service_account_info(credentials_env: str) -> dict[str, Any]:
    """The service-account key from the environment variable named `credentials_env` (JSON or a path)."""
    raw = os.environ.get(credentials_env, "").strip()
    if not raw:
        raise MappingSourceError(f"environment variable {credentials_env} is not set; it must hold the "
                                 "service-account JSON key (or the path of the key file)")
    if not raw.startswith("{"):
        key_file = Path(raw)
        if not key_file.is_file():
            raise MappingSourceError(f"environment variable {credentials_env} holds neither JSON nor the "
                                     "path of an existing key file")
        raw = key_file.read_text(encoding="utf-8")
    try:
        info = json.loads(raw)
    except json.JSONDecodeError:
        # `from None`: the decode error carries the whole document, which is the secret.
        raise MappingSourceError(f"the service-account key in {credentials_env} is not valid JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise MappingSourceError(f"the key in {credentials_env} is not a service-account key "
                                 "(expected \"type\": \"service_account\")")
    return info


class _GoogleApiRedirect(requests.adapters.HTTPAdapter):
    """Sends `https://*.googleapis.com/<path>` to `<base_url>/<path>`; refuses every other https host."""

    # google-auth deep-copies the transport for its background lookups; adapters copy only these.
    __attrs__: ClassVar[list[str]] = [*requests.adapters.HTTPAdapter.__attrs__, "base_url"]  # type: ignore[misc]

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        if not (parts.hostname or "").endswith(".googleapis.com"):
            raise requests.ConnectionError(f"{parts.hostname} is not a Google API host; with sheets_api_url "
                                           "set, nothing else may be reached")
        request.url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().send(request, *args, **kwargs)


def google_http_client(sheets_api_url: str | None = None) -> type[HTTPClient]:
    """The gspread HTTP client class to use: Google itself, or everything redirected to `sheets_api_url`.

    gspread takes the class as `http_client=` (`service_account_from_dict(..., http_client=...)`). The
    back-off client retries 429 and 5xx answers, which the Sheets API gives under quota pressure.
    """
    if sheets_api_url is None:
        return BackOffHTTPClient
    base_url = sheets_api_url

    class RedirectedHTTPClient(BackOffHTTPClient):
        def __init__(self, auth: Any, session: requests.Session | None = None) -> None:
            if session is not None:
                super().__init__(auth, session)
                return
            credentials = convert_credentials(auth)
            # google-auth signs in and runs its lookups through a session of its own: redirect both.
            auth_session = requests.Session()
            auth_session.mount("https://", _GoogleApiRedirect(base_url))
            authorized = AuthorizedSession(credentials, auth_request=Request(auth_session))
            authorized.mount("https://", _GoogleApiRedirect(base_url))
            super().__init__(credentials, authorized)
            self.auth = credentials

    return RedirectedHTTPClient


def records_from_values(tab: str, values: Sequence[Sequence[Any]]) -> list[dict[str, Any] | None]:
    """Rows of a `ValueRange` (header first) → row dicts, None placeholders keeping the sheet's numbering.

    The header is the first row naming the tab's key column (else the first non-empty row), so a title
    row above it is allowed; rows above it become placeholders so that error messages still name the row
    the maintainer sees.
    """
    key_column = KEY_COLUMNS.get(tab)
    filled = [index for index, row in enumerate(values) if any(str(cell).strip() for cell in row)]
    if not filled:
        return []
    header_index = next((index for index in filled
                         if key_column in {column_name(cell) for cell in values[index]}), filled[0])
    header = [str(cell) for cell in values[header_index]]
    seen: set[str] = set()
    for cell in header:
        name = column_name(cell)
        if name and name in seen:
            raise ConfigError(tab, header_index + 1, name, "the column appears twice in the header")
        seen.add(name)
    records: list[dict[str, Any] | None] = [None] * header_index
    for row in values[header_index + 1:]:
        padded = [*row, *([""] * (len(header) - len(row)))]
        records.append({column: padded[index] for index, column in enumerate(header) if column.strip()})
    return records


@dataclass(frozen=True)
class GoogleSheetMappingSource(MappingSource):
    """The client's mapping spreadsheet, read with gspread and a service account."""

    sheet_id: str
    credentials_env: str = DEFAULT_CREDENTIALS_ENV
    sheets_api_url: str | None = None

    def client(self) -> gspread.Client:
        info = service_account_info(self.credentials_env)
        try:
            return gspread.service_account_from_dict(info, scopes=gspread.auth.READONLY_SCOPES,
                                                     http_client=google_http_client(self.sheets_api_url))
        except ValueError:
            raise MappingSourceError(f"the service-account key in {self.credentials_env} is incomplete or "
                                     "its private key cannot be read") from None

    def read_tabs(self) -> Tabs:
        client = self.client()
        try:
            spreadsheet = client.open_by_key(self.sheet_id)
        except PermissionError:
            email = client.http_client.auth.service_account_email  # type: ignore[attr-defined]
            raise MappingSourceError(f"service account {email} may not read sheet {self.sheet_id}; share "
                                     "the sheet with it (viewer)") from None
        except gspread.SpreadsheetNotFound:
            raise MappingSourceError(f"no spreadsheet {self.sheet_id} (or it is not shared with the "
                                     "service account)") from None
        titles = {column_name(worksheet.title): worksheet.title for worksheet in spreadsheet.worksheets()}
        for tab in REQUIRED_TABS:
            if tab not in titles:
                raise ConfigError(tab, None, None, f"the tab is missing from Google Sheet {self.sheet_id} "
                                  f"(tabs there: {', '.join(titles.values()) or 'none'})")
        wanted = [(tab, titles[tab]) for tab in MAPPING_TABS if tab in titles]
        response = spreadsheet.values_batch_get(
            [absolute_range_name(title) for _, title in wanted],
            params={"valueRenderOption": "FORMATTED_VALUE", "majorDimension": "ROWS"},
        )
        value_ranges = response.get("valueRanges", [])
        return {tab: records_from_values(tab, value_range.get("values", []))
                for (tab, _), value_range in zip(wanted, value_ranges, strict=True)}

    def describe(self) -> str:
        target = f" via {self.sheets_api_url}" if self.sheets_api_url else ""
        return f"Google Sheet {self.sheet_id}{target}"
