"""`SheetsEmulator`: the Google Sheets API and token endpoint for one test or demo, on loopback."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from biss_emulators.server import BackgroundServer
from biss_emulators.sheets.app import create_app
from biss_emulators.sheets.state import SheetsState, StoredSpreadsheet, grid_from_records


class SheetsEmulator:
    """A stand-in for sheets.googleapis.com (and the OAuth token endpoint) serving in-memory spreadsheets.

        with SheetsEmulator() as sheets:
            sheets.put_records("sheet-1", {"practices": [{"id": "mb", ...}]})
            info = sheets.new_service_account()      # token_uri points here
            # see biss_pipeline.domain.mapping.sources
            gspread.service_account_from_dict(info, http_client=...)
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.state = SheetsState()
        self._server = BackgroundServer(create_app(self.state), host, port)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def start(self) -> SheetsEmulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SheetsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content ----------------------------------------------------------------------------------------

    def put_spreadsheet(self, spreadsheet_id: str, tabs: Mapping[str, Sequence[Sequence[Any]]],
                        **options: Any) -> StoredSpreadsheet:
        """Tabs as grids of cells, header row first (options: title, locale, time_zone, readers)."""
        return self.state.put_spreadsheet(spreadsheet_id, tabs, **options)

    def put_records(self, spreadsheet_id: str, tabs: Mapping[str, Sequence[Mapping[str, Any]]],
                    **options: Any) -> StoredSpreadsheet:
        """Tabs as lists of row dicts (the local mapping file's shape), laid out under a header row."""
        grids = {title: grid_from_records(rows or []) for title, rows in tabs.items()}
        return self.state.put_spreadsheet(spreadsheet_id, grids, **options)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request served so far."""
        with self.state.lock:
            return list(self.state.requests)

    # -- service accounts -------------------------------------------------------------------------------

    def new_service_account(self, client_email: str = "biss-mapping@biss-standin.iam.gserviceaccount.com",
                            register: bool = True, token_uri: str | None = None) -> dict[str, Any]:
        """Service-account JSON (as a dict) with a freshly generated throwaway RSA key.

        With `register` the stand-in knows its public key and grants tokens for it; without, the token
        endpoint refuses the signature, like Google for a deleted key.
        """
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if register:
            with self.state.lock:
                self.state.service_accounts[client_email] = private_key.public_key()
        pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        return {
            "type": "service_account",
            "project_id": "biss-standin",
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": client_email,
            "client_id": str(10**20 + secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri or self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + client_email,
            "universe_domain": "googleapis.com",
        }

    def share(self, spreadsheet_id: str, readers: Iterable[str] | None) -> None:
        """Restrict who may read a spreadsheet (None: every registered service account)."""
        with self.state.lock:
            self.state.spreadsheets[spreadsheet_id].readers = None if readers is None else frozenset(readers)
