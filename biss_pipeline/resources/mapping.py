"""The mapping spreadsheet as a Dagster resource: assets call `load()` and get a validated `MappingConfig`.

Practice isolation (README, "A practice's mistake in the mapping"): `load_state()` disables a practice
whose own rows are invalid instead of failing every practice, and falls back to the last good mapping
in the warehouse when the source cannot be read. In a run of one practice (run tag `practice`, which
every per-practice job sets) `load()` raises that practice's error, so only its runs fail.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import make_url

from biss_pipeline.domain.mapping.config import MappingConfig
from biss_pipeline.domain.mapping.isolation import INVALID, UNREADABLE, MappingState, parse_isolated
from biss_pipeline.domain.mapping.last_good import load_last_good
from biss_pipeline.domain.mapping.practices import ConfigError
from biss_pipeline.domain.mapping.sources import (
    DEFAULT_CREDENTIALS_ENV,
    GoogleSheetMappingSource,
    LocalMappingSource,
    MappingSource,
)
from biss_pipeline.domain.paths import mapping_file
from biss_pipeline.domain.warehouse.store import default_warehouse_url, open_warehouse
from biss_pipeline.keys import PRACTICE_TAG

SOURCES = ("local", "gsheet")


class MappingResource(ConfigurableResource):
    """Reads the mapping afresh on every `load()`, so a sheet edit reaches the next run.

    Holds no secret: `credentials_env` is the NAME of the environment variable with the service-account
    JSON, read only when the sheet is.
    """

    source: str = Field(default="local", description="'local' (the YAML file) or 'gsheet' (Google Sheet).")
    path: str | None = Field(
        default=None, description="Local mapping file; default: BISS_MAPPING_FILE or config/mapping.yaml.")
    sheet_id: str | None = Field(default=None, description="Google Sheet key (from its URL); for 'gsheet'.")
    credentials_env: str = Field(
        default=DEFAULT_CREDENTIALS_ENV,
        description="Name of the environment variable holding the service-account JSON (never the JSON).")
    sheets_api_url: str | None = Field(
        default=None, description="Test hook: send Google API calls to this base URL (the Sheets stand-in).")

    def mapping_source(self) -> MappingSource:
        if self.source == "local":
            return LocalMappingSource(mapping_file() if self.path is None else Path(self.path))
        if self.source == "gsheet":
            if not self.sheet_id:
                raise ValueError("MappingResource: source 'gsheet' needs sheet_id")
            return GoogleSheetMappingSource(self.sheet_id, self.credentials_env, self.sheets_api_url)
        raise ValueError(f"MappingResource: unknown source {self.source!r}; expected {' or '.join(SOURCES)}")

    last_good_in_warehouse: bool = Field(
        default=False, description="Read the last good mapping from the warehouse (BISS_WAREHOUSE_URL, "
        "else the embedded SQLite file) when the source cannot be read; the code location sets it.")

    _run_practice: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        run = context.run
        self._run_practice = run.tags.get(PRACTICE_TAG) if run is not None else None

    def _last_good_url(self) -> str | None:
        if not self.last_good_in_warehouse:
            return None
        # The URL is read here, not held in the resource's config, which the UI shows.
        url = os.environ.get("BISS_WAREHOUSE_URL") or default_warehouse_url()
        database = make_url(url).database if url.startswith("sqlite") else None
        if database is not None and not Path(database).exists():
            return None  # no warehouse file yet, so nothing ever loaded; don't create one here
        return url

    def _fallback(self, kind: str, error: Exception) -> MappingState:
        url = self._last_good_url()
        saved = None
        if url is not None:
            try:
                saved = load_last_good(open_warehouse(url).engine)
            except Exception:  # the warehouse is down too: report the mapping's own error
                saved = None
        if saved is None:
            raise error
        state, source = saved
        reason = f"{type(error).__name__}: {error}"
        return MappingState(state.config, state.disabled, fallback=(kind, f"{reason} (using the last good "
                                                                          f"mapping, read from {source})"))

    def load_state(self) -> MappingState:
        """The mapping now, with practices disabled by their own rows; the last good one if unreadable."""
        try:
            tabs = self.mapping_source().read_tabs()
        except ConfigError as error:  # read, but a tab is missing
            return self._fallback(INVALID, error)
        except Exception as error:  # credentials, access, network, a missing file
            return self._fallback(UNREADABLE, error)
        try:
            return parse_isolated(tabs)
        except ConfigError as error:  # a tab every practice shares is invalid: nobody to blame alone
            return self._fallback(INVALID, error)

    def load(self) -> MappingConfig:
        """The config. In a run of one practice, that practice's mapping error (if any) is raised."""
        state = self.load_state()
        if self._run_practice:
            state.check_practice(self._run_practice)
        return state.config

    def load_for(self, practice_id: str) -> MappingConfig:
        state = self.load_state()
        state.check_practice(practice_id)
        return state.config
