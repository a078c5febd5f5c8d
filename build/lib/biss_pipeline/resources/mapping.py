"""The mapping spreadsheet as a Dagster resource: assets call `load()` and get a validated `MappingConfig`."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from biss_pipeline.domain.mapping.config import MappingConfig
from biss_pipeline.domain.mapping.sources import (
    DEFAULT_CREDENTIALS_ENV,
    GoogleSheetMappingSource,
    LocalMappingSource,
    MappingSource,
)
from biss_pipeline.domain.paths import mapping_file

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

    def load(self) -> MappingConfig:
        return self.mapping_source().load()
